//! Resumable sessions (issue 7, PROTOCOL.md section 15) over real QUIC on 127.0.0.1: a client
//! of two directors streams from a worker registered with both; its director is SIGKILLed (a
//! child process) and the stream continues on the other director exactly once, in order. Forged
//! and replayed credentials are refused with their codes and leave the real session untouched.
//!
//! The killed director runs in a child process: this test binary, re-run with [`CHILD_ENV`] set,
//! runs only the ignored test `child_director`.

mod common;

use common::child::TempDir;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rpcnet_protocol::{Decoder, ErrorCode, Frame};
use rpcnet_runtime::client::{ItemStream, SessionEvent};
use rpcnet_runtime::cluster::CA_CERT_FILE;
use rpcnet_runtime::director::{Director, DirectorConfig};
use rpcnet_runtime::worker::{Worker, WorkerConfig};
use rpcnet_runtime::{Client, ClientConfig, ClientTrust};

/// Set in the child process: the cluster directory of its director.
const CHILD_ENV: &str = "RPCNET_TEST_RESUME_CHILD_DIR";
/// Items of the streamed call.
const ITEMS: u64 = 300;

/// Not a test on its own: the child process. Runs a director of the cluster named by
/// [`CHILD_ENV`], prints `READY <user address> <management address>` and serves until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of the resume tests"]
async fn child_director() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let director = Director::bind(DirectorConfig::new(common::creds(
        Path::new(&dir),
        "director",
    )))
    .await
    .unwrap();
    println!("READY {} {}", director.local_addr(), director.mgmt_addr());
    std::future::pending::<()>().await;
}

/// A director in a child process, killed with SIGKILL on drop.
struct ChildDirector {
    child: tokio::process::Child,
    user: SocketAddr,
    mgmt: SocketAddr,
}

impl ChildDirector {
    async fn start(dir: &Path) -> Self {
        let (child, addrs) = common::child::spawn_ready("child_director", CHILD_ENV, dir).await;
        ChildDirector {
            child,
            user: addrs[0],
            mgmt: addrs[1],
        }
    }
}

/// A resumable client of `addrs` trusting the cluster CA of `dir`, noticing a dead director
/// after 300 ms of silence.
async fn resumable_client(dir: &Path, addrs: &[SocketAddr]) -> Client {
    let mut config = ClientConfig::new(ClientTrust::CaFile(dir.join(CA_CERT_FILE)));
    config.resume = true;
    config.loss_detection_ms = Some(300);
    Client::connect_any(addrs, config).await.unwrap()
}

/// Where each call of the handler started: `None` fresh, `Some(seq)` resumed at `seq`.
type Starts = Arc<std::sync::Mutex<Vec<Option<u64>>>>;

/// worker-a, registered with every director of `mgmt`, serving `count` (an item every 5 ms,
/// checkpointing after each, recording where each call starts in `starts`); returns once every
/// director accepted it.
async fn worker(dir: &Path, mgmt: &[SocketAddr], starts: Starts) -> Arc<Worker> {
    let w = start_worker_a(dir, mgmt).await;
    let on_call: common::OnCall = Arc::new(move |resume| starts.lock().unwrap().push(resume));
    let every = Duration::from_millis(5);
    let on_push: common::OnPush = Arc::new(|_| {});
    tokio::spawn(common::serve_with(
        w.clone(),
        ITEMS,
        16,
        every,
        on_push,
        on_call,
    ));
    registered(&w, mgmt.len()).await;
    w
}

/// Starts worker-a (heartbeats every 50 ms) for the directors of `mgmt`.
async fn start_worker_a(dir: &Path, mgmt: &[SocketAddr]) -> Arc<Worker> {
    let directors = mgmt.iter().map(ToString::to_string).collect();
    let config = WorkerConfig {
        heartbeat_ms: 50,
        ..WorkerConfig::new("worker-a", directors, common::creds(dir, "worker-a"))
    };
    Arc::new(Worker::start(config).await.unwrap())
}

/// Waits (at most 10 s) until `directors` directors accepted `w`.
async fn registered(w: &Worker, directors: usize) {
    let until = Instant::now() + Duration::from_secs(10);
    while w.leases().iter().filter(|(_, held)| *held).count() < directors {
        assert!(
            Instant::now() < until,
            "worker-a did not register with every director"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads `stream` to its END into `seqs`; returns the longest wait for a batch. Panics when the
/// stream fails or stalls for 20 s.
async fn read_to_end(stream: &mut ItemStream, seqs: &mut Vec<u64>) -> Duration {
    let mut longest_wait = Duration::ZERO;
    loop {
        let before = Instant::now();
        let batch = tokio::time::timeout(Duration::from_secs(20), stream.next_batch(64))
            .await
            .expect("the stream stalled")
            .unwrap_or_else(|e| panic!("the stream failed after {} items: {e}", seqs.len()));
        longest_wait = longest_wait.max(before.elapsed());
        match batch {
            Some(items) => seqs.extend(items.iter().map(common::seq_of)),
            None => return longest_wait,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_continues_exactly_once_on_another_director_when_its_director_is_killed() {
    let tmp = TempDir::new("resume-kill");
    let mut d1 = ChildDirector::start(&tmp.0).await;
    let d2 = Director::bind(DirectorConfig::new(common::creds(&tmp.0, "director")))
        .await
        .unwrap();
    let starts = Starts::default();
    let _w = worker(&tmp.0, &[d1.mgmt, d2.mgmt_addr()], starts.clone()).await;
    let client = resumable_client(&tmp.0, &[d1.user, d2.local_addr()]).await;
    let session = client.session_id().expect("a resumable session");
    let first_connection = client.connection_id();
    let mut stream = client.streaming("count", Bytes::new(), 0).await.unwrap();
    let mut seqs = Vec::new();
    while seqs.len() < 40 {
        for item in stream.next_batch(64).await.unwrap().unwrap() {
            seqs.push(common::seq_of(&item));
        }
    }
    // The client stops reading: what the worker produces meanwhile piles up in flight (in the
    // director's buffers and the client's stream window), where the kill loses it. Only the
    // worker's unacknowledged items can bring it back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    d1.child.kill().await.unwrap();
    let killed_at = Instant::now();
    let longest_wait = read_to_end(&mut stream, &mut seqs).await;
    eprintln!(
        "{} items; longest wait {longest_wait:?} (director killed {:?} before the end)",
        seqs.len(),
        killed_at.elapsed()
    );
    assert_eq!(
        seqs,
        (0..ITEMS).collect::<Vec<_>>(),
        "every item exactly once, in order"
    );
    // The owner kept what the client had not acknowledged: the handler continued from its
    // latest checkpoint, never again from the start.
    let starts = starts.lock().unwrap().clone();
    eprintln!("handler starts: {starts:?}");
    assert_eq!(starts.first(), Some(&None));
    assert!(
        starts[1..].iter().all(|s| s.is_some_and(|seq| seq > 0)),
        "a resumed handler restarted from the beginning: {starts:?}"
    );
    assert!(
        starts.len() >= 2,
        "the handler resumed after the kill: {starts:?}"
    );
    let events = tokio::time::timeout(Duration::from_secs(1), client.next_session_events(8))
        .await
        .unwrap();
    assert!(
        matches!(events.first(), Some(SessionEvent::Reconnecting { .. })),
        "{events:?}"
    );
    let resumed = events
        .iter()
        .find_map(|e| match e {
            SessionEvent::Resumed {
                pause_ms, address, ..
            } => Some((*pause_ms, *address)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no resumed event: {events:?}"));
    eprintln!("resumed on {} after {:.1} ms", resumed.1, resumed.0);
    assert_eq!(resumed.1, d2.local_addr(), "resumed on the other director");
    assert_eq!(
        d2.handshakes(),
        (0, 1),
        "the resume is a resumed TLS handshake with the killed director's ticket"
    );
    assert_eq!(
        client.session_id().unwrap(),
        session,
        "the session id stays"
    );
    assert_ne!(
        client.connection_id(),
        first_connection,
        "the connection is new"
    );
    client.close().await;
    d2.close().await;
}

/// A raw connection to `addr` and its session stream after HELLO with `credential`: the frame
/// the director answered.
async fn hello(d: &Director, credential: Bytes) -> (quinn::Connection, Frame) {
    let connection = common::raw_connection(d.local_addr(), d.cert_fingerprint(), None).await;
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    send.write_all(&Frame::Hello { credential }.to_bytes())
        .await
        .unwrap();
    let answer = read_frames(&mut recv, 1).await.remove(0);
    tokio::spawn(async move {
        let _keep = send; // the session stream stays open
        let _ = recv.read_to_end(1 << 20).await;
    });
    (connection, answer)
}

/// Reads `n` frames from `recv`.
async fn read_frames(recv: &mut quinn::RecvStream, n: usize) -> Vec<Frame> {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    while frames.len() < n {
        if let Some(f) = decoder.decode(&mut buf).unwrap() {
            frames.push(f);
            continue;
        }
        let chunk = recv
            .read_chunk(1 << 16, true)
            .await
            .unwrap()
            .expect("more frames");
        buf.extend_from_slice(&chunk.bytes);
    }
    frames
}

/// Opens call 0 (`count`) of a resumable session on `connection` at `next_seq`: CALL, REQUEST.
async fn open_count(
    connection: &quinn::Connection,
    next_seq: u64,
) -> (quinn::SendStream, quinn::RecvStream) {
    let (mut send, recv) = connection.open_bi().await.unwrap();
    let request = Frame::Request(rpcnet_protocol::Request {
        method: "count".into(),
        deadline_ms: 0,
        streaming: true,
        payload: Bytes::new(),
        ..Default::default()
    });
    let call = Frame::Call {
        call_id: 0,
        next_seq,
    };
    send.write_all(&[call.to_bytes(), request.to_bytes()].concat())
        .await
        .unwrap();
    (send, recv)
}

/// Opens call 0 of a resumable session on `connection` at `next_seq` and reads `n` items.
async fn call_count(connection: &quinn::Connection, next_seq: u64, n: usize) -> Vec<u64> {
    let (send, mut recv) = open_count(connection, next_seq).await;
    let frames = read_frames(&mut recv, n).await;
    std::mem::forget(send); // keep the call open
    frames
        .into_iter()
        .map(|f| match f {
            Frame::Item { seq, .. } => seq,
            other => panic!("expected an ITEM, got {other:?}"),
        })
        .collect()
}

fn refused(frame: Frame, code: &str) {
    match frame {
        Frame::Error { code: c, message } => {
            assert_eq!(c, ErrorCode::InvalidArgument, "{message}");
            assert!(message.starts_with(code), "expected {code}: {message}");
        }
        other => panic!("expected ERROR {code}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_replayed_credentials_are_refused_and_the_session_goes_on() {
    let tmp = TempDir::new("resume-forged");
    let d = Director::bind(DirectorConfig::new(common::creds(&tmp.0, "director")))
        .await
        .unwrap();
    let _w = worker(&tmp.0, &[d.mgmt_addr()], Starts::default()).await;
    let (c1, welcome) = hello(&d, Bytes::new()).await;
    let Frame::Welcome {
        credential: cred0,
        session_id,
    } = welcome
    else {
        panic!("expected WELCOME, got {welcome:?}");
    };
    assert_eq!(call_count(&c1, 0, 5).await, [0, 1, 2, 3, 4]);

    // Forged: one bit changed, or not a credential at all.
    let mut forged = cred0.to_vec();
    *forged.last_mut().unwrap() ^= 1;
    refused(hello(&d, Bytes::from(forged)).await.1, "RESUME_INVALID");
    refused(
        hello(&d, Bytes::from_static(b"not a credential")).await.1,
        "RESUME_INVALID",
    );

    // The real client resumes on a second connection (the first one is lost): generation 1.
    c1.close(rpcnet_runtime::client::MOVED_CODE.into(), b"moved");
    let (c2, welcome) = hello(&d, cred0.clone()).await;
    let Frame::Welcome {
        session_id: same, ..
    } = welcome
    else {
        panic!("the resume was refused: {welcome:?}");
    };
    assert_eq!(same, session_id, "the session keeps its id");

    // Someone replays the credential the client has just used: refused, nothing moves.
    refused(hello(&d, cred0).await.1, "RESUME_REPLAYED");

    // The resumed session's call continues at the client's next seq, exactly once.
    assert_eq!(call_count(&c2, 5, 5).await, [5, 6, 7, 8, 9]);
    d.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_director_shutting_down_moves_its_clients_and_their_streams_go_on() {
    let tmp = TempDir::new("resume-move");
    let d1 = Director::bind(DirectorConfig::new(common::creds(&tmp.0, "director")))
        .await
        .unwrap();
    let d2 = Director::bind(DirectorConfig::new(common::creds(&tmp.0, "director")))
        .await
        .unwrap();
    let starts = Starts::default();
    let _w = worker(&tmp.0, &[d1.mgmt_addr(), d2.mgmt_addr()], starts.clone()).await;
    let client = resumable_client(&tmp.0, &[d1.local_addr(), d2.local_addr()]).await;
    let mut stream = client.streaming("count", Bytes::new(), 0).await.unwrap();
    let mut seqs = Vec::new();
    while seqs.len() < 40 {
        seqs.extend(
            stream
                .next_batch(64)
                .await
                .unwrap()
                .unwrap()
                .iter()
                .map(common::seq_of),
        );
    }
    let shutdown = tokio::spawn(async move { d1.shutdown(5_000).await });
    let longest_wait = read_to_end(&mut stream, &mut seqs).await;
    let stayed = tokio::time::timeout(Duration::from_secs(6), shutdown)
        .await
        .expect("the shutdown ended within its bound")
        .unwrap();
    eprintln!("longest wait {longest_wait:?}; {stayed} clients stayed");
    assert_eq!(stayed, 0, "the client moved before the shutdown's bound");
    assert_eq!(
        seqs,
        (0..ITEMS).collect::<Vec<_>>(),
        "every item exactly once, in order"
    );
    let events = tokio::time::timeout(Duration::from_secs(1), client.next_session_events(8))
        .await
        .unwrap();
    assert!(
        matches!(&events[..], [SessionEvent::Reconnecting { reason }, SessionEvent::Resumed { address, .. }, ..]
            if reason.contains("move") && *address == d2.local_addr()),
        "{events:?}"
    );
    assert!(
        longest_wait < Duration::from_millis(250),
        "a move is not a loss: {longest_wait:?}"
    );
    assert_eq!(d2.handshakes(), (0, 1), "a resumed TLS handshake");
    client.close().await;
    d2.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_client_vanished_with_no_call_open_waits_for_a_resume() {
    let tmp = TempDir::new("resume-vanished");
    let d = Director::bind(DirectorConfig::new(common::creds(&tmp.0, "director")))
        .await
        .unwrap();
    let w = worker(&tmp.0, &[d.mgmt_addr()], Starts::default()).await;
    let (c, welcome) = hello(&d, Bytes::new()).await;
    assert!(matches!(welcome, Frame::Welcome { .. }), "{welcome:?}");
    // One call to the end: the owner holds the resumable session, with no call open.
    let request = Frame::Request(rpcnet_protocol::Request {
        method: "count".into(),
        deadline_ms: 0,
        streaming: true,
        payload: Bytes::new(),
        ..Default::default()
    });
    let (mut send, mut recv) = c.open_bi().await.unwrap();
    let head = [
        Frame::Call {
            call_id: 0,
            next_seq: 0,
        }
        .to_bytes(),
        request.to_bytes(),
    ];
    send.write_all(&head.concat()).await.unwrap();
    send.finish().unwrap();
    let frames = read_frames(&mut recv, ITEMS as usize + 1).await;
    assert_eq!(frames.last(), Some(&Frame::End { items: ITEMS }));
    assert_eq!(w.migration_memory().detached, 0);
    // The client vanishes without ending its session (not code 0).
    c.close(rpcnet_runtime::client::MOVED_CODE.into(), b"gone");
    let until = Instant::now() + Duration::from_secs(5);
    while w.migration_memory().detached == 0 {
        assert!(
            Instant::now() < until,
            "the owner never started the session's resume window"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        w.migration_memory().sessions,
        1,
        "kept for a resume, not dropped"
    );
    d.close().await;
}

/// A director that lost a session to a resume through another director, while its own client
/// connection still looks alive to it, learns it from the owner (SUPERSEDED, PROTOCOL.md
/// section 15.6) at its next ATTACH: it ends the call it relays with `UNAVAILABLE` and gives
/// the session up instead of retrying or failing it over, and the resumed call goes on
/// exactly once through the other director.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_director_that_lost_its_session_to_a_resume_gives_it_up() {
    let tmp = TempDir::new("resume-superseded");
    let creds = || common::creds(&tmp.0, "director");
    let d1 = Director::bind(DirectorConfig::new(creds())).await.unwrap();
    let d2 = Director::bind(DirectorConfig::new(creds())).await.unwrap();
    let _w = worker(&tmp.0, &[d1.mgmt_addr(), d2.mgmt_addr()], Starts::default()).await;
    let (c1, welcome) = hello(&d1, Bytes::new()).await;
    let Frame::Welcome { credential, .. } = welcome else {
        panic!("expected WELCOME, got {welcome:?}");
    };
    let (send, mut recv) = open_count(&c1, 0).await;
    let first = read_frames(&mut recv, 1).await.remove(0);
    assert!(matches!(first, Frame::Item { seq: 0, .. }), "{first:?}");

    // The client resumes through d2 while its connection to d1 stays open (d1 has not noticed
    // anything): the claim moves the session to generation 1 at the owner.
    let (c2, welcome) = hello(&d2, credential).await;
    assert!(matches!(welcome, Frame::Welcome { .. }), "{welcome:?}");

    // d1's call ends with UNAVAILABLE after the items it had relayed, in order.
    let mut seen = vec![0];
    let end = loop {
        match read_frames(&mut recv, 1).await.remove(0) {
            Frame::Item { seq, .. } => seen.push(seq),
            other => break other,
        }
    };
    match end {
        Frame::Error { code, message } => {
            assert_eq!(code, ErrorCode::Unavailable, "{message}");
            assert!(
                message.contains("resumed through another director"),
                "{message}"
            );
        }
        other => panic!("expected ERROR UNAVAILABLE on the superseded call, got {other:?}"),
    }
    assert_eq!(seen, (0..seen.len() as u64).collect::<Vec<_>>());

    // The call continues through d2 at the client's next seq, exactly once.
    let next = seen.len() as u64;
    assert_eq!(
        call_count(&c2, next, 5).await,
        (next..next + 5).collect::<Vec<_>>()
    );
    drop(send);
    d1.close().await;
    d2.close().await;
}

/// A unary call in flight when its director dies is sent again on the resumed session only if
/// the caller marked it idempotent (PROTOCOL.md section 15.3); otherwise it fails with
/// `UNAVAILABLE` and says why, and its handler ran once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_call_in_flight_at_a_director_crash_is_sent_again_only_if_idempotent() {
    let tmp = TempDir::new("resume-unary");
    let mut d1 = ChildDirector::start(&tmp.0).await;
    let d2 = Director::bind(DirectorConfig::new(common::creds(&tmp.0, "director")))
        .await
        .unwrap();
    let runs: Arc<std::sync::Mutex<Vec<Bytes>>> = Arc::default();
    let _w = slow_echo_worker(&tmp.0, &[d1.mgmt, d2.mgmt_addr()], runs.clone()).await;
    let client = Arc::new(resumable_client(&tmp.0, &[d1.user, d2.local_addr()]).await);
    let call = |payload: &'static [u8], idempotent: bool| {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .unary_call("slow", Bytes::from_static(payload), 0, None, idempotent)
                .await
        })
    };
    let (again, once) = (call(b"again", true), call(b"once", false));
    // Both requests reach the handler, whose answers wait SLOW_ECHO_MS; the director dies first.
    let until = Instant::now() + Duration::from_secs(5);
    while runs.lock().unwrap().len() < 2 {
        assert!(Instant::now() < until, "the calls did not reach the worker");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    d1.child.kill().await.unwrap();

    assert_eq!(again.await.unwrap().unwrap(), Bytes::from_static(b"again"));
    let e = once.await.unwrap().unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable, "{e}");
    assert!(e.message.contains("not marked idempotent"), "{e}");
    let runs = runs.lock().unwrap().clone();
    let count = |p: &[u8]| runs.iter().filter(|r| r.as_ref() == p).count();
    assert_eq!(count(b"again"), 2, "sent again after the resume: {runs:?}");
    assert_eq!(count(b"once"), 1, "not sent again: {runs:?}");
    client.close().await;
    d2.close().await;
}

/// How long `slow` takes to answer, ms.
const SLOW_ECHO_MS: u64 = 700;

/// worker-a, registered with every director of `mgmt`, serving the unary `slow`: records each
/// request in `runs`, then answers it with its payload after [`SLOW_ECHO_MS`].
async fn slow_echo_worker(
    dir: &Path,
    mgmt: &[SocketAddr],
    runs: Arc<std::sync::Mutex<Vec<Bytes>>>,
) -> Arc<Worker> {
    let w = start_worker_a(dir, mgmt).await;
    let server = w.server().clone();
    server.register("slow", rpcnet_runtime::MethodKind::Unary);
    tokio::spawn(async move {
        loop {
            let events = server.next_events(16).await;
            if events.is_empty() {
                return;
            }
            for e in events {
                if let rpcnet_runtime::ServerEvent::Call { id, payload, .. } = e {
                    runs.lock().unwrap().push(payload.clone());
                    let server = server.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(SLOW_ECHO_MS)).await;
                        server.respond(id, Ok(payload));
                    });
                }
            }
        }
    });
    registered(&w, mgmt.len()).await;
    w
}

/// A resumable session that has not made a call yet is known to its owner all the same
/// (`rpcnet.mgmt/session-opened`), so it resumes after its director's SIGKILL and keeps its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_with_no_call_yet_resumes_after_its_director_is_killed() {
    let tmp = TempDir::new("resume-idle");
    let mut d1 = ChildDirector::start(&tmp.0).await;
    let d2 = Director::bind(DirectorConfig::new(common::creds(&tmp.0, "director")))
        .await
        .unwrap();
    let _w = worker(&tmp.0, &[d1.mgmt, d2.mgmt_addr()], Starts::default()).await;
    let client = resumable_client(&tmp.0, &[d1.user, d2.local_addr()]).await;
    let session = client.session_id().expect("a resumable session");
    d1.child.kill().await.unwrap();
    let events = tokio::time::timeout(Duration::from_secs(10), async {
        let mut seen = Vec::new();
        while !seen
            .iter()
            .any(|e| matches!(e, SessionEvent::Resumed { .. } | SessionEvent::Lost { .. }))
        {
            seen.extend(client.next_session_events(8).await);
        }
        seen
    })
    .await
    .expect("a session event within 10 s");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SessionEvent::Resumed { .. })),
        "{events:?}"
    );
    assert_eq!(client.session_id(), Some(session), "the session id stays");
    let mut stream = client.streaming("count", Bytes::new(), 0).await.unwrap();
    let mut seqs = Vec::new();
    read_to_end(&mut stream, &mut seqs).await;
    assert_eq!(seqs, (0..ITEMS).collect::<Vec<_>>());
    client.close().await;
    d2.close().await;
}

//! Worker membership with directors that restart, several directors, and cluster addressing
//! (issue 7, "no single point of failure"), over real QUIC on loopback, asserting on what the
//! clients receive:
//! - a director restarted on the same ports sees its worker register again (closed connection,
//!   and a close that never reached the worker, as after SIGKILL) and serves new sessions on it;
//! - a worker registered with two directors serves clients of both; when one director goes, its
//!   lease lapses but the other director's calls are not fenced: its client's stream goes on
//!   without a gap;
//! - a worker bound to 0.0.0.0 advertising 127.0.0.1, with its director named `localhost:port`,
//!   serves a call;
//! - a director that does not run yet is retried until `connect_timeout_ms`, then UNAVAILABLE
//!   names it; with several directors, one that accepts is enough and the others are retried in
//!   the background; a director of another cluster refuses the worker at once.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::lossy_proxy::LossyProxy;
use rpcnet_runtime::director::{Director, DirectorConfig};
use rpcnet_runtime::worker::{Worker, WorkerConfig};
use rpcnet_runtime::{ErrorCode, ItemStream};

const ITEMS: u64 = 1_000_000;

fn cluster_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("rpcnet-{name}-{}", std::process::id()))
}

/// A director of cluster `dir` on `user` and `mgmt` (port 0: any).
async fn director_on(dir: &std::path::Path, user: SocketAddr, mgmt: SocketAddr) -> Director {
    let mut config = DirectorConfig::new(common::creds(dir, "director"));
    config.bind = user;
    config.mgmt_bind = mgmt;
    Director::bind(config).await.unwrap()
}

/// Worker `id` registering with `directors` (management addresses), serving `count` one item
/// every `every`.
async fn worker(
    dir: &std::path::Path,
    id: &str,
    directors: Vec<String>,
    every: Duration,
) -> Arc<Worker> {
    let config = WorkerConfig {
        heartbeat_ms: 50,
        ..WorkerConfig::new(id, directors, common::creds(dir, id))
    };
    let w = Arc::new(Worker::start(config).await.unwrap());
    tokio::spawn(common::serve(w.clone(), ITEMS, 8, every));
    w
}

/// Reads `n` more items, checking they continue the stream at `next`, in order; returns the
/// longest wait for a batch.
async fn read_on(stream: &mut ItemStream, next: &mut u64, n: u64) -> Duration {
    let until = *next + n;
    let mut longest = Duration::ZERO;
    while *next < until {
        let asked = Instant::now();
        let batch = tokio::time::timeout(Duration::from_secs(5), stream.next_batch(64))
            .await
            .expect("items keep arriving")
            .unwrap()
            .expect("the stream is not over");
        longest = longest.max(asked.elapsed());
        for item in batch {
            assert_eq!(common::seq_of(&item), *next, "exactly once, in order");
            *next += 1;
        }
    }
    longest
}

/// Reads for `span`, checking exactly once and in order; returns the longest wait for a batch.
async fn read_for(stream: &mut ItemStream, next: &mut u64, span: Duration) -> Duration {
    let stop = Instant::now() + span;
    let mut longest = Duration::ZERO;
    while Instant::now() < stop {
        longest = longest.max(read_on(stream, next, 1).await);
    }
    longest
}

/// A port on loopback that nothing listens on now.
fn free_port() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Waits up to `ms` for `director` to have `n` live workers; returns how long it took.
async fn registered_within(director: &Director, n: usize, ms: u64) -> Option<Duration> {
    let start = Instant::now();
    director
        .wait_for_workers(n, ms)
        .await
        .then(|| start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_director_sees_its_worker_again_and_serves_new_sessions() {
    let dir = cluster_dir("restart");
    let first = director_on(&dir, free_port(), free_port()).await;
    let (user, mgmt) = (first.local_addr(), first.mgmt_addr());
    let w = worker(
        &dir,
        "worker-a",
        vec![mgmt.to_string()],
        Duration::from_millis(2),
    )
    .await;
    let client = common::client(&first).await;
    let mut stream = client.streaming("count", Bytes::new(), 0).await.unwrap();
    read_on(&mut stream, &mut 0, 20).await;
    drop(stream);
    client.close().await;

    // The director stops and a new one (same cluster directory, same ports) starts at once.
    first.close().await;
    let second = director_on(&dir, user, mgmt).await;
    let took = registered_within(&second, 1, 2_000)
        .await
        .expect("the worker registers again with the restarted director within 2 s");
    eprintln!("re-registered {} ms after the restart", took.as_millis());
    // A new session on the restarted director is served by the worker, from item 0.
    let client = common::client(&second).await;
    let mut stream = client.streaming("count", Bytes::new(), 0).await.unwrap();
    read_on(&mut stream, &mut 0, 50).await;
    assert_eq!(second.sessions()[0].2, "worker-a");
    assert_eq!(w.directors().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_director_restarted_without_a_goodbye_is_found_again() {
    let dir = cluster_dir("restart-silent");
    let first = director_on(&dir, free_port(), free_port()).await;
    let (user, mgmt) = (first.local_addr(), first.mgmt_addr());
    // The worker reaches the director's management port through a proxy that will drop the
    // director's CONNECTION_CLOSE, as if the director had been killed.
    let proxy = LossyProxy::start(mgmt, 0, 7).await;
    let _w = worker(
        &dir,
        "worker-a",
        vec![proxy.addr.to_string()],
        Duration::from_millis(2),
    )
    .await;
    assert!(first.wait_for_workers(1, 2_000).await);
    proxy.set_loss(1_000);
    first.close().await;
    let second = director_on(&dir, user, mgmt).await;
    proxy.set_loss(0);
    // The old connection is unknown to the new process and silent: the worker connects again.
    let took = registered_within(&second, 1, 4_000)
        .await
        .expect("the worker registers again with a director restarted without a goodbye");
    eprintln!(
        "re-registered {} ms after the silent restart",
        took.as_millis()
    );
    let client = common::client(&second).await;
    let mut stream = client.streaming("count", Bytes::new(), 0).await.unwrap();
    read_on(&mut stream, &mut 0, 50).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_of_two_directors_keeps_serving_one_when_the_other_goes() {
    let dir = cluster_dir("two-directors");
    let d1 = director_on(&dir, free_port(), free_port()).await;
    let d2 = director_on(&dir, free_port(), free_port()).await;
    let config = WorkerConfig {
        heartbeat_ms: 50,
        ..WorkerConfig::new(
            "worker-a",
            vec![d1.mgmt_addr().to_string(), d2.mgmt_addr().to_string()],
            common::creds(&dir, "worker-a"),
        )
    };
    let w = Arc::new(Worker::start(config).await.unwrap());
    // Every call the handler starts: a suspended call would start again, resumed.
    let resumed = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (r, c) = (resumed.clone(), calls.clone());
    let on_call: common::OnCall = Arc::new(move |resume| {
        c.fetch_add(1, Ordering::SeqCst);
        if resume.is_some() {
            r.fetch_add(1, Ordering::SeqCst);
        }
    });
    let every = Duration::from_millis(5);
    tokio::spawn(common::serve_with(
        w.clone(),
        ITEMS,
        8,
        every,
        Arc::new(|_| {}),
        on_call,
    ));
    // Start returns once one director accepted; the other follows at once.
    assert!(d1.wait_for_workers(1, 2_000).await && d2.wait_for_workers(1, 2_000).await);
    let c1 = common::client(&d1).await;
    let c2 = common::client(&d2).await;
    let mut s1 = c1.streaming("count", Bytes::new(), 0).await.unwrap();
    let mut s2 = c2.streaming("count", Bytes::new(), 0).await.unwrap();
    let (mut n1, mut n2) = (0, 0);
    read_on(&mut s1, &mut n1, 20).await;
    read_on(&mut s2, &mut n2, 20).await;
    assert_eq!(d1.sessions()[0].2, "worker-a");
    assert_eq!(d2.sessions()[0].2, "worker-a");
    assert_eq!(w.server().sessions().len(), 2);
    assert_eq!(w.leases().iter().filter(|(_, holds)| *holds).count(), 2);

    // Director 1 goes. Its lease lapses on the worker (350 ms); director 2's stream goes on.
    d1.close().await;
    let gone = Instant::now();
    let longest = read_for(&mut s2, &mut n2, Duration::from_millis(1_500)).await;
    let leases = w.leases();
    let d1_name = d1.mgmt_addr().to_string();
    let d2_name = d2.mgmt_addr().to_string();
    assert!(
        leases.contains(&(d1_name.clone(), false)),
        "director 1's lease lapsed: {leases:?}"
    );
    assert!(
        leases.contains(&(d2_name.clone(), true)),
        "director 2's lease holds: {leases:?}"
    );
    eprintln!(
        "after director 1 went: {} items from director 2 in {} ms, longest wait {} ms",
        n2,
        gone.elapsed().as_millis(),
        longest.as_millis()
    );
    // Director 2's call was never suspended (it would have started again, resumed), and its
    // client saw no pause.
    assert_eq!(
        (calls.load(Ordering::SeqCst), resumed.load(Ordering::SeqCst)),
        (2, 0),
        "calls started and resumed on the worker"
    );
    assert!(
        longest < Duration::from_millis(500),
        "director 2's stream paused {} ms after director 1 went",
        longest.as_millis()
    );
    // Director 1's client lost its connection (items received before the close come first);
    // director 2's session is still on worker-a.
    let ended = loop {
        match s1.next_batch(64).await {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    assert!(
        ended.is_err(),
        "director 1's stream ends with an error: {ended:?}"
    );
    assert_eq!(d2.sessions()[0].2, "worker-a");
    assert_eq!(w.directors(), vec![d2_name]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_worker_advertises_an_address_and_finds_its_director_by_name() {
    let dir = cluster_dir("advertise");
    let director = director_on(&dir, free_port(), free_port()).await;
    let by_name = format!("localhost:{}", director.mgmt_addr().port());
    let config = WorkerConfig {
        user: "0.0.0.0:0".parse().unwrap(),
        mgmt: "0.0.0.0:0".parse().unwrap(),
        advertise_user: Some("127.0.0.1".into()),
        advertise_mgmt: Some("127.0.0.1".into()),
        ..WorkerConfig::new("worker-a", vec![by_name], common::creds(&dir, "worker-a"))
    };
    let w = Arc::new(Worker::start(config).await.unwrap());
    tokio::spawn(common::serve(w.clone(), ITEMS, 8, Duration::from_millis(2)));
    let user = w.server().local_addr();
    assert!(user.ip().is_unspecified());
    assert_eq!(w.advertised_addr(), format!("127.0.0.1:{}", user.port()));
    assert_eq!(
        w.advertised_mgmt_addr(),
        format!("127.0.0.1:{}", w.mgmt_addr().port())
    );
    let client = common::client(&director).await;
    let mut stream = client.streaming("count", Bytes::new(), 0).await.unwrap();
    read_on(&mut stream, &mut 0, 20).await;
    assert_eq!(director.sessions()[0].2, "worker-a");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_director_that_is_not_there_yet_is_retried_until_the_connect_timeout() {
    let dir = cluster_dir("not-yet");
    // Nothing there: UNAVAILABLE after the timeout, naming the address.
    let nowhere = free_port();
    let started = Instant::now();
    let e = Worker::start(WorkerConfig {
        connect_timeout_ms: 300,
        ..WorkerConfig::new(
            "worker-a",
            vec![nowhere.to_string()],
            common::creds(&dir, "worker-a"),
        )
    })
    .await
    .err()
    .expect("no director: the start fails");
    let took = started.elapsed();
    assert_eq!(e.code, ErrorCode::Unavailable, "{e}");
    assert!(
        e.message.starts_with(&format!(
            "cannot register with the director at {nowhere} within 300 ms"
        )),
        "{e}"
    );
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(2));

    // A director that starts while the worker waits accepts it.
    let later = free_port();
    let starting = tokio::spawn(Worker::start(WorkerConfig::new(
        "worker-b",
        vec![later.to_string()],
        common::creds(&dir, "worker-b"),
    )));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let director = director_on(&dir, free_port(), later).await;
    let w = starting
        .await
        .unwrap()
        .expect("registered once the director runs");
    assert_eq!(w.directors(), vec![later.to_string()]);
    assert_eq!(director.workers(), vec![("worker-b".to_string(), 0)]);

    // Several directors: one that accepts is enough; the other is retried in the background.
    let absent = free_port();
    let w = Worker::start(WorkerConfig::new(
        "worker-c",
        vec![absent.to_string(), later.to_string()],
        common::creds(&dir, "worker-c"),
    ))
    .await
    .expect("one director accepted");
    assert_eq!(w.directors(), vec![later.to_string()]);
    let other = director_on(&dir, free_port(), absent).await;
    let took = registered_within(&other, 1, 5_000)
        .await
        .expect("the other director is registered with in the background");
    eprintln!(
        "registered with a director started late after {} ms",
        took.as_millis()
    );
    // The director records the worker just before its reply reaches the worker.
    let deadline = Instant::now() + Duration::from_secs(2);
    while w.directors().len() < 2 {
        assert!(Instant::now() < deadline, "{:?}", w.directors());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_director_addresses_are_invalid_arguments() {
    let dir = cluster_dir("bad-director");
    let creds = common::creds(&dir, "worker-a");
    let e = Worker::start(WorkerConfig::new("worker-a", vec![], creds.clone()))
        .await
        .err()
        .unwrap();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(
        e.message.starts_with("director must name at least one"),
        "{e}"
    );
    let e = Worker::start(WorkerConfig::new(
        "worker-a",
        vec!["127.0.0.1:7001".into(), "nope".into()],
        creds,
    ))
    .await
    .err()
    .unwrap();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(
        e.message
            .starts_with("director[1] must be host:port (a DNS name or an IP address"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_director_of_another_cluster_refuses_the_worker_at_once() {
    let dir = cluster_dir("other-cluster");
    let foreign = cluster_dir("other-cluster-foreign");
    let director = director_on(&dir, free_port(), free_port()).await;
    let started = Instant::now();
    let e = Worker::start(WorkerConfig::new(
        "intruder",
        vec![director.mgmt_addr().to_string()],
        common::creds(&foreign, "intruder"),
    ))
    .await
    .err()
    .expect("a certificate of another cluster is refused");
    assert_eq!(e.code, ErrorCode::Unavailable, "{e}");
    assert!(e.message.contains("cryptographic handshake failed"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once, not retried until the connect timeout: {:?}",
        started.elapsed()
    );
    assert!(director.workers().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&foreign);
}

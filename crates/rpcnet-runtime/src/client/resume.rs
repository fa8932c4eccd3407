//! A client's resumable session (PROTOCOL.md section 15): the session stream (HELLO, WELCOME,
//! MOVE), the credential, and the supervisor that, when the connection to a director is lost or
//! the director says MOVE, connects to a director of the cluster (any address given, with
//! jittered exponential backoff), presents the credential and publishes the new connection, on
//! which every open call re-attaches itself at its next seq ([`super::call::CallStream`]).
//!
//! What stays the same across a resume is the session (its id); what changes is the QUIC
//! connection and its `connectionId`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rpcnet_protocol::{Decoder, ErrorCode, Frame};
use tokio::sync::{watch, Notify};

use super::dial;
use crate::backoff::{random_u32, Backoff};
use crate::cancel::Canceller;
use crate::connection::ConnectionInfo;
use crate::error::RpcError;
use crate::events::EventQueue;

/// How long a client keeps trying to resume before its session is lost, ms: the owner keeps a
/// session whose director link was lost this long (`RESUME_WINDOW_MS`, PROTOCOL.md 15.6).
pub const RESUME_TIMEOUT_MS: u64 = 30_000;
/// First delay between reconnect attempts, ms; it doubles up to [`MAX_BACKOFF_MS`], each delay
/// drawn uniformly between half and 3/2 of it (jitter, so clients of a dead director do not
/// reconnect in lockstep; the worker's backoff, `crate::backoff`).
pub const FIRST_BACKOFF_MS: u64 = 20;
/// Longest delay between reconnect attempts, ms.
pub const MAX_BACKOFF_MS: u64 = 1_000;
/// A resumable call ACKs after this many items…
pub const ACK_EVERY_ITEMS: u64 = 64;
/// …or this many payload bytes, whichever comes first.
pub const ACK_EVERY_BYTES: u64 = 256 * 1024;

/// The application error code a client closes a connection with when it moves its session to
/// another one (not 0, which tells the director the client ended the session).
pub const MOVED_CODE: u32 = 1;

/// What a resumable client reports about its session.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// The connection was lost (or the director said MOVE): reconnecting.
    Reconnecting {
        /// Why.
        reason: String,
    },
    /// The session continues on a new connection.
    Resumed {
        /// From the loss to the new connection's WELCOME, ms.
        pause_ms: f64,
        /// The new connection's `connectionId`.
        connection_id: String,
        /// The director it reached.
        address: SocketAddr,
    },
    /// The session could not be resumed: every open call fails with `error`.
    Lost {
        /// Why (`RESUME_*` from a director, or no director reachable in time).
        error: RpcError,
    },
}

struct State {
    connection: ConnectionInfo,
    credential: Bytes,
    /// Index in `addrs` of the director connected now.
    at: usize,
    failed: Option<RpcError>,
}

/// A resumable session (see module docs).
pub(crate) struct Resumable {
    endpoint: quinn::Endpoint,
    addrs: Vec<SocketAddr>,
    server_name: String,
    connect_timeout_ms: u64,
    max_frame_size: u32,
    session_id: u64,
    state: Mutex<State>,
    /// Bumped at every new connection (and when the session is lost).
    epoch: watch::Sender<u64>,
    moved: Notify,
    next_call: AtomicU64,
    events: EventQueue<SessionEvent>,
    closed: Canceller,
}

/// How the client reaches its directors.
pub(crate) struct Directors {
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) addrs: Vec<SocketAddr>,
    pub(crate) server_name: String,
    pub(crate) connect_timeout_ms: u64,
    pub(crate) max_frame_size: u32,
}

impl Resumable {
    /// Opens a new session on `connection` (HELLO with an empty credential) and starts the
    /// supervisor.
    ///
    /// Errors: the director's ERROR, or `UNAVAILABLE` when the server does not speak
    /// resumption (a plain server answers HELLO with `PROTOCOL`).
    pub(crate) async fn open(
        d: Directors,
        connection: ConnectionInfo,
        at: usize,
    ) -> Result<std::sync::Arc<Self>, RpcError> {
        let (session_id, credential, stream) =
            hello(&connection, Bytes::new(), d.max_frame_size).await?;
        let (epoch, _) = watch::channel(0);
        let r = std::sync::Arc::new(Resumable {
            endpoint: d.endpoint,
            addrs: d.addrs,
            server_name: d.server_name,
            connect_timeout_ms: d.connect_timeout_ms,
            max_frame_size: d.max_frame_size,
            session_id,
            state: Mutex::new(State {
                connection,
                credential,
                at,
                failed: None,
            }),
            epoch,
            moved: Notify::new(),
            next_call: AtomicU64::new(0),
            events: EventQueue::default(),
            closed: Canceller::new(),
        });
        tokio::spawn(watch_moves(std::sync::Arc::downgrade(&r), stream));
        tokio::spawn(supervise(r.clone()));
        Ok(r)
    }

    /// The session id (PROTOCOL.md section 2.1), the same on every connection.
    pub(crate) fn session_id(&self) -> u64 {
        self.session_id
    }

    /// The connection now.
    pub(crate) fn connection(&self) -> ConnectionInfo {
        self.state.lock().unwrap().connection.clone()
    }

    /// A new call id, unique in the session.
    pub(crate) fn call_id(&self) -> u64 {
        self.next_call.fetch_add(1, Ordering::Relaxed)
    }

    /// The connection now and its epoch.
    pub(crate) fn current(&self) -> Result<(ConnectionInfo, u64), RpcError> {
        let st = self.state.lock().unwrap();
        if let Some(e) = &st.failed {
            return Err(e.clone());
        }
        Ok((st.connection.clone(), *self.epoch.borrow()))
    }

    /// Waits for a connection newer than epoch `after`.
    ///
    /// Errors: the session's loss (`Lost`), or `UNAVAILABLE` once the client is closed.
    pub(crate) async fn next_connection(
        &self,
        after: u64,
    ) -> Result<(ConnectionInfo, u64), RpcError> {
        let mut rx = self.epoch.subscribe();
        loop {
            let now = *rx.borrow_and_update();
            if now > after {
                return self.current();
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return Err(RpcError::unavailable("client closed")) },
                _ = self.closed.cancelled() => return Err(RpcError::unavailable("client closed")),
            }
        }
    }

    /// Waits for up to `max` session events; empty once the client is closed.
    pub(crate) async fn next_events(&self, max: usize) -> Vec<SessionEvent> {
        self.events.next_batch(max, &self.closed).await
    }

    /// Ends the session: the connection is closed with code 0 (the director tells the owner to
    /// drop the session) and the supervisor stops.
    pub(crate) fn close(&self) {
        self.closed.cancel();
        self.connection()
            .quinn()
            .close(0u32.into(), b"client closed");
    }
}

/// Watches the connection; on its loss or a MOVE, resumes on a director of the cluster.
async fn supervise(r: std::sync::Arc<Resumable>) {
    loop {
        let connection = r.connection();
        let reason = tokio::select! {
            e = connection.quinn().closed() => format!("connection lost: {e}"),
            _ = r.moved.notified() => "the director asked its clients to move".to_string(),
            _ = r.closed.cancelled() => return,
        };
        if r.closed.is_cancelled() {
            return;
        }
        tracing::info!(session = %format!("{:016x}", r.session_id), %reason, "reconnecting");
        r.events.push(SessionEvent::Reconnecting { reason });
        let started = Instant::now();
        match reconnect(&r).await {
            Ok((info, credential, at)) => {
                let old = {
                    let mut st = r.state.lock().unwrap();
                    st.credential = credential;
                    st.at = at;
                    std::mem::replace(&mut st.connection, info.clone())
                };
                old.quinn().close(MOVED_CODE.into(), b"moved");
                r.epoch.send_modify(|e| *e += 1);
                let pause_ms = started.elapsed().as_secs_f64() * 1000.0;
                tracing::info!(session = %format!("{:016x}", r.session_id), pause_ms, connection_id = %info.id, "session resumed");
                r.events.push(SessionEvent::Resumed {
                    pause_ms,
                    connection_id: info.id.clone(),
                    address: r.addrs[at],
                });
            }
            Err(error) => {
                tracing::warn!(session = %format!("{:016x}", r.session_id), %error, "session lost");
                r.state.lock().unwrap().failed = Some(error.clone());
                r.epoch.send_modify(|e| *e += 1);
                r.events.push(SessionEvent::Lost { error });
                return;
            }
        }
    }
}

/// Tries the directors in turn (the next one first) with jittered exponential backoff until one
/// resumes the session, a director refuses the credential, or [`RESUME_TIMEOUT_MS`] pass.
async fn reconnect(
    r: &std::sync::Arc<Resumable>,
) -> Result<(ConnectionInfo, Bytes, usize), RpcError> {
    let (credential, at) = {
        let st = r.state.lock().unwrap();
        (st.credential.clone(), st.at)
    };
    let give_up = Instant::now() + Duration::from_millis(RESUME_TIMEOUT_MS);
    let mut backoff = Backoff::new(FIRST_BACKOFF_MS, MAX_BACKOFF_MS);
    for attempt in 1usize.. {
        if r.closed.is_cancelled() {
            return Err(RpcError::unavailable("client closed"));
        }
        let i = (at + attempt) % r.addrs.len();
        let addr = r.addrs[i];
        let timeout = r.connect_timeout_ms.min(1_000);
        let last = match dial(&r.endpoint, addr, &r.server_name, timeout).await {
            Ok(conn) => {
                let info = ConnectionInfo::new(conn);
                match hello(&info, credential.clone(), r.max_frame_size).await {
                    Ok((_, fresh, stream)) => {
                        tokio::spawn(watch_moves(std::sync::Arc::downgrade(r), stream));
                        return Ok((info, fresh, i));
                    }
                    // RESUME_UNKNOWN may pass: the workers of a restarted director register again.
                    Err(e)
                        if e.message.starts_with("RESUME_INVALID")
                            || e.message.starts_with("RESUME_REPLAYED") =>
                    {
                        return Err(e)
                    }
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        tracing::debug!(%addr, attempt, error = %last, "resume attempt failed");
        if Instant::now() >= give_up {
            return Err(RpcError::unavailable(format!(
                "could not resume the session within {RESUME_TIMEOUT_MS} ms: {}",
                last.message
            )));
        }
        let delay = backoff.next_delay(random_u32());
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    unreachable!("the loop returns")
}

/// A session stream after WELCOME, with the bytes read past it.
struct SessionStream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    decoder: Decoder,
    buf: BytesMut,
}

/// HELLO on a new session stream of `connection`, then WELCOME: returns the session id, the
/// credential for next time and the session stream, which stays open (MOVE arrives on it).
///
/// Errors: the director's ERROR (`INVALID_ARGUMENT` with a `RESUME_*` code for a refused
/// credential); `UNAVAILABLE` when the server does not speak resumption or the connection fails.
async fn hello(
    connection: &ConnectionInfo,
    credential: Bytes,
    max_frame_size: u32,
) -> Result<(u64, Bytes, SessionStream), RpcError> {
    let (mut send, mut recv) = connection.quinn().open_bi().await?;
    send.write_all(&Frame::Hello { credential }.to_bytes())
        .await?;
    let mut decoder = Decoder::new(max_frame_size);
    let mut buf = BytesMut::new();
    let welcome = loop {
        if let Some(f) = decoder.decode(&mut buf)? {
            break f;
        }
        match recv.read_chunk(64 * 1024, true).await? {
            Some(c) => buf.extend_from_slice(&c.bytes),
            None => return Err(RpcError::unavailable("the server ended the session stream")),
        }
    };
    let (session_id, credential) = match welcome {
        Frame::Welcome {
            session_id,
            credential,
        } => (session_id, credential),
        Frame::Error {
            code: ErrorCode::Protocol,
            message,
        } => {
            return Err(RpcError::unavailable(format!(
                "the server does not resume sessions (it answered HELLO with: {message})"
            )))
        }
        Frame::Error { code, message } => return Err(RpcError::new(code, message)),
        other => {
            return Err(RpcError::protocol(format!(
                "expected WELCOME, got {}",
                other.frame_type().name()
            )))
        }
    };
    let stream = SessionStream {
        send,
        recv,
        decoder,
        buf,
    };
    Ok((session_id, credential, stream))
}

/// Reads a session stream until it ends; a MOVE wakes the supervisor of `owner`.
async fn watch_moves(owner: std::sync::Weak<Resumable>, mut s: SessionStream) {
    let _keep = s.send;
    loop {
        while let Ok(Some(f)) = s.decoder.decode(&mut s.buf) {
            if let (Frame::Move { reason }, Some(r)) = (f, owner.upgrade()) {
                tracing::info!(%reason, "the director asked its clients to move");
                r.moved.notify_one();
            }
        }
        match s.recv.read_chunk(1024, true).await {
            Ok(Some(c)) => s.buf.extend_from_slice(&c.bytes),
            _ => return,
        }
    }
}

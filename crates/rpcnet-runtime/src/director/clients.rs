//! The user port: accepts client connections, opens a [`Session`] for each on the worker the
//! placement policy chooses, relays each of its calls, and tells the owner when the client
//! connection ends.

use std::sync::Arc;
use std::time::Duration;

use rpcnet_protocol::migration::{Claim, ManagementMessage, SessionClosed};
use rpcnet_protocol::{ErrorCode, Frame, Version};

use bytes::BytesMut;

use super::resume::{self, FirstFrame};
use super::session::Session;
use super::{relay, DirectorEvent, Inner};
use crate::connection::ConnectionInfo;
use crate::error::RpcError;
use crate::mgmt;
use crate::transport::{CallWindow, MAX_CONCURRENT_CALLS};

/// How long a refused connection waits for its client to read the ERROR, ms.
const REFUSAL_LINGER_MS: u64 = 2_000;
/// How long SessionClosed to the owner may take, ms.
const SESSION_CLOSED_TIMEOUT_MS: u32 = 2_000;

/// The session id of a `connectionId` (PROTOCOL.md section 2.1): its 16 hex digits, or the first
/// 8 bytes of its SHA-256 for any other string.
pub(crate) fn session_id_of(connection_id: &str) -> u64 {
    u64::from_str_radix(connection_id, 16).unwrap_or_else(|_| {
        let d = ring::digest::digest(&ring::digest::SHA256, connection_id.as_bytes());
        u64::from_be_bytes(d.as_ref()[..8].try_into().expect("8 bytes"))
    })
}

/// Accepts client connections until the user port closes.
pub(crate) async fn accept_clients(inner: Arc<Inner>) {
    let Some(endpoint) = inner.user.endpoint() else {
        return;
    };
    while let Some(incoming) = endpoint.accept().await {
        let inner = inner.clone();
        tokio::spawn(async move {
            if let Ok(connection) = incoming.await {
                inner
                    .handshakes
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                serve_client(inner, connection).await;
            }
        });
    }
}

async fn serve_client(inner: Arc<Inner>, connection: quinn::Connection) {
    let info = ConnectionInfo::new(connection.clone());
    // The first stream says what kind of client this is (PROTOCOL.md section 15.2): HELLO opens
    // or resumes a resumable session on a session stream; anything else is a call of a client
    // of sections 2 to 13.
    let Ok((mut first_send, mut first_recv)) = connection.accept_bi().await else {
        return;
    };
    let first = resume::first_frame(&mut first_recv, inner.config.max_frame_size).await;
    let (session, first_call) = match first {
        FirstFrame::Call(read) => {
            let Some(s) = place_new(&inner, &connection, &info, false).await else {
                return;
            };
            (s, Some((first_send, first_recv, read)))
        }
        FirstFrame::Hello(credential) => {
            let opened = if credential.is_empty() {
                place_new(&inner, &connection, &info, true).await
            } else {
                match resume::resume(&inner, &credential).await {
                    Ok(s) => Some(install(&inner, s)),
                    Err(e) => return refuse(first_send, e).await,
                }
            };
            let Some(session) = opened else {
                return;
            };
            if credential.is_empty() {
                tell_opened(&inner, &session).await;
            }
            match resume::welcome(&inner, &session) {
                Ok(w) => {
                    let _ = first_send.write_all(&w.to_bytes()).await;
                }
                Err(e) => return refuse(first_send, e).await,
            }
            // The session stream stays open for the connection's life (MOVE goes out on it).
            let moving = inner.moving.subscribe();
            tokio::spawn(hold_session_stream(first_send, first_recv, moving));
            inner.resumable_clients.send_modify(|n| *n += 1);
            (session, None)
        }
    };
    let window = CallWindow::new(connection.clone(), MAX_CONCURRENT_CALLS);
    let version = info.version;
    if let Some((send, recv, read)) = first_call {
        spawn_call(&inner, &session, &window, version, (send, recv), read);
    }
    while let Ok(streams) = connection.accept_bi().await {
        spawn_call(&inner, &session, &window, version, streams, BytesMut::new());
    }
    // Code 0 ends the session; a client that moves to another connection closes with
    // `client::MOVED_CODE` (PROTOCOL.md section 15.5).
    if session.resumable {
        inner.resumable_clients.send_modify(|n| *n -= 1);
    }
    let closed_by_client = matches!(
        connection.close_reason(),
        Some(quinn::ConnectionError::ApplicationClosed(c)) if c.error_code.into_inner() == 0
    );
    // The connection's handles keep the user port's socket open (Director::close).
    drop((connection, info, window));
    let current = {
        let mut sessions = inner.sessions.lock().unwrap();
        let current = sessions
            .get(&session.id)
            .is_some_and(|s| Arc::ptr_eq(s, &session));
        if current {
            sessions.remove(&session.id);
        }
        current
    };
    session.close(&inner);
    // A resumable session outlives its connection unless the client closed it: its owner keeps
    // it for the resume window (PROTOCOL.md section 15.6).
    if current && (!session.resumable || closed_by_client) {
        let msg = ManagementMessage::SessionClosed(SessionClosed {
            session_id: session.id,
        });
        tell_owner(&inner, &session, mgmt::SESSION_CLOSED, msg).await;
    } else if current {
        // The owner keeps it for the resume window (its calls, if any, detach themselves).
        let msg = ManagementMessage::Claim(Claim {
            session_id: session.id,
            generation: session.generation,
        });
        tell_owner(&inner, &session, mgmt::SESSION_DETACHED, msg).await;
    }
    if current {
        inner.emit(DirectorEvent::SessionClosed {
            session_id: session.id,
        });
    }
}

/// Answers the first stream with ERROR `e` and keeps the connection until the client has read
/// it (or 2 s passed): closing at once would discard the ERROR with the connection.
async fn refuse(mut send: quinn::SendStream, e: RpcError) {
    relay::send_error(&mut send, e).await;
    let _ = tokio::time::timeout(Duration::from_millis(REFUSAL_LINGER_MS), send.stopped()).await;
}

/// Relays one call of `session` on a client connection of protocol `version`, `read` being
/// bytes of its stream already read.
fn spawn_call(
    inner: &Arc<Inner>,
    session: &Arc<Session>,
    window: &Arc<CallWindow>,
    version: Version,
    (send, recv): (quinn::SendStream, quinn::RecvStream),
    read: BytesMut,
) {
    let open = window.opened();
    let call = relay::relay(inner.clone(), session.clone(), version, (send, recv), read);
    tokio::spawn(async move {
        call.await;
        drop(open);
    });
}

/// Places a new session (its id from the connection, PROTOCOL.md section 2.1) on the worker the
/// placement policy chooses. `None` (the connection closed with UNAVAILABLE) when no worker is
/// available.
async fn place_new(
    inner: &Arc<Inner>,
    connection: &quinn::Connection,
    info: &ConnectionInfo,
    resumable: bool,
) -> Option<Arc<Session>> {
    let session_id = session_id_of(&info.id);
    let Some(owner) = inner.select_worker(session_id, None).await else {
        tracing::warn!("no worker available for a new session");
        connection.close(
            crate::error::app_code(ErrorCode::Unavailable),
            b"no worker available",
        );
        return None;
    };
    let session = Session::new(session_id, info.id.clone(), owner.clone(), resumable);
    let session = install(inner, session);
    inner.emit(DirectorEvent::SessionOpened {
        session_id,
        connection_id: info.id.clone(),
        worker: owner,
    });
    Some(session)
}

/// Makes `session` the director's session of its id (replacing the one of an earlier connection
/// of the same client, which stops counting in the workers' load).
fn install(inner: &Inner, session: Session) -> Arc<Session> {
    let session = Arc::new(session);
    inner.placement.moved("", &session.owner());
    let old = inner
        .sessions
        .lock()
        .unwrap()
        .insert(session.id, session.clone());
    if let Some(old) = old {
        old.close(inner);
    }
    session
}

/// Keeps a session stream open until the client closes it or the connection ends; sends MOVE
/// on it when the director shuts down (PROTOCOL.md section 15.5).
async fn hold_session_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    mut moving: tokio::sync::watch::Receiver<bool>,
) {
    let mut told = false;
    loop {
        tokio::select! {
            r = recv.read_chunk(1024, true) => if !matches!(r, Ok(Some(_))) { return },
            shutting_down = async { moving.wait_for(|m| *m).await.is_ok() }, if !told => {
                told = true;
                if shutting_down {
                    let reason = "director shutting down".to_string();
                    let _ = send.write_all(&Frame::Move { reason }.to_bytes()).await;
                }
            }
        }
    }
}

/// Tells the owner of the resumable `session` that it holds it (`rpcnet.mgmt/session-opened`,
/// PROTOCOL.md section 15.6), so that a resume after this director's loss finds the session even
/// if it never made a call. At most [`SESSION_CLOSED_TIMEOUT_MS`]; a failure is logged, and
/// the session's first call makes it known all the same.
pub(crate) async fn tell_opened(inner: &Inner, session: &Session) {
    let msg = ManagementMessage::Claim(Claim {
        session_id: session.id,
        generation: session.generation,
    });
    tell_owner(inner, session, mgmt::SESSION_OPENED, msg).await;
}

/// Tells the owner `msg` with `method`: SessionClosed, so it frees whatever it still holds for
/// the session (captured or restored calls that will never be re-attached); session-detached,
/// so a resumable session starts its resume window; or session-opened.
async fn tell_owner(inner: &Inner, session: &Session, method: &str, msg: ManagementMessage) {
    let Some(w) = inner.worker(&session.owner()).filter(|w| w.alive()) else {
        return;
    };
    if let Err(e) = mgmt::call(&w.mgmt, method, &msg, SESSION_CLOSED_TIMEOUT_MS).await {
        tracing::debug!(error = %e, %method, "telling the owner the session ended failed");
    }
}

//! The user port: accepts client connections, opens a [`Session`] for each on the worker the
//! placement policy chooses, relays each of its calls, and tells the owner when the client
//! connection ends.

use std::sync::Arc;

use rpcnet_protocol::migration::{ManagementMessage, SessionClosed};
use rpcnet_protocol::ErrorCode;

use super::session::Session;
use super::{relay, DirectorEvent, Inner};
use crate::connection::ConnectionInfo;
use crate::mgmt;
use crate::transport::{CallWindow, MAX_CONCURRENT_CALLS};

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
                serve_client(inner, connection).await;
            }
        });
    }
}

async fn serve_client(inner: Arc<Inner>, connection: quinn::Connection) {
    let info = ConnectionInfo::new(connection.clone());
    let session_id = session_id_of(&info.id);
    let Some(owner) = inner.select_worker(session_id, None).await else {
        tracing::warn!("no worker available for a new session");
        connection.close(
            crate::error::app_code(ErrorCode::Unavailable),
            b"no worker available",
        );
        return;
    };
    let session = Arc::new(Session::new(session_id, info.id.clone(), owner.clone()));
    inner.placement.moved("", &owner);
    inner
        .sessions
        .lock()
        .unwrap()
        .insert(session_id, session.clone());
    inner.emit(DirectorEvent::SessionOpened {
        session_id,
        connection_id: info.id.clone(),
        worker: owner,
    });
    let window = CallWindow::new(connection.clone(), MAX_CONCURRENT_CALLS);
    while let Ok((send, recv)) = connection.accept_bi().await {
        let open = window.opened();
        let call = relay::relay(inner.clone(), session.clone(), send, recv);
        tokio::spawn(async move {
            call.await;
            drop(open);
        });
    }
    // The connection's handles keep the user port's socket open (Director::close).
    drop((connection, info, window));
    inner.sessions.lock().unwrap().remove(&session_id);
    session.close(&inner);
    session_closed(&inner, &session).await;
    inner.emit(DirectorEvent::SessionClosed { session_id });
}

/// Tells the owner, so it frees whatever it still holds for the session (captured or restored
/// calls that will never be re-attached).
async fn session_closed(inner: &Inner, session: &Session) {
    let Some(w) = inner.worker(&session.owner()).filter(|w| w.alive()) else {
        return;
    };
    let msg = ManagementMessage::SessionClosed(SessionClosed {
        session_id: session.id,
    });
    if let Err(e) = mgmt::call(
        &w.mgmt,
        mgmt::SESSION_CLOSED,
        &msg,
        SESSION_CLOSED_TIMEOUT_MS,
    )
    .await
    {
        tracing::debug!(error = %e, "SessionClosed to the owner failed");
    }
}

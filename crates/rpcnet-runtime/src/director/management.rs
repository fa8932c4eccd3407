//! The director's management port (PROTOCOL.md section 14): registration, heartbeats and drain
//! requests from workers, and the admin methods of operators' tools (section 14.2), each a unary
//! call decoded and dispatched here after checking who asks: a worker's requests must come from
//! a worker certificate issued for the worker id they carry, admin requests from an admin
//! certificate ([`crate::cluster::role`]).

use std::sync::Arc;

use bytes::Bytes;
use rpcnet_protocol::migration::{Heartbeat, ManagementMessage};
use rpcnet_protocol::ErrorCode;

use super::{admin as admin_methods, migrate, registry, Inner};
use crate::admin;
use crate::cluster::role::name_allows;
use crate::cluster::{PeerIdentity, Role};
use crate::error::RpcError;
use crate::mgmt::{self, now_ms};
use crate::server::ServerEvent;

/// Answers management calls until the port closes.
pub(crate) async fn serve_mgmt(inner: Arc<Inner>) {
    loop {
        let events = inner.mgmt.next_events(64).await;
        if events.is_empty() {
            return;
        }
        for event in events {
            let ServerEvent::Call {
                id,
                method,
                payload,
                connection,
                ..
            } = event
            else {
                continue;
            };
            let peer = PeerIdentity::of_peer(connection.quinn());
            // Its handle would keep the management port's socket open.
            drop(connection);
            let inner = inner.clone();
            tokio::spawn(async move {
                let result = answer(&inner, &method, &payload, peer).await;
                if let Err(e) = &result {
                    if e.code == ErrorCode::PermissionDenied {
                        tracing::warn!(%method, error = %e, "management request refused");
                    }
                }
                inner.mgmt.respond(id, result);
            });
        }
    }
}

/// Checks the caller's role, then answers.
async fn answer(
    inner: &Arc<Inner>,
    method: &str,
    payload: &Bytes,
    peer: Option<PeerIdentity>,
) -> Result<Bytes, RpcError> {
    let peer = peer.ok_or_else(|| {
        RpcError::new(
            ErrorCode::PermissionDenied,
            format!("{method} needs a cluster certificate; the peer presented none"),
        )
    })?;
    if admin::METHODS.contains(&method) {
        peer.require(Role::Admin, method)?;
        return admin_methods::handle(inner, method, payload).await;
    }
    peer.require(Role::Worker, method)?;
    let msg = mgmt::decode(payload)?;
    let worker_id = match &msg {
        ManagementMessage::Register(r) => &r.worker_id,
        ManagementMessage::Heartbeat(h) => &h.worker_id,
        other => {
            return Err(RpcError::invalid_argument(format!(
                "MESSAGE_MALFORMED: {} is not accepted by {method}",
                other.name()
            )))
        }
    };
    if !name_allows(&peer.name, worker_id) {
        return Err(RpcError::new(
            ErrorCode::PermissionDenied,
            format!(
                "worker id {worker_id:?} is not allowed by the name {:?} in the worker's certificate: a worker registers only under its own name",
                peer.name
            ),
        ));
    }
    mgmt::encode(&handle(inner, method, msg).await?)
}

async fn handle(
    inner: &Arc<Inner>,
    method: &str,
    msg: ManagementMessage,
) -> Result<ManagementMessage, RpcError> {
    match (method, msg) {
        (mgmt::REGISTER, ManagementMessage::Register(r)) => registry::register(inner, r).await,
        (mgmt::HEARTBEAT, ManagementMessage::Heartbeat(h)) => registry::heartbeat(inner, h),
        (mgmt::DRAIN, ManagementMessage::Register(r)) => {
            migrate::drain(inner, &r.worker_id).await?;
            Ok(ManagementMessage::Heartbeat(Heartbeat {
                worker_id: r.worker_id,
                sessions: 0,
                at_ms: now_ms(),
            }))
        }
        (m, msg) => Err(RpcError::invalid_argument(format!(
            "MESSAGE_MALFORMED: {} is not accepted by {m}",
            msg.name()
        ))),
    }
}

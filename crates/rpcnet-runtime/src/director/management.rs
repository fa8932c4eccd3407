//! The director's management port (PROTOCOL.md section 14): registration, heartbeats and drain
//! requests from workers, each a unary call decoded and dispatched here.

use std::sync::Arc;

use rpcnet_protocol::migration::{Heartbeat, ManagementMessage};

use super::{migrate, registry, Inner};
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
                ..
            } = event
            else {
                continue;
            };
            let inner = inner.clone();
            tokio::spawn(async move {
                let result = match mgmt::decode(&payload) {
                    Ok(msg) => handle(&inner, &method, msg).await,
                    Err(e) => Err(e),
                };
                inner
                    .mgmt
                    .respond(id, result.and_then(|m| mgmt::encode(&m)));
            });
        }
    }
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

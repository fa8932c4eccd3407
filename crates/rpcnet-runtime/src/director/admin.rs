//! The director's side of the admin methods (PROTOCOL.md section 14.2, [`crate::admin`]): lists
//! its sessions and workers, migrates a session, drains a worker, for a peer holding an admin
//! certificate ([`crate::cluster::Role::Admin`]; checked by the caller, [`super::management`]).

use std::sync::Arc;

use bytes::Bytes;
use rpcnet_protocol::migration::MigrationReason;

use super::{migrate, Inner};
use crate::admin::{
    self, DrainReply, DrainRequest, MigrateRequest, MigrationJson, SessionRow, SessionsReply,
    WorkerRow, WorkersReply,
};
use crate::error::RpcError;

/// Answers one admin call with its JSON reply.
///
/// Errors: `INVALID_ARGUMENT` for a malformed request or session id; those of
/// [`super::Director::migrate`] and [`super::Director::drain`].
pub(crate) async fn handle(
    inner: &Arc<Inner>,
    method: &str,
    payload: &[u8],
) -> Result<Bytes, RpcError> {
    match method {
        admin::SESSIONS => Ok(admin::encode(&sessions(inner))),
        admin::WORKERS => Ok(admin::encode(&workers(inner))),
        admin::MIGRATE => {
            let request: MigrateRequest = admin::parse(method, payload)?;
            let order = migrate::Order {
                session_id: session_id(&request.session)?,
                from: None,
                target: request.to,
                reason: MigrationReason::Admin,
            };
            let report = migrate::migrate(inner, order)
                .await?
                .ok_or_else(|| RpcError::internal("an admin migration has no expected source"))?;
            Ok(admin::encode(&MigrationJson::from(&report)))
        }
        admin::DRAIN => {
            let request: DrainRequest = admin::parse(method, payload)?;
            let reports = migrate::drain(inner, &request.worker).await?;
            Ok(admin::encode(&DrainReply {
                migrations: reports.iter().map(MigrationJson::from).collect(),
            }))
        }
        other => Err(RpcError::invalid_argument(format!(
            "{other} is not an admin method"
        ))),
    }
}

fn sessions(inner: &Inner) -> SessionsReply {
    let mut sessions: Vec<SessionRow> = inner
        .all_sessions()
        .iter()
        .map(|s| SessionRow {
            session_id: format!("{:016x}", s.id),
            connection_id: s.connection_id.clone(),
            worker: s.owner(),
        })
        .collect();
    sessions.sort_by(|a, b| a.session_id.cmp(&b.session_id));
    SessionsReply { sessions }
}

fn workers(inner: &Inner) -> WorkersReply {
    let load = inner.load();
    let mut workers: Vec<WorkerRow> = inner
        .workers
        .lock()
        .unwrap()
        .values()
        .filter(|w| w.alive())
        .map(|w| WorkerRow {
            id: w.id.clone(),
            sessions: load.get(&w.id).copied().unwrap_or(0) as u64,
            draining: w.is_draining(),
            user_address: w.addrs.0.to_string(),
            mgmt_address: w.addrs.1.to_string(),
        })
        .collect();
    workers.sort_by(|a, b| a.id.cmp(&b.id));
    WorkersReply { workers }
}

/// A session id from its 16 hex digits.
///
/// Errors: `INVALID_ARGUMENT` naming the value.
fn session_id(text: &str) -> Result<u64, RpcError> {
    if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RpcError::invalid_argument(format!(
            "session id {text:?} is not 16 hex digits"
        )));
    }
    u64::from_str_radix(text, 16).map_err(|_| {
        RpcError::invalid_argument(format!("session id {text:?} is not 16 hex digits"))
    })
}

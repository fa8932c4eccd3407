//! The admin methods of a director's management port (PROTOCOL.md section 14.2): what
//! `rpcnet sessions`, `rpcnet workers`, `rpcnet migrate` and `rpcnet drain` send, and the client
//! that sends them. Only a peer with an admin certificate ([`crate::cluster::Role::Admin`]) may
//! call them.
//!
//! Unlike the rest of the management plane, whose messages are binary and on the migration
//! path, admin payloads are JSON (UTF-8, serde_json): they are for operators and scripts, and a
//! client in any language reads them without a codec. Field names are those of the TypeScript
//! API (`Director.sessions()`, `workers()`, `MigrationReport`).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::client::{Client, ClientConfig};
use crate::cluster::ClusterCredentials;
use crate::director::MigrationReport;
use crate::error::RpcError;
use rpcnet_protocol::ErrorCode;

/// Lists the director's open sessions: `{}` -> [`SessionsReply`].
pub const SESSIONS: &str = "rpcnet.admin/sessions";
/// Lists the director's live workers: `{}` -> [`WorkersReply`].
pub const WORKERS: &str = "rpcnet.admin/workers";
/// Moves one session: [`MigrateRequest`] -> [`MigrationJson`], answered when the migration
/// completed; a rollback is answered with ERROR `UNAVAILABLE` naming the phase and the cause.
pub const MIGRATE: &str = "rpcnet.admin/migrate";
/// Drains one worker: [`DrainRequest`] -> [`DrainReply`], answered once every session it owned
/// moved; if one was rolled back, ERROR (the first failure's), after every session was tried.
pub const DRAIN: &str = "rpcnet.admin/drain";
/// Every admin method (registered on a director's management port).
pub const METHODS: [&str; 4] = [SESSIONS, WORKERS, MIGRATE, DRAIN];

/// One open session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRow {
    /// Session id, 16 lowercase hex digits.
    pub session_id: String,
    /// The client connection's id as handlers see it (PROTOCOL.md section 2.1).
    pub connection_id: String,
    /// The worker that owns it.
    pub worker: String,
}

/// Answer of [`SESSIONS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionsReply {
    /// Sorted by session id.
    pub sessions: Vec<SessionRow>,
}

/// One live worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerRow {
    /// The worker id (its certificate's name).
    pub id: String,
    /// Sessions it owns.
    pub sessions: u64,
    /// Whether it is draining (no new sessions are placed on it).
    pub draining: bool,
    /// Its user port's address, as the director resolved it at registration.
    pub user_address: String,
    /// Its management port's address.
    pub mgmt_address: String,
}

/// Answer of [`WORKERS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkersReply {
    /// Sorted by id.
    pub workers: Vec<WorkerRow>,
}

/// Request of [`MIGRATE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateRequest {
    /// Session id, 16 hex digits.
    pub session: String,
    /// Target worker; absent or null: the live worker with the fewest sessions other than the
    /// owner.
    #[serde(default)]
    pub to: Option<String>,
}

/// Request of [`DRAIN`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainRequest {
    /// The worker to drain.
    pub worker: String,
}

/// Time spent in one RFC-001 phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseJson {
    /// `Initiation`, `Confirmation`, ...
    pub phase: String,
    /// Duration, ms.
    pub ms: f64,
}

/// One migration's outcome (the TypeScript `MigrationReport`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationJson {
    /// Migration id.
    pub migration_id: u64,
    /// Session id, 16 hex digits.
    pub session_id: String,
    /// Source worker.
    pub source: String,
    /// Target worker.
    pub target: String,
    /// `admin`, `drain`, ...
    pub reason: String,
    /// True if the session now lives on the target; false when rolled back.
    pub completed: bool,
    /// For an abort: `CODE: message` of the cause.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// For an abort: the phase that was running.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub aborted_in: Option<String>,
    /// Time per phase, in order.
    pub phases: Vec<PhaseJson>,
    /// Total, ms.
    pub duration_ms: f64,
    /// Time the session's calls were frozen, ms.
    pub frozen_ms: f64,
    /// Sealed snapshot size, bytes.
    pub snapshot_bytes: u64,
}

impl From<&MigrationReport> for MigrationJson {
    fn from(r: &MigrationReport) -> Self {
        MigrationJson {
            migration_id: r.migration_id,
            session_id: format!("{:016x}", r.session_id),
            source: r.source.clone(),
            target: r.target.clone(),
            reason: r.reason.clone(),
            completed: r.completed,
            error: r.error.clone(),
            aborted_in: r.aborted_in.clone(),
            phases: r
                .phases
                .iter()
                .map(|(phase, ms)| PhaseJson {
                    phase: phase.clone(),
                    ms: *ms,
                })
                .collect(),
            duration_ms: r.duration_ms,
            frozen_ms: r.frozen_ms,
            snapshot_bytes: r.snapshot_bytes,
        }
    }
}

/// Answer of [`DRAIN`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainReply {
    /// One per session that was moved.
    pub migrations: Vec<MigrationJson>,
}

/// Parses a JSON request payload.
///
/// Errors: `INVALID_ARGUMENT` naming the method and serde_json's reason (field, line, column).
pub fn parse<T: for<'de> Deserialize<'de>>(method: &str, payload: &[u8]) -> Result<T, RpcError> {
    let payload = if payload.is_empty() { b"{}" } else { payload };
    serde_json::from_slice(payload).map_err(|e| {
        RpcError::invalid_argument(format!("malformed {method} request (JSON expected): {e}"))
    })
}

/// Encodes a reply as a JSON payload. The reply types of this module always serialise (no map
/// with non-string keys, no failing `Serialize`), so this does not fail.
pub fn encode<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("admin replies serialise"))
}

/// A connection to one director's management port as an admin tool.
pub struct AdminClient {
    client: Client,
    /// The address as given, for messages.
    address: String,
}

impl AdminClient {
    /// Connects to the management port at `address` (`host:port`; a name is resolved) with
    /// `credentials`, which must be an admin's ([`crate::cluster::Role::Admin`]: the director
    /// refuses others per call with `PERMISSION_DENIED`).
    ///
    /// Errors: `INVALID_ARGUMENT` for a malformed address; `UNAVAILABLE` when nothing answers
    /// or the TLS handshake fails (another cluster's CA, say); `DEADLINE_EXCEEDED` after
    /// `connect_timeout_ms`.
    pub async fn connect(
        address: &str,
        credentials: Arc<ClusterCredentials>,
        connect_timeout_ms: u32,
    ) -> Result<AdminClient, RpcError> {
        let addr: SocketAddr = crate::addr::resolve(address).await?;
        let mut config = ClientConfig::cluster(credentials);
        config.connect_timeout_ms = u64::from(connect_timeout_ms);
        let client = Client::connect(addr, config).await.map_err(|e| {
            let e = crate::cluster::explain_handshake(e);
            RpcError::new(
                e.code,
                format!(
                    "cannot reach the director's management port {address}: {}",
                    e.message
                ),
            )
        })?;
        Ok(AdminClient {
            client,
            address: address.to_string(),
        })
    }

    /// Calls admin `method` with a JSON `request` and returns the JSON reply.
    ///
    /// Errors: `INVALID_ARGUMENT` for a method that is not an admin method; `UNIMPLEMENTED` or
    /// `UNAVAILABLE` (each message asking for the management port) when the address is not a
    /// director's management port (its user port, say); the director's error otherwise (`PERMISSION_DENIED` without an admin certificate, `NOT_FOUND` for an
    /// unknown session or worker, `UNAVAILABLE` for an aborted migration, ...);
    /// `DEADLINE_EXCEEDED` after `timeout_ms`.
    pub async fn call(
        &self,
        method: &str,
        request: &str,
        timeout_ms: u32,
    ) -> Result<String, RpcError> {
        if !METHODS.contains(&method) {
            return Err(RpcError::invalid_argument(format!(
                "{method} is not an admin method (one of {})",
                METHODS.join(", ")
            )));
        }
        let reply = self
            .client
            .unary(
                method,
                Bytes::copy_from_slice(request.as_bytes()),
                timeout_ms,
            )
            .await
            .map_err(|e| match e.code {
                ErrorCode::Unimplemented => crate::mgmt::not_a_management_port(e, &self.address),
                // The user port of a director takes the connection as a client's and relays or
                // refuses it: say which port this should be.
                ErrorCode::Unavailable => RpcError::new(
                    e.code,
                    format!(
                        "{} (is {} the director's management port, its mgmtAddress?)",
                        e.message, self.address
                    ),
                ),
                _ => e,
            })?;
        String::from_utf8(reply.to_vec())
            .map_err(|_| RpcError::protocol(format!("the reply to {method} is not UTF-8")))
    }

    /// [`call`](Self::call) with typed request and reply.
    ///
    /// Errors: `INVALID_ARGUMENT` for a request that does not serialise to JSON; those of
    /// `call`; `PROTOCOL` for a reply that is not the expected JSON.
    pub async fn request<Q: Serialize, A: for<'de> Deserialize<'de>>(
        &self,
        method: &str,
        request: &Q,
        timeout_ms: u32,
    ) -> Result<A, RpcError> {
        let body = serde_json::to_string(request).map_err(|e| {
            RpcError::invalid_argument(format!("the {method} request is not JSON: {e}"))
        })?;
        let reply = self.call(method, &body, timeout_ms).await?;
        serde_json::from_str(&reply)
            .map_err(|e| RpcError::protocol(format!("malformed reply to {method}: {e}")))
    }

    /// Closes the connection.
    pub async fn close(&self) {
        self.client.close().await;
    }
}

//! The management plane's calls (RFC-001 "dual port": the control plane of every process). Each
//! management exchange is one unary rpcnet call on a management port under mutual TLS
//! ([`crate::cluster`]) whose request and response payloads are
//! [`rpcnet_protocol::migration::ManagementMessage`]s. This module names the methods and does the
//! encode / call / decode round trip, so the director and the workers agree on them.

use bytes::Bytes;
use rpcnet_protocol::migration::{ManagementMessage, MigrationError};

use crate::client::Client;
use crate::error::RpcError;
use rpcnet_protocol::ErrorCode;

/// Director: a worker announces itself (`Register` -> `Register`).
pub const REGISTER: &str = "rpcnet.cluster/register";
/// Director: a worker's liveness and load (`Heartbeat` -> `Heartbeat`).
pub const HEARTBEAT: &str = "rpcnet.cluster/heartbeat";
/// Director: a worker asks to have all its sessions moved away (`Register` -> `Heartbeat`, answered
/// once the worker holds no session).
pub const DRAIN: &str = "rpcnet.cluster/drain";
/// Worker (target): Initiation + Confirmation (`MigrationRequest` -> `MigrationConfirmation`).
pub const REQUEST: &str = "rpcnet.mgmt/request";
/// Worker (target): Preparation, redeems the token (`MigrationRequest` -> `PrepareAck`).
pub const PREPARE: &str = "rpcnet.mgmt/prepare";
/// Worker (source): State Capture (`MigrationRequest` -> `StateTransfer` with the sealed snapshot).
pub const CAPTURE: &str = "rpcnet.mgmt/capture";
/// Worker (target): State Transfer, restores (`StateTransfer` -> `MigrationComplete`).
pub const TRANSFER: &str = "rpcnet.mgmt/transfer";
/// Worker (source): Pivot done, drop the session (`MigrationComplete` -> `MigrationComplete`).
pub const COMPLETE: &str = "rpcnet.mgmt/complete";
/// Worker (both): roll back (`MigrationAbort` -> `MigrationAbort`).
pub const ABORT: &str = "rpcnet.mgmt/abort";

/// Worker (owner): the client connection ended; drop the session (`SessionClosed` -> `SessionClosed`).
pub const SESSION_CLOSED: &str = "rpcnet.mgmt/session-closed";

/// Worker (any holder): a director claims a session for a resume (`Claim` -> `Claimed`,
/// PROTOCOL.md section 15.6).
pub const CLAIM: &str = "rpcnet.mgmt/claim";

/// Worker (owner): a resumable session's client connection ended without closing it; the
/// session waits for a resume (`Claim` with the director's generation -> `Claim`, PROTOCOL.md
/// section 15.6; ignored when the session is at a later generation).
pub const SESSION_DETACHED: &str = "rpcnet.mgmt/session-detached";

/// Worker (owner): a director placed a resumable session here (opened, or failed over to this
/// worker), so the owner knows it before any call (`Claim` with the director's generation ->
/// `Claim`, PROTOCOL.md section 15.6; ignored when the session is at a later generation).
pub const SESSION_OPENED: &str = "rpcnet.mgmt/session-opened";

/// Every worker management method (registered on a worker's management port).
pub const WORKER_METHODS: [&str; 10] = [
    REQUEST,
    PREPARE,
    CAPTURE,
    TRANSFER,
    COMPLETE,
    ABORT,
    SESSION_CLOSED,
    CLAIM,
    SESSION_DETACHED,
    SESSION_OPENED,
];
/// Every director management method.
pub const DIRECTOR_METHODS: [&str; 3] = [REGISTER, HEARTBEAT, DRAIN];

/// Converts a migration error into a call error: `INVALID_ARGUMENT`, with the migration code
/// (e.g. `TOKEN_REPLAYED`) leading the message so it survives the wire.
pub fn rejected(e: MigrationError) -> RpcError {
    RpcError::new(ErrorCode::InvalidArgument, format!("{}: {e}", e.code()))
}

/// `e`, an `UNIMPLEMENTED` answer from `address`, as what it means there: the address is not a
/// director's management port (a director's user port, or another server, says it has no such
/// method).
pub fn not_a_management_port(e: RpcError, address: &str) -> RpcError {
    RpcError::new(
        e.code,
        format!(
            "{address} is not a director's management port ({}): give the director's mgmtAddress",
            e.message
        ),
    )
}

/// Encodes a message as a call payload.
///
/// Errors: `INTERNAL` if the message breaks an encoding limit (field too long).
pub fn encode(message: &ManagementMessage) -> Result<Bytes, RpcError> {
    message
        .encode()
        .map(Bytes::from)
        .map_err(|e| RpcError::internal(format!("cannot encode {}: {e}", message.name())))
}

/// Decodes a call payload. Errors: `INVALID_ARGUMENT` naming the malformed field.
pub fn decode(payload: &Bytes) -> Result<ManagementMessage, RpcError> {
    ManagementMessage::decode_shared(payload).map_err(rejected)
}

/// One management round trip: sends `message` to `method` and decodes the answer.
///
/// Errors: the peer's error (a rejected token or snapshot arrives as `INVALID_ARGUMENT` with the
/// migration code in the message), `DEADLINE_EXCEEDED` after `timeout_ms`, `UNAVAILABLE`.
pub async fn call(
    client: &Client,
    method: &str,
    message: &ManagementMessage,
    timeout_ms: u32,
) -> Result<ManagementMessage, RpcError> {
    let reply = client.unary(method, encode(message)?, timeout_ms).await?;
    decode(&reply)
}

/// Unix time now, ms (the runtime's clock; the protocol crate takes time as an input).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

//! Management-plane messages (RFC-001 section 3.1) and cluster membership messages, with a
//! compact binary codec.
//!
//! These travel between the director and the workers over the management ports. RFC-001 sketched
//! them with serde; here the layout is explicit so that processes of different builds agree on
//! it byte for byte and so that decoding untrusted bytes is bounded and never panics.
//!
//! Layout: one type byte, then the fields in declaration order, big-endian integers,
//! `str16` = u16 length + UTF-8, `bytes32` = u32 length + bytes, `bool` = one byte 0/1.
//!
//! ```text
//! 0x01 MigrationRequest       migration_id u64 | session_id u64 | source str16 | target str16
//!                             | reason | token (u16 length + MigrationToken encoding)
//!                             | requested_at_ms u64 | route_epoch u64
//!      reason                 u8: 0 Drain, 1 LoadBalancing, 2 Admin, 3 Failover,
//!                             4 Custom followed by str16
//! 0x02 MigrationConfirmation  migration_id u64 | decision u8: 0 Accept,
//!                             1 Reject followed by reason str16,
//!                             2 Defer followed by retry_after_ms u32
//! 0x03 PrepareAck             migration_id u64 | ready bool
//! 0x04 StateTransfer          migration_id u64 | sealed bytes32
//! 0x05 MigrationComplete      migration_id u64 | session_id u64
//! 0x06 MigrationAbort         migration_id u64 | reason str16
//! 0x10 Register               worker_id str16 | user_addr str16 | mgmt_addr str16 | lease_ms u32
//! 0x11 Heartbeat              worker_id str16 | sessions u32 | at_ms u64
//! 0x12 SessionClosed          session_id u64
//! 0x13 Claim                  session_id u64 | generation u32
//! 0x14 Claimed                session_id u64 | status u8 (0 not held, 1 captured,
//!                             2 restored, 3 serving) | epoch u64
//! ```
//!
//! Framing (one message per length-prefixed record on a management stream) is the runtime's.

use bytes::Bytes;

use super::token::MigrationToken;
use super::wire::{put_bytes16, put_bytes32, put_u32, put_u64, ReadError, Reader, TooLong};
use super::MigrationError;

/// Why a migration was requested (RFC-001 section 3.1 `MigrationReason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationReason {
    /// The source is being drained for maintenance or a deploy (RFC-001 `ServerMaintenance`).
    Drain,
    /// Rebalancing sessions across workers (RFC-001 `LoadBalancing`).
    LoadBalancing,
    /// An operator asked for it.
    Admin,
    /// The owner died; the session is re-opened elsewhere from its last checkpoint.
    Failover,
    /// Anything else, described by the application (at most 65 535 bytes of UTF-8).
    Custom(String),
}

impl std::fmt::Display for MigrationReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MigrationReason::Drain => f.write_str("drain"),
            MigrationReason::LoadBalancing => f.write_str("load-balancing"),
            MigrationReason::Admin => f.write_str("admin"),
            MigrationReason::Failover => f.write_str("failover"),
            MigrationReason::Custom(s) => write!(f, "custom: {s}"),
        }
    }
}

/// The confirming party's answer to a migration request (RFC-001 section 3.2, phase 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmationDecision {
    /// Proceed.
    Accept,
    /// Do not migrate; the session stays on the source.
    Reject {
        /// Why (shown to operators; at most 65 535 bytes).
        reason: String,
    },
    /// Ask again after `retry_after_ms` milliseconds.
    Defer {
        /// Delay before asking again, in ms.
        retry_after_ms: u32,
    },
}

/// Phase 1 (Initiation): asks for `session_id` to move from `source` to `target`, carrying the
/// token that authorises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationRequest {
    /// Unique id of this migration attempt (chosen by the coordinator).
    pub migration_id: u64,
    /// The session to move.
    pub session_id: u64,
    /// Worker id of the current owner.
    pub source: String,
    /// Worker id of the new owner.
    pub target: String,
    /// Why.
    pub reason: MigrationReason,
    /// Single-use credential bound to session, source and target (see [`MigrationToken`]).
    pub token: MigrationToken,
    /// When the coordinator asked, unix ms.
    pub requested_at_ms: u64,
    /// The epoch of the session's route when the director froze it for State Capture (0 in
    /// the earlier phases). The source fences the session at this epoch: an ATTACH with
    /// `route_epoch <= this` is stale and answered SUSPENDED (PROTOCOL.md section 13.5).
    pub route_epoch: u64,
}

/// Phase 2 (Confirmation): the policy hook's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationConfirmation {
    /// The migration decided on.
    pub migration_id: u64,
    /// Accept, reject or defer.
    pub decision: ConfirmationDecision,
}

/// Phase 3 (Preparation): the target checked the token and is (or is not) ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrepareAck {
    /// The migration prepared for.
    pub migration_id: u64,
    /// True when the target redeemed the token and allocated the session.
    pub ready: bool,
}

/// Phase 5 (State Transfer): the sealed snapshot (see [`super::snapshot::seal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateTransfer {
    /// The migration whose snapshot this is.
    pub migration_id: u64,
    /// The sealed snapshot bytes.
    pub sealed: Bytes,
}

/// Phase 6 (Pivot): the route switched; the source may drop the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationComplete {
    /// The finished migration.
    pub migration_id: u64,
    /// The session that moved.
    pub session_id: u64,
}

/// Rollback (RFC-001 `MigrationAbort`): the session stays on (or returns to) the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationAbort {
    /// The aborted migration.
    pub migration_id: u64,
    /// Why, ideally `CODE: message` from a [`MigrationError`].
    pub reason: String,
}

/// Cluster membership: a worker announces itself to the director.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    /// The worker's id (unique in the cluster).
    pub worker_id: String,
    /// Its user (data plane) address, `host:port`.
    pub user_addr: String,
    /// Its management (control plane) address, `host:port`.
    pub mgmt_addr: String,
    /// The heartbeat lease, ms: 0 from the worker; in the director's reply, how long the worker
    /// may keep producing without an acknowledged heartbeat (PROTOCOL.md section 14.1). Shorter
    /// than the director's failure-detection timeout, so a worker that may have been declared
    /// dead has stopped producing first.
    pub lease_ms: u32,
}

/// Cluster membership: a worker's periodic liveness report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The reporting worker.
    pub worker_id: String,
    /// Sessions it owns now.
    pub sessions: u32,
    /// When it was sent, unix ms (the worker's clock).
    pub at_ms: u64,
}

/// Cluster membership: the director tells a session's owner that the client connection ended, so
/// it drops whatever it still holds for the session (open or captured calls, restored state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionClosed {
    /// The session that ended.
    pub session_id: u64,
}

/// Resume (PROTOCOL.md section 15.6): a director claims a session for the client that presented
/// a credential of `generation`; the worker answers [`Claimed`], or ERROR `INVALID_ARGUMENT`
/// `RESUME_REPLAYED: ...` when the session is at a later generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The session to resume.
    pub session_id: u64,
    /// The generation in the client's credential.
    pub generation: u32,
}

/// A worker's answer to [`Claim`]: what it holds of the session (it moved the session to
/// generation + 1 and froze its calls for the claiming director).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    /// The session.
    pub session_id: u64,
    /// 0 = not held here; else `rpcnet_session::participant::ClaimStatus` as a byte (1 captured
    /// by a migration, 2 restored from a snapshot, 3 serving or keeping its calls).
    pub status: u8,
    /// The highest route epoch the worker served the session under (0 if never).
    pub epoch: u64,
}

/// Any management-plane message, as one value for the codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagementMessage {
    /// Type byte 0x01.
    Request(MigrationRequest),
    /// Type byte 0x02.
    Confirmation(MigrationConfirmation),
    /// Type byte 0x03.
    PrepareAck(PrepareAck),
    /// Type byte 0x04.
    StateTransfer(StateTransfer),
    /// Type byte 0x05.
    Complete(MigrationComplete),
    /// Type byte 0x06.
    Abort(MigrationAbort),
    /// Type byte 0x10.
    Register(Register),
    /// Type byte 0x11.
    Heartbeat(Heartbeat),
    /// Type byte 0x12.
    SessionClosed(SessionClosed),
    /// Type byte 0x13.
    Claim(Claim),
    /// Type byte 0x14.
    Claimed(Claimed),
}

macro_rules! from_variant {
    ($($ty:ident => $var:ident),*) => {$(
        impl From<$ty> for ManagementMessage {
            fn from(m: $ty) -> Self { ManagementMessage::$var(m) }
        }
    )*};
}
from_variant!(MigrationRequest => Request, MigrationConfirmation => Confirmation,
    PrepareAck => PrepareAck, StateTransfer => StateTransfer, MigrationComplete => Complete,
    MigrationAbort => Abort, Register => Register, Heartbeat => Heartbeat,
    SessionClosed => SessionClosed, Claim => Claim, Claimed => Claimed);

impl ManagementMessage {
    /// The message's type byte (see the module layout).
    pub fn type_byte(&self) -> u8 {
        match self {
            ManagementMessage::Request(_) => 0x01,
            ManagementMessage::Confirmation(_) => 0x02,
            ManagementMessage::PrepareAck(_) => 0x03,
            ManagementMessage::StateTransfer(_) => 0x04,
            ManagementMessage::Complete(_) => 0x05,
            ManagementMessage::Abort(_) => 0x06,
            ManagementMessage::Register(_) => 0x10,
            ManagementMessage::Heartbeat(_) => 0x11,
            ManagementMessage::SessionClosed(_) => 0x12,
            ManagementMessage::Claim(_) => 0x13,
            ManagementMessage::Claimed(_) => 0x14,
        }
    }

    /// The message's name, as used in error messages.
    pub fn name(&self) -> &'static str {
        match self {
            ManagementMessage::Request(_) => "MigrationRequest",
            ManagementMessage::Confirmation(_) => "MigrationConfirmation",
            ManagementMessage::PrepareAck(_) => "PrepareAck",
            ManagementMessage::StateTransfer(_) => "StateTransfer",
            ManagementMessage::Complete(_) => "MigrationComplete",
            ManagementMessage::Abort(_) => "MigrationAbort",
            ManagementMessage::Register(_) => "Register",
            ManagementMessage::Heartbeat(_) => "Heartbeat",
            ManagementMessage::SessionClosed(_) => "SessionClosed",
            ManagementMessage::Claim(_) => "Claim",
            ManagementMessage::Claimed(_) => "Claimed",
        }
    }

    /// The migration this message belongs to, for the migration messages.
    pub fn migration_id(&self) -> Option<u64> {
        match self {
            ManagementMessage::Request(m) => Some(m.migration_id),
            ManagementMessage::Confirmation(m) => Some(m.migration_id),
            ManagementMessage::PrepareAck(m) => Some(m.migration_id),
            ManagementMessage::StateTransfer(m) => Some(m.migration_id),
            ManagementMessage::Complete(m) => Some(m.migration_id),
            ManagementMessage::Abort(m) => Some(m.migration_id),
            ManagementMessage::Register(_)
            | ManagementMessage::Heartbeat(_)
            | ManagementMessage::SessionClosed(_)
            | ManagementMessage::Claim(_)
            | ManagementMessage::Claimed(_) => None,
        }
    }

    /// Encodes the message in the module's layout.
    /// Errors: `MESSAGE_MALFORMED` if a string or byte field is longer than its length prefix
    /// allows (65 535 bytes for strings and tokens, 4 GiB for `sealed`).
    pub fn encode(&self) -> Result<Vec<u8>, MigrationError> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(&mut out)
            .map_err(|e| MigrationError::MessageMalformed {
                detail: format!("{}.{e}", self.name()),
            })?;
        Ok(out)
    }

    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), TooLong> {
        out.push(self.type_byte());
        match self {
            ManagementMessage::Request(m) => {
                put_u64(out, m.migration_id);
                put_u64(out, m.session_id);
                put_bytes16(out, m.source.as_bytes(), "source")?;
                put_bytes16(out, m.target.as_bytes(), "target")?;
                match &m.reason {
                    MigrationReason::Drain => out.push(0),
                    MigrationReason::LoadBalancing => out.push(1),
                    MigrationReason::Admin => out.push(2),
                    MigrationReason::Failover => out.push(3),
                    MigrationReason::Custom(s) => {
                        out.push(4);
                        put_bytes16(out, s.as_bytes(), "reason")?;
                    }
                }
                // An over-long token id surfaces as an over-long token field.
                let token = m.token.encode().map_err(|_| TooLong {
                    field: "token",
                    len: m.token.source.len().max(m.token.target.len()),
                    max: super::token::MAX_WORKER_ID_LEN,
                })?;
                put_bytes16(out, &token, "token")?;
                put_u64(out, m.requested_at_ms);
                put_u64(out, m.route_epoch);
            }
            ManagementMessage::Confirmation(m) => {
                put_u64(out, m.migration_id);
                match &m.decision {
                    ConfirmationDecision::Accept => out.push(0),
                    ConfirmationDecision::Reject { reason } => {
                        out.push(1);
                        put_bytes16(out, reason.as_bytes(), "reason")?;
                    }
                    ConfirmationDecision::Defer { retry_after_ms } => {
                        out.push(2);
                        put_u32(out, *retry_after_ms);
                    }
                }
            }
            ManagementMessage::PrepareAck(m) => {
                put_u64(out, m.migration_id);
                out.push(u8::from(m.ready));
            }
            ManagementMessage::StateTransfer(m) => {
                put_u64(out, m.migration_id);
                put_bytes32(out, &m.sealed, "sealed")?;
            }
            ManagementMessage::Complete(m) => {
                put_u64(out, m.migration_id);
                put_u64(out, m.session_id);
            }
            ManagementMessage::Abort(m) => {
                put_u64(out, m.migration_id);
                put_bytes16(out, m.reason.as_bytes(), "reason")?;
            }
            ManagementMessage::Register(m) => {
                put_bytes16(out, m.worker_id.as_bytes(), "worker_id")?;
                put_bytes16(out, m.user_addr.as_bytes(), "user_addr")?;
                put_bytes16(out, m.mgmt_addr.as_bytes(), "mgmt_addr")?;
                put_u32(out, m.lease_ms);
            }
            ManagementMessage::Heartbeat(m) => {
                put_bytes16(out, m.worker_id.as_bytes(), "worker_id")?;
                put_u32(out, m.sessions);
                put_u64(out, m.at_ms);
            }
            ManagementMessage::SessionClosed(m) => put_u64(out, m.session_id),
            ManagementMessage::Claim(m) => {
                put_u64(out, m.session_id);
                put_u32(out, m.generation);
            }
            ManagementMessage::Claimed(m) => {
                put_u64(out, m.session_id);
                out.push(m.status);
                put_u64(out, m.epoch);
            }
        }
        Ok(())
    }

    /// Decodes one message that spans all of `bytes` (byte fields are copied). Never panics.
    /// Errors: `MESSAGE_MALFORMED` naming the message and field (`MigrationRequest.source:
    /// needs 5 bytes, only 2 left`), an unknown type byte, or trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, MigrationError> {
        Self::decode_from(Reader::new(bytes))
    }

    /// [`decode`](Self::decode), but byte fields (the sealed snapshot) are zero-copy slices of
    /// `bytes`.
    pub fn decode_shared(bytes: &Bytes) -> Result<Self, MigrationError> {
        Self::decode_from(Reader::shared(bytes))
    }

    fn decode_from(mut r: Reader<'_>) -> Result<Self, MigrationError> {
        let ty = r.u8("type").map_err(|e| malformed("message", e))?;
        let name = type_name(ty).ok_or_else(|| MigrationError::MessageMalformed {
            detail: format!("unknown message type {ty:#04x}"),
        })?;
        let msg = read_fields(ty, &mut r).map_err(|e| malformed(name, e))?;
        r.finish().map_err(|e| malformed(name, e))?;
        Ok(msg)
    }
}

fn type_name(ty: u8) -> Option<&'static str> {
    Some(match ty {
        0x01 => "MigrationRequest",
        0x02 => "MigrationConfirmation",
        0x03 => "PrepareAck",
        0x04 => "StateTransfer",
        0x05 => "MigrationComplete",
        0x06 => "MigrationAbort",
        0x10 => "Register",
        0x11 => "Heartbeat",
        0x12 => "SessionClosed",
        0x13 => "Claim",
        0x14 => "Claimed",
        _ => return None,
    })
}

fn malformed(name: &str, e: ReadError) -> MigrationError {
    let detail = match e {
        ReadError::Trailing { .. } => format!("{name}: {e}"),
        _ => format!("{name}.{e}"),
    };
    MigrationError::MessageMalformed { detail }
}

fn read_fields(ty: u8, r: &mut Reader<'_>) -> Result<ManagementMessage, ReadError> {
    Ok(match ty {
        0x01 => {
            let migration_id = r.u64("migration_id")?;
            let session_id = r.u64("session_id")?;
            let source = r.str16("source")?;
            let target = r.str16("target")?;
            let reason = match r.u8("reason")? {
                0 => MigrationReason::Drain,
                1 => MigrationReason::LoadBalancing,
                2 => MigrationReason::Admin,
                3 => MigrationReason::Failover,
                4 => MigrationReason::Custom(r.str16("reason")?),
                t => {
                    return Err(ReadError::Invalid {
                        field: "reason",
                        detail: format!("unknown reason tag {t}"),
                    })
                }
            };
            let token =
                MigrationToken::decode(r.bytes16("token")?).map_err(|e| ReadError::Invalid {
                    field: "token",
                    detail: e.to_string(),
                })?;
            let requested_at_ms = r.u64("requested_at_ms")?;
            let route_epoch = r.u64("route_epoch")?;
            MigrationRequest {
                migration_id,
                session_id,
                source,
                target,
                reason,
                token,
                requested_at_ms,
                route_epoch,
            }
            .into()
        }
        0x02 => {
            let migration_id = r.u64("migration_id")?;
            let decision = match r.u8("decision")? {
                0 => ConfirmationDecision::Accept,
                1 => ConfirmationDecision::Reject {
                    reason: r.str16("reason")?,
                },
                2 => ConfirmationDecision::Defer {
                    retry_after_ms: r.u32("retry_after_ms")?,
                },
                t => {
                    return Err(ReadError::Invalid {
                        field: "decision",
                        detail: format!("unknown decision tag {t}"),
                    })
                }
            };
            MigrationConfirmation {
                migration_id,
                decision,
            }
            .into()
        }
        0x03 => PrepareAck {
            migration_id: r.u64("migration_id")?,
            ready: r.bool("ready")?,
        }
        .into(),
        0x04 => StateTransfer {
            migration_id: r.u64("migration_id")?,
            sealed: r.bytes32("sealed")?,
        }
        .into(),
        0x05 => MigrationComplete {
            migration_id: r.u64("migration_id")?,
            session_id: r.u64("session_id")?,
        }
        .into(),
        0x06 => MigrationAbort {
            migration_id: r.u64("migration_id")?,
            reason: r.str16("reason")?,
        }
        .into(),
        0x10 => Register {
            worker_id: r.str16("worker_id")?,
            user_addr: r.str16("user_addr")?,
            mgmt_addr: r.str16("mgmt_addr")?,
            lease_ms: r.u32("lease_ms")?,
        }
        .into(),
        0x11 => Heartbeat {
            worker_id: r.str16("worker_id")?,
            sessions: r.u32("sessions")?,
            at_ms: r.u64("at_ms")?,
        }
        .into(),
        0x12 => SessionClosed {
            session_id: r.u64("session_id")?,
        }
        .into(),
        0x13 => Claim {
            session_id: r.u64("session_id")?,
            generation: r.u32("generation")?,
        }
        .into(),
        0x14 => Claimed {
            session_id: r.u64("session_id")?,
            status: r.u8("status")?,
            epoch: r.u64("epoch")?,
        }
        .into(),
        // type_name() already refused other bytes.
        _ => {
            return Err(ReadError::Invalid {
                field: "type",
                detail: format!("unknown message type {ty:#04x}"),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::token::TokenKey;

    fn request() -> MigrationRequest {
        let token = TokenKey::from_bytes(&[1; 32])
            .issue_with_nonce([2; 32], 9, "w1", "w2", 100, 5_000)
            .unwrap();
        MigrationRequest {
            migration_id: 77,
            session_id: 9,
            source: "w1".into(),
            target: "w2".into(),
            reason: MigrationReason::Custom("rebalance zone b".into()),
            token,
            requested_at_ms: 100,
            route_epoch: 4,
        }
    }

    #[test]
    fn abort_layout_is_as_documented() {
        let m: ManagementMessage = MigrationAbort {
            migration_id: 1,
            reason: "x".into(),
        }
        .into();
        assert_eq!(m.encode().unwrap(), [6, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, b'x']);
    }

    #[test]
    fn request_round_trip_and_field_errors() {
        let m: ManagementMessage = request().into();
        let enc = m.encode().unwrap();
        assert_eq!(ManagementMessage::decode(&enc).unwrap(), m);
        // Cut inside `source` (type 1 + 8 + 8 + len 2 + 1 byte).
        let e = ManagementMessage::decode(&enc[..20]).unwrap_err();
        assert_eq!(e.code(), "MESSAGE_MALFORMED");
        assert_eq!(
            e.to_string(),
            "migration message malformed: MigrationRequest.source: needs 2 bytes, only 1 left"
        );
    }

    #[test]
    fn unknown_tags_are_named() {
        let e = ManagementMessage::decode(&[0x7f]).unwrap_err();
        assert!(e.to_string().contains("unknown message type 0x7f"), "{e}");
        let e = ManagementMessage::decode(&[0x02, 0, 0, 0, 0, 0, 0, 0, 1, 9]).unwrap_err();
        assert!(
            e.to_string().contains("decision: unknown decision tag 9"),
            "{e}"
        );
        let e = ManagementMessage::decode(&[0x03, 0, 0, 0, 0, 0, 0, 0, 1, 5]).unwrap_err();
        assert!(e.to_string().contains("PrepareAck.ready"), "{e}");
        let e = ManagementMessage::decode(&[]).unwrap_err();
        assert!(e.to_string().contains("message.type"), "{e}");
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut enc = ManagementMessage::from(PrepareAck {
            migration_id: 1,
            ready: true,
        })
        .encode()
        .unwrap();
        enc.push(0);
        let e = ManagementMessage::decode(&enc).unwrap_err();
        assert_eq!(
            e.to_string(),
            "migration message malformed: PrepareAck: 1 unexpected trailing bytes"
        );
    }

    #[test]
    fn shared_decode_is_zero_copy() {
        let m: ManagementMessage = StateTransfer {
            migration_id: 3,
            sealed: Bytes::from(vec![5u8; 100]),
        }
        .into();
        let enc = Bytes::from(m.encode().unwrap());
        let got = ManagementMessage::decode_shared(&enc).unwrap();
        assert_eq!(got, m);
        match got {
            ManagementMessage::StateTransfer(t) => {
                assert_eq!(t.sealed.as_ptr(), enc[13..].as_ptr())
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn overlong_fields_fail_to_encode() {
        let m: ManagementMessage = MigrationAbort {
            migration_id: 1,
            reason: "r".repeat(70_000),
        }
        .into();
        let e = m.encode().unwrap_err();
        assert_eq!(e.code(), "MESSAGE_MALFORMED");
        assert!(e.to_string().contains("MigrationAbort.reason"), "{e}");
        let mut r = request();
        r.token.target = "t".repeat(300);
        assert!(ManagementMessage::from(r)
            .encode()
            .unwrap_err()
            .to_string()
            .contains("token"));
    }

    #[test]
    fn bad_token_inside_request_is_a_message_error() {
        let mut enc = ManagementMessage::from(request()).encode().unwrap();
        // Token length prefix sits after type, ids, "w1", "w2", reason tag + custom string.
        let at = 1 + 8 + 8 + 4 + 4 + 1 + 2 + "rebalance zone b".len();
        let len = u16::from_be_bytes([enc[at], enc[at + 1]]);
        enc[at..at + 2].copy_from_slice(&(len - 1).to_be_bytes());
        enc.remove(at + 2);
        let e = ManagementMessage::decode(&enc).unwrap_err();
        assert_eq!(e.code(), "MESSAGE_MALFORMED");
        assert!(e.to_string().contains("MigrationRequest.token"), "{e}");
    }

    #[test]
    fn accessors() {
        let m: ManagementMessage = Heartbeat {
            worker_id: "w".into(),
            sessions: 1,
            at_ms: 2,
        }
        .into();
        assert_eq!(
            (m.type_byte(), m.name(), m.migration_id()),
            (0x11, "Heartbeat", None)
        );
        let m: ManagementMessage = MigrationComplete {
            migration_id: 4,
            session_id: 5,
        }
        .into();
        assert_eq!(m.migration_id(), Some(4));
        assert_eq!(MigrationReason::Drain.to_string(), "drain");
    }
}

//! Session migration, sans-IO (RFC-001 sections 3 and 5).
//!
//! A migration moves a *session* (the server side of one client connection: its open calls,
//! their stream positions, undelivered items and application state) from a source worker to a
//! target worker while the director keeps the client's QUIC connection. This module holds the
//! deterministic pieces of that protocol; the runtime crate drives them over real sockets.
//!
//! - [`token`]: the single-use, HMAC-SHA256-authenticated credential that authorises one
//!   migration (RFC-001 section 5.1), and the ledger that enforces single use.
//! - [`snapshot`]: the captured session, its versioned binary format (RFC-001 section 3.3) and
//!   its sealing (zstd, then AES-256-GCM under an HKDF-SHA256 per-migration key; section 5.2).
//! - [`message`]: the management-plane messages (RFC-001 section 3.1) and cluster membership
//!   messages, with a compact binary codec.
//! - [`machine`]: the coordinator's state machine over RFC-001's phases (section 3.2), with
//!   time as an input and actions as outputs.
//!
//! Nothing here does I/O, reads a clock or draws global randomness: time comes in as `now_ms`
//! (unix milliseconds) and randomness as a [`ring::rand::SecureRandom`] or explicit bytes, so
//! every behaviour is reproducible in a unit test. Every failure is a [`MigrationError`] with a
//! stable [`MigrationError::code`]; a failed migration before the Pivot leaves the session on its
//! source worker.

pub mod machine;
pub mod message;
pub mod snapshot;
pub mod token;
mod wire;

pub use machine::{Action, Event, Migration, MigrationConfig, Outcome, Phase};
pub use message::{
    Claim, Claimed, ConfirmationDecision, Heartbeat, ManagementMessage, MigrationAbort,
    MigrationComplete, MigrationConfirmation, MigrationReason, MigrationRequest, PrepareAck,
    Register, SessionClosed, StateTransfer,
};
pub use snapshot::{CallSnapshot, SealOptions, SealedHeader, SessionSnapshot};
pub use token::{MigrationToken, TokenClaim, TokenKey, TokenLedger, DEFAULT_TOKEN_TTL_MS};

/// Every way a migration step can fail. Each variant has a stable machine-readable
/// [`code`](MigrationError::code) and a `Display` message that names the problem (for example
/// `migration token expired 120 ms ago`). Codes are part of the wire and API contract: they
/// never change meaning; new failure kinds get new codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MigrationError {
    /// `TOKEN_INVALID`: the token is malformed or its HMAC-SHA256 tag (RFC 2104) does not verify
    /// under the cluster token key, or it claims a lifetime longer than the verifier allows.
    #[error("migration token invalid: {detail}")]
    TokenInvalid {
        /// What is wrong with the token.
        detail: String,
    },
    /// `TOKEN_EXPIRED`: the token's `expires_at_ms` is at or before the verifier's `now_ms`.
    #[error("migration token expired {ago_ms} ms ago")]
    TokenExpired {
        /// How long ago it expired, in milliseconds (`now_ms - expires_at_ms`).
        ago_ms: u64,
    },
    /// `TOKEN_REPLAYED`: a token with this nonce was already redeemed (tokens are single use).
    #[error("migration token replayed: nonce {nonce_prefix}… was already redeemed")]
    TokenReplayed {
        /// Hex of the first 4 nonce bytes, enough to correlate logs without leaking the token.
        nonce_prefix: String,
    },
    /// `TOKEN_MISMATCH`: an authentic token for a different session, source or target.
    #[error("migration token is for {field} {found:?}, expected {expected:?}")]
    TokenMismatch {
        /// `"session"`, `"source"` or `"target"`.
        field: &'static str,
        /// What the verifier expected.
        expected: String,
        /// What the token carries.
        found: String,
    },
    /// `SNAPSHOT_TAMPERED`: AES-256-GCM authentication failed (tampered bytes or a different
    /// cluster secret), the header checksum does not match, or an authentic snapshot belongs to
    /// another session than the one expected.
    #[error("snapshot tampered: {detail}")]
    SnapshotTampered {
        /// What failed to verify.
        detail: String,
    },
    /// `SNAPSHOT_TRUNCATED`: the snapshot bytes end before its header or declared length.
    #[error("snapshot truncated: {detail}")]
    SnapshotTruncated {
        /// How many bytes were expected and found.
        detail: String,
    },
    /// `SNAPSHOT_VERSION`: the snapshot format version is not one this build reads.
    #[error(
        "snapshot format version {found} is not supported (this build reads version {supported})"
    )]
    SnapshotVersion {
        /// The version in the header.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// `SNAPSHOT_MALFORMED`: the snapshot authenticated (or its checksum matched) but its
    /// contents break the format: bad lengths, unknown flags, non-contiguous item sequence
    /// numbers, duplicate call ids, or a size above the caller's limit (decompression bombs).
    #[error("snapshot malformed: {detail}")]
    SnapshotMalformed {
        /// The field and rule that was broken.
        detail: String,
    },
    /// `MESSAGE_MALFORMED`: a management message could not be decoded (or encoded).
    #[error("migration message malformed: {detail}")]
    MessageMalformed {
        /// The message, field and problem.
        detail: String,
    },
    /// `MIGRATION_STATE`: an event that is not valid in the machine's current phase. The machine
    /// did not change.
    #[error("migration event {event} is not valid in phase {phase}")]
    State {
        /// The phase the machine is in.
        phase: machine::Phase,
        /// The event's name.
        event: &'static str,
    },
    /// `MIGRATION_STATE`: a StateTransfer for a migration this worker did not prepare, or one
    /// it already restored (a replayed StateTransfer).
    #[error(
        "no prepared migration {migration_id} on {worker} (replayed or unprepared StateTransfer)"
    )]
    Unprepared {
        /// The migration named by the StateTransfer.
        migration_id: u64,
        /// The worker that received it.
        worker: String,
    },
    /// `MIGRATION_STATE`: a State Capture sent under a route of an earlier resume generation
    /// than the session's (PROTOCOL.md section 15.6): a director that lost the session to a
    /// resume on another director may not move it.
    #[error("session {session_id:016x} was resumed (generation {current}); a capture of generation {generation} is stale")]
    Superseded {
        /// The session.
        session_id: u64,
        /// The generation of the capture's route epoch.
        generation: u32,
        /// The session's generation at this worker.
        current: u32,
    },
    /// `MIGRATION_TIMEOUT`: a phase or the whole migration took longer than its limit.
    #[error("migration timed out in phase {phase}: {limit} limit of {limit_ms} ms reached")]
    Timeout {
        /// The phase that was running.
        phase: machine::Phase,
        /// `"phase"` or `"total"`.
        limit: &'static str,
        /// The limit, in milliseconds.
        limit_ms: u64,
    },
    /// `MIGRATION_REJECTED`: the confirming party's policy answered `Reject`, or deferred more
    /// times than allowed.
    #[error("migration rejected: {reason}")]
    Rejected {
        /// The reason given by the policy.
        reason: String,
    },
    /// `MIGRATION_ABORTED`: a participant reported a failure (for example a received
    /// `MigrationAbort`, a crashed worker, or a local error passed in as text).
    #[error("migration aborted: {reason}")]
    Aborted {
        /// The reported failure.
        reason: String,
    },
    /// `MIGRATION_CAPACITY`: a participant already remembers as many entries of some kind as
    /// its documented bound allows (redeemed tokens, fenced sessions, open migrations), all of
    /// them still needed for replay protection or fencing, so it refuses the step instead of
    /// forgetting one early. Nothing was recorded; the migration aborts and the session stays
    /// where it is. Entries expire with time, so a later attempt can succeed.
    #[error("migration refused: this worker already remembers {limit} {what}, its bound; the oldest must expire first")]
    Capacity {
        /// What is full: `"redeemed tokens"`, `"fenced sessions"` or `"open migrations"`.
        what: &'static str,
        /// The bound, in entries.
        limit: usize,
    },
    /// `RANDOM_UNAVAILABLE`: the supplied secure random source failed.
    #[error("secure random source failed while {while_doing}")]
    RandomUnavailable {
        /// What needed the randomness.
        while_doing: &'static str,
    },
}

impl MigrationError {
    /// The stable, machine-readable code of this error (for logs, metrics, the wire and the
    /// TypeScript API). One of `TOKEN_INVALID`, `TOKEN_EXPIRED`, `TOKEN_REPLAYED`,
    /// `TOKEN_MISMATCH`, `SNAPSHOT_TAMPERED`, `SNAPSHOT_TRUNCATED`, `SNAPSHOT_VERSION`,
    /// `SNAPSHOT_MALFORMED`, `MESSAGE_MALFORMED`, `MIGRATION_STATE`, `MIGRATION_TIMEOUT`,
    /// `MIGRATION_REJECTED`, `MIGRATION_ABORTED`, `MIGRATION_CAPACITY`, `RANDOM_UNAVAILABLE`.
    pub fn code(&self) -> &'static str {
        match self {
            MigrationError::TokenInvalid { .. } => "TOKEN_INVALID",
            MigrationError::TokenExpired { .. } => "TOKEN_EXPIRED",
            MigrationError::TokenReplayed { .. } => "TOKEN_REPLAYED",
            MigrationError::TokenMismatch { .. } => "TOKEN_MISMATCH",
            MigrationError::SnapshotTampered { .. } => "SNAPSHOT_TAMPERED",
            MigrationError::SnapshotTruncated { .. } => "SNAPSHOT_TRUNCATED",
            MigrationError::SnapshotVersion { .. } => "SNAPSHOT_VERSION",
            MigrationError::SnapshotMalformed { .. } => "SNAPSHOT_MALFORMED",
            MigrationError::MessageMalformed { .. } => "MESSAGE_MALFORMED",
            MigrationError::State { .. }
            | MigrationError::Unprepared { .. }
            | MigrationError::Superseded { .. } => "MIGRATION_STATE",
            MigrationError::Timeout { .. } => "MIGRATION_TIMEOUT",
            MigrationError::Rejected { .. } => "MIGRATION_REJECTED",
            MigrationError::Aborted { .. } => "MIGRATION_ABORTED",
            MigrationError::Capacity { .. } => "MIGRATION_CAPACITY",
            MigrationError::RandomUnavailable { .. } => "RANDOM_UNAVAILABLE",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_messages_name_the_problem() {
        let e = MigrationError::TokenExpired { ago_ms: 120 };
        assert_eq!(e.code(), "TOKEN_EXPIRED");
        assert_eq!(e.to_string(), "migration token expired 120 ms ago");
        let e = MigrationError::SnapshotVersion {
            found: 9,
            supported: 1,
        };
        assert_eq!(e.code(), "SNAPSHOT_VERSION");
        assert!(e.to_string().contains("version 9"));
        let e = MigrationError::State {
            phase: Phase::Pivot,
            event: "Failure",
        };
        assert_eq!(e.code(), "MIGRATION_STATE");
        assert_eq!(
            e.to_string(),
            "migration event Failure is not valid in phase Pivot"
        );
        let e = MigrationError::TokenMismatch {
            field: "target",
            expected: "w2".into(),
            found: "w3".into(),
        };
        assert_eq!(e.code(), "TOKEN_MISMATCH");
        assert_eq!(
            e.to_string(),
            "migration token is for target \"w3\", expected \"w2\""
        );
    }

    #[test]
    fn every_code_is_distinct() {
        let all = [
            MigrationError::TokenInvalid {
                detail: String::new(),
            },
            MigrationError::TokenExpired { ago_ms: 0 },
            MigrationError::TokenReplayed {
                nonce_prefix: String::new(),
            },
            MigrationError::TokenMismatch {
                field: "session",
                expected: String::new(),
                found: String::new(),
            },
            MigrationError::SnapshotTampered {
                detail: String::new(),
            },
            MigrationError::SnapshotTruncated {
                detail: String::new(),
            },
            MigrationError::SnapshotVersion {
                found: 0,
                supported: 1,
            },
            MigrationError::SnapshotMalformed {
                detail: String::new(),
            },
            MigrationError::MessageMalformed {
                detail: String::new(),
            },
            MigrationError::State {
                phase: Phase::Initiation,
                event: "",
            },
            MigrationError::Timeout {
                phase: Phase::Initiation,
                limit: "total",
                limit_ms: 0,
            },
            MigrationError::Rejected {
                reason: String::new(),
            },
            MigrationError::Aborted {
                reason: String::new(),
            },
            MigrationError::Capacity { what: "", limit: 0 },
            MigrationError::RandomUnavailable { while_doing: "" },
        ];
        let mut codes: Vec<_> = all.iter().map(MigrationError::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}

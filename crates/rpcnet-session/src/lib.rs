//! # rpcnet-session
//!
//! The rules that decide what a client receives, as deterministic state machines in the manner of
//! `quinn-proto`: no I/O, no async runtime, no clock and no randomness of their own. Time comes in
//! as `now_ms` (milliseconds on any monotonic scale the driver chooses), random bytes come in as
//! arguments, and every machine answers with values (frames to forward, messages to send, events)
//! that the driver moves. `rpcnet-runtime` drives them over quinn; `rpcnet-sim` drives the same
//! machines through a seeded simulation of a whole cluster and checks exactly-once after every
//! step.
//!
//! - [`client_call`]: the client side of one call: seq order, END count, errors.
//! - [`client_items`]: the handler's side of a call's client items: skipping what a resumed
//!   handler read before, refusing gaps.
//! - [`client_replay`]: the director's copy of a call's client items that no checkpoint covers,
//!   replayed to each new owner.
//! - [`client_requests`]: the client's own requests: their seqs, END, and in a resumable
//!   session all of them, to send again after a resume.
//! - [`client_stream`]: the client's end of one call's stream: the REQUEST it may send, the
//!   stream's bytes and FIN judged by [`ClientCall`], batches of items, the outcome held behind
//!   them, the local deadline and cancellation, and when the client resets the stream.
//! - [`server_call`]: the worker side of one streaming call: numbering items, dropping what the
//!   client has, checkpoints, freezing at an item boundary (SUSPENDED) and resuming.
//! - [`relay_call`]: the director side of one call: the next seq the client needs, duplicate
//!   dropping, the latest checkpoint, re-attaching to a new owner with the remaining deadline.
//! - [`route`]: where a session's calls go (owner, epoch, freeze).
//! - [`coordinator`]: the director side of a session: its route, RFC-001's migration phases and
//!   failover; every ending leaves exactly one owner and no frozen route.
//! - [`session_book`]: what a worker holds per session: the epoch fence, kept calls, leases per
//!   director, resume claims.
//! - [`participant`]: the worker side of migrations: one token verification path (the ledger),
//!   the epoch fence, capture, restore, and the heartbeat lease, one per director, that fences
//!   the calls of a director that may have declared the worker dead.

#![warn(missing_docs)]

pub mod client_call;
pub mod client_items;
pub mod client_replay;
pub mod client_requests;
pub mod client_stream;
pub mod coordinator;
pub mod participant;
pub mod relay_call;
pub mod route;
pub mod server_call;
pub mod session_book;

pub use client_call::{ClientCall, Delivery};
pub use client_items::{ClientItem, ClientItems};
pub use client_replay::{ClientReplay, MAX_REPLAY_BYTES};
pub use client_requests::{ClientRequests, MAX_KEPT_BYTES};
pub use client_stream::{ClientStream, Failure, Received};
pub use coordinator::{Coordinator, CoordinatorEvent, MigrationSummary, Transmit, WorkerMethod};
pub use participant::{AttachDecision, DirectorKey, Lease, Participant};
pub use relay_call::{check_client_metadata, OwnerFrame, RelayCall};
pub use route::Route;
pub use server_call::{Produced, ServerCall};

/// A failure the machines report to their driver: a stable [`rpcnet_protocol::ErrorCode`] and a
/// message that names the problem. The driver sends it as an ERROR frame or raises it to the
/// caller unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// The stable code (PROTOCOL.md "Error codes").
    pub code: rpcnet_protocol::ErrorCode,
    /// What went wrong, for humans.
    pub message: String,
}

impl CallError {
    /// An error with `code` and `message`.
    pub fn new(code: rpcnet_protocol::ErrorCode, message: impl Into<String>) -> Self {
        CallError {
            code,
            message: message.into(),
        }
    }

    /// A `PROTOCOL` error: the peer broke PROTOCOL.md.
    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(rpcnet_protocol::ErrorCode::Protocol, message)
    }

    /// `DEADLINE_EXCEEDED` for a call whose deadline was `deadline_ms` milliseconds
    /// (PROTOCOL.md section 8.2): "deadline of 250 ms exceeded".
    pub fn deadline_exceeded(deadline_ms: u32) -> Self {
        Self::new(
            rpcnet_protocol::ErrorCode::DeadlineExceeded,
            format!("deadline of {deadline_ms} ms exceeded"),
        )
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

impl std::error::Error for CallError {}

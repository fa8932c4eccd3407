//! The captured session itself: [`SessionSnapshot`] and its [`CallSnapshot`]s, the values a
//! migration or a failover moves (RFC-001 section 3.2, phase 4). How they travel as bytes lives
//! in the sibling modules (`encoding`, `compress`, `seal`).

use bytes::Bytes;

use crate::frame::Checkpoint;
use crate::metadata::Metadata;

/// The server side of one client connection, frozen at an item boundary (RFC-001 section 3.2,
/// phase 4). What migrates between workers; also what failover rebuilds from checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionSnapshot {
    /// The session (one per client connection).
    pub session_id: u64,
    /// The stable id of the client connection as the framework names it (`connectionId`).
    /// At most 65 535 bytes of UTF-8.
    pub connection_id: String,
    /// When the source froze the session, unix ms.
    pub captured_at_ms: u64,
    /// The route epoch the source was captured at (the State Capture request's `route_epoch`,
    /// PROTOCOL.md section 13.5; 0 when unknown). The target reports it as the epoch it holds
    /// the session at when a resume claims it (section 15.6), so that a restored state is
    /// preferred to an older capture's.
    pub route_epoch: u64,
    /// Opaque application state from the TypeScript capture hook (may be empty).
    pub app_state: Bytes,
    /// Every open call; `call_id`s are unique.
    pub calls: Vec<CallSnapshot>,
}

/// One open call of a captured session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallSnapshot {
    /// The call's id within the session (unique in a snapshot).
    pub call_id: u64,
    /// The method name, at most 65 535 bytes of UTF-8.
    pub method: String,
    /// The original request payload, so the target can re-run the handler if it must.
    pub request: Bytes,
    /// True for a streaming call (items with sequence numbers), false for unary.
    pub streaming: bool,
    /// Milliseconds left before the call's deadline at `captured_at_ms`; 0 means no deadline.
    pub deadline_ms: u32,
    /// Sequence number of the first item the client has not been sent (items are numbered
    /// from 0 within a call). The target continues from here.
    pub next_seq: u64,
    /// Items produced but not yet delivered, as `(seq, payload)`, seq ascending and
    /// contiguous from `next_seq` (`next_seq`, `next_seq + 1`, ...).
    pub pending: Vec<(u64, Bytes)>,
    /// The handler's last checkpoint, if any: after producing `seq` items and consuming `read`
    /// client items the handler saved `state` with `ctx.checkpoint(state)`. A resumed handler
    /// restarts there.
    pub checkpoint: Option<Checkpoint>,
    /// The response headers the handler set (PROTOCOL.md section 5.6), empty if none. The
    /// target sends them before the pending items, so that a client which had not received them
    /// still gets them before its next item (the director forwards them only then).
    pub headers: Metadata,
}

impl CallSnapshot {
    /// A call rebuilt for failover (the owner died, nothing was captured): the original
    /// request, the handler's last checkpoint, and the client's last received seq (`None`
    /// when the client received no item, so the call resumes at seq 0). No pending items.
    pub fn for_failover(
        call_id: u64,
        method: String,
        request: Bytes,
        streaming: bool,
        deadline_ms: u32,
        checkpoint: Option<Checkpoint>,
        last_received_seq: Option<u64>,
    ) -> Self {
        CallSnapshot {
            call_id,
            method,
            request,
            streaming,
            deadline_ms,
            next_seq: last_received_seq.map_or(0, |s| s.saturating_add(1)),
            pending: Vec::new(),
            checkpoint,
            headers: Metadata::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failover_call_resumes_after_last_received() {
        let c = CallSnapshot::for_failover(3, "m".into(), Bytes::new(), true, 0, None, Some(41));
        assert_eq!(c.next_seq, 42);
        let c = CallSnapshot::for_failover(3, "m".into(), Bytes::new(), true, 0, None, None);
        assert_eq!(c.next_seq, 0);
    }
}

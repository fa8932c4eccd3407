//! The client's items of a client-streaming or bidi call as a director relays them (PROTOCOL.md
//! section 13.6), sans-IO.
//!
//! A relayed call outlives its owner, and so must the client's items: a handler that moves
//! (migration, failover) restarts at its checkpoint and reads the client's items again from the
//! checkpoint's `read`. The director therefore keeps every item it relayed that the latest
//! CHECKPOINT does not cover, and replays them (then the END, if the client sent it) after the
//! ATTACH and REQUEST of the next owner. A handler that never checkpoints makes the director keep
//! everything, so the buffer is bounded ([`MAX_REPLAY_BYTES`]): past it the oldest items are
//! dropped, and the call can no longer move (re-attaching it fails with `UNAVAILABLE`) until a
//! checkpoint covers what was dropped.

use std::collections::VecDeque;

use bytes::Bytes;
use rpcnet_protocol::{ErrorCode, Frame};

use crate::CallError;

/// Payload bytes of client items a director keeps per call for a replay (README "Resumable
/// handlers"): 8 MiB.
pub const MAX_REPLAY_BYTES: usize = 8 * 1024 * 1024;

/// The director's copy of one call's client items. See the module docs.
#[derive(Debug, Clone)]
pub struct ClientReplay {
    items: VecDeque<(u64, Bytes)>,
    bytes: usize,
    max_bytes: usize,
    /// Every item below this is gone from the buffer (a checkpoint covers it, or it was
    /// dropped over the bound).
    base: u64,
    /// The seq the client sends next.
    next: u64,
    ended: bool,
}

impl ClientReplay {
    /// The buffer of a new call: the client's items start at seq 0.
    pub fn new(max_bytes: usize) -> Self {
        ClientReplay {
            items: VecDeque::new(),
            bytes: 0,
            max_bytes,
            base: 0,
            next: 0,
            ended: false,
        }
    }

    /// One ITEM from the client: kept for a replay.
    ///
    /// Errors: `PROTOCOL` for an item after END or a seq other than the next one.
    pub fn on_item(&mut self, seq: u64, payload: Bytes) -> Result<(), CallError> {
        if self.ended {
            return Err(CallError::protocol(format!(
                "client ITEM seq {seq} after END"
            )));
        }
        if seq != self.next {
            return Err(CallError::protocol(format!(
                "client ITEM seq {seq} where seq {} was expected",
                self.next
            )));
        }
        self.next = seq + 1;
        if seq < self.base {
            return Ok(()); // a checkpoint covers it already (one the owner sent first)
        }
        self.bytes += payload.len();
        self.items.push_back((seq, payload));
        while self.bytes > self.max_bytes {
            let (seq, payload) = self.items.pop_front().expect("bytes > 0 means an item");
            self.bytes -= payload.len();
            self.base = self.base.max(seq + 1);
        }
        Ok(())
    }

    /// The client's END (the half-close).
    ///
    /// Errors: `PROTOCOL` for a second END or a count other than the items sent.
    pub fn on_end(&mut self, count: u64) -> Result<(), CallError> {
        let sent = self.next;
        if self.ended || count != sent {
            return Err(CallError::protocol(format!(
                "client END says {count} items, but {sent} were sent"
            )));
        }
        self.ended = true;
        Ok(())
    }

    /// The owner checkpointed after reading `read` client items: forgets the items below it.
    pub fn on_checkpoint(&mut self, read: u64) {
        while self.items.front().is_some_and(|(seq, _)| *seq < read) {
            let (_, payload) = self.items.pop_front().expect("checked");
            self.bytes -= payload.len();
        }
        self.base = self.base.max(read);
    }

    /// The frames that give a new owner whose handler resumes at client item `read` (the ATTACH
    /// checkpoint's) every client item from there: the kept items from `read` on, then END if
    /// the client sent it.
    ///
    /// Errors: `UNAVAILABLE` when items at or above `read` were dropped over the bound (the
    /// handler consumed more than [`MAX_REPLAY_BYTES`] of client items without a checkpoint).
    pub fn replay(&self, read: u64) -> Result<Vec<Frame>, CallError> {
        if read < self.base {
            return Err(CallError::new(
                ErrorCode::Unavailable,
                format!(
                    "the call cannot move to another worker: its handler resumes at client item \
                     {read}, but the director keeps only the last {} bytes of client items and \
                     has items from {} on (checkpoint more often)",
                    self.max_bytes, self.base
                ),
            ));
        }
        let items = self.items.iter().filter(|(seq, _)| *seq >= read).cloned();
        Ok(items_then_end(items, self.ended.then_some(self.next)))
    }

    /// Payload bytes kept.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// True once the client's END came.
    pub fn is_ended(&self) -> bool {
        self.ended
    }
}

/// ITEM frames for `items` (seq and payload), then END with `end` items if given: what a
/// director replays to an owner and what a resumed client sends again.
pub(crate) fn items_then_end(
    items: impl Iterator<Item = (u64, Bytes)>,
    end: Option<u64>,
) -> Vec<Frame> {
    let mut frames: Vec<Frame> = items
        .map(|(seq, payload)| Frame::Item { seq, payload })
        .collect();
    frames.extend(end.map(|items| Frame::End { items }));
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(n: usize) -> Bytes {
        Bytes::from(vec![7u8; n])
    }

    #[test]
    fn keeps_what_no_checkpoint_covers_and_replays_it() {
        let mut r = ClientReplay::new(100);
        for seq in 0..4 {
            r.on_item(seq, b(10)).unwrap();
        }
        r.on_checkpoint(2);
        let frames = r.replay(2).unwrap();
        assert_eq!(frames.len(), 2);
        assert!(matches!(frames[0], Frame::Item { seq: 2, .. }));
        r.on_end(4).unwrap();
        assert_eq!(r.replay(3).unwrap().last(), Some(&Frame::End { items: 4 }));
        assert!(r.replay(1).is_err(), "below what a checkpoint covered");
    }

    #[test]
    fn past_the_bound_the_call_cannot_move_until_a_checkpoint_covers_the_drop() {
        let mut r = ClientReplay::new(25);
        for seq in 0..4 {
            r.on_item(seq, b(10)).unwrap();
        }
        assert_eq!(r.bytes(), 20);
        assert_eq!(r.replay(0).unwrap_err().code, ErrorCode::Unavailable);
        r.on_checkpoint(2);
        assert_eq!(r.replay(2).unwrap().len(), 2);
    }

    #[test]
    fn checks_order_and_the_count() {
        let mut r = ClientReplay::new(100);
        assert!(r.on_item(1, b(1)).is_err());
        r.on_item(0, b(1)).unwrap();
        assert!(r.on_end(2).is_err());
    }
}

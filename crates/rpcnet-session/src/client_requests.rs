//! The client's own requests of a client-streaming or bidi call (PROTOCOL.md sections 3.4 and
//! 15.4), sans-IO: their seqs, the END, and in a resumable session the requests to send again
//! after a resume.
//!
//! A resumable session outlives its director, but the director holds the client's requests
//! that the handler's checkpoints do not cover (PROTOCOL.md section 13.6), and whichever owner
//! continues the call after a resume may restart its handler from any of its checkpoints, or
//! from the start. So the client keeps every request of the call and, after a resume, sends
//! them all again (with their seqs) right after the call's CALL and REQUEST, then the END if it
//! was sent; the owner drops those its handler read before. What it keeps is bounded
//! ([`MAX_KEPT_BYTES`]): past it the oldest are dropped, and the call can no longer be resumed
//! (a resume fails it with `UNAVAILABLE`) rather than give a handler a gap.

use std::collections::VecDeque;

use bytes::Bytes;
use rpcnet_protocol::{ErrorCode, Frame};

use crate::CallError;

/// Payload bytes of requests a resumable client keeps per call to send again after a resume:
/// 8 MiB, as the director keeps ([`crate::MAX_REPLAY_BYTES`]).
pub const MAX_KEPT_BYTES: usize = crate::MAX_REPLAY_BYTES;

/// One call's requests at the client. See the module docs.
#[derive(Debug, Clone)]
pub struct ClientRequests {
    next: u64,
    ended: bool,
    /// `Some` in a resumable session: the requests sent, from the first.
    kept: Option<VecDeque<Bytes>>,
    kept_bytes: usize,
    max_bytes: usize,
    /// Requests were dropped over the bound: the call cannot be resumed.
    overflowed: bool,
}

impl ClientRequests {
    /// The requests of a call; `resumable` keeps them for a resume, at most `max_bytes`.
    pub fn new(resumable: bool, max_bytes: usize) -> Self {
        ClientRequests {
            next: 0,
            ended: false,
            kept: resumable.then(VecDeque::new),
            kept_bytes: 0,
            max_bytes,
            overflowed: false,
        }
    }

    /// The ITEM frame of the next request (kept in a resumable session).
    ///
    /// Errors: `FAILED_PRECONDITION` after [`ClientRequests::end`].
    pub fn item(&mut self, payload: Bytes) -> Result<Frame, CallError> {
        if self.ended {
            return Err(CallError::new(
                ErrorCode::FailedPrecondition,
                "the call's requests were closed already",
            ));
        }
        let seq = self.next;
        self.next += 1;
        if let Some(kept) = self.kept.as_mut().filter(|_| !self.overflowed) {
            self.kept_bytes += payload.len();
            kept.push_back(payload.clone());
            if self.kept_bytes > self.max_bytes {
                kept.clear();
                self.kept_bytes = 0;
                self.overflowed = true;
            }
        }
        Ok(Frame::Item { seq, payload })
    }

    /// The END frame (the half-close), once; `None` when it was made already.
    pub fn end(&mut self) -> Option<Frame> {
        if self.ended {
            return None;
        }
        self.ended = true;
        Some(Frame::End { items: self.next })
    }

    /// The frames to send again after the call's CALL and REQUEST on a resumed session: every
    /// request in order, then END if it was sent.
    ///
    /// Errors: `UNAVAILABLE` when the requests went over [`MAX_KEPT_BYTES`] (they were not all
    /// kept), or for a call that is not resumable.
    pub fn resend(&self) -> Result<Vec<Frame>, CallError> {
        let Some(kept) = self.kept.as_ref() else {
            return Err(CallError::new(
                ErrorCode::Unavailable,
                "the call's requests were not kept: its session is not resumable",
            ));
        };
        if self.overflowed {
            return Err(CallError::new(
                ErrorCode::Unavailable,
                format!(
                    "the call cannot be resumed: its requests came to more than {} bytes, which \
                     a client keeps to send again after a resume",
                    self.max_bytes
                ),
            ));
        }
        let items = (0u64..).zip(kept.iter().cloned());
        Ok(crate::client_replay::items_then_end(
            items,
            self.ended.then_some(self.next),
        ))
    }

    /// Requests made so far (the next one's seq).
    pub fn sent(&self) -> u64 {
        self.next
    }

    /// True once END was made.
    pub fn is_ended(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(n: usize) -> Bytes {
        Bytes::from(vec![1u8; n])
    }

    #[test]
    fn keeps_every_request_and_sends_them_again() {
        let mut r = ClientRequests::new(true, 100);
        for _ in 0..3 {
            r.item(b(10)).unwrap();
        }
        let again = r.resend().unwrap();
        assert!(matches!(
            again.as_slice(),
            [
                Frame::Item { seq: 0, .. },
                Frame::Item { seq: 1, .. },
                Frame::Item { seq: 2, .. }
            ]
        ));
        assert_eq!(r.end(), Some(Frame::End { items: 3 }));
        assert_eq!(r.end(), None);
        assert_eq!(r.resend().unwrap().last(), Some(&Frame::End { items: 3 }));
        assert!(r.item(b(1)).is_err(), "after END");
    }

    #[test]
    fn over_the_bound_the_call_cannot_be_resumed() {
        let mut r = ClientRequests::new(true, 25);
        for _ in 0..3 {
            r.item(b(10)).unwrap();
        }
        assert_eq!(r.resend().unwrap_err().code, ErrorCode::Unavailable);
        assert!(
            matches!(r.item(b(1)), Ok(Frame::Item { seq: 3, .. })),
            "sending goes on"
        );
        let mut plain = ClientRequests::new(false, 25);
        plain.item(b(10)).unwrap();
        assert!(plain.resend().is_err());
    }
}

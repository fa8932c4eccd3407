//! The worker side of one streaming call, sans-IO: where the handler (re)starts, which seq each
//! produced item gets, which items the client already has, and what a freeze captures.
//!
//! The runtime's writer task takes what the handler produced from its bounded queue (which is
//! what applies backpressure) and passes each entry through [`ServerCall::on_produced`], writing
//! the frames it returns. A freeze (RFC-001 State Capture) happens between two frames: the writer
//! hands over the frames it had not started and the entries still queued, and
//! [`ServerCall::freeze`] returns the SUSPENDED frame and the call's [`CallSnapshot`].

use bytes::Bytes;
use rpcnet_protocol::migration::CallSnapshot;
use rpcnet_protocol::{Attach, Checkpoint, Frame, Metadata, Request};

/// One thing a streaming handler produced, in production order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Produced {
    /// An item; it gets the next seq.
    Item(Bytes),
    /// `ctx.checkpoint(state)`: the handler's state after the items produced before it and
    /// after consuming `read` client items (0 for a call without them).
    Checkpoint {
        /// The handler's state.
        state: Bytes,
        /// Client items the handler had consumed (PROTOCOL.md section 13.6).
        read: u64,
    },
    /// The response headers (PROTOCOL.md section 5.6), before the handler's first item. A freeze
    /// keeps them in the snapshot; a director forwards only the first HEADERS of a call, and only
    /// before any item, so a resumed handler that sets them again does not repeat them.
    Headers(Metadata),
}

impl Produced {
    /// Payload size in bytes (for the queue's byte window).
    pub fn len(&self) -> usize {
        match self {
            Produced::Item(b) | Produced::Checkpoint { state: b, .. } => b.len(),
            Produced::Headers(m) => m.encoded_len(),
        }
    }

    /// True for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One streaming call on a server or worker. See the module docs.
#[derive(Debug, Clone)]
pub struct ServerCall {
    call_id: Option<u64>,
    method: String,
    request: Bytes,
    deadline_ms: u32,
    /// Seq of the next item the handler produces.
    seq: u64,
    /// Items below this seq are not sent: the client has them, or the restored pending items
    /// cover them.
    skip_below: u64,
    /// The handler's latest checkpoint.
    latest: Option<Checkpoint>,
    /// Where the handler starts (`ctx.resume`).
    resume: Option<Checkpoint>,
    link: bool,
    /// Resumable session (ATTACH flag RESUMABLE): items sent but not acknowledged, seq
    /// ascending and contiguous, kept until an ACK covers them.
    retained: Option<Retained>,
    /// The response headers the handler set (or the restored call carried); a freeze keeps
    /// them in the snapshot (PROTOCOL.md section 5.6).
    headers: Metadata,
    /// An item was numbered or HEADERS went out on this attach: later HEADERS are dropped.
    started: bool,
}

/// The items of a resumable call that the client has not acknowledged (PROTOCOL.md section
/// 15.4): a director that dies may have lost them on their way to the client, so a resume
/// re-sends them from here.
#[derive(Debug, Clone, Default)]
struct Retained {
    items: std::collections::VecDeque<(u64, Bytes)>,
    bytes: usize,
    /// Every item below this seq was acknowledged.
    acked: u64,
}

impl ServerCall {
    /// A call on a plain server (no cluster link): starts at item 0, sends every item, keeps no
    /// checkpoint frames.
    pub fn plain(request: &Request) -> Self {
        ServerCall {
            call_id: None,
            method: request.method.clone(),
            request: request.payload.clone(),
            deadline_ms: request.deadline_ms,
            seq: 0,
            skip_below: 0,
            latest: None,
            resume: None,
            link: false,
            retained: None,
            headers: Metadata::new(),
            started: false,
        }
    }

    /// A call the director attached on a cluster link, with the state restored from a snapshot
    /// (or kept from a capture) if this worker holds one. Returns the call and the frames to send
    /// first: the restored response headers, if any, then the restored pending items the client
    /// does not have yet (a director forwards the headers only to a client that has none).
    ///
    /// The handler resumes at the later of the ATTACH checkpoint and the restored one; with
    /// neither, a call the client has items of (or a restored call) resumes at seq 0 with empty
    /// state, so `ctx.resume` tells the handler it is a resumed call (README "Resumable
    /// handlers"). A restored state that starts above the client's position (the source sent
    /// items the client never got: they were still in the director's buffers when the source
    /// was lost) cannot serve the call and is set aside: the handler resumes at the ATTACH
    /// checkpoint, which is at or below the client's position, and produces those items again
    /// (PROTOCOL.md section 13.4).
    pub fn attached(
        attach: &Attach,
        request: &Request,
        restored: Option<CallSnapshot>,
    ) -> (Self, Vec<Frame>) {
        let client_next = attach.next_seq;
        let mut checkpoint = attach.checkpoint.clone();
        let mut skip_below = client_next;
        let mut first = Vec::new();
        let restored = restored.filter(|r| covers(r, client_next));
        let restored_any = restored.is_some();
        let mut headers = Metadata::new();
        if let Some(r) = restored {
            checkpoint = later(checkpoint, r.checkpoint);
            if !r.headers.is_empty() {
                first.push(Frame::Headers {
                    metadata: r.headers.clone(),
                });
            }
            headers = r.headers;
            for (seq, payload) in r.pending {
                if seq >= client_next {
                    first.push(Frame::Item { seq, payload });
                }
                skip_below = skip_below.max(seq + 1);
            }
        }
        if checkpoint.is_none() && (client_next > 0 || restored_any) {
            checkpoint = Some(Checkpoint::default());
        }
        // A restored checkpoint the director does not have yet goes to it first thing (after the
        // pending items, so it is in order with them): a director that resumed the session has
        // no checkpoint of the call, and without this one it could only restart the handler
        // from the start if this worker failed too (PROTOCOL.md section 13.6).
        if checkpoint.is_some() && checkpoint != attach.checkpoint && checkpoint_useful(&checkpoint)
        {
            first.push(Frame::Checkpoint(checkpoint.clone().expect("checked")));
        }
        let mut call = ServerCall {
            call_id: Some(attach.call_id),
            method: request.method.clone(),
            request: request.payload.clone(),
            deadline_ms: request.deadline_ms,
            seq: checkpoint.as_ref().map_or(0, |c| c.seq),
            skip_below,
            latest: checkpoint.clone(),
            resume: checkpoint,
            link: true,
            retained: attach.resumable.then(|| Retained {
                acked: client_next,
                ..Retained::default()
            }),
            started: first.iter().any(|f| !matches!(f, Frame::Checkpoint(_))),
            headers,
        };
        for f in &first {
            call.retain(f);
        }
        (call, first)
    }

    /// The client acknowledged every item below `next_seq` (an ACK frame): forgets them.
    /// Ignored on a call that is not resumable.
    pub fn on_ack(&mut self, next_seq: u64) {
        let Some(r) = self.retained.as_mut() else {
            return;
        };
        r.acked = r.acked.max(next_seq);
        while r.items.front().is_some_and(|(seq, _)| *seq < r.acked) {
            let (_, payload) = r.items.pop_front().expect("checked non-empty");
            r.bytes -= payload.len();
        }
    }

    /// Items sent and not acknowledged yet, and their payload bytes: `(0, 0)` on a call that
    /// is not resumable. The writer stops taking items while these are at its bound (the
    /// client's ACKs are what backpressure waits for).
    pub fn unacked(&self) -> (usize, usize) {
        self.retained
            .as_ref()
            .map_or((0, 0), |r| (r.items.len(), r.bytes))
    }

    fn retain(&mut self, frame: &Frame) {
        if let (Some(r), Frame::Item { seq, payload }) = (self.retained.as_mut(), frame) {
            if *seq >= r.acked {
                r.bytes += payload.len();
                r.items.push_back((*seq, payload.clone()));
            }
        }
    }

    /// Where the handler starts: `None` for a fresh call, else its checkpoint (`ctx.resume`):
    /// it produces from item `seq` and reads the client's items from `read`.
    pub fn resume(&self) -> Option<&Checkpoint> {
        self.resume.as_ref()
    }

    /// The first client item the handler reads (a client-streaming or bidi call): the resume
    /// checkpoint's `read`, 0 for a fresh call. Items below it are skipped ([`crate::ClientItems`]).
    pub fn read_from(&self) -> u64 {
        self.resume.as_ref().map_or(0, |c| c.read)
    }

    /// The seq the handler's next item gets.
    pub fn next_seq(&self) -> u64 {
        self.seq
    }

    /// Numbers one produced entry and returns the frame to send, if any: an ITEM (none for an
    /// item the client already has), on a cluster link a CHECKPOINT, or HEADERS (none once an
    /// item or HEADERS went out: PROTOCOL.md section 5.6).
    pub fn on_produced(&mut self, produced: Produced) -> Option<Frame> {
        match produced {
            Produced::Item(payload) => {
                self.started = true;
                let seq = self.seq;
                self.seq += 1;
                let frame = (seq >= self.skip_below).then_some(Frame::Item { seq, payload })?;
                self.retain(&frame);
                Some(frame)
            }
            Produced::Checkpoint { state, read } => {
                let checkpoint = Checkpoint {
                    seq: self.seq,
                    read,
                    state,
                };
                self.latest = Some(checkpoint.clone());
                self.link.then_some(Frame::Checkpoint(checkpoint))
            }
            // PROTOCOL.md 5.6: HEADERS only as the call's first frame; later ones are dropped.
            Produced::Headers(_) if self.started => None,
            Produced::Headers(metadata) => {
                self.started = true;
                self.headers = metadata.clone();
                Some(Frame::Headers { metadata })
            }
        }
    }

    /// The END frame once the handler finished: its count is the client's, including items it
    /// got from restored pending state.
    pub fn end(&self) -> Frame {
        Frame::End {
            items: self.seq.max(self.skip_below),
        }
    }

    /// State Capture at an item boundary: `unsent` are the ITEM frames the writer had numbered
    /// but not started, `queued` what the handler produced that the writer had not taken. Returns
    /// the SUSPENDED frame (its `next_seq` is the first seq not sent) and the call's snapshot.
    /// On a resumable call the snapshot's pending items start at the first one not acknowledged,
    /// since items sent may not have reached the client.
    ///
    /// # Panics
    ///
    /// On a call that is not attached on a cluster link (plain servers do not migrate).
    pub fn freeze(&mut self, unsent: Vec<Frame>, queued: Vec<Produced>) -> (Frame, CallSnapshot) {
        let mut unsent: Vec<(u64, Bytes)> = unsent
            .into_iter()
            .filter_map(|f| match f {
                Frame::Item { seq, payload } => Some((seq, payload)),
                _ => None,
            })
            .collect();
        // Everything below this was sent: the SUSPENDED frame's next_seq.
        let sent_below = unsent
            .first()
            .map_or(self.seq.max(self.skip_below), |p| p.0);
        for p in queued {
            if let Some(Frame::Item { seq, payload }) = self.on_produced(p) {
                unsent.push((seq, payload));
            }
        }
        // A resumable call retained every item it numbered (sent or not) since the last ACK.
        let pending = match self.retained.as_ref() {
            Some(r) => r.items.iter().cloned().collect(),
            None => unsent,
        };
        let next_seq = pending
            .first()
            .map_or(self.seq.max(self.skip_below), |p| p.0);
        let snapshot = CallSnapshot {
            call_id: self.call_id.expect("only attached calls freeze"),
            method: self.method.clone(),
            request: self.request.clone(),
            streaming: true,
            deadline_ms: self.deadline_ms,
            next_seq,
            pending,
            checkpoint: self.latest.clone(),
            headers: self.headers.clone(),
        };
        (
            Frame::Suspended {
                next_seq: sent_below,
            },
            snapshot,
        )
    }
}

/// Whether a restored call can give the client every item from `client_next` on. With pending
/// items, the handler's items up to the last of them are skipped, so the pending items must
/// start at or below the client's position (they are contiguous from the snapshot's
/// `next_seq`); without, the handler produces everything from its checkpoint (seq 0 without
/// one), which must be at or below the client's position.
fn covers(r: &CallSnapshot, client_next: u64) -> bool {
    if r.pending.is_empty() {
        r.checkpoint.as_ref().map_or(0, |c| c.seq) <= client_next
    } else {
        r.next_seq <= client_next
    }
}

/// The later of two checkpoints (by seq, then read).
fn later(a: Option<Checkpoint>, b: Option<Checkpoint>) -> Option<Checkpoint> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if (y.seq, y.read) > (x.seq, x.read) {
            y
        } else {
            x
        }),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Whether a checkpoint tells a director more than "from the start".
fn checkpoint_useful(c: &Option<Checkpoint>) -> bool {
    c.as_ref()
        .is_some_and(|c| c.seq > 0 || c.read > 0 || !c.state.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(seq: u64, state: &'static [u8]) -> Checkpoint {
        Checkpoint {
            seq,
            read: 0,
            state: Bytes::from_static(state),
        }
    }

    fn request() -> Request {
        Request {
            method: "m".into(),
            deadline_ms: 0,
            streaming: true,
            payload: Bytes::new(),
            ..Request::default()
        }
    }

    fn attach(next_seq: u64, checkpoint: Option<u64>) -> Attach {
        Attach {
            session_id: 1,
            call_id: 7,
            next_seq,
            route_epoch: 1,
            connection_id: "c".into(),
            checkpoint: checkpoint.map(|seq| cp(seq, b"s")),
            resumable: false,
        }
    }

    fn item(n: u8) -> Produced {
        Produced::Item(Bytes::from(vec![n]))
    }

    #[test]
    fn resumes_at_checkpoint_and_skips_what_the_client_has() {
        let (mut c, first) = ServerCall::attached(&attach(5, Some(3)), &request(), None);
        assert!(first.is_empty());
        assert_eq!(c.resume().unwrap().seq, 3);
        assert_eq!(c.on_produced(item(3)), None);
        assert_eq!(c.on_produced(item(4)), None);
        assert!(matches!(
            c.on_produced(item(5)),
            Some(Frame::Item { seq: 5, .. })
        ));
        assert_eq!(c.end(), Frame::End { items: 6 });
    }

    #[test]
    fn a_restored_state_ahead_of_the_client_is_set_aside_for_the_attach_checkpoint() {
        // The source sent items 15..18 and suspended at 19 (its handler had finished), but the
        // director lost them with the source: the client is at 15.
        let restored = CallSnapshot {
            call_id: 7,
            streaming: true,
            next_seq: 19,
            checkpoint: Some(cp(19, b"done")),
            ..CallSnapshot::default()
        };
        let (mut c, first) =
            ServerCall::attached(&attach(15, Some(15)), &request(), Some(restored));
        assert!(first.is_empty());
        assert_eq!(c.resume().unwrap().seq, 15, "resumes where the client is");
        for n in 15..19u8 {
            assert!(
                matches!(c.on_produced(item(n)), Some(Frame::Item { seq, .. }) if seq == u64::from(n))
            );
        }
        assert_eq!(c.end(), Frame::End { items: 19 });
        // Pending items that start above the client's position are set aside too: the
        // handler's items below them would be skipped.
        let pending_ahead = CallSnapshot {
            call_id: 7,
            streaming: true,
            next_seq: 19,
            pending: vec![(19, Bytes::from_static(b"p"))],
            checkpoint: Some(cp(20, b"s")),
            ..CallSnapshot::default()
        };
        let (mut c, first) = ServerCall::attached(
            &attach(17, Some(15)),
            &request(),
            Some(pending_ahead.clone()),
        );
        assert!(first.is_empty());
        assert_eq!(c.resume().unwrap().seq, 15);
        assert_eq!(c.on_produced(item(15)), None, "the client has 15");
        assert_eq!(c.on_produced(item(16)), None);
        assert!(matches!(
            c.on_produced(item(17)),
            Some(Frame::Item { seq: 17, .. })
        ));
        // A restored state that covers the client's position is used: its pending items first.
        let (c, first) =
            ServerCall::attached(&attach(19, Some(15)), &request(), Some(pending_ahead));
        assert_eq!(c.resume().unwrap().seq, 20);
        // Then the restored checkpoint, which the director did not have (PROTOCOL.md 13.6).
        assert!(matches!(
            first.as_slice(),
            [
                Frame::Item { seq: 19, .. },
                Frame::Checkpoint(Checkpoint { seq: 20, .. })
            ]
        ));
    }

    #[test]
    fn freeze_then_restore_loses_and_repeats_nothing() {
        let (mut c, _) = ServerCall::attached(&attach(0, None), &request(), None);
        c.on_produced(item(0));
        c.on_produced(Produced::Checkpoint {
            state: Bytes::from_static(b"after1"),
            read: 0,
        });
        let unsent = vec![c.on_produced(item(1)).unwrap()];
        let (suspended, snap) = c.freeze(unsent, vec![item(2)]);
        assert_eq!(suspended, Frame::Suspended { next_seq: 1 });
        assert_eq!(snap.pending.iter().map(|p| p.0).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(snap.checkpoint.as_ref().unwrap().seq, 1);
        // The target: the relay re-attaches at next_seq 1 with checkpoint 1.
        let (mut t, first) = ServerCall::attached(&attach(1, Some(1)), &request(), Some(snap));
        assert_eq!(first.len(), 2);
        assert_eq!(t.on_produced(item(1)), None, "covered by the pending items");
        assert_eq!(t.on_produced(item(2)), None);
        assert!(matches!(
            t.on_produced(item(3)),
            Some(Frame::Item { seq: 3, .. })
        ));
    }

    #[test]
    fn a_call_without_checkpoints_restarts_at_zero() {
        let (c, _) = ServerCall::attached(&attach(4, None), &request(), None);
        assert_eq!(c.resume().unwrap().seq, 0);
        let plain = ServerCall::plain(&request());
        assert!(plain.resume().is_none());
    }

    #[test]
    fn a_resumable_call_keeps_what_the_client_has_not_acknowledged() {
        let mut a = attach(0, None);
        a.resumable = true;
        let (mut c, _) = ServerCall::attached(&a, &request(), None);
        for n in 0..4 {
            assert!(c.on_produced(item(n)).is_some());
        }
        assert_eq!(c.unacked(), (4, 4));
        c.on_ack(2);
        assert_eq!(c.unacked(), (2, 2));
        c.on_ack(1); // an older ACK changes nothing
        assert_eq!(c.unacked(), (2, 2));
        // Items 2 and 3 were sent; 4 is queued. A director dies: the snapshot starts at 2.
        let (suspended, snap) = c.freeze(vec![], vec![item(4)]);
        assert_eq!(suspended, Frame::Suspended { next_seq: 4 });
        assert_eq!(snap.next_seq, 2);
        assert_eq!(
            snap.pending.iter().map(|p| p.0).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        // The client resumes having received item 2 only: 3 and 4 come first, then the handler.
        let mut r = attach(3, None);
        r.resumable = true;
        let (mut t, first) = ServerCall::attached(&r, &request(), Some(snap));
        let seqs: Vec<u64> = first
            .iter()
            .map(|f| match f {
                Frame::Item { seq, .. } => *seq,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(seqs, [3, 4]);
        assert_eq!(t.unacked(), (2, 2));
        // No checkpoint: the handler starts over at 0; 0..=4 are covered already.
        for n in 0..5 {
            assert_eq!(t.on_produced(item(n)), None, "item {n}");
        }
        assert!(matches!(
            t.on_produced(item(5)),
            Some(Frame::Item { seq: 5, .. })
        ));
    }

    #[test]
    fn a_call_that_is_not_resumable_retains_nothing() {
        let (mut c, _) = ServerCall::attached(&attach(0, None), &request(), None);
        c.on_produced(item(0));
        assert_eq!(c.unacked(), (0, 0));
        let (_, snap) = c.freeze(vec![], vec![]);
        assert!(snap.pending.is_empty());
    }
}

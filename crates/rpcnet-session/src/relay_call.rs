//! The director side of one client call (DESIGN.md: relayed in Rust, never through JS), sans-IO.
//!
//! A relayed call outlives any one owner. The machine keeps `expected`, the next item seq the
//! client needs, and the handler's latest checkpoint; it builds the ATTACH + REQUEST that attach
//! the call to an owner (with the deadline that is left, so a migrated call does not get a fresh
//! one), decides for every frame the owner sends whether the client gets it, and tells the driver
//! when to wait for another route: after SUSPENDED (State Capture), or when the owner fails.
//! Items below `expected` are duplicates that a resumed handler produced again and are dropped;
//! an item above it is a failure of the owner, never forwarded, so the client sees every item
//! exactly once, in order (PROTOCOL.md section 13.4).
//!
//! The client's items of a client-streaming or bidi call go the other way: the relay keeps
//! those no checkpoint covers ([`ClientReplay`]) and replays them to every new owner after the
//! ATTACH and REQUEST (PROTOCOL.md section 13.6).
//!
//! Metadata (PROTOCOL.md section 5.6) follows the same rule of "once": the client's request
//! headers go to every owner unchanged, with the session id added; the owner's response HEADERS
//! reach the client only while nothing else of the call has, and TRAILERS only together with
//! the final frame they precede.

use bytes::Bytes;
use rpcnet_protocol::metadata::{Metadata, RESERVED_PREFIX, SESSION_ID_KEY};
use rpcnet_protocol::{Attach, Checkpoint, ErrorCode, Frame, Request};

use crate::client_replay::{ClientReplay, MAX_REPLAY_BYTES};
use crate::route::Route;
use crate::CallError;

/// After an owner failed or suspended the call without the route changing (for example a
/// worker whose heartbeat lease lapsed), the relay may attach to the same route again after
/// this long, ms.
pub const RETRY_SAME_ROUTE_MS: u64 = 50;

/// What a frame from the owner means for the client, as decided by [`RelayCall::on_owner_frame`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerFrame {
    /// Forward this frame to the client (an ITEM with the next seq, or the first HEADERS).
    Forward(Frame),
    /// Nothing for the client: a duplicate item, or a checkpoint (now kept by the relay).
    Absorbed,
    /// The owner froze the call (SUSPENDED): flush what was forwarded, then wait for a route.
    Suspended,
    /// Forward these frames (the TRAILERS the owner sent just before, if any, then the terminal
    /// frame: END with the client's count, RESPONSE or ERROR) and finish the client's stream:
    /// the call is over.
    Finished(Vec<Frame>),
    /// The owner broke the rules (a seq gap, an unexpected frame): abandon its stream and wait
    /// for a route, as if it had died.
    OwnerFailed(String),
    /// The owner answered SUPERSEDED (PROTOCOL.md section 15.6): the session was resumed through
    /// another director at `generation`. The call is over here: send the client `error` (ERROR
    /// `UNAVAILABLE`), and give the session up ([`crate::Coordinator::on_superseded`]).
    Superseded {
        /// The session's generation at the owner.
        generation: u32,
        /// The ERROR frame for the client.
        error: Frame,
    },
}

/// One relayed call. See the module docs.
#[derive(Debug, Clone)]
pub struct RelayCall {
    session_id: u64,
    call_id: u64,
    connection_id: String,
    request: Request,
    started_at_ms: u64,
    expected: u64,
    checkpoint: Option<Checkpoint>,
    /// The client's items of a client-streaming or bidi call, kept for a replay.
    client_items: Option<ClientReplay>,
    /// Epoch of the route the call is attached under now.
    attached: Option<u64>,
    /// The route epoch the call last left (suspended or failed) and when, ms.
    left: Option<(u64, u64)>,
    finished: bool,
    /// A call of a resumable session (PROTOCOL.md section 15): ATTACH carries flag RESUMABLE,
    /// and the client's ACKs are forwarded to the owner.
    resumable: bool,
    /// The highest ACK forwarded to the current owner.
    acked: u64,
    /// The client's connection negotiated `rpcnet/2`: it may receive HEADERS and TRAILERS.
    client_metadata: bool,
    /// A HEADERS frame was forwarded to the client.
    headers_sent: bool,
    /// TRAILERS from the current owner, held until its final frame.
    trailers: Option<Metadata>,
}

/// Checks the client's request headers before the director relays the call (PROTOCOL.md
/// section 5.6): keys with the prefix `rpcnet-` are the director's to set.
///
/// Errors: `INVALID_ARGUMENT` naming the key.
pub fn check_client_metadata(request: &Request) -> Result<(), CallError> {
    match request.metadata.reserved_key() {
        Some(key) => Err(CallError {
            code: ErrorCode::InvalidArgument,
            message: format!(
                "metadata key {key:?} is reserved: keys starting with {RESERVED_PREFIX:?} are \
                 set by the director"
            ),
        }),
        None => Ok(()),
    }
}

impl RelayCall {
    /// A call whose REQUEST the director read at `now_ms`. The request headers every owner gets
    /// are the client's plus `rpcnet-session-id` (the session id as 16 hex digits, replacing
    /// any the client sent; [`check_client_metadata`] refuses those first).
    pub fn new(
        session_id: u64,
        call_id: u64,
        connection_id: impl Into<String>,
        mut request: Request,
        now_ms: u64,
    ) -> Self {
        request
            .metadata
            .set(SESSION_ID_KEY, format!("{session_id:016x}"))
            .expect("a hex session id is a valid metadata value");
        let client_items = request
            .client_streaming
            .then(|| ClientReplay::new(MAX_REPLAY_BYTES));
        RelayCall {
            session_id,
            call_id,
            connection_id: connection_id.into(),
            request,
            started_at_ms: now_ms,
            expected: 0,
            checkpoint: None,
            client_items,
            attached: None,
            left: None,
            finished: false,
            resumable: false,
            acked: 0,
            client_metadata: true,
            headers_sent: false,
            trailers: None,
        }
    }

    /// Makes this a call of a client connection that negotiated `rpcnet/1` (PROTOCOL.md section
    /// 2): the owner's HEADERS and TRAILERS are not forwarded to it.
    #[must_use]
    pub fn without_response_metadata(mut self) -> Self {
        self.client_metadata = false;
        self
    }

    /// The request as every owner receives it (with the headers the director added).
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Makes this a call of a resumable session whose client already has every item below
    /// `next_seq` (0 for a new call; a CALL frame's `next_seq` after a resume).
    #[must_use]
    pub fn resumable(mut self, next_seq: u64) -> Self {
        self.resumable = true;
        self.expected = next_seq;
        self.acked = next_seq;
        self
    }

    /// One of the client's items (a client-streaming or bidi call): kept for a replay, and
    /// returned for the driver to forward to the owner if the call is attached.
    ///
    /// Errors: `PROTOCOL` for a call that does not stream from the client, an item after END or
    /// a seq other than the next one (the driver fails the call with it).
    pub fn on_client_item(&mut self, seq: u64, payload: Bytes) -> Result<Option<Frame>, CallError> {
        let Some(items) = self.client_items.as_mut() else {
            return Err(CallError::protocol(
                "client ITEM on a call that does not stream from the client",
            ));
        };
        items.on_item(seq, payload.clone())?;
        Ok(self.attached.map(|_| Frame::Item { seq, payload }))
    }

    /// The client's END (its half-close): returned for the driver to forward if attached.
    ///
    /// Errors: `PROTOCOL` as for [`RelayCall::on_client_item`], or a wrong count.
    pub fn on_client_end(&mut self, items: u64) -> Result<Option<Frame>, CallError> {
        let Some(replay) = self.client_items.as_mut() else {
            return Err(CallError::protocol(
                "client END on a call that does not stream from the client",
            ));
        };
        replay.on_end(items)?;
        Ok(self.attached.map(|_| Frame::End { items }))
    }

    /// True once the client's END came (or the call does not stream from the client).
    pub fn client_done(&self) -> bool {
        self.client_items
            .as_ref()
            .is_none_or(ClientReplay::is_ended)
    }

    /// The client acknowledged every item below `next_seq` (an ACK frame): the ACK to forward
    /// to the owner, if the call is attached and this one tells it something new. An ACK beyond
    /// what was forwarded is capped at `expected` (a client cannot have more).
    pub fn on_client_ack(&mut self, next_seq: u64) -> Option<Frame> {
        let next_seq = next_seq.min(self.expected);
        if !self.resumable || self.attached.is_none() || next_seq <= self.acked {
            return None;
        }
        self.acked = next_seq;
        Some(Frame::Ack { next_seq })
    }

    /// The call's id at the director (stable across owners).
    pub fn call_id(&self) -> u64 {
        self.call_id
    }

    /// The next item seq the client needs (= items forwarded so far).
    pub fn expected(&self) -> u64 {
        self.expected
    }

    /// The handler's latest checkpoint relayed so far.
    pub fn checkpoint(&self) -> Option<&Checkpoint> {
        self.checkpoint.as_ref()
    }

    /// True once a terminal frame was forwarded or the call failed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// True while attached to an owner.
    pub fn is_attached(&self) -> bool {
        self.attached.is_some()
    }

    /// Whether the call may attach to `route` now: the route is not frozen, its owner is alive,
    /// and it is newer than the route the call last left (or the same route, once
    /// [`RETRY_SAME_ROUTE_MS`] have passed).
    pub fn can_attach(&self, route: &Route, owner_alive: bool, now_ms: u64) -> bool {
        if self.finished
            || self.attached.is_some()
            || route.frozen
            || route.superseded.is_some()
            || !owner_alive
        {
            return false;
        }
        match self.left {
            None => true,
            Some((epoch, at)) => {
                route.epoch > epoch || now_ms >= at.saturating_add(RETRY_SAME_ROUTE_MS)
            }
        }
    }

    /// When a call waiting for a route should look again even if the route does not change
    /// (the same-route retry), ms.
    pub fn retry_at(&self) -> Option<u64> {
        self.left
            .filter(|_| self.attached.is_none())
            .map(|(_, at)| at.saturating_add(RETRY_SAME_ROUTE_MS))
    }

    /// The deadline left at `now_ms`: `None` for a call without one, `Some(0)` once passed.
    pub fn remaining_deadline_ms(&self, now_ms: u64) -> Option<u32> {
        if self.request.deadline_ms == 0 {
            return None;
        }
        let elapsed = now_ms.saturating_sub(self.started_at_ms);
        let left = u64::from(self.request.deadline_ms).saturating_sub(elapsed);
        Some(u32::try_from(left).unwrap_or(u32::MAX))
    }

    /// When the call's deadline passes, ms (for the driver's timer while the call waits for a
    /// route; an attached owner enforces the deadline itself).
    pub fn deadline_at(&self) -> Option<u64> {
        (self.request.deadline_ms > 0)
            .then(|| self.started_at_ms + u64::from(self.request.deadline_ms))
    }

    /// Attaches the call to `route`'s owner: the ATTACH (client position, checkpoint, route
    /// epoch) and the REQUEST to send on a new stream, with `deadline_ms` set to what is left,
    /// then for a client-streaming or bidi call the client's items from the checkpoint's `read`
    /// on and its END if it sent it (PROTOCOL.md section 13.6).
    ///
    /// Errors: `DEADLINE_EXCEEDED` when no time is left; `UNAVAILABLE` when client items the
    /// handler must read again were dropped over [`MAX_REPLAY_BYTES`]. The call is then finished
    /// and the driver sends the error to the client.
    pub fn attach(&mut self, route: &Route, now_ms: u64) -> Result<Vec<Frame>, CallError> {
        let mut request = self.request.clone();
        if let Some(left) = self.remaining_deadline_ms(now_ms) {
            if left == 0 {
                return Err(self.expire());
            }
            request.deadline_ms = left;
        }
        let read = self.checkpoint.as_ref().map_or(0, |c| c.read);
        let replay = match self.client_items.as_ref().map(|c| c.replay(read)) {
            Some(Err(e)) => {
                self.finished = true;
                return Err(e);
            }
            Some(Ok(frames)) => frames,
            None => Vec::new(),
        };
        self.attached = Some(route.epoch);
        // A resumable call's owner keeps what the client has not acknowledged (PROTOCOL.md
        // 15.4), and the ATTACH acknowledges everything below its `next_seq`: so it says what
        // the client acknowledged, not what was forwarded (a director that dies loses items on
        // their way to the client). The owner may then send items the client has; they are
        // dropped as duplicates.
        let next_seq = if self.resumable {
            self.acked
        } else {
            self.expected
        };
        let attach = Attach {
            session_id: self.session_id,
            call_id: self.call_id,
            next_seq,
            route_epoch: route.epoch,
            connection_id: self.connection_id.clone(),
            checkpoint: self.checkpoint.clone(),
            resumable: self.resumable,
        };
        self.trailers = None;
        let mut frames = vec![Frame::Attach(attach), Frame::Request(request)];
        frames.extend(replay);
        Ok(frames)
    }

    /// The deadline passed while the call was waiting for a route: the call is finished with
    /// `DEADLINE_EXCEEDED`, returned for the driver to send to the client.
    pub fn expire(&mut self) -> CallError {
        self.finished = true;
        self.attached = None;
        CallError::deadline_exceeded(self.request.deadline_ms)
    }

    /// No route became usable in time: the call is finished with `UNAVAILABLE`.
    pub fn give_up(&mut self, why: impl Into<String>) -> CallError {
        self.finished = true;
        self.attached = None;
        CallError {
            code: ErrorCode::Unavailable,
            message: why.into(),
        }
    }

    /// The client cancelled or went away: the call is over.
    pub fn cancel(&mut self) {
        self.finished = true;
        self.attached = None;
    }

    /// Applies one frame from the current owner (see [`OwnerFrame`]).
    pub fn on_owner_frame(&mut self, frame: Frame, now_ms: u64) -> OwnerFrame {
        let Some(epoch) = self.attached else {
            return OwnerFrame::Absorbed; // a frame from an abandoned owner is never forwarded
        };
        match frame {
            Frame::Item { seq, payload } => {
                if seq < self.expected {
                    return OwnerFrame::Absorbed;
                }
                if seq > self.expected {
                    return self.owner_failed(
                        format!("owner skipped from seq {} to {seq}", self.expected),
                        now_ms,
                    );
                }
                self.expected += 1;
                OwnerFrame::Forward(Frame::Item { seq, payload })
            }
            Frame::Headers { metadata } => {
                // Once per call, and only as its first frame to the client: a resumed handler
                // that sets its headers again does not repeat them.
                if !self.client_metadata || self.headers_sent || self.expected > 0 {
                    return OwnerFrame::Absorbed;
                }
                self.headers_sent = true;
                OwnerFrame::Forward(Frame::Headers { metadata })
            }
            Frame::Trailers { metadata } => {
                self.trailers = Some(metadata);
                OwnerFrame::Absorbed
            }
            Frame::Checkpoint(c) => self.on_checkpoint(c),
            Frame::Suspended { .. } => {
                self.attached = None;
                self.trailers = None;
                self.left = Some((epoch, now_ms));
                OwnerFrame::Suspended
            }
            Frame::Superseded { generation } => OwnerFrame::Superseded {
                generation,
                error: self.superseded(generation),
            },
            Frame::End { .. } => self.finish(Frame::End {
                items: self.expected,
            }),
            f @ (Frame::Response { .. } | Frame::Error { .. }) => self.finish(f),
            other => self.owner_failed(
                format!(
                    "unexpected {} frame from the owner",
                    other.frame_type().name()
                ),
                now_ms,
            ),
        }
    }

    /// The session was resumed through another director at `generation` (an owner answered
    /// SUPERSEDED, or the route says so: [`Route::superseded`]): the call is over here. Returns
    /// the ERROR (`UNAVAILABLE`) frame for the client.
    pub fn superseded(&mut self, generation: u32) -> Frame {
        self.finished = true;
        self.attached = None;
        Frame::Error {
            code: ErrorCode::Unavailable,
            message: format!(
                "session {:016x} was resumed through another director (generation \
                 {generation}); this connection no longer carries it",
                self.session_id
            ),
        }
    }

    /// The owner died, reset the stream or ended it without a result: wait for another route.
    pub fn owner_lost(&mut self, now_ms: u64) {
        self.trailers = None;
        if let Some(epoch) = self.attached.take() {
            self.left = Some((epoch, now_ms));
        }
    }

    /// A CHECKPOINT is kept if it is not behind the one kept (a handler's checkpoints only go
    /// forward, in items produced and client items read); the client items it covers are
    /// forgotten (PROTOCOL.md section 13.6).
    fn on_checkpoint(&mut self, c: Checkpoint) -> OwnerFrame {
        if self
            .checkpoint
            .as_ref()
            .is_some_and(|k| c.seq < k.seq || c.read < k.read)
        {
            return OwnerFrame::Absorbed;
        }
        if let Some(replay) = self.client_items.as_mut() {
            replay.on_checkpoint(c.read);
        }
        self.checkpoint = Some(c);
        OwnerFrame::Absorbed
    }

    fn owner_failed(&mut self, why: String, now_ms: u64) -> OwnerFrame {
        self.owner_lost(now_ms);
        OwnerFrame::OwnerFailed(why)
    }

    fn finish(&mut self, frame: Frame) -> OwnerFrame {
        self.finished = true;
        self.attached = None;
        let trailers = self.trailers.take().filter(|_| self.client_metadata);
        let mut frames: Vec<Frame> = trailers
            .map(|metadata| Frame::Trailers { metadata })
            .into_iter()
            .collect();
        frames.push(frame);
        OwnerFrame::Finished(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(deadline_ms: u32) -> RelayCall {
        let request = Request {
            method: "m".into(),
            deadline_ms,
            streaming: true,
            payload: Bytes::new(),
            metadata: Metadata::new(),
            client_streaming: false,
        };
        RelayCall::new(1, 2, "c", request, 1_000)
    }

    fn item(seq: u64) -> Frame {
        Frame::Item {
            seq,
            payload: Bytes::new(),
        }
    }

    #[test]
    fn drops_duplicates_keeps_checkpoint_and_reattaches_where_the_client_is() {
        let mut r = call(0);
        let mut route = Route::new("a");
        r.attach(&route, 1_000).unwrap();
        for s in 0..3 {
            assert!(matches!(
                r.on_owner_frame(item(s), 1_000),
                OwnerFrame::Forward(_)
            ));
        }
        let cp = Frame::Checkpoint(Checkpoint {
            seq: 2,
            read: 0,
            state: Bytes::from_static(b"x"),
        });
        assert_eq!(r.on_owner_frame(cp, 1_000), OwnerFrame::Absorbed);
        assert_eq!(
            r.on_owner_frame(Frame::Suspended { next_seq: 3 }, 1_000),
            OwnerFrame::Suspended
        );
        route.frozen = true;
        assert!(!r.can_attach(&route, true, 5_000));
        route.advance(Some("b"));
        assert!(r.can_attach(&route, true, 1_001));
        let [Frame::Attach(a), _] = &r.attach(&route, 1_001).unwrap()[..] else {
            panic!()
        };
        assert_eq!((a.next_seq, a.route_epoch), (3, 2));
        assert_eq!(a.checkpoint.as_ref().unwrap().seq, 2);
        // The resumed handler replays item 2: dropped. Item 4 before 3: owner failure.
        assert_eq!(r.on_owner_frame(item(2), 1_001), OwnerFrame::Absorbed);
        assert!(matches!(
            r.on_owner_frame(item(4), 1_001),
            OwnerFrame::OwnerFailed(_)
        ));
    }

    #[test]
    fn the_remaining_deadline_travels() {
        let mut r = call(1_500);
        let route = Route::new("a");
        r.attach(&route, 1_000).unwrap();
        r.owner_lost(1_702);
        let [_, Frame::Request(req)] = &r.attach(&route, 1_760).unwrap()[..] else {
            panic!()
        };
        assert_eq!(req.deadline_ms, 740);
        r.owner_lost(2_400);
        let e = r.attach(&route, 2_500).unwrap_err();
        assert_eq!(e.code, ErrorCode::DeadlineExceeded);
        assert!(r.is_finished());
    }

    #[test]
    fn same_route_is_retried_only_after_a_pause() {
        let mut r = call(0);
        let route = Route::new("a");
        r.attach(&route, 0).unwrap();
        r.owner_lost(10);
        assert!(!r.can_attach(&route, true, 20));
        assert!(r.can_attach(&route, true, 10 + RETRY_SAME_ROUTE_MS));
        assert!(!r.can_attach(&route, false, 10 + RETRY_SAME_ROUTE_MS));
    }

    #[test]
    fn end_carries_the_clients_count() {
        let mut r = call(0);
        r.attach(&Route::new("a"), 0).unwrap();
        r.on_owner_frame(item(0), 0);
        assert_eq!(
            r.on_owner_frame(Frame::End { items: 1 }, 0),
            OwnerFrame::Finished(vec![Frame::End { items: 1 }])
        );
    }

    fn md(key: &str, value: &str) -> Metadata {
        let mut m = Metadata::new();
        m.append(key, value.to_owned()).unwrap();
        m
    }

    /// PROTOCOL.md 5.6: the client's headers reach every owner with the session id added; the
    /// owner's HEADERS reach the client once, first; TRAILERS only with the final frame.
    #[test]
    fn metadata_crosses_owners_once() {
        let mut req = call(0).request.clone();
        req.metadata = md("authorization", "t");
        assert!(check_client_metadata(&req).is_ok());
        let mut forged = req.clone();
        forged.metadata.append("rpcnet-session-id", "x").unwrap();
        assert_eq!(
            check_client_metadata(&forged).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        let mut r = RelayCall::new(0xab, 2, "c", req, 0);
        let mut route = Route::new("a");
        for _ in 0..2 {
            let [_, Frame::Request(sent)] = &r.attach(&route, 0).unwrap()[..] else {
                panic!()
            };
            assert_eq!(sent.metadata.get("authorization").unwrap().as_ref(), b"t");
            assert_eq!(
                sent.metadata.get("rpcnet-session-id").unwrap().as_ref(),
                b"00000000000000ab"
            );
            let headers = Frame::Headers {
                metadata: md("x", "1"),
            };
            let first = r.on_owner_frame(headers, 0);
            if r.expected() == 0 {
                assert!(matches!(first, OwnerFrame::Forward(Frame::Headers { .. })));
                r.on_owner_frame(item(0), 0);
            } else {
                assert_eq!(first, OwnerFrame::Absorbed, "headers went out already");
            }
            let trailers = Frame::Trailers {
                metadata: md("t", "1"),
            };
            assert_eq!(r.on_owner_frame(trailers, 0), OwnerFrame::Absorbed);
            r.on_owner_frame(Frame::Suspended { next_seq: 1 }, 0);
            route.advance(Some("b"));
        }
        // The trailers of an owner that suspended are dropped; the last owner's go out.
        r.attach(&route, 0).unwrap();
        let trailers = Frame::Trailers {
            metadata: md("t", "2"),
        };
        r.on_owner_frame(trailers.clone(), 0);
        assert_eq!(
            r.on_owner_frame(Frame::End { items: 1 }, 0),
            OwnerFrame::Finished(vec![trailers, Frame::End { items: 1 }])
        );
        let mut v1 = call(0).without_response_metadata();
        v1.attach(&Route::new("a"), 0).unwrap();
        let headers = Frame::Headers {
            metadata: md("x", "1"),
        };
        assert_eq!(v1.on_owner_frame(headers, 0), OwnerFrame::Absorbed);
    }

    #[test]
    fn a_resumed_call_attaches_where_the_client_is_and_forwards_new_acks() {
        let route = Route::resumed("w", 1);
        let request = || call(0).request.clone();
        let mut call = RelayCall::new(1, 7, "c", request(), 0).resumable(5);
        assert_eq!(call.on_client_ack(5), None, "not attached");
        let [Frame::Attach(a), _] = &call.attach(&route, 0).unwrap()[..] else {
            panic!("ATTACH first");
        };
        assert!(a.resumable);
        assert_eq!(a.next_seq, 5);
        assert_eq!(call.on_client_ack(5), None, "the ATTACH said so already");
        for seq in 5..8 {
            call.on_owner_frame(item(seq), 0);
        }
        assert_eq!(call.on_client_ack(7), Some(Frame::Ack { next_seq: 7 }));
        assert_eq!(call.on_client_ack(6), None, "older");
        assert_eq!(
            call.on_client_ack(99),
            Some(Frame::Ack { next_seq: 8 }),
            "capped at what was forwarded"
        );
        // Re-attached, the ATTACH says what the client acknowledged (8), not what was forwarded
        // (9): item 8 may have died on its way with a director (PROTOCOL.md 15.4).
        call.on_owner_frame(item(8), 0);
        call.owner_lost(0);
        let [Frame::Attach(again), _] = &call.attach(&Route::resumed("w", 1), 100).unwrap()[..]
        else {
            panic!("ATTACH first");
        };
        assert_eq!((again.next_seq, call.expected()), (8, 9));
        let plain = &mut RelayCall::new(1, 8, "c", request(), 0);
        plain.attach(&route, 0).unwrap();
        assert_eq!(plain.on_client_ack(1), None, "not resumable");
    }
}

//! The client's end of one call's stream, sans-IO (PROTOCOL.md sections 3, 8, 10 and 11).
//!
//! [`ClientCall`] judges one frame at a time. What a caller of the runtime's client receives
//! depends on more than frames: the checks of its REQUEST before anything is sent, the stream's
//! bytes decoded under the client's maximum frame size, the FIN, a reset or a lost connection,
//! the call's own deadline and cancellation, and pulls of items in batches. [`ClientStream`]
//! holds all of those rules, so the runtime's driver only moves bytes, timers and resets between
//! quinn and this machine:
//!
//! - items come out in seq order, at most as many as a pull asks for;
//! - the outcome (RESPONSE, END or a failure) comes out only after every item accepted before it
//!   (section 3.2: items sent before an ERROR remain delivered), and every later pull gets it
//!   again;
//! - a failure the client detected itself (a malformed or oversized frame, a broken rule of
//!   [`ClientCall`], its deadline, a cancellation) tells the driver to send STOP_SENDING and
//!   RESET_STREAM with the error's code (sections 8.1, 8.2 and 11); one the server reported
//!   (ERROR, RESET_STREAM) or a lost connection does not;
//! - after a cancellation or an expired deadline, whatever arrived and was not handed out is
//!   discarded (section 8.1), and bytes after the outcome are not read (section 3.3).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use rpcnet_protocol::metadata::DEFAULT_MAX_METADATA_SIZE;
use rpcnet_protocol::{Decoder, ErrorCode, Frame, Metadata, Request, HEADER_LEN};

use crate::{CallError, ClientCall, Delivery};

/// The message of the `CANCELLED` error a caller gets after cancelling its call.
pub const CANCELLED_MESSAGE: &str = "call cancelled by the client";

/// What the caller of a call receives next, as decided by [`ClientStream::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Items of a streaming call in seq order: at least one, at most the pull's `max_items`.
    Items(Vec<Bytes>),
    /// The response headers of a streaming call arrived, with no item ready yet (handed out
    /// once, so that the caller learns of them before the first item; read them with
    /// [`ClientStream::headers`]). Unary calls never get it.
    Headers,
    /// The result of a unary call.
    Response(Bytes),
    /// A streaming call ended (END) and every item was handed out.
    End,
    /// The call failed.
    Failed(Failure),
}

/// A failed call: the error for the caller, and whether the client must reset the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What the caller gets: code and message.
    pub error: CallError,
    /// True when the driver must send STOP_SENDING and RESET_STREAM, both with `error.code` as
    /// the QUIC application error code (PROTOCOL.md sections 7, 8 and 11): the client itself
    /// ended a call the server had not finished. False when the server reported the failure,
    /// the connection failed, or the stream was reset already.
    pub abort: bool,
}

/// The receive rules of one call at the client, from its REQUEST to its outcome. See the module
/// docs; [`ClientStream::start`] makes one.
#[derive(Debug)]
pub struct ClientStream {
    call: ClientCall,
    decoder: Decoder,
    deadline_ms: u32,
    /// Received bytes not decoded yet: an incomplete frame, or what follows the outcome.
    buf: BytesMut,
    fin: bool,
    /// Accepted items not handed out yet.
    items: VecDeque<Bytes>,
    /// The call's end once decided (never [`Received::Items`]); handed out after `items`.
    outcome: Option<Received>,
    /// Until the server ends the call or the client resets the stream: a failure handed out
    /// while this holds is one the client detected, and it owes the server a reset.
    live: bool,
    /// A call of a resumable session (PROTOCOL.md section 15.3); `None` otherwise.
    resumable: Option<Resumable>,
    /// The response headers, once received (PROTOCOL.md section 5.6).
    headers: Option<Metadata>,
    /// The response trailers, once received.
    trailers: Option<Metadata>,
    /// A streaming call: [`Received::Headers`] is handed out when headers come before items.
    streaming: bool,
    /// The headers were handed out (with [`Received::Headers`] or along with items).
    headers_told: bool,
}

/// What a call of a resumable session keeps to be re-attached on a new connection.
#[derive(Debug)]
struct Resumable {
    call_id: u64,
    request: Request,
    idempotent: bool,
    /// The highest ACK sent (or implied by a CALL frame's `next_seq`).
    acked: u64,
    /// Payload bytes of the items accepted since that ACK.
    unacked_bytes: u64,
}

impl ClientStream {
    /// Checks `request` and returns the machine for its call and the REQUEST frame to send.
    /// `max_frame_size` (bytes of frame body, PROTOCOL.md section 10) bounds both the request
    /// and every frame received.
    ///
    /// Errors: `INVALID_ARGUMENT` for a method name that is empty or longer than 65 535 bytes;
    /// `RESOURCE_EXHAUSTED` for a REQUEST whose body exceeds `max_frame_size` or whose request
    /// headers exceed the 8 KiB metadata limit (sections 5.6 and 10: a client checks sizes
    /// before sending).
    pub fn start(request: Request, max_frame_size: u32) -> Result<(Self, Frame), CallError> {
        check_method(&request.method)?;
        let (streaming, deadline_ms) = (request.streaming, request.deadline_ms);
        let frame = Frame::Request(request);
        check_request_size(&frame, max_frame_size)?;
        let stream = ClientStream {
            call: ClientCall::new(streaming),
            decoder: Decoder::new(max_frame_size),
            deadline_ms,
            buf: BytesMut::new(),
            fin: false,
            items: VecDeque::new(),
            outcome: None,
            live: true,
            resumable: None,
            headers: None,
            trailers: None,
            streaming,
            headers_told: false,
        };
        Ok((stream, frame))
    }

    /// [`ClientStream::start`] for a call of a resumable session (PROTOCOL.md section 15.3):
    /// returns the machine and the CALL and REQUEST frames to send, after which the client keeps
    /// its send side open for ACKs. `call_id` is the client's, unique in the session;
    /// `idempotent` allows re-sending a unary call that was in flight when the connection was
    /// lost.
    ///
    /// Errors: those of [`ClientStream::start`].
    pub fn start_resumable(
        request: Request,
        max_frame_size: u32,
        call_id: u64,
        idempotent: bool,
    ) -> Result<(Self, [Frame; 2]), CallError> {
        let (mut stream, frame) = Self::start(request.clone(), max_frame_size)?;
        stream.resumable = Some(Resumable {
            call_id,
            request,
            idempotent,
            acked: 0,
            unacked_bytes: 0,
        });
        Ok((
            stream,
            [
                Frame::Call {
                    call_id,
                    next_seq: 0,
                },
                frame,
            ],
        ))
    }

    /// The ACK to send now, if the client has accepted at least `every_items` items (one at
    /// least) or `every_bytes` payload bytes since its last one; `None` for a call that is not
    /// resumable or has its outcome. The owner keeps what is not acknowledged and pauses the
    /// handler at its own bound, so both thresholds must stay well below that bound.
    pub fn ack_due(&mut self, every_items: u64, every_bytes: u64) -> Option<Frame> {
        let next_seq = self.call.next_seq();
        let r = self.resumable.as_mut().filter(|_| self.outcome.is_none())?;
        let items_due = next_seq >= r.acked.saturating_add(every_items.max(1));
        let bytes_due = next_seq > r.acked && r.unacked_bytes >= every_bytes;
        if !(items_due || bytes_due) {
            return None;
        }
        r.acked = next_seq;
        r.unacked_bytes = 0;
        Some(Frame::Ack { next_seq })
    }

    /// The connection was lost (or the director told the client to move) while this call was
    /// open: the frames that re-attach it on the session's new connection, CALL with the first
    /// seq the client lacks and the REQUEST with `deadline_left_ms` (0 = none) as its deadline.
    /// Bytes of a frame that was cut off are discarded; the seq order continues.
    ///
    /// Errors: `UNAVAILABLE` for a call that is not resumable, or a unary call in flight that was
    /// not marked idempotent (its request may have run: it is not sent again); the call then
    /// fails with it.
    pub fn reattach(&mut self, deadline_left_ms: u32) -> Result<[Frame; 2], CallError> {
        let unresumable = match &self.resumable {
            None => Some("the call's session is not resumable"),
            Some(r) if !r.request.streaming && !r.idempotent => Some(
                "the connection to the director was lost while this call (one response: unary \
                 or client-streaming) was in flight, and it is not marked idempotent, so it was \
                 not sent again",
            ),
            Some(_) => None,
        };
        if let Some(why) = unresumable {
            let e = CallError::new(ErrorCode::Unavailable, why);
            self.on_read_error(e.clone());
            return Err(e);
        }
        let next_seq = self.call.next_seq();
        let r = self.resumable.as_mut().expect("checked above");
        r.acked = next_seq;
        r.unacked_bytes = 0;
        let mut request = r.request.clone();
        request.deadline_ms = deadline_left_ms;
        self.buf.clear();
        self.fin = false;
        // A fresh decoder with the same settings (maximum sizes, protocol version).
        self.decoder = self.decoder.clone();
        self.call.reattach();
        self.trailers = None;
        Ok([
            Frame::Call {
                call_id: r.call_id,
                next_seq,
            },
            Frame::Request(request),
        ])
    }

    /// This call's connection negotiated `version` (PROTOCOL.md section 2): frames of a later
    /// version are refused as unknown.
    pub fn set_version(&mut self, version: rpcnet_protocol::Version) {
        self.decoder = self.decoder.clone().with_version(version);
    }

    /// The response headers, once the server sent them (before its first item or its result).
    pub fn headers(&self) -> Option<&Metadata> {
        self.headers.as_ref()
    }

    /// The response trailers, once the server sent them (just before its final frame).
    pub fn trailers(&self) -> Option<&Metadata> {
        self.trailers.as_ref()
    }

    /// True while the call has no outcome yet (a resumable session re-attaches such calls).
    pub fn is_open(&self) -> bool {
        self.outcome.is_none()
    }

    /// The call's deadline in ms, counted by the driver from when it sends the REQUEST
    /// (PROTOCOL.md section 8.2); `None` for a call without one (`deadline_ms` 0).
    pub fn deadline_ms(&self) -> Option<u32> {
        (self.deadline_ms > 0).then_some(self.deadline_ms)
    }

    /// The seq the next item must carry (= items accepted so far, handed out or not).
    pub fn next_seq(&self) -> u64 {
        self.call.next_seq()
    }

    /// True while the driver should read more before handing out a pull of `max_items`: the
    /// outcome is not decided, the stream has not finished and fewer items are ready.
    pub fn wants_data(&self, max_items: usize) -> bool {
        self.outcome.is_none() && !self.fin && self.items.len() < max_items.max(1)
    }

    /// Bytes the driver read from the stream. Every complete frame is decoded and judged at
    /// once; bytes after the outcome are ignored.
    pub fn on_data(&mut self, bytes: &[u8]) {
        if self.outcome.is_some() {
            return;
        }
        self.buf.extend_from_slice(bytes);
        self.decode_buffered();
    }

    /// The server finished its side of the stream (FIN). Decides the outcome: the terminal
    /// frame received, or a `PROTOCOL` failure for a truncated frame or a missing terminal
    /// frame (PROTOCOL.md section 11).
    pub fn on_fin(&mut self) {
        self.fin = true;
        self.decode_buffered();
        if self.outcome.is_none() {
            if let Err(e) = self.call.on_fin() {
                self.outcome = Some(failed(e));
            }
        }
    }

    /// Reading the stream failed: the server reset it (the error carries the reset's code,
    /// PROTOCOL.md section 3.3) or the connection was closed or lost (`UNAVAILABLE`). The call
    /// fails with `error` once the items before it are handed out; nothing is sent.
    pub fn on_read_error(&mut self, error: CallError) {
        if self.outcome.is_none() {
            self.live = false;
            self.outcome = Some(failed(error));
        }
    }

    /// What the caller gets now from a pull of at most `max_items` items (0 counts as 1):
    /// ready items first, then the outcome, which every later pull gets again. `None` while
    /// nothing is ready: the driver reads more (or waits for the deadline or a cancellation).
    pub fn poll(&mut self, max_items: usize) -> Option<Received> {
        if !self.items.is_empty() {
            self.headers_told = true;
            let n = max_items.clamp(1, self.items.len());
            return Some(Received::Items(self.items.drain(..n).collect()));
        }
        if self.streaming && self.headers.is_some() && !self.headers_told && self.outcome.is_none()
        {
            self.headers_told = true;
            return Some(Received::Headers);
        }
        let mut outcome = self.outcome.clone()?;
        if let Received::Failed(f) = &mut outcome {
            f.abort = std::mem::replace(&mut self.live, false);
        }
        Some(outcome)
    }

    /// The call's deadline passed before its outcome was handed out: it fails with
    /// `DEADLINE_EXCEEDED` ("deadline of N ms exceeded"), and the stream is reset with that
    /// code unless the server had ended the call (PROTOCOL.md section 8.2).
    pub fn expire(&mut self) -> Failure {
        self.end_here(CallError::deadline_exceeded(self.deadline_ms))
    }

    /// The caller cancelled the call: it fails with `CANCELLED` ([`CANCELLED_MESSAGE`]), and the
    /// stream is reset with that code unless the server had ended the call (PROTOCOL.md section
    /// 8.1). Later pulls fail the same way.
    pub fn cancel(&mut self) -> Failure {
        self.end_here(CallError::new(ErrorCode::Cancelled, CANCELLED_MESSAGE))
    }

    /// Ends the call on the client's side with `error`, discarding what was not handed out.
    fn end_here(&mut self, error: CallError) -> Failure {
        self.items.clear();
        self.buf.clear();
        self.outcome = Some(failed(error.clone()));
        Failure {
            error,
            abort: std::mem::replace(&mut self.live, false),
        }
    }

    fn decode_buffered(&mut self) {
        while self.outcome.is_none() {
            let decoded = if self.fin {
                self.decoder.decode_eof(&mut self.buf)
            } else {
                self.decoder.decode(&mut self.buf)
            };
            match decoded {
                Ok(Some(frame)) => self.on_frame(frame),
                Ok(None) => return,
                Err(e) => self.outcome = Some(failed(CallError::new(e.code(), e.to_string()))),
            }
        }
    }

    fn on_frame(&mut self, frame: Frame) {
        let outcome = match self.call.on_frame(frame) {
            Ok(Delivery::Item { payload, .. }) => {
                if let Some(r) = self.resumable.as_mut() {
                    r.unacked_bytes += payload.len() as u64;
                }
                return self.items.push_back(payload);
            }
            Ok(Delivery::Headers(m)) => return self.headers = Some(m),
            Ok(Delivery::Trailers(m)) => return self.trailers = Some(m),
            Ok(Delivery::Skipped) => return,
            Ok(Delivery::Response(payload)) => Received::Response(payload),
            Ok(Delivery::End { .. }) => Received::End,
            Ok(Delivery::Failed(e)) => failed(e),
            Err(violation) => return self.outcome = Some(failed(violation)),
        };
        self.live = false; // the server ended the call
        self.outcome = Some(outcome);
    }
}

fn failed(error: CallError) -> Received {
    Received::Failed(Failure {
        error,
        abort: false,
    })
}

fn check_method(method: &str) -> Result<(), CallError> {
    if method.is_empty() || method.len() > usize::from(u16::MAX) {
        return Err(CallError::new(
            ErrorCode::InvalidArgument,
            format!("method name must be 1..=65535 bytes, got {}", method.len()),
        ));
    }
    Ok(())
}

fn check_request_size(frame: &Frame, max_frame_size: u32) -> Result<(), CallError> {
    if let Frame::Request(r) = frame {
        let len = r.metadata.encoded_len();
        if len > DEFAULT_MAX_METADATA_SIZE as usize {
            return Err(CallError::new(
                ErrorCode::ResourceExhausted,
                format!(
                    "metadata of {len} bytes exceeds the maximum metadata size of \
                     {DEFAULT_MAX_METADATA_SIZE} bytes"
                ),
            ));
        }
    }
    if frame.encoded_len() - HEADER_LEN > max_frame_size as usize {
        return Err(CallError::new(
            ErrorCode::ResourceExhausted,
            format!(
                "request of {} bytes exceeds the maximum frame size of {max_frame_size} bytes",
                frame.encoded_len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, payload: usize, streaming: bool, deadline_ms: u32) -> Request {
        Request {
            method: method.into(),
            deadline_ms,
            streaming,
            payload: Bytes::from(vec![0; payload]),
            ..Request::default()
        }
    }

    fn start(streaming: bool, deadline_ms: u32) -> ClientStream {
        ClientStream::start(request("m", 0, streaming, deadline_ms), 1024)
            .unwrap()
            .0
    }

    fn item(seq: u64) -> Vec<u8> {
        let payload = Bytes::from(vec![seq as u8]);
        Frame::Item { seq, payload }.to_bytes().to_vec()
    }

    fn bytes(frame: Frame) -> Vec<u8> {
        frame.to_bytes().to_vec()
    }

    fn items(n: u8) -> Received {
        Received::Items((0..n).map(|i| Bytes::from(vec![i])).collect())
    }

    fn failure(r: Option<Received>) -> Failure {
        match r {
            Some(Received::Failed(f)) => f,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn items_come_in_pulls_then_the_end_again_and_again() {
        let mut s = start(true, 0);
        assert_eq!(s.poll(8), None);
        for seq in 0..3 {
            s.on_data(&item(seq));
        }
        assert!(s.wants_data(8));
        assert!(!s.wants_data(3));
        let mut end = bytes(Frame::End { items: 3 });
        end.extend_from_slice(b"ignored after the end");
        s.on_data(&end);
        assert!(!s.wants_data(8));
        assert_eq!(s.poll(2), Some(items(2)));
        assert_eq!(s.poll(0), Some(Received::Items(vec![Bytes::from(vec![2])])));
        assert_eq!(s.poll(8), Some(Received::End));
        assert_eq!(s.poll(8), Some(Received::End));
        assert!(!s.cancel().abort, "the server had ended the call");
    }

    /// PROTOCOL.md 5.6: a stream's headers are handed out before its first item (once), its
    /// trailers are kept for the end; a HEADERS after an item, or a frame after TRAILERS other
    /// than the final one, breaks the protocol; a version-1 connection knows no HEADERS.
    #[test]
    fn stream_headers_come_first_and_trailers_last() {
        let mut m = Metadata::new();
        m.append("x-a", "1").unwrap();
        let mut s = start(true, 0);
        s.on_data(&bytes(Frame::Headers {
            metadata: m.clone(),
        }));
        assert_eq!(s.poll(8), Some(Received::Headers));
        assert_eq!(s.headers(), Some(&m));
        assert_eq!(s.poll(8), None, "handed out once");
        s.on_data(&item(0));
        s.on_data(&bytes(Frame::Trailers {
            metadata: m.clone(),
        }));
        s.on_data(&bytes(Frame::End { items: 1 }));
        assert_eq!(s.poll(8), Some(items(1)));
        assert_eq!(s.poll(8), Some(Received::End));
        assert_eq!(s.trailers(), Some(&m));

        let mut late = start(true, 0);
        late.on_data(
            &[
                item(0),
                bytes(Frame::Headers {
                    metadata: m.clone(),
                }),
            ]
            .concat(),
        );
        late.poll(8);
        assert_eq!(failure(late.poll(8)).error.code, ErrorCode::Protocol);
        let mut after_trailers = start(true, 0);
        let frames = [
            bytes(Frame::Trailers {
                metadata: m.clone(),
            }),
            item(0),
        ]
        .concat();
        after_trailers.on_data(&frames);
        assert_eq!(
            failure(after_trailers.poll(8)).error.code,
            ErrorCode::Protocol
        );
        let mut v1 = start(true, 0);
        v1.set_version(rpcnet_protocol::Version::V1);
        v1.on_data(&bytes(Frame::Headers { metadata: m }));
        let e = failure(v1.poll(8)).error;
        assert!(e.message.contains("unknown frame type 0x06"), "{e}");
    }

    #[test]
    fn frames_may_arrive_split_across_reads() {
        let mut s = start(false, 0);
        let response = bytes(Frame::Response {
            payload: Bytes::from_static(b"ok"),
        });
        s.on_data(&response[..3]);
        assert_eq!(s.poll(1), None);
        s.on_data(&response[3..]);
        assert_eq!(
            s.poll(1),
            Some(Received::Response(Bytes::from_static(b"ok")))
        );
    }

    #[test]
    fn the_servers_error_follows_the_items_before_it_and_needs_no_reset() {
        let mut s = start(true, 0);
        s.on_data(&[item(0), item(1)].concat());
        s.on_data(&bytes(Frame::Error {
            code: ErrorCode::Internal,
            message: "disk gone".into(),
        }));
        assert_eq!(s.poll(8), Some(items(2)));
        let f = failure(s.poll(8));
        assert_eq!(f.error, CallError::new(ErrorCode::Internal, "disk gone"));
        assert!(!f.abort);
        assert_eq!(failure(s.poll(8)), f, "later pulls fail the same way");
    }

    #[test]
    fn a_broken_rule_follows_the_items_before_it_and_resets_once() {
        let mut s = start(true, 0);
        s.on_data(&[item(0), item(2)].concat());
        assert_eq!(s.poll(8), Some(items(1)));
        let f = failure(s.poll(8));
        assert_eq!(f.error.code, ErrorCode::Protocol);
        assert_eq!(f.error.message, "item seq 2 received where 1 was expected");
        assert!(f.abort);
        assert!(!failure(s.poll(8)).abort, "the stream was reset already");
    }

    #[test]
    fn malformed_oversized_and_truncated_frames_fail_the_call() {
        let mut s = start(true, 0);
        s.on_data(&[0x7f, 0, 0, 0, 0, 0]);
        let f = failure(s.poll(1));
        assert_eq!((f.error.code, f.abort), (ErrorCode::Protocol, true));

        let mut s = start(true, 0);
        s.on_data(&[0x03, 0, 0, 0, 0x10, 0]); // an ITEM of 4096 bytes, above 1024
        let f = failure(s.poll(1));
        assert_eq!(
            (f.error.code, f.abort),
            (ErrorCode::ResourceExhausted, true)
        );

        let mut s = start(true, 0);
        s.on_data(&item(0)[..5]);
        assert_eq!(s.poll(1), None);
        s.on_fin();
        let f = failure(s.poll(1));
        assert_eq!((f.error.code, f.abort), (ErrorCode::Protocol, true));
    }

    #[test]
    fn the_stream_may_not_end_before_the_outcome() {
        let mut s = start(true, 0);
        s.on_data(&item(0));
        s.on_fin();
        assert!(!s.wants_data(8));
        assert_eq!(s.poll(8), Some(items(1)));
        let f = failure(s.poll(8));
        assert_eq!(
            f.error.message,
            "stream ended without an END or ERROR frame"
        );
        assert!(f.abort);
        let mut s = start(false, 0);
        s.on_fin();
        let f = failure(s.poll(1));
        assert_eq!(
            f.error.message,
            "stream ended without a RESPONSE or ERROR frame"
        );
    }

    #[test]
    fn a_read_error_follows_the_items_and_needs_no_reset() {
        let mut s = start(true, 0);
        s.on_data(&item(0));
        s.on_read_error(CallError::new(ErrorCode::Unavailable, "connection lost"));
        assert!(!s.wants_data(8));
        assert_eq!(s.poll(8), Some(items(1)));
        let f = failure(s.poll(8));
        assert_eq!((f.error.code, f.abort), (ErrorCode::Unavailable, false));
    }

    #[test]
    fn wrong_kinds_break_the_protocol() {
        let mut s = start(false, 0);
        s.on_data(&item(0));
        let f = failure(s.poll(1));
        assert_eq!(f.error.message, "unexpected Item frame in a unary call");
        assert!(f.abort);
    }

    #[test]
    fn the_deadline_discards_what_was_not_handed_out() {
        let mut s = start(true, 250);
        assert_eq!(s.deadline_ms(), Some(250));
        s.on_data(&item(0));
        let f = s.expire();
        assert_eq!(f.error, CallError::deadline_exceeded(250));
        assert_eq!(f.error.message, "deadline of 250 ms exceeded");
        assert!(f.abort);
        let again = failure(s.poll(8));
        assert_eq!((again.error, again.abort), (f.error, false));
        assert_eq!(start(true, 0).deadline_ms(), None);
    }

    #[test]
    fn cancelling_resets_a_live_call_once() {
        let mut s = start(true, 0);
        let f = s.cancel();
        assert_eq!(f.error.code, ErrorCode::Cancelled);
        assert_eq!(f.error.message, CANCELLED_MESSAGE);
        assert!(f.abort);
        assert!(!s.cancel().abort);
        s.on_data(&item(0));
        assert_eq!(failure(s.poll(8)).error.code, ErrorCode::Cancelled);
    }

    #[test]
    fn requests_are_checked_before_sending() {
        let request = |method: &str, payload: usize| request(method, payload, false, 0);
        let e = ClientStream::start(request("", 0), 1024).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert_eq!(e.message, "method name must be 1..=65535 bytes, got 0");
        let e = ClientStream::start(request("echo", 4096), 1024).unwrap_err();
        assert_eq!(e.code, ErrorCode::ResourceExhausted);
        assert_eq!(
            e.message,
            "request of 4112 bytes exceeds the maximum frame size of 1024 bytes"
        );
        let (_, frame) = ClientStream::start(request("echo", 10), 1024).unwrap();
        assert!(matches!(frame, Frame::Request(r) if r.method == "echo"));
    }

    fn resumable(streaming: bool, idempotent: bool) -> (ClientStream, [Frame; 2]) {
        ClientStream::start_resumable(request("m", 0, streaming, 500), 1024, 7, idempotent).unwrap()
    }

    #[test]
    fn a_resumable_call_acks_and_reattaches_at_its_next_seq() {
        let (mut s, head) = resumable(true, false);
        assert_eq!(
            head[0],
            Frame::Call {
                call_id: 7,
                next_seq: 0
            }
        );
        assert!(matches!(&head[1], Frame::Request(r) if r.deadline_ms == 500));
        s.on_data(&[item(0), item(1)].concat());
        assert_eq!(s.ack_due(4, 1024), None);
        assert_eq!(
            s.ack_due(4, 2),
            Some(Frame::Ack { next_seq: 2 }),
            "2 payload bytes"
        );
        s.on_data(&[item(2), item(3)].concat());
        assert_eq!(s.ack_due(2, 1024), Some(Frame::Ack { next_seq: 4 }));
        assert_eq!(s.ack_due(1, 0), None, "nothing new");
        // Half of item 4 arrives, then the connection is lost.
        s.on_data(&item(4)[..5]);
        let [call, req] = s.reattach(120).unwrap();
        assert_eq!(
            call,
            Frame::Call {
                call_id: 7,
                next_seq: 4
            }
        );
        assert!(matches!(req, Frame::Request(r) if r.deadline_ms == 120));
        s.on_data(&item(4));
        s.on_data(&bytes(Frame::End { items: 5 }));
        assert_eq!(s.poll(8), Some(items(5)));
        assert_eq!(s.poll(8), Some(Received::End));
        assert_eq!(s.ack_due(1, 0), None, "the call has its outcome");
    }

    #[test]
    fn a_unary_call_in_flight_is_sent_again_only_if_idempotent() {
        let (mut s, _) = resumable(false, true);
        assert!(s.reattach(0).is_ok());
        let (mut s, _) = resumable(false, false);
        let e = s.reattach(0).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert!(e.message.contains("not marked idempotent"), "{e}");
        assert_eq!(failure(s.poll(1)).error, e);
        let (mut plain, _) = ClientStream::start(request("m", 0, true, 0), 1024).unwrap();
        assert_eq!(plain.reattach(0).unwrap_err().code, ErrorCode::Unavailable);
        assert_eq!(plain.ack_due(1, 0), None);
    }
}

//! The client side of one call (PROTOCOL.md sections 5 and 9), sans-IO.
//!
//! The runtime's client (through [`crate::ClientStream`]) and the simulation hand every frame of
//! a call's stream to [`ClientCall::on_frame`], which decides whether it is delivered, ends the
//! call, or breaks the protocol, and report the stream's FIN to [`ClientCall::on_fin`]. Keeping
//! the rule here means the simulation checks the very code a real client runs: an item is
//! accepted only with the next seq, END must count exactly the items received, nothing may follow
//! a terminal frame, and the stream may not end before one. Metadata (PROTOCOL.md section 5.6):
//! HEADERS only as the call's first frame, TRAILERS only just before the final frame.

use bytes::Bytes;
use rpcnet_protocol::{Frame, Metadata};

use crate::CallError;

/// What one server frame means to the caller, as decided by [`ClientCall::on_frame`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A streamed item, to deliver; its `seq` is exactly the next one.
    Item {
        /// The item's sequence number.
        seq: u64,
        /// The item payload.
        payload: Bytes,
    },
    /// The unary result; the call is over.
    Response(Bytes),
    /// The stream ended after `items` items; the call is over.
    End {
        /// Items delivered in all.
        items: u64,
    },
    /// The server reported an error; the call is over.
    Failed(CallError),
    /// The response headers (the call's first frame).
    Headers(Metadata),
    /// The response trailers; the final frame comes next.
    Trailers(Metadata),
    /// A frame with nothing for the caller: HEADERS on a re-attached call that had received
    /// headers or items before (PROTOCOL.md section 15.3).
    Skipped,
}

/// The receiving rules of one call: unary (one RESPONSE or ERROR) or server-streaming (ITEMs in
/// seq order from 0, then END or ERROR).
#[derive(Debug, Clone)]
pub struct ClientCall {
    streaming: bool,
    next_seq: u64,
    done: bool,
    /// A HEADERS or ITEM frame was accepted: HEADERS may no longer come.
    started: bool,
    /// TRAILERS were accepted: only the final frame may come.
    trailers: bool,
    /// The call was re-attached after a resume: a repeated HEADERS is skipped.
    reattached: bool,
}

impl ClientCall {
    /// A call that expects a unary (`streaming = false`) or a streaming answer.
    pub fn new(streaming: bool) -> Self {
        ClientCall {
            streaming,
            next_seq: 0,
            done: false,
            started: false,
            trailers: false,
            reattached: false,
        }
    }

    /// The call continues on a new stream after a resume (PROTOCOL.md section 15.3): the new
    /// owner may send HEADERS again (skipped if some came before) and TRAILERS again.
    pub fn reattach(&mut self) {
        self.reattached = true;
        self.trailers = false;
    }

    /// The seq the next item must carry (= items received so far).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// True once a terminal frame (RESPONSE, END, ERROR) was accepted or the protocol broke.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Applies one frame from the server.
    ///
    /// Errors (`PROTOCOL`, the call is then over): an item whose seq is not the next one (a gap
    /// or a repeat), an END whose count differs from the items received, a frame after the end,
    /// a frame of the wrong kind for the call (ITEM/END on a unary call, RESPONSE on a streaming
    /// one, or any client or cluster-link frame).
    pub fn on_frame(&mut self, frame: Frame) -> Result<Delivery, CallError> {
        if self.done {
            return Err(CallError::protocol(format!(
                "{} frame after the call ended",
                frame.frame_type().name()
            )));
        }
        let result = self.classify(frame);
        if !matches!(
            result,
            Ok(Delivery::Item { .. }
                | Delivery::Headers(_)
                | Delivery::Trailers(_)
                | Delivery::Skipped)
        ) {
            self.done = true;
        }
        result
    }

    /// The server finished its side of the stream (FIN) with no frame left to decode.
    ///
    /// Errors (`PROTOCOL`, the call is then over): no terminal frame came first ("stream ended
    /// without a RESPONSE or ERROR frame", or "... an END or ERROR frame" for a streaming call;
    /// PROTOCOL.md section 11, truncated stream). After a terminal frame the FIN is expected.
    pub fn on_fin(&mut self) -> Result<(), CallError> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        let expected = if self.streaming {
            "an END or ERROR"
        } else {
            "a RESPONSE or ERROR"
        };
        Err(CallError::protocol(format!(
            "stream ended without {expected} frame"
        )))
    }

    fn classify(&mut self, frame: Frame) -> Result<Delivery, CallError> {
        if self.trailers
            && !matches!(
                frame,
                Frame::Response { .. } | Frame::End { .. } | Frame::Error { .. }
            )
        {
            return Err(CallError::protocol(format!(
                "{} frame after TRAILERS; only RESPONSE, END or ERROR may follow them",
                frame.frame_type().name()
            )));
        }
        match frame {
            Frame::Headers { .. } if self.started && self.reattached => Ok(Delivery::Skipped),
            Frame::Headers { .. } if self.started => Err(CallError::protocol(
                "HEADERS frame after the call's first frame",
            )),
            Frame::Headers { metadata } => {
                self.started = true;
                Ok(Delivery::Headers(metadata))
            }
            Frame::Trailers { metadata } => {
                self.trailers = true;
                Ok(Delivery::Trailers(metadata))
            }
            Frame::Item { seq, payload } if self.streaming => {
                self.started = true;
                if seq != self.next_seq {
                    return Err(CallError::protocol(format!(
                        "item seq {seq} received where {} was expected",
                        self.next_seq
                    )));
                }
                self.next_seq += 1;
                Ok(Delivery::Item { seq, payload })
            }
            Frame::End { items } if self.streaming => {
                if items != self.next_seq {
                    return Err(CallError::protocol(format!(
                        "END says {items} items but {} arrived",
                        self.next_seq
                    )));
                }
                Ok(Delivery::End { items })
            }
            Frame::Response { payload } if !self.streaming => Ok(Delivery::Response(payload)),
            Frame::Error { code, message } => Ok(Delivery::Failed(CallError { code, message })),
            other => Err(CallError::protocol(format!(
                "unexpected {:?} frame in a {} call",
                other.frame_type(),
                if self.streaming { "streaming" } else { "unary" }
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(seq: u64) -> Frame {
        Frame::Item {
            seq,
            payload: Bytes::from(vec![seq as u8]),
        }
    }

    #[test]
    fn items_in_order_then_end() {
        let mut c = ClientCall::new(true);
        for s in 0..3 {
            assert!(matches!(c.on_frame(item(s)), Ok(Delivery::Item { seq, .. }) if seq == s));
        }
        assert_eq!(
            c.on_frame(Frame::End { items: 3 }),
            Ok(Delivery::End { items: 3 })
        );
        assert!(c.is_done());
        assert!(c.on_frame(item(3)).is_err());
    }

    #[test]
    fn gaps_repeats_and_wrong_counts_are_protocol_errors() {
        let mut c = ClientCall::new(true);
        c.on_frame(item(0)).unwrap();
        let e = c.on_frame(item(0)).unwrap_err();
        assert!(e.message.contains("item seq 0 received where 1"), "{e}");
        let mut c = ClientCall::new(true);
        assert!(c.on_frame(item(1)).is_err());
        let mut c = ClientCall::new(true);
        c.on_frame(item(0)).unwrap();
        let e = c.on_frame(Frame::End { items: 2 }).unwrap_err();
        assert!(e.message.contains("END says 2 items but 1 arrived"), "{e}");
    }

    #[test]
    fn the_stream_must_not_end_before_a_terminal_frame() {
        let mut c = ClientCall::new(true);
        c.on_frame(item(0)).unwrap();
        let e = c.on_fin().unwrap_err();
        assert_eq!(e.message, "stream ended without an END or ERROR frame");
        assert!(c.is_done());
        let e = ClientCall::new(false).on_fin().unwrap_err();
        assert_eq!(e.message, "stream ended without a RESPONSE or ERROR frame");
        let mut c = ClientCall::new(true);
        c.on_frame(Frame::End { items: 0 }).unwrap();
        assert_eq!(c.on_fin(), Ok(()));
    }

    #[test]
    fn kinds_must_match_the_call() {
        let mut c = ClientCall::new(false);
        let e = c.on_frame(item(0)).unwrap_err();
        assert_eq!(e.message, "unexpected Item frame in a unary call");
        let mut c = ClientCall::new(true);
        assert!(c
            .on_frame(Frame::Response {
                payload: Bytes::new()
            })
            .is_err());
        let mut c = ClientCall::new(false);
        assert_eq!(
            c.on_frame(Frame::Response {
                payload: Bytes::from_static(b"x")
            }),
            Ok(Delivery::Response(Bytes::from_static(b"x")))
        );
    }
}

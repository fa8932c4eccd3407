//! [`RequestTail`]: the frames that follow the REQUEST on a call's stream, read by the director
//! from the client and by the worker from the director: ACK frames on a resumable session's call
//! (PROTOCOL.md section 15.4), and the ITEM frames and END of a client-streaming or bidi call
//! (sections 3.4 and 13.6).

use bytes::BytesMut;
use rpcnet_protocol::{Decoder, Frame};

use crate::error::RpcError;

/// Decodes the frames after a REQUEST from the receive side of a call's stream.
pub(crate) struct RequestTail {
    decoder: Decoder,
    buf: BytesMut,
    live: bool,
    acks: bool,
    items: bool,
}

impl RequestTail {
    /// Reads ACKs after `after_request` (bytes already read past the REQUEST); `live` false for
    /// a call that gets none (not resumable).
    pub(crate) fn acks(after_request: BytesMut, live: bool) -> Self {
        RequestTail {
            decoder: Decoder::default(),
            buf: after_request,
            live,
            acks: live,
            items: false,
        }
    }

    /// Reads what a client sends after its REQUEST: ACKs when `resumable`, ITEMs and END when
    /// `client_streaming`, decoded with `decoder` (the connection's version and sizes).
    pub(crate) fn client(
        after_request: BytesMut,
        decoder: Decoder,
        resumable: bool,
        client_streaming: bool,
    ) -> Self {
        RequestTail {
            decoder,
            buf: after_request,
            live: resumable || client_streaming,
            acks: resumable,
            items: client_streaming,
        }
    }

    /// True until the peer finished its side of the stream (or for a call that gets nothing).
    pub(crate) fn live(&self) -> bool {
        self.live
    }

    /// The next frame (an ACK, ITEM or END, as allowed); `None` once the peer finished its
    /// side (FIN). Cancel-safe (quinn reads are; decoding is synchronous).
    ///
    /// Errors: `PROTOCOL` for a frame of another type (or a malformed one); the stream's error
    /// when the peer reset it or its connection was lost (`UNAVAILABLE`).
    pub(crate) async fn next(
        &mut self,
        recv: &mut quinn::RecvStream,
    ) -> Result<Option<Frame>, RpcError> {
        loop {
            match self.decoder.decode(&mut self.buf)? {
                Some(f @ Frame::Ack { .. }) if self.acks => return Ok(Some(f)),
                Some(f @ (Frame::Item { .. } | Frame::End { .. })) if self.items => {
                    return Ok(Some(f))
                }
                Some(other) => {
                    return Err(RpcError::protocol(format!(
                        "unexpected {} frame after the REQUEST",
                        other.frame_type().name()
                    )))
                }
                None => {}
            }
            match recv.read_chunk(64 * 1024, true).await? {
                Some(c) => self.buf.extend_from_slice(&c.bytes),
                None => {
                    self.live = false;
                    if !self.buf.is_empty() {
                        return Err(RpcError::protocol(format!(
                            "the stream ended inside a frame ({} bytes left)",
                            self.buf.len()
                        )));
                    }
                    return Ok(None);
                }
            }
        }
    }

    /// [`RequestTail::next`] while live; pends forever otherwise (for `select!`).
    pub(crate) async fn next_or_pend(
        &mut self,
        recv: &mut quinn::RecvStream,
    ) -> Result<Option<Frame>, RpcError> {
        if !self.live {
            return std::future::pending().await;
        }
        self.next(recv).await
    }
}

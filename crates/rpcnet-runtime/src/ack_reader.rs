//! [`AckReader`]: the ACK frames that follow the REQUEST on a resumable session's call stream
//! (PROTOCOL.md section 15.4), read by the director from the client and by the worker from the
//! director.

use bytes::BytesMut;
use rpcnet_protocol::{Decoder, Frame};

use crate::error::RpcError;

/// Decodes ACK frames from the receive side of a call's stream after its REQUEST.
pub(crate) struct AckReader {
    decoder: Decoder,
    buf: BytesMut,
    live: bool,
}

impl AckReader {
    /// Reads ACKs after `after_request` (bytes already read past the REQUEST); `live` false for
    /// a call that gets none (not resumable).
    pub(crate) fn new(after_request: BytesMut, live: bool) -> Self {
        AckReader {
            decoder: Decoder::default(),
            buf: after_request,
            live,
        }
    }

    /// True until the peer finished its side of the stream (or for a call that gets no ACKs).
    pub(crate) fn live(&self) -> bool {
        self.live
    }

    /// The next ACK's `next_seq`; `None` once the peer finished its side (FIN). Cancel-safe
    /// (quinn reads are; decoding is synchronous).
    ///
    /// Errors: `PROTOCOL` for a frame other than ACK; the stream's error when the peer reset it
    /// or its connection was lost (`UNAVAILABLE`).
    pub(crate) async fn next(
        &mut self,
        recv: &mut quinn::RecvStream,
    ) -> Result<Option<u64>, RpcError> {
        loop {
            match self.decoder.decode(&mut self.buf)? {
                Some(Frame::Ack { next_seq }) => return Ok(Some(next_seq)),
                Some(other) => {
                    return Err(RpcError::protocol(format!(
                        "expected ACK after the REQUEST, got {}",
                        other.frame_type().name()
                    )))
                }
                None => {}
            }
            match recv.read_chunk(64 * 1024, true).await? {
                Some(c) => self.buf.extend_from_slice(&c.bytes),
                None => {
                    self.live = false;
                    return Ok(None);
                }
            }
        }
    }

    /// [`AckReader::next`] while live; pends forever otherwise (for `select!`).
    pub(crate) async fn next_or_pend(
        &mut self,
        recv: &mut quinn::RecvStream,
    ) -> Result<Option<u64>, RpcError> {
        if !self.live {
            return std::future::pending().await;
        }
        self.next(recv).await
    }
}

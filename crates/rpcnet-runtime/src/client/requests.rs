//! [`RequestSender`]: the client's side of a client-streaming or bidi call's requests (PROTOCOL.md
//! section 3.4): ITEM frames numbered 0, 1, 2, ... then END and FIN. It exists apart from the
//! receiving machine because the two sides run at their own pace: a send waits for QUIC flow
//! control (the server's handler reads slower), while the responses are pulled independently.

use bytes::{Bytes, BytesMut};
use rpcnet_protocol::frame::encode_item_header;
use rpcnet_protocol::{ErrorCode, Frame};

use crate::cancel::Canceller;
use crate::error::{app_code, RpcError};

#[derive(Debug)]
struct State {
    send: quinn::SendStream,
    next_seq: u64,
    closed: bool,
}

/// Sends a call's requests (see module docs). `send` and `close` may be called from any task,
/// one at a time; [`RequestSender::abort`] ends a send that waits.
#[derive(Debug)]
pub struct RequestSender {
    state: tokio::sync::Mutex<State>,
    aborted: Canceller,
    /// The code of the reset [`RequestSender::abort`] asked for.
    abort_code: std::sync::Mutex<ErrorCode>,
}

impl RequestSender {
    pub(super) fn new(send: quinn::SendStream) -> Self {
        Self {
            state: tokio::sync::Mutex::new(State {
                send,
                next_seq: 0,
                closed: false,
            }),
            aborted: Canceller::new(),
            abort_code: std::sync::Mutex::new(ErrorCode::Cancelled),
        }
    }

    /// Sends one request as the next ITEM; waits while QUIC flow control holds it back.
    ///
    /// Errors: `FAILED_PRECONDITION` after [`RequestSender::close`]; `CANCELLED` after
    /// [`RequestSender::abort`]; the stop's code when the server stopped reading (it answered
    /// already, or refused the call); `UNAVAILABLE` when the connection is lost.
    pub async fn send(&self, payload: Bytes) -> Result<(), RpcError> {
        let mut s = self.state.lock().await;
        if s.closed {
            return Err(RpcError::new(
                ErrorCode::FailedPrecondition,
                "the call's requests were closed already",
            ));
        }
        let mut head = BytesMut::with_capacity(14);
        encode_item_header(s.next_seq, payload.len(), &mut head);
        let mut chunks = [head.freeze(), payload];
        tokio::select! {
            w = s.send.write_all_chunks(&mut chunks) => w.map_err(stopped)?,
            _ = self.aborted.cancelled() => return Err(self.reset(&mut s)),
        }
        s.next_seq += 1;
        Ok(())
    }

    /// Ends the requests: END with their count, then FIN (the half-close). A second call does
    /// nothing.
    ///
    /// Errors: as [`RequestSender::send`].
    pub async fn close(&self) -> Result<(), RpcError> {
        let mut s = self.state.lock().await;
        if s.closed {
            return Ok(());
        }
        s.closed = true;
        let end = Frame::End { items: s.next_seq }.to_bytes();
        tokio::select! {
            w = s.send.write_all(&end) => w.map_err(stopped)?,
            _ = self.aborted.cancelled() => return Err(self.reset(&mut s)),
        }
        let _ = s.send.finish();
        Ok(())
    }

    /// Ends the requests without END: RESET_STREAM with `code` (the call was cancelled or ended
    /// early, PROTOCOL.md section 8.1). A send that waits fails with `CANCELLED`.
    pub fn abort(&self, code: ErrorCode) {
        *self.abort_code.lock().unwrap() = code;
        self.aborted.cancel();
        // When a send holds the stream, it sees the abort and resets it itself.
        if let Ok(mut s) = self.state.try_lock() {
            let _ = self.reset(&mut s);
        }
    }

    /// Resets the stream with the abort's code; the error a waiting send or close returns.
    fn reset(&self, s: &mut State) -> RpcError {
        let code = *self.abort_code.lock().unwrap();
        if !s.closed {
            s.closed = true;
            let _ = s.send.reset(app_code(code));
        }
        RpcError::new(code, "the call ended before its requests were sent")
    }
}

fn stopped(e: quinn::WriteError) -> RpcError {
    match e {
        quinn::WriteError::Stopped(code) => {
            let code = u16::try_from(code.into_inner())
                .ok()
                .and_then(ErrorCode::from_u16)
                .unwrap_or(ErrorCode::Cancelled);
            RpcError::new(
                code,
                "the server stopped reading the requests (the call has its outcome, or was refused)",
            )
        }
        other => RpcError::from(other),
    }
}

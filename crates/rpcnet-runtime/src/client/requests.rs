//! [`RequestSender`]: the client's side of a client-streaming or bidi call's requests (PROTOCOL.md
//! section 3.4): ITEM frames numbered 0, 1, 2, ... then END and FIN. It exists apart from the
//! receiving machine because the two sides run at their own pace: a send waits for QUIC flow
//! control (the server's handler reads slower), while the responses are pulled independently.
//!
//! In a resumable session (PROTOCOL.md section 15) the numbering and the copies of the requests
//! sent are the sans-IO [`ClientRequests`]': when the call re-attaches on the session's next
//! connection, the receiving side ([`super::call::CallStream`]) hands the new stream to
//! [`RequestSender::switch`], which sends every request again (and the END, if it was sent)
//! before anything new. Meanwhile a send waits for the new stream. The call's ACKs go out on
//! the same stream ([`RequestSender::send_frame`]).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rpcnet_protocol::frame::encode_item_header;
use rpcnet_protocol::{ErrorCode, Frame};
use rpcnet_session::{ClientRequests, MAX_KEPT_BYTES};
use tokio::sync::Notify;

use crate::cancel::Canceller;
use crate::error::{app_code, RpcError};

#[derive(Debug)]
struct State {
    /// `None` while a resumable call waits for its next connection.
    send: Option<quinn::SendStream>,
    requests: ClientRequests,
    closed: bool,
    /// The END went out on the current stream.
    finished: bool,
}

#[derive(Debug)]
struct Inner {
    state: tokio::sync::Mutex<State>,
    resumable: bool,
    aborted: Canceller,
    /// The code of the reset [`RequestSender::abort`] asked for.
    abort_code: std::sync::Mutex<ErrorCode>,
    /// A resumable call's stream was switched to a new connection.
    switched: Notify,
}

/// Sends a call's requests (see module docs). `send` and `close` may be called from any task,
/// one at a time; [`RequestSender::abort`] ends a send that waits. Clones share the call.
#[derive(Debug, Clone)]
pub struct RequestSender(Arc<Inner>);

impl RequestSender {
    pub(super) fn new(send: quinn::SendStream, resumable: bool) -> Self {
        Self(Arc::new(Inner {
            state: tokio::sync::Mutex::new(State {
                send: Some(send),
                requests: ClientRequests::new(resumable, MAX_KEPT_BYTES),
                closed: false,
                finished: false,
            }),
            resumable,
            aborted: Canceller::new(),
            abort_code: std::sync::Mutex::new(ErrorCode::Cancelled),
            switched: Notify::new(),
        }))
    }

    /// Sends one request as the next ITEM; waits while QUIC flow control holds it back, and in
    /// a resumable session while the call waits for its next connection.
    ///
    /// Errors: `FAILED_PRECONDITION` after [`RequestSender::close`]; `CANCELLED` after
    /// [`RequestSender::abort`]; the stop's code when the server stopped reading (it answered
    /// already, or refused the call); `UNAVAILABLE` when the connection is lost (outside a
    /// resumable session).
    pub async fn send(&self, payload: Bytes) -> Result<(), RpcError> {
        self.send_many(vec![payload]).await
    }

    /// [`RequestSender::send`] for several requests in order, in one write (one crossing from
    /// JavaScript for as many requests as its caller had ready).
    ///
    /// Errors: as [`RequestSender::send`].
    pub async fn send_many(&self, payloads: Vec<Bytes>) -> Result<(), RpcError> {
        let mut s = self.0.state.lock().await;
        if s.closed {
            return Err(RpcError::new(
                ErrorCode::FailedPrecondition,
                "the call's requests were closed already",
            ));
        }
        let mut chunks = Vec::with_capacity(payloads.len() * 2);
        for payload in payloads {
            let seq = s.requests.sent();
            s.requests.item(payload.clone())?;
            let mut head = BytesMut::with_capacity(14);
            encode_item_header(seq, payload.len(), &mut head);
            chunks.push(head.freeze());
            chunks.push(payload);
        }
        self.write(s, chunks).await
    }

    /// Ends the requests: END with their count, then FIN (the half-close; in a resumable
    /// session the stream stays open for ACKs). A second call does nothing.
    ///
    /// Errors: as [`RequestSender::send`].
    pub async fn close(&self) -> Result<(), RpcError> {
        let mut s = self.0.state.lock().await;
        if s.closed {
            return Ok(());
        }
        s.closed = true;
        let end = s.requests.end().expect("not closed before").to_bytes();
        self.write(s, vec![end]).await?;
        let mut s = self.0.state.lock().await;
        s.finished = true;
        if !self.0.resumable {
            if let Some(send) = s.send.as_mut() {
                let _ = send.finish();
            }
        }
        Ok(())
    }

    /// The call has its outcome: no more requests, and the send side is finished (FIN), which a
    /// resumable session's call kept open for its ACKs until now.
    pub(super) async fn finish(&self) {
        let mut s = self.0.state.lock().await;
        s.closed = true;
        s.finished = true;
        if let Some(send) = s.send.as_mut() {
            let _ = send.finish();
        }
    }

    /// Writes `frame` (an ACK) on the call's current stream; nothing while it has none.
    pub(super) async fn send_frame(&self, frame: Frame) {
        let mut s = self.0.state.lock().await;
        if let Some(send) = s.send.as_mut() {
            let _ = send.write_all(&frame.to_bytes()).await;
        }
    }

    /// The call re-attached on a resumed session's new connection (its CALL and REQUEST are
    /// on `send` already): sends every request again, then the END if it was sent (PROTOCOL.md
    /// section 15.4), and lets waiting sends go on there.
    ///
    /// Errors: `UNAVAILABLE` when the requests went over what a client keeps
    /// ([`MAX_KEPT_BYTES`]) or the new stream failed; the call fails with it.
    pub(super) async fn switch(&self, mut send: quinn::SendStream) -> Result<(), RpcError> {
        let mut s = self.0.state.lock().await;
        let frames = s.requests.resend()?;
        let mut chunks: Vec<Bytes> = frames.iter().map(Frame::to_bytes).collect();
        send.write_all_chunks(&mut chunks).await?;
        s.send = Some(send);
        drop(s);
        self.0.switched.notify_waiters();
        Ok(())
    }

    /// Ends the requests without END: RESET_STREAM with `code` (the call was cancelled or ended
    /// early, PROTOCOL.md section 8.1). A send that waits fails with `CANCELLED`.
    pub fn abort(&self, code: ErrorCode) {
        *self.0.abort_code.lock().unwrap() = code;
        self.0.aborted.cancel();
        // When a send holds the stream, it sees the abort and resets it itself.
        if let Ok(mut s) = self.0.state.try_lock() {
            let _ = self.reset(&mut s);
        }
    }

    /// Writes `chunks` on the current stream, waiting for one in a resumable session that has
    /// none (the switch sends them again, since they are kept), or fails as [`Self::send`] says.
    async fn write(
        &self,
        mut s: tokio::sync::MutexGuard<'_, State>,
        mut chunks: Vec<Bytes>,
    ) -> Result<(), RpcError> {
        loop {
            if self.0.aborted.is_cancelled() {
                return Err(self.reset(&mut s));
            }
            if s.send.is_none() {
                // The switch re-sends what was made meanwhile: wait for it, without the lock.
                let switched = self.0.switched.notified();
                tokio::pin!(switched);
                switched.as_mut().enable();
                drop(s);
                tokio::select! {
                    _ = switched => return Ok(()),
                    _ = self.0.aborted.cancelled() => {
                        let mut s = self.0.state.lock().await;
                        return Err(self.reset(&mut s));
                    }
                }
            }
            let written = tokio::select! {
                w = s.send.as_mut().expect("checked").write_all_chunks(&mut chunks) => w,
                _ = self.0.aborted.cancelled() => return Err(self.reset(&mut s)),
            };
            match written {
                Ok(()) => return Ok(()),
                // A resumable session's connection is gone: what was made is kept and goes out
                // again on the next one.
                Err(quinn::WriteError::ConnectionLost(_)) if self.0.resumable => {
                    s.send = None;
                }
                Err(e) => return Err(stopped(e)),
            }
        }
    }

    /// Resets the stream with the abort's code; the error a waiting send or close returns.
    fn reset(&self, s: &mut State) -> RpcError {
        let code = *self.0.abort_code.lock().unwrap();
        if !s.finished || self.0.resumable {
            s.closed = true;
            s.finished = true;
            if let Some(send) = s.send.as_mut() {
                let _ = send.reset(app_code(code));
            }
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

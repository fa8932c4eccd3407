//! The client's items of a client-streaming or bidi call (PROTOCOL.md section 3.4), between the
//! task that reads them from the call's stream and the handler that pulls them. It exists so that
//! a handler that reads slower than its client sends costs a bounded buffer: once the queue holds
//! its window, the reader stops reading and QUIC flow control (RFC 9000 section 4) stalls the
//! client's sends.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

use crate::error::{app_code, RpcError};
use crate::recv::ReadToFin;
use rpcnet_protocol::{Decoder, ErrorCode, Frame};
use rpcnet_session::{ClientItem, ClientItems};

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Bytes>,
    bytes: usize,
    /// The client's END (`Ok`) or what broke the stream (`Err`).
    end: Option<Result<(), RpcError>>,
    /// The call is over: the reader stops, takers fail.
    closed: bool,
}

/// The queue of one call's client items (see module docs).
#[derive(Debug)]
pub struct Inbound {
    state: Mutex<State>,
    window_items: usize,
    window_bytes: usize,
    readable: Notify,
    space: Notify,
    /// The client reset its requests with this code (`CANCELLED`, `DEADLINE_EXCEEDED`): a
    /// cancellation, which the call's task ends the call with.
    cancelled: tokio::sync::watch::Sender<Option<ErrorCode>>,
}

impl Inbound {
    /// A queue that holds at most `window_items` items and `window_bytes` bytes (at least 1).
    pub fn new(window_items: usize, window_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            window_items: window_items.max(1),
            window_bytes: window_bytes.max(1),
            readable: Notify::new(),
            space: Notify::new(),
            cancelled: tokio::sync::watch::Sender::new(None),
        }
    }

    /// Queues an item once there is room; false when the call is over (stop reading).
    async fn push(&self, item: Bytes) -> bool {
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.state.lock().unwrap();
                if s.closed {
                    return false;
                }
                if s.items.len() < self.window_items && s.bytes < self.window_bytes {
                    s.bytes += item.len();
                    s.items.push_back(item);
                    drop(s);
                    self.readable.notify_waiters();
                    return true;
                }
            }
            notified.await;
        }
    }

    fn finish(&self, end: Result<(), RpcError>) {
        let mut s = self.state.lock().unwrap();
        if s.end.is_none() {
            s.end = Some(end);
        }
        drop(s);
        self.readable.notify_waiters();
    }

    /// Up to `max` items (at least one) in order, waiting for one: `Ok(None)` once the client's
    /// END came and every item was taken.
    ///
    /// Errors: what broke the client's stream (`PROTOCOL` for a seq gap, a wrong END count or a
    /// stream ended without END; the reset's code when the client reset it), or `UNAVAILABLE`
    /// once the call is over.
    pub async fn take(&self, max: usize) -> Result<Option<Vec<Bytes>>, RpcError> {
        loop {
            let notified = self.readable.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.state.lock().unwrap();
                if !s.items.is_empty() {
                    let n = max.clamp(1, s.items.len());
                    let items: Vec<Bytes> = s.items.drain(..n).collect();
                    s.bytes -= items.iter().map(Bytes::len).sum::<usize>();
                    drop(s);
                    self.space.notify_waiters();
                    return Ok(Some(items));
                }
                match &s.end {
                    Some(Ok(())) => return Ok(None),
                    Some(Err(e)) => return Err(e.clone()),
                    None if s.closed => return Err(RpcError::unavailable("the call is over")),
                    None => {}
                }
            }
            notified.await;
        }
    }

    /// The call is over: the reader stops and takers fail with `UNAVAILABLE`.
    pub fn close(&self) {
        self.state.lock().unwrap().closed = true;
        self.readable.notify_waiters();
        self.space.notify_waiters();
    }

    fn is_closed(&self) -> bool {
        self.state.lock().unwrap().closed
    }

    /// Resolves with the code once the client cancelled the call by resetting its requests
    /// (PROTOCOL.md section 3.4: a client that cancels resets its send side and stops its
    /// receive side; the reset may arrive first). The handler's reading does not fail first:
    /// the call's task ends the call as cancelled, so the handler sees its signal abort.
    pub async fn cancelled(&self) -> ErrorCode {
        let mut rx = self.cancelled.subscribe();
        let code = match rx.wait_for(Option::is_some).await {
            Ok(code) => *code,
            Err(_) => None, // the sender lives as long as `self`
        };
        match code {
            Some(code) => code,
            None => std::future::pending().await,
        }
    }

    fn cancel(&self, code: ErrorCode) {
        self.cancelled.send_replace(Some(code));
    }
}

/// Reads the client's ITEM frames and its END from `recv` (`buf`: bytes already read after the
/// REQUEST) into `inbound` until the END, a violation or the end of the call. `rule` decides
/// which items the handler gets ([`ClientItems`]: on a plain server seq 0, 1, ...; on a cluster
/// link the director's replay, minus what a resumed handler read before). A violation (a seq
/// gap, a wrong END count, another frame type, a stream that ends without END, a malformed
/// frame) fails the queue with `PROTOCOL` (or `RESOURCE_EXHAUSTED`) and stops the client's
/// stream with that code.
///
/// On a resumable session's call (`acks` given) the director's ACK frames come on the same
/// stream, before and after the END: each one's `next_seq` goes to `acks` for the call's writer
/// (PROTOCOL.md section 15.4), and the reader goes on to the FIN. A lost or reset stream there
/// is the writer's to handle (it keeps the call for a resume), so the handler is not failed.
pub(crate) async fn read_client_items(
    mut recv: ReadToFin,
    mut buf: BytesMut,
    mut decoder: Decoder,
    inbound: Arc<Inbound>,
    mut rule: ClientItems,
    acks: Option<tokio::sync::watch::Sender<u64>>,
) {
    let mut eof = false;
    loop {
        loop {
            let decoded = if eof {
                decoder.decode_eof(&mut buf)
            } else {
                decoder.decode(&mut buf)
            };
            let violation = match decoded {
                Ok(Some(Frame::Item { seq, payload })) => match rule.on_item(seq) {
                    Ok(ClientItem::Deliver) => {
                        if !inbound.push(payload).await {
                            return;
                        }
                        continue;
                    }
                    Ok(ClientItem::Skip) => continue,
                    Err(e) => e.into(),
                },
                Ok(Some(Frame::End { items })) => match rule.on_end(items) {
                    Ok(()) => {
                        inbound.finish(Ok(()));
                        if acks.is_some() {
                            continue; // ACKs follow until the FIN
                        }
                        return; // ReadToFin reads to the FIN; bytes after the END are PROTOCOL
                    }
                    Err(e) => e.into(),
                },
                Ok(Some(Frame::Ack { next_seq })) if acks.is_some() => {
                    let acks = acks.as_ref().expect("checked");
                    acks.send_if_modified(|acked| {
                        let newer = next_seq > *acked;
                        *acked = (*acked).max(next_seq);
                        newer
                    });
                    continue;
                }
                Ok(None) if eof && acks.is_some() && rule.is_ended() => return,
                Ok(Some(other)) => RpcError::protocol(format!(
                    "unexpected {} frame from the client after its REQUEST",
                    other.frame_type().name()
                )),
                Ok(None) if eof => {
                    RpcError::protocol("the client's stream ended without an END frame")
                }
                Ok(None) => break,
                Err(e) => RpcError::from(e),
            };
            let code = violation.code;
            inbound.finish(Err(violation));
            let _ = recv.stop(app_code(code));
            return;
        }
        if inbound.is_closed() {
            return;
        }
        tokio::select! {
            chunk = recv.read_chunk(64 * 1024, true) => match chunk {
                Ok(Some(c)) => buf.extend_from_slice(&c.bytes),
                Ok(None) => eof = true,
                Err(_) if acks.is_some() => return,
                Err(quinn::ReadError::Reset(code))
                    if [ErrorCode::Cancelled, ErrorCode::DeadlineExceeded]
                        .iter()
                        .any(|c| code == app_code(*c)) =>
                {
                    let code = if code == app_code(ErrorCode::Cancelled) {
                        ErrorCode::Cancelled
                    } else {
                        ErrorCode::DeadlineExceeded
                    };
                    inbound.cancel(code);
                    return;
                }
                Err(e) => {
                    let e = RpcError::from(e);
                    let e = if e.code == ErrorCode::Unavailable { e } else {
                        RpcError::new(e.code, format!("the client reset its requests: {}", e.message))
                    };
                    inbound.finish(Err(e));
                    return;
                }
            },
            _ = inbound.readable_closed() => return,
        }
    }
}

impl Inbound {
    /// Resolves once the call is over (for the reader waiting on the stream).
    async fn readable_closed(&self) {
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }
}

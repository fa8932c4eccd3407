//! One client call relayed by the director (DESIGN.md: "relayed in Rust, never through JS").
//!
//! The relay reads the client's REQUEST, opens a stream to the session's owner with ATTACH +
//! REQUEST (PROTOCOL.md "Cluster link frames") and forwards the owner's frames to the client.
//! What the client receives is decided by the sans-IO [`RelayCall`] (the next seq the client
//! needs, duplicates dropped, the latest CHECKPOINT, the remaining deadline, when to re-attach);
//! this module only moves bytes between the two streams and waits for routes.
//!
//! A client-streaming or bidi call moves frames both ways at once: the client's items go to the
//! owner through a queue written with cancel-safe writes inside the same `select!` that reads
//! the owner, so the owner not reading the client's items never stops its own frames (a handler
//! blocked on sending its items while the relay blocks on sending it client items would be a
//! deadlock). The client's items are read only while that queue is short and the call is
//! attached, so QUIC flow control is what makes a fast client wait. A client that does not read
//! its responses stops the relay as it would stop a server: the relay waits on the write to the
//! client and forwards nothing else meanwhile.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rpcnet_session::{check_client_metadata, OwnerFrame, RelayCall, Route};

use super::{Inner, Session, WorkerLink};
use crate::error::{app_code, RpcError};
use crate::mgmt::now_ms;
use crate::request_tail::RequestTail;
use rpcnet_protocol::{Decoder, ErrorCode, Frame, FrameErrorKind, Version};

/// How long a call waits for a usable route (a live owner, not frozen) before failing, ms.
const ROUTE_WAIT_MS: u64 = 10_000;

/// Bytes of client frames queued for the owner above which the relay stops reading the client.
const TO_OWNER_HIGH: usize = 256 * 1024;

/// The first frames of a client call: the REQUEST, preceded on a resumable session by CALL
/// (PROTOCOL.md section 15.3), whose `(call_id, next_seq)` is returned too, and the bytes after
/// the REQUEST (ACK frames follow it on a resumable session; nothing may anywhere else). `buf`
/// holds bytes of the stream already read.
async fn read_head(
    recv: &mut quinn::RecvStream,
    decoder: Decoder,
    resumable: bool,
    mut buf: BytesMut,
) -> Result<(Option<(u64, u64)>, rpcnet_protocol::Request, BytesMut), RpcError> {
    let mut decoder = decoder;
    let mut eof = false;
    let mut named = None;
    loop {
        let f = if eof {
            decoder.decode_eof(&mut buf)?
        } else {
            decoder.decode(&mut buf)?
        };
        match f {
            Some(Frame::Call { call_id, next_seq }) if resumable && named.is_none() => {
                named = Some((call_id, next_seq));
            }
            Some(Frame::Request(r)) if resumable && named.is_none() => {
                return Err(RpcError::protocol(format!(
                    "a call of a resumable session starts with CALL, got REQUEST (method {})",
                    r.method
                )))
            }
            // Client items (PROTOCOL.md 3.4) may follow a client-streaming REQUEST; the relay
            // reads them with the call's RequestTail.
            Some(Frame::Request(r)) if resumable || buf.is_empty() || r.client_streaming => {
                return Ok((named, r, buf))
            }
            Some(Frame::Request(_)) => {
                return Err(RpcError::protocol(format!(
                    "{} bytes follow the REQUEST frame",
                    buf.len()
                )))
            }
            Some(other) => {
                return Err(RpcError::protocol(format!(
                    "expected {} as the first frame of a call, got {}",
                    if resumable && named.is_none() {
                        "CALL"
                    } else {
                        "REQUEST"
                    },
                    other.frame_type().name()
                )))
            }
            None if eof => {
                return Err(RpcError::protocol("stream finished before a REQUEST frame"))
            }
            None => match recv.read_chunk(64 * 1024, true).await? {
                Some(c) => buf.extend_from_slice(&c.bytes),
                None => eof = true,
            },
        }
    }
}

/// Waits until `call` may attach to the session's route (unfrozen, live owner, newer than the
/// route it last left or the same one after a pause), then returns that route and its owner.
///
/// Errors: `DEADLINE_EXCEEDED` when the call's deadline passes while it waits; `UNAVAILABLE`
/// after [`ROUTE_WAIT_MS`] without a usable route.
async fn next_route(
    inner: &Inner,
    session: &Session,
    call: &mut RelayCall,
) -> Result<(Route, Arc<WorkerLink>), RpcError> {
    let mut rx = session.route.subscribe();
    let give_up = now_ms() + ROUTE_WAIT_MS;
    loop {
        let route = rx.borrow_and_update().clone();
        if let Some(generation) = route.superseded {
            return Err(error_of(call.superseded(generation)));
        }
        let owner = inner.worker(&route.owner).filter(|w| w.alive());
        let now = now_ms();
        if call.can_attach(&route, owner.is_some(), now) {
            return Ok((route, owner.expect("checked alive")));
        }
        if call.deadline_at().is_some_and(|d| now >= d) {
            return Err(call.expire().into());
        }
        if now >= give_up {
            let why = format!(
                "no live worker for session {} within {ROUTE_WAIT_MS} ms",
                session.id
            );
            return Err(call.give_up(why).into());
        }
        let wake = [call.retry_at(), call.deadline_at(), Some(give_up)]
            .into_iter()
            .flatten()
            .filter(|&t| t > now)
            .min()
            .unwrap_or(now + 1);
        let sleep = tokio::time::sleep(Duration::from_millis(wake - now));
        tokio::select! {
            _ = rx.changed() => {}
            _ = sleep => {}
        }
    }
}

/// The [`RpcError`] of an ERROR frame built by the relay machine.
fn error_of(frame: Frame) -> RpcError {
    match frame {
        Frame::Error { code, message } => RpcError::new(code, message),
        other => RpcError::internal(format!(
            "the relay machine gave a {} frame where an ERROR was expected",
            other.frame_type().name()
        )),
    }
}

/// Answers a client stream with ERROR `e` and finishes it.
pub(crate) async fn send_error(client_send: &mut quinn::SendStream, e: RpcError) {
    let frame = Frame::Error {
        code: e.code,
        message: e.message,
    };
    let _ = client_send.write_all(&frame.to_bytes()).await;
    let _ = client_send.finish();
}

/// Relays one client call of `session` (`read`: bytes of its stream already read; `version`:
/// the client connection's protocol version) until it ends, re-attaching it after migrations
/// and failovers.
pub(crate) async fn relay(
    inner: Arc<Inner>,
    session: Arc<Session>,
    version: Version,
    (mut client_send, client_recv): (quinn::SendStream, quinn::RecvStream),
    read: BytesMut,
) {
    let mut client_recv = crate::recv::ReadToFin::new(client_recv);
    let decoder = Decoder::new(inner.config.max_frame_size).with_version(version);
    let head = read_head(&mut client_recv, decoder, session.resumable, read)
        .await
        .and_then(|h| {
            check_client_metadata(&h.1)
                .map(|()| h)
                .map_err(RpcError::from)
        });
    let (named, request, after) = match head {
        Ok(h) => h,
        Err(e) => {
            let code = e.code;
            send_error(&mut client_send, e).await;
            let _ = client_recv.stop(app_code(code));
            return;
        }
    };
    let call_id = match named {
        Some((id, _)) => id,
        None => inner
            .next_call
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    };
    let mut call = RelayCall::new(
        session.id,
        call_id,
        session.connection_id.clone(),
        request,
        now_ms(),
    );
    if let Some((_, next_seq)) = named {
        call = call.resumable(next_seq);
    }
    if version == Version::V1 {
        call = call.without_response_metadata();
    }
    let mut tail = RequestTail::client(
        after,
        Decoder::new(inner.config.max_frame_size).with_version(version),
        session.resumable,
        call.request().client_streaming,
    );
    let client_stopped = client_send.stopped();
    tokio::pin!(client_stopped);
    loop {
        let routed = tokio::select! {
            r = next_route(&inner, &session, &mut call) => r,
            _ = client_stopped.as_mut() => break, // the client cancelled while the call waited
        };
        let (route, owner) = match routed {
            Ok(r) => r,
            Err(e) => return send_error(&mut client_send, e).await,
        };
        let head = match call.attach(&route, now_ms()) {
            Ok(head) => head,
            Err(e) => return send_error(&mut client_send, e.into()).await,
        };
        let mut link = Link {
            call: &mut call,
            client_send: &mut client_send,
            client_stopped: &mut client_stopped,
            client_recv: &mut client_recv,
            tail: &mut tail,
            resumable: session.resumable,
        };
        match link.pump(&owner, head).await {
            Pumped::Finished => break,
            Pumped::Superseded { generation, error } => {
                // Every relay of the session learns it from the route; then the client hears.
                session.drive(&inner, |c, now| c.on_superseded(generation, now));
                return send_error(&mut client_send, error_of(error)).await;
            }
            Pumped::Again(why) => {
                tracing::debug!(session = session.id, call_id, expected = call.expected(), owner = %owner.id, %why, "call left its owner; waiting for the next route");
            }
        }
    }
}

enum Pumped {
    /// The call ended (terminal frame forwarded, or the client went away).
    Finished,
    /// The owner suspended the call or failed; attach to the next route.
    Again(String),
    /// The owner answered SUPERSEDED (PROTOCOL.md section 15.6): the session lives on through
    /// another director; `error` is the client's ERROR frame.
    Superseded {
        /// The session's generation at the owner.
        generation: u32,
        /// The ERROR frame for the client.
        error: Frame,
    },
}

/// The client's side of a relayed call while it is attached to one owner.
struct Link<'a, 'b, S> {
    call: &'a mut RelayCall,
    client_send: &'a mut quinn::SendStream,
    client_stopped: &'a mut std::pin::Pin<&'b mut S>,
    client_recv: &'a mut quinn::RecvStream,
    /// What the client sends after its REQUEST: ACKs (a resumable session's call) and items
    /// (a client-streaming call), forwarded to the owner.
    tail: &'a mut RequestTail,
    resumable: bool,
}

/// What the relay does with a frame the client sent after its REQUEST.
enum FromClient {
    /// Send these bytes to the owner.
    Forward(Bytes),
    /// Nothing to do.
    Nothing,
    /// The call is over (the client broke the rules, reset its side or went away).
    Over,
}

impl<S> Link<'_, '_, S>
where
    S: std::future::Future<Output = Result<Option<quinn::VarInt>, quinn::StoppedError>>,
{
    /// Attaches to `owner` with `head` (ATTACH + REQUEST, then the client's items replayed
    /// from the checkpoint) and forwards what the relay machine lets through, both ways, until
    /// the call ends or leaves the owner.
    async fn pump(&mut self, owner: &WorkerLink, head: Vec<Frame>) -> Pumped {
        let _active = owner.track_stream();
        let (mut ws, mut wr) = match owner.link.connection().quinn().open_bi().await {
            Ok(s) => s,
            Err(e) => return self.lost(format!("cannot open a stream: {e}")),
        };
        let mut to_owner: VecDeque<Bytes> = head.iter().map(Frame::to_bytes).collect();
        let mut ws_open = true;
        let mut decoder = Decoder::default();
        let mut buf = BytesMut::new();
        let mut eof = false;
        loop {
            let (mut out, step) = self.decode_all(&mut decoder, &mut buf, eof);
            // Items counted in `expected` must reach the client before anything else happens, or
            // a re-attach at `expected` would skip them.
            if !out.is_empty() {
                if let Err(e) = self.client_send.write_all_chunks(&mut out).await {
                    let _ = wr.stop(app_code(RpcError::from(e).code));
                    self.call.cancel();
                    return Pumped::Finished;
                }
            }
            match step {
                Step::Read if eof => {
                    return self.lost("owner ended the stream without a result".into())
                }
                Step::Read => {}
                Step::Finished => {
                    let _ = self.client_send.finish();
                    return Pumped::Finished;
                }
                Step::Leave(why) => {
                    let _ = wr.stop(app_code(ErrorCode::Cancelled));
                    return Pumped::Again(why);
                }
                Step::Superseded { generation, error } => {
                    // The answer to the ATTACH (nothing of this owner's was forwarded).
                    let _ = wr.stop(app_code(ErrorCode::Cancelled));
                    return Pumped::Superseded { generation, error };
                }
            }
            // The owner's side is finished once it has everything the client will send: at
            // once for a plain call, after the client's END for a client-streaming one, never
            // for a resumable session's call (ACKs follow).
            if ws_open && to_owner.is_empty() && !self.resumable && self.call.client_done() {
                let _ = ws.finish();
                ws_open = false;
            }
            let queued: usize = to_owner.iter().map(Bytes::len).sum();
            tokio::select! {
                chunk = wr.read_chunk(256 * 1024, true) => match chunk {
                    Ok(Some(c)) => buf.extend_from_slice(&c.bytes),
                    Ok(None) => eof = true,
                    Err(quinn::ReadError::Reset(code)) if code == app_code(ErrorCode::Cancelled) || code == app_code(ErrorCode::DeadlineExceeded) => {
                        let _ = self.client_send.reset(code);
                        self.call.cancel();
                        return Pumped::Finished;
                    }
                    Err(e) => return self.lost(format!("owner stream failed: {e}")),
                },
                w = ws.write_chunks(to_owner.make_contiguous()), if !to_owner.is_empty() => match w {
                    Ok(w) => {
                        to_owner.drain(..w.chunks);
                    }
                    // The owner stopped reading (it answered, failed or was frozen): what it
                    // sends tells the relay what comes next; a replay goes to the next owner.
                    Err(_) => to_owner.clear(),
                },
                _ = owner.dead.cancelled() => return self.lost("owner declared dead".into()),
                f = self.tail.next_or_pend(self.client_recv), if queued < TO_OWNER_HIGH => {
                    match self.on_client_frame(f, &mut wr, &mut ws).await {
                        FromClient::Forward(bytes) => to_owner.push_back(bytes),
                        FromClient::Nothing => {}
                        FromClient::Over => return Pumped::Finished,
                    }
                },
                r = self.client_stopped.as_mut() => {
                    let code = match r {
                        Ok(Some(c)) => c,
                        // Lost rather than cancelled: a resumable call is kept by its owner.
                        Err(_) if self.resumable => app_code(ErrorCode::Unavailable),
                        _ => app_code(ErrorCode::Cancelled),
                    };
                    let _ = wr.stop(code);
                    let _ = ws.reset(code);
                    let _ = self.client_send.reset(code);
                    self.call.cancel();
                    return Pumped::Finished;
                }
            }
        }
    }

    /// Applies one frame the client sent after its REQUEST (or the end of its side) to the
    /// relay machine: an ACK or client item to forward, or the end of the call when the client
    /// broke the rules (ERROR `PROTOCOL` to it), reset its side, or lost its connection (a
    /// resumable call is then kept by its owner for a resume).
    async fn on_client_frame(
        &mut self,
        frame: Result<Option<Frame>, RpcError>,
        wr: &mut quinn::RecvStream,
        ws: &mut quinn::SendStream,
    ) -> FromClient {
        let forward = match frame {
            Ok(Some(Frame::Ack { next_seq })) => Ok(self.call.on_client_ack(next_seq)),
            Ok(Some(Frame::Item { seq, payload })) => self.call.on_client_item(seq, payload),
            Ok(Some(Frame::End { items })) => self.call.on_client_end(items),
            Ok(Some(other)) => Err(rpcnet_session::CallError::protocol(format!(
                "unexpected {} frame after the REQUEST",
                other.frame_type().name()
            ))),
            Ok(None) if self.call.client_done() => Ok(None),
            Ok(None) => Err(rpcnet_session::CallError::protocol(
                "the client's stream ended without an END frame",
            )),
            Err(e) => {
                // The client reset its side or its connection is gone.
                let code = match e.code {
                    _ if self.resumable => app_code(ErrorCode::Unavailable),
                    ErrorCode::Unavailable => app_code(ErrorCode::Cancelled),
                    code => app_code(code),
                };
                let _ = wr.stop(code);
                let _ = ws.reset(code);
                if !self.resumable {
                    let _ = self.client_send.reset(code);
                }
                self.call.cancel();
                return FromClient::Over;
            }
        };
        match forward {
            Ok(Some(f)) => FromClient::Forward(f.to_bytes()),
            Ok(None) => FromClient::Nothing,
            Err(e) => {
                let code = app_code(e.code);
                let _ = wr.stop(app_code(ErrorCode::Cancelled));
                let _ = ws.reset(app_code(ErrorCode::Cancelled));
                let _ = self.client_recv.stop(code);
                self.call.cancel();
                send_error(self.client_send, e.into()).await;
                FromClient::Over
            }
        }
    }

    /// Runs every complete buffered frame through the relay machine; returns the bytes for the
    /// client (one write) and what to do next.
    fn decode_all(
        &mut self,
        decoder: &mut Decoder,
        buf: &mut BytesMut,
        eof: bool,
    ) -> (Vec<Bytes>, Step) {
        let mut out = Vec::new();
        loop {
            let decoded = if eof {
                decoder.decode_eof_raw(buf)
            } else {
                decoder.decode_raw(buf)
            };
            let (frame, raw) = match decoded {
                Ok(Some(f)) => f,
                Ok(None) => return (out, Step::Read),
                Err(e) if matches!(e.kind(), FrameErrorKind::MetadataTooLarge { .. }) => {
                    // The handler's own metadata is too large: running it again elsewhere would
                    // do the same, so the call ends here (PROTOCOL.md section 5.6).
                    self.call.cancel();
                    let error = Frame::Error {
                        code: ErrorCode::Internal,
                        message: format!("the worker's response {e}"),
                    };
                    out.push(error.to_bytes());
                    return (out, Step::Finished);
                }
                Err(e) => {
                    self.call.owner_lost(now_ms());
                    return (
                        out,
                        Step::Leave(format!("owner sent a malformed frame: {e}")),
                    );
                }
            };
            match self.call.on_owner_frame(frame, now_ms()) {
                // The item goes out exactly as the owner encoded it (same seq, same payload).
                OwnerFrame::Forward(Frame::Item { .. }) => out.push(raw),
                OwnerFrame::Forward(f) => out.push(f.to_bytes()),
                OwnerFrame::Absorbed => {}
                OwnerFrame::Suspended => return (out, Step::Leave("suspended".into())),
                OwnerFrame::Finished(frames) => {
                    out.extend(frames.iter().map(Frame::to_bytes));
                    return (out, Step::Finished);
                }
                OwnerFrame::OwnerFailed(why) => return (out, Step::Leave(why)),
                OwnerFrame::Superseded { generation, error } => {
                    return (out, Step::Superseded { generation, error })
                }
            }
        }
    }

    fn lost(&mut self, why: String) -> Pumped {
        self.call.owner_lost(now_ms());
        Pumped::Again(why)
    }
}

/// What the relay does after the frames it could decode.
enum Step {
    /// Read more from the owner.
    Read,
    /// The call is over.
    Finished,
    /// Leave this owner (suspended or failed).
    Leave(String),
    /// The session was resumed through another director (SUPERSEDED).
    Superseded {
        /// The session's generation at the owner.
        generation: u32,
        /// The ERROR frame for the client.
        error: Frame,
    },
}

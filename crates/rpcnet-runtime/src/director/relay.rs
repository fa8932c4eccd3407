//! One client call relayed by the director (DESIGN.md: "relayed in Rust, never through JS").
//!
//! The relay reads the client's REQUEST, opens a stream to the session's owner with ATTACH +
//! REQUEST (PROTOCOL.md "Cluster link frames") and forwards the owner's frames to the client.
//! It tracks `expected`, the next item seq the client needs, and the latest CHECKPOINT. When the
//! owner answers SUSPENDED (State Capture of a migration) or dies (failover), the relay waits for
//! the session's next route and re-attaches there with `next_seq = expected` and the checkpoint;
//! items below `expected` that a resumed handler produces again are dropped here, so the client
//! sees every item exactly once, in order, on its one stream.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::{Inner, Route, Session, WorkerLink};
use crate::error::{app_code, RpcError};
use rpcnet_protocol::{Attach, Decoder, ErrorCode, Frame};

/// How long a call waits for a usable route (a live owner, not frozen) before failing, ms.
const ROUTE_WAIT_MS: u64 = 10_000;

enum Pumped {
    /// The call ended (terminal frame forwarded, or the client went away).
    Finished,
    /// The owner froze the call for a migration.
    Suspended,
    /// The owner failed (died, reset, broke the protocol); try the next route.
    OwnerFailed(String),
}

async fn read_request(
    recv: &mut quinn::RecvStream,
    max: u32,
) -> Result<rpcnet_protocol::Request, RpcError> {
    let mut decoder = Decoder::new(max);
    let mut buf = BytesMut::new();
    let mut eof = false;
    loop {
        let f = if eof {
            decoder.decode_eof(&mut buf)?
        } else {
            decoder.decode(&mut buf)?
        };
        match f {
            Some(Frame::Request(r)) if buf.is_empty() => return Ok(r),
            Some(Frame::Request(_)) => {
                return Err(RpcError::protocol(format!(
                    "{} bytes follow the REQUEST frame",
                    buf.len()
                )))
            }
            Some(other) => {
                return Err(RpcError::protocol(format!(
                    "expected REQUEST as the first frame of a call, got {}",
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

/// Waits for a route whose owner is alive and that is not frozen; `after_epoch` demands a newer
/// route than the one that just failed or suspended.
async fn next_route(
    inner: &Inner,
    session: &Session,
    after_epoch: Option<u64>,
) -> Result<(Route, Arc<WorkerLink>), RpcError> {
    let mut rx = session.route.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ROUTE_WAIT_MS);
    loop {
        let route = rx.borrow_and_update().clone();
        let newer = after_epoch.is_none_or(|e| route.epoch > e);
        if newer && !route.frozen {
            if let Some(w) = inner.worker(&route.owner).filter(|w| w.alive()) {
                return Ok((route, w));
            }
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            return Err(RpcError::unavailable(format!(
                "no live worker for session {} within {ROUTE_WAIT_MS} ms",
                session.id
            )));
        }
    }
}

pub(crate) async fn relay(
    inner: Arc<Inner>,
    session: Arc<Session>,
    mut client_send: quinn::SendStream,
    client_recv: quinn::RecvStream,
) {
    let mut client_recv = crate::recv::ReadToFin::new(client_recv);
    let request = match read_request(&mut client_recv, inner.config.max_frame_size).await {
        Ok(r) => r,
        Err(e) => {
            let _ = client_send
                .write_all(
                    &Frame::Error {
                        code: e.code,
                        message: e.message.clone(),
                    }
                    .to_bytes(),
                )
                .await;
            let _ = client_send.finish();
            let _ = client_recv.stop(app_code(e.code));
            return;
        }
    };
    let call_id = inner
        .next_call
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let request_bytes = Frame::Request(request).to_bytes();
    session.checkpoints.lock().unwrap().insert(call_id, None);
    let client_stopped = client_send.stopped();
    tokio::pin!(client_stopped);
    let mut expected: u64 = 0;
    let mut after_epoch = None;
    loop {
        let routed = tokio::select! {
            r = next_route(&inner, &session, after_epoch) => r,
            _ = client_stopped.as_mut() => break, // the client cancelled while the call waited
        };
        let (route, owner) = match routed {
            Ok(r) => r,
            Err(e) => {
                let _ = client_send
                    .write_all(
                        &Frame::Error {
                            code: e.code,
                            message: e.message,
                        }
                        .to_bytes(),
                    )
                    .await;
                let _ = client_send.finish();
                break;
            }
        };
        let checkpoint = session
            .checkpoints
            .lock()
            .unwrap()
            .get(&call_id)
            .cloned()
            .flatten();
        let attach = Frame::Attach(Attach {
            session_id: session.id,
            call_id,
            next_seq: expected,
            connection_id: session.connection_id.clone(),
            checkpoint,
        });
        let outcome = pump(
            &session,
            call_id,
            &owner,
            attach.to_bytes(),
            request_bytes.clone(),
            &mut client_send,
            &mut client_stopped,
            &mut expected,
        )
        .await;
        match outcome {
            Pumped::Finished => break,
            Pumped::Suspended => {
                tracing::debug!(session = session.id, call_id, expected, owner = %owner.id, "call suspended; waiting for the pivot");
                // Wait for a route change at or after the one that suspended us.
                after_epoch = Some(route.epoch);
            }
            Pumped::OwnerFailed(why) => {
                tracing::debug!(session = session.id, call_id, expected, owner = %owner.id, %why, "owner failed; waiting for failover");
                after_epoch = Some(route.epoch);
            }
        }
    }
    session.checkpoints.lock().unwrap().remove(&call_id);
}

#[allow(clippy::too_many_arguments)]
async fn pump(
    session: &Session,
    call_id: u64,
    owner: &WorkerLink,
    attach: Bytes,
    request: Bytes,
    client_send: &mut quinn::SendStream,
    client_stopped: &mut std::pin::Pin<
        &mut impl std::future::Future<Output = Result<Option<quinn::VarInt>, quinn::StoppedError>>,
    >,
    expected: &mut u64,
) -> Pumped {
    let _active = owner.track_stream();
    let (mut ws, mut wr) = match owner.link.connection().quinn().open_bi().await {
        Ok(s) => s,
        Err(e) => return Pumped::OwnerFailed(format!("cannot open a stream: {e}")),
    };
    let mut head = [attach, request];
    if let Err(e) = ws.write_all_chunks(&mut head).await {
        return Pumped::OwnerFailed(format!("cannot send the request: {e}"));
    }
    let _ = ws.finish();
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::new();
    let mut eof = false;
    loop {
        // Forward every complete frame already buffered, in one write.
        let mut out: Vec<Bytes> = Vec::new();
        let mut terminal = false;
        let mut failed: Option<String> = None;
        loop {
            let frame = match if eof {
                decoder.decode_eof(&mut buf)
            } else {
                decoder.decode(&mut buf)
            } {
                Ok(f) => f,
                Err(e) => {
                    failed = Some(format!("owner sent a malformed frame: {e}"));
                    break;
                }
            };
            let Some(frame) = frame else { break };
            match frame {
                Frame::Item { seq, payload } => {
                    if seq < *expected {
                        continue; // the client already has it (a resumed handler replays)
                    }
                    if seq > *expected {
                        failed = Some(format!("owner skipped from seq {} to {seq}", *expected));
                        break;
                    }
                    let mut h = BytesMut::with_capacity(14);
                    rpcnet_protocol::frame::encode_item_header(seq, payload.len(), &mut h);
                    out.push(h.freeze());
                    out.push(payload);
                    *expected += 1;
                }
                Frame::Checkpoint { seq, state } => {
                    session
                        .checkpoints
                        .lock()
                        .unwrap()
                        .insert(call_id, Some((seq, state)));
                }
                Frame::Suspended { next_seq } => {
                    if !out.is_empty() {
                        let _ = client_send.write_all_chunks(&mut out).await;
                    }
                    if next_seq != *expected {
                        tracing::warn!(
                            next_seq,
                            expected = *expected,
                            "SUSPENDED does not match the items relayed"
                        );
                    }
                    return Pumped::Suspended;
                }
                Frame::End { .. } => {
                    out.push(Frame::End { items: *expected }.to_bytes());
                    terminal = true;
                    break;
                }
                f @ (Frame::Response { .. } | Frame::Error { .. }) => {
                    out.push(f.to_bytes());
                    terminal = true;
                    break;
                }
                other => {
                    failed = Some(format!(
                        "unexpected {} frame from the owner",
                        other.frame_type().name()
                    ));
                    break;
                }
            }
        }
        // Items counted in `expected` must reach the client before anything else happens, or a
        // re-attach at `expected` would skip them.
        if !out.is_empty() {
            if let Err(e) = client_send.write_all_chunks(&mut out).await {
                // The client is gone or cancelled: stop the owner's work too.
                let code = RpcError::from(e).code;
                let _ = wr.stop(app_code(code));
                return Pumped::Finished;
            }
        }
        if let Some(why) = failed {
            return Pumped::OwnerFailed(why);
        }
        if terminal {
            let _ = client_send.finish();
            return Pumped::Finished;
        }
        if eof {
            return Pumped::OwnerFailed("owner ended the stream without a result".into());
        }
        tokio::select! {
            chunk = wr.read_chunk(256 * 1024, true) => match chunk {
                Ok(Some(c)) => buf.extend_from_slice(&c.bytes),
                Ok(None) => eof = true,
                Err(quinn::ReadError::Reset(code)) if code == app_code(ErrorCode::Cancelled) || code == app_code(ErrorCode::DeadlineExceeded) => {
                    let _ = client_send.reset(code);
                    return Pumped::Finished;
                }
                Err(e) => return Pumped::OwnerFailed(format!("owner stream failed: {e}")),
            },
            _ = owner.dead.cancelled() => return Pumped::OwnerFailed("owner declared dead".into()),
            r = client_stopped.as_mut() => {
                let code = match r { Ok(Some(c)) => c, _ => app_code(ErrorCode::Cancelled) };
                let _ = wr.stop(code);
                let _ = ws.reset(code);
                let _ = client_send.reset(code);
                return Pumped::Finished;
            }
        }
    }
}

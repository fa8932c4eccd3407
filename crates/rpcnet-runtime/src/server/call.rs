//! One call on one bidirectional stream, server side (PROTOCOL.md "Call lifecycle"): read and
//! validate the REQUEST, register the call, then write the RESPONSE or the ITEM/END sequence while
//! watching the deadline and the client's STOP_SENDING.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{CallSlot, ItemQueue, MethodKind, ServerEvent, Shared, Taken};
use crate::connection::ConnectionInfo;
use crate::error::{app_code, RpcError};
use crate::server::item_queue::Ending;
use crate::server::item_queue::Entry;
use rpcnet_protocol::frame::encode_item_header;
use rpcnet_protocol::migration::CallSnapshot;
use rpcnet_protocol::Attach;
use rpcnet_protocol::{Decoder, ErrorCode, Frame, Request};

/// Items produced but not sent, `(seq, payload)` in seq order.
type PendingItems = Vec<(u64, Bytes)>;

/// Most items written to the stream in one batch.
const WRITE_BATCH: usize = 256;

/// Reads the first frames of a call: the REQUEST, preceded by an ATTACH on a cluster link.
async fn read_head(
    recv: &mut quinn::RecvStream,
    max_frame_size: u32,
    link: bool,
) -> Result<(Option<Attach>, Request), RpcError> {
    let mut decoder = Decoder::new(max_frame_size);
    let mut buf = BytesMut::new();
    let mut attach = None;
    let mut eof = false;
    loop {
        let frame = if eof {
            decoder.decode_eof(&mut buf)?
        } else {
            decoder.decode(&mut buf)?
        };
        match frame {
            Some(Frame::Request(r)) => {
                // PROTOCOL.md 3.3: the REQUEST is the client's last frame on the stream.
                if !buf.is_empty() {
                    return Err(RpcError::protocol(format!(
                        "{} bytes follow the REQUEST frame",
                        buf.len()
                    )));
                }
                return Ok((attach, r));
            }
            Some(Frame::Attach(a)) if link && attach.is_none() => attach = Some(a),
            Some(other) => {
                return Err(RpcError::protocol(format!(
                    "expected {} as the first frame of a call, got {}",
                    if link { "ATTACH or REQUEST" } else { "REQUEST" },
                    other.frame_type().name()
                )))
            }
            None if eof => {
                return Err(RpcError::protocol("stream finished before a REQUEST frame"))
            }
            None => match recv.read_chunk(64 * 1024, true).await? {
                Some(chunk) => buf.extend_from_slice(&chunk.bytes),
                None => eof = true,
            },
        }
    }
}

fn error_frame(e: &RpcError) -> Bytes {
    Frame::Error {
        code: e.code,
        message: e.message.clone(),
    }
    .to_bytes()
}

async fn fail(send: &mut quinn::SendStream, recv: &mut quinn::RecvStream, e: RpcError) {
    let _ = send.write_all(&error_frame(&e)).await;
    let _ = send.finish();
    if e.code == ErrorCode::Protocol || e.code == ErrorCode::ResourceExhausted {
        let _ = recv.stop(app_code(e.code));
    }
}

/// The later of two checkpoints (by seq).
fn later(a: Option<(u64, Bytes)>, b: Option<(u64, Bytes)>) -> Option<(u64, Bytes)> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y.0 > x.0 { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

pub(crate) async fn serve_call(
    shared: Arc<Shared>,
    connection: ConnectionInfo,
    mut send: quinn::SendStream,
    recv: quinn::RecvStream,
) {
    let mut recv = crate::recv::ReadToFin::new(recv);
    let link = shared.config.cluster.is_some();
    let (attach, request) = match read_head(&mut recv, shared.config.max_frame_size, link).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(connection_id = %connection.id, error = %e, "bad request");
            return fail(&mut send, &mut recv, e).await;
        }
    };
    let kind = shared.methods.read().unwrap().get(&request.method).copied();
    let kind = match kind {
        None => {
            let e = RpcError::new(
                ErrorCode::NotFound,
                format!("no such method: {}", request.method),
            );
            return fail(&mut send, &mut recv, e).await;
        }
        Some(k) => k,
    };
    if request.streaming != (kind == MethodKind::ServerStreaming) {
        let e = RpcError::invalid_argument(format!(
            "method {} is {}, but the request's STREAMING flag is {}",
            request.method,
            if kind == MethodKind::Unary {
                "unary"
            } else {
                "server-streaming"
            },
            if request.streaming { "set" } else { "clear" },
        ));
        return fail(&mut send, &mut recv, e).await;
    }

    let id = shared
        .next_id
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let deadline = (request.deadline_ms > 0)
        .then(|| Instant::now() + Duration::from_millis(request.deadline_ms.into()));
    let deadline_ms = request.deadline_ms;
    let stopped = send.stopped();
    tokio::pin!(stopped);
    let sleep = async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep);
    let client_connection_id = attach
        .as_ref()
        .map_or_else(|| connection.id.clone(), |a| a.connection_id.clone());

    match kind {
        MethodKind::Unary => {
            let (tx, rx) = oneshot::channel();
            shared.calls.lock().unwrap().insert(id, CallSlot::Unary(tx));
            shared.emit(ServerEvent::Call {
                id,
                method: request.method,
                payload: request.payload,
                kind,
                deadline_ms,
                connection,
                client_connection_id,
                resume: None,
            });
            let outcome = tokio::select! {
                r = rx => Some(r.unwrap_or_else(|_| Err(RpcError::internal("handler dropped the call")))),
                _ = &mut sleep => {
                    shared.emit(ServerEvent::Cancelled { id, code: ErrorCode::DeadlineExceeded, message: format!("deadline of {deadline_ms} ms exceeded") });
                    Some(Err(RpcError::deadline_exceeded(deadline_ms)))
                }
                r = &mut stopped => {
                    let code = stop_code(r);
                    shared.emit(ServerEvent::Cancelled { id, code, message: "the client cancelled the call".into() });
                    None
                }
            };
            shared.calls.lock().unwrap().remove(&id);
            match outcome {
                Some(Ok(payload)) => {
                    let _ = send
                        .write_all(&Frame::Response { payload }.to_bytes())
                        .await;
                    let _ = send.finish();
                }
                Some(Err(e)) => {
                    let _ = send.write_all(&error_frame(&e)).await;
                    let _ = send.finish();
                }
                None => {
                    let _ = send.reset(app_code(ErrorCode::Cancelled));
                }
            }
        }
        MethodKind::ServerStreaming => {
            // Where this call (re)starts: a restored snapshot's pending items are sent first, the
            // handler resumes at the latest checkpoint, and no item below `skip_below` (what the
            // client already has, or what the pending items cover) is sent again.
            let restored = attach
                .as_ref()
                .and_then(|a| shared.sessions.take_restored(a.session_id, a.call_id));
            if let Some(a) = attach
                .as_ref()
                .filter(|a| restored.is_none() && shared.sessions.is_frozen(a.session_id))
            {
                // The session was captured (it is moving): this call belongs to the next owner.
                let _ = send
                    .write_all(
                        &Frame::Suspended {
                            next_seq: a.next_seq,
                        }
                        .to_bytes(),
                    )
                    .await;
                let _ = send.finish();
                return;
            }
            let client_next = attach.as_ref().map_or(0, |a| a.next_seq);
            let mut checkpoint = attach.as_ref().and_then(|a| a.checkpoint.clone());
            let mut skip_below = client_next;
            let mut first_writes: Vec<Bytes> = Vec::new();
            let restored_any = restored.is_some();
            if let Some(r) = restored {
                checkpoint = later(checkpoint, r.checkpoint.clone());
                for (seq, item) in r.pending {
                    if seq >= client_next {
                        let mut head = BytesMut::with_capacity(14);
                        encode_item_header(seq, item.len(), &mut head);
                        first_writes.push(head.freeze());
                        first_writes.push(item);
                    }
                    skip_below = skip_below.max(seq + 1);
                }
            }
            if attach.is_some() && checkpoint.is_none() && (client_next > 0 || restored_any) {
                checkpoint = Some((0, Bytes::new()));
            }
            let mut seq: u64 = checkpoint.as_ref().map_or(0, |c| c.0);
            let mut latest = checkpoint.clone();

            let queue = Arc::new(ItemQueue::new(
                shared.config.stream_window_items,
                shared.config.stream_window_bytes,
            ));
            shared
                .calls
                .lock()
                .unwrap()
                .insert(id, CallSlot::Streaming(queue.clone()));
            let mut freeze = attach.as_ref().map(|a| {
                shared
                    .sessions
                    .open_call(a.session_id, &a.connection_id, a.call_id)
            });
            let method = request.method.clone();
            let payload = request.payload.clone();
            shared.emit(ServerEvent::Call {
                id,
                method: request.method,
                payload: request.payload,
                kind,
                deadline_ms,
                connection,
                client_connection_id,
                resume: checkpoint,
            });
            if !first_writes.is_empty() {
                if let Err(e) = send.write_all_chunks(&mut first_writes).await {
                    tracing::debug!(error = %e, "writing restored items failed");
                }
            }
            enum Stop {
                Done,
                Early(ErrorCode, bool),
                Frozen,
            }
            let a_ids = attach.as_ref().map(|a| a.call_id);
            let snapshot = |next_seq: u64,
                            pending: Vec<(u64, Bytes)>,
                            latest: Option<(u64, Bytes)>| CallSnapshot {
                call_id: a_ids.expect("freeze only on attached calls"),
                method: method.clone(),
                request: payload.clone(),
                streaming: true,
                deadline_ms,
                next_seq,
                pending,
                checkpoint: latest,
            };
            let result: Stop = 'call: loop {
                let taken = tokio::select! {
                    t = queue.take(WRITE_BATCH) => t,
                    _ = &mut sleep => break Stop::Early(ErrorCode::DeadlineExceeded, true),
                    r = &mut stopped => break Stop::Early(stop_code(r), false),
                    f = next_freeze(&mut freeze) => {
                        // State Capture at an item boundary, with nothing in flight.
                        suspend(&mut send, &queue, f, Vec::new(), &mut seq, skip_below, &mut latest, &snapshot).await;
                        break Stop::Frozen;
                    }
                };
                match taken {
                    Taken::Items(entries) => {
                        // Frames of this batch; `frames[i]` = (first chunk index, item seq and
                        // payload if it is an ITEM). Writes go through `write_chunks`, which is
                        // cancel-safe, so a freeze can stop at the first frame not yet started.
                        let mut chunks: Vec<Bytes> = Vec::with_capacity(entries.len() * 2);
                        let mut frames: Vec<(usize, Option<(u64, Bytes)>)> =
                            Vec::with_capacity(entries.len());
                        for entry in entries {
                            match entry {
                                Entry::Item(item) => {
                                    if seq >= skip_below {
                                        let mut head = BytesMut::with_capacity(14);
                                        encode_item_header(seq, item.len(), &mut head);
                                        frames.push((chunks.len(), Some((seq, item.clone()))));
                                        chunks.push(head.freeze());
                                        chunks.push(item);
                                    }
                                    seq += 1;
                                }
                                Entry::Checkpoint(state) => {
                                    if link {
                                        frames.push((chunks.len(), None));
                                        chunks.push(
                                            Frame::Checkpoint {
                                                seq,
                                                state: state.clone(),
                                            }
                                            .to_bytes(),
                                        );
                                    }
                                    latest = Some((seq, state));
                                }
                            }
                        }
                        let lengths: Vec<usize> = chunks.iter().map(Bytes::len).collect();
                        let mut pos = 0;
                        let mut deferred_freeze: Option<oneshot::Sender<CallSnapshot>> = None;
                        while pos < chunks.len() {
                            // The frame that holds chunk `pos`, and whether none of it is written.
                            let current = frames.partition_point(|f| f.0 <= pos) - 1;
                            let untouched =
                                frames[current].0 == pos && chunks[pos].len() == lengths[pos];
                            if untouched {
                                if let Some(reply) =
                                    deferred_freeze.take().filter(|r| !r.is_closed())
                                {
                                    let unsent: Vec<(u64, Bytes)> = frames[current..]
                                        .iter()
                                        .filter_map(|f| f.1.clone())
                                        .collect();
                                    suspend(
                                        &mut send,
                                        &queue,
                                        reply,
                                        unsent,
                                        &mut seq,
                                        skip_below,
                                        &mut latest,
                                        &snapshot,
                                    )
                                    .await;
                                    break 'call Stop::Frozen;
                                }
                            }
                            tokio::select! {
                                w = send.write_chunks(&mut chunks[pos..]) => match w {
                                    Ok(w) => pos += w.chunks,
                                    Err(e) => break 'call Stop::Early(RpcError::from(e).code, false),
                                },
                                f = next_freeze(&mut freeze), if deferred_freeze.is_none() => deferred_freeze = Some(f),
                                _ = &mut sleep => break 'call Stop::Early(ErrorCode::DeadlineExceeded, true),
                            }
                        }
                        if let Some(reply) = deferred_freeze.filter(|r| !r.is_closed()) {
                            // Asked to freeze while the batch's last frame was being written.
                            suspend(
                                &mut send,
                                &queue,
                                reply,
                                Vec::new(),
                                &mut seq,
                                skip_below,
                                &mut latest,
                                &snapshot,
                            )
                            .await;
                            break Stop::Frozen;
                        }
                    }
                    Taken::Ended(Ending::End) => {
                        let _ = send
                            .write_all(
                                &Frame::End {
                                    items: seq.max(skip_below),
                                }
                                .to_bytes(),
                            )
                            .await;
                        let _ = send.finish();
                        break Stop::Done;
                    }
                    Taken::Ended(Ending::Error(e)) => {
                        let _ = send.write_all(&error_frame(&e)).await;
                        let _ = send.finish();
                        break Stop::Done;
                    }
                }
            };
            queue.close();
            shared.calls.lock().unwrap().remove(&id);
            if let Some(a) = &attach {
                shared.sessions.close_call(a.session_id, a.call_id);
            }
            match result {
                Stop::Done => {}
                Stop::Frozen => {
                    tracing::debug!(id, "streaming call frozen for migration");
                    shared.emit(ServerEvent::Cancelled {
                        id,
                        code: ErrorCode::Unavailable,
                        message: "the session migrated to another worker".into(),
                    });
                }
                Stop::Early(code, tell_client) => {
                    tracing::debug!(id, %code, "streaming call ended early");
                    let message = match code {
                        ErrorCode::DeadlineExceeded => {
                            format!("deadline of {deadline_ms} ms exceeded")
                        }
                        ErrorCode::Cancelled => "the client cancelled the call".into(),
                        _ => "the connection was lost".into(),
                    };
                    shared.emit(ServerEvent::Cancelled { id, code, message });
                    if tell_client {
                        let _ = send
                            .write_all(&error_frame(&RpcError::deadline_exceeded(deadline_ms)))
                            .await;
                        let _ = send.finish();
                    } else {
                        let _ = send.reset(app_code(code));
                    }
                }
            }
        }
    }
}

/// Waits for the next live freeze request (State Capture); requests whose capture already gave up
/// (reply channel closed) are skipped. Pends forever on a call that cannot be frozen.
async fn next_freeze(
    freeze: &mut Option<tokio::sync::mpsc::UnboundedReceiver<oneshot::Sender<CallSnapshot>>>,
) -> oneshot::Sender<CallSnapshot> {
    loop {
        let Some(rx) = freeze.as_mut() else {
            return std::future::pending().await;
        };
        match rx.recv().await {
            Some(reply) if !reply.is_closed() => return reply,
            Some(_) => continue,
            None => *freeze = None,
        }
    }
}

/// State Capture of one call (RFC-001 phase 4): closes its queue, answers the freeze request with
/// the call's state (`unsent` items of the batch in flight, then the queued ones) and ends the
/// stream with SUSPENDED at the first seq not sent.
#[allow(clippy::too_many_arguments)]
async fn suspend(
    send: &mut quinn::SendStream,
    queue: &ItemQueue,
    reply: oneshot::Sender<CallSnapshot>,
    unsent: Vec<(u64, Bytes)>,
    seq: &mut u64,
    skip_below: u64,
    latest: &mut Option<(u64, Bytes)>,
    snapshot: &(dyn Fn(u64, PendingItems, Option<(u64, Bytes)>) -> CallSnapshot + Sync),
) {
    let (rest, _ending) = queue.close_and_drain();
    let (next_seq, pending) = take_pending(unsent, rest, seq, skip_below, latest);
    let _ = reply.send(snapshot(next_seq, pending, latest.clone()));
    let _ = send
        .write_all(&Frame::Suspended { next_seq }.to_bytes())
        .await;
    let _ = send.finish();
}

/// The items a frozen call has produced but not sent, in seq order: `unsent` (already numbered,
/// from the batch being written) then the queue's `rest` (numbered from `seq` on). Items below
/// `skip_below` are ones the client has. Returns the first seq not sent and the pending items.
fn take_pending(
    unsent: Vec<(u64, Bytes)>,
    rest: Vec<Entry>,
    seq: &mut u64,
    skip_below: u64,
    latest: &mut Option<(u64, Bytes)>,
) -> (u64, Vec<(u64, Bytes)>) {
    let mut pending = unsent;
    for entry in rest {
        match entry {
            Entry::Item(item) => {
                if *seq >= skip_below {
                    pending.push((*seq, item));
                }
                *seq += 1;
            }
            Entry::Checkpoint(state) => *latest = Some((*seq, state)),
        }
    }
    let next_seq = pending.first().map_or((*seq).max(skip_below), |p| p.0);
    (next_seq, pending)
}

fn stop_code(r: Result<Option<quinn::VarInt>, quinn::StoppedError>) -> ErrorCode {
    match r {
        Ok(Some(code)) => u16::try_from(code.into_inner())
            .ok()
            .and_then(ErrorCode::from_u16)
            .unwrap_or(ErrorCode::Cancelled),
        Ok(None) => ErrorCode::Cancelled,
        Err(_) => ErrorCode::Unavailable,
    }
}

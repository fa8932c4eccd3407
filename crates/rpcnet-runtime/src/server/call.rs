//! One call on one bidirectional stream, server side (PROTOCOL.md "Call lifecycle"): read and
//! validate the REQUEST, register the call, then write the RESPONSE or the ITEM/END sequence while
//! watching the deadline and the client's STOP_SENDING.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::inbound::{read_client_items, Inbound};
use super::{CallSlot, ItemQueue, MethodKind, ServerEvent, Shared, Taken};
use crate::connection::ConnectionInfo;
use crate::error::{app_code, RpcError};
use crate::request_tail::RequestTail;
use crate::server::item_queue::Ending;
use rpcnet_protocol::frame::encode_item_header;
use rpcnet_protocol::migration::CallSnapshot;
use rpcnet_protocol::Attach;
use rpcnet_protocol::{Decoder, ErrorCode, Frame, Metadata, Request, Version};
use rpcnet_session::participant::AttachDecision;
use rpcnet_session::{ClientItems, ServerCall};

/// The metadata limit of a cluster link: the client's limit plus room for the director's
/// `rpcnet-session-id` entry (3 + 17 + 16 = 36 bytes; PROTOCOL.md section 5.6).
const LINK_MAX_METADATA_SIZE: u32 = rpcnet_protocol::metadata::DEFAULT_MAX_METADATA_SIZE + 64;

/// Most items written to the stream in one batch.
const WRITE_BATCH: usize = 256;

/// Most items a resumable call keeps unacknowledged before its writer pauses (PROTOCOL.md
/// section 15.4); the client ACKs far more often (every 64 items or 256 KiB).
const RETAIN_MAX_ITEMS: usize = 8_192;
/// Most payload bytes a resumable call keeps unacknowledged before its writer pauses.
const RETAIN_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Reads the first frames of a call: the REQUEST, preceded by an ATTACH on a cluster link.
/// Returns the bytes read after the REQUEST too: on a resumable call's link stream (ATTACH flag
/// RESUMABLE) ACK frames follow it (PROTOCOL.md section 15.4); anywhere else nothing may.
async fn read_head(
    recv: &mut quinn::RecvStream,
    decoder: Decoder,
    link: bool,
) -> Result<(Option<Attach>, Request, BytesMut), RpcError> {
    let mut decoder = decoder;
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
                // PROTOCOL.md 3.3: the REQUEST is the client's last frame on the stream, unless
                // ACKs (a resumable session's link) or client items (section 3.4) follow it.
                let resumable = attach.as_ref().is_some_and(|a: &Attach| a.resumable);
                if !buf.is_empty() && !resumable && !r.client_streaming {
                    return Err(RpcError::protocol(format!(
                        "{} bytes follow the REQUEST frame",
                        buf.len()
                    )));
                }
                return Ok((attach, r, buf));
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

/// `last` (a final frame) after the TRAILERS of `trailers`, which go out only if there are any
/// and the connection negotiated `rpcnet/2` (PROTOCOL.md section 5.6).
fn with_trailers(version: Version, trailers: Metadata, last: Bytes) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(2);
    if version >= Version::V2 && !trailers.is_empty() {
        out.push(Frame::Trailers { metadata: trailers }.to_bytes());
    }
    out.push(last);
    out
}

/// Answers an ATTACH with `frame` (SUSPENDED or SUPERSEDED, PROTOCOL.md sections 13.3 and
/// 15.6) and finishes the stream: the handler does not run here.
async fn answer(send: &mut quinn::SendStream, frame: Frame) {
    let _ = send.write_all(&frame.to_bytes()).await;
    let _ = send.finish();
}

async fn fail(send: &mut quinn::SendStream, recv: &mut quinn::RecvStream, e: RpcError) {
    let _ = send.write_all(&error_frame(&e)).await;
    let _ = send.finish();
    if e.code == ErrorCode::Protocol || e.code == ErrorCode::ResourceExhausted {
        let _ = recv.stop(app_code(e.code));
    }
}

/// Serves one call. `director`: on a cluster link, the fingerprint of the leaf certificate the
/// peer (a director) presented, which tells whose lease the call depends on.
pub(crate) async fn serve_call(
    shared: Arc<Shared>,
    connection: ConnectionInfo,
    director: Option<Arc<str>>,
    mut send: quinn::SendStream,
    recv: quinn::RecvStream,
) {
    let mut recv = crate::recv::ReadToFin::new(recv);
    let link = shared.config.cluster.is_some();
    let version = connection.version;
    let mut decoder = Decoder::new(shared.config.max_frame_size).with_version(version);
    if link {
        // Room for the header a director adds to the client's (PROTOCOL.md section 5.6).
        decoder = decoder.with_max_metadata_size(LINK_MAX_METADATA_SIZE);
    }
    let (attach, request, after_request) = match read_head(&mut recv, decoder, link).await {
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
                ErrorCode::Unimplemented,
                format!("no such method: {}", request.method),
            );
            return fail(&mut send, &mut recv, e).await;
        }
        Some(k) => k,
    };
    if let Some(e) = kind_mismatch(&request, kind) {
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
    // The client's items (PROTOCOL.md 3.4): read by a task of their own into a bounded queue
    // the handler pulls; the queue closes with the call. It starts where the handler reads
    // from (a resumed handler's checkpoint, section 13.6), so it is opened once that is known.
    let start_inbound = |recv: &mut crate::recv::ReadToFin,
                         rule: ClientItems,
                         acks: Option<tokio::sync::watch::Sender<u64>>| {
        let recv = recv.take();
        let q = Arc::new(Inbound::new(
            shared.config.stream_window_items,
            shared.config.stream_window_bytes,
        ));
        shared.inbound.lock().unwrap().insert(id, q.clone());
        let mut decoder = Decoder::new(shared.config.max_frame_size).with_version(version);
        if link {
            decoder = decoder.with_max_metadata_size(LINK_MAX_METADATA_SIZE);
        }
        let reader = read_client_items(recv, after_request.clone(), decoder, q.clone(), rule, acks);
        tokio::spawn(reader);
        (InboundGuard(&shared, id), q)
    };
    // Resolves when the client cancels by resetting its requests (a client-streaming call).
    let client_cancelled = |inbound: &Option<(InboundGuard<'_>, Arc<Inbound>)>| {
        let q = inbound.as_ref().map(|i| i.1.clone());
        async move {
            match q {
                Some(q) => q.cancelled().await,
                None => std::future::pending().await,
            }
        }
    };

    match kind.server_streaming() {
        false => {
            // A resumable session's unary call goes through the book too, so that the session
            // is known here (a resume's claim finds it, PROTOCOL.md section 15.6) even if it
            // only ever made unary calls; a stale or superseded one is answered at once,
            // before its handler runs, so its relay may send it elsewhere.
            let registered = match attach.as_ref().filter(|a| a.resumable) {
                Some(a) => match shared.sessions.attach(a, director.as_deref()) {
                    AttachDecision::Serve(_) => Some((a.session_id, a.call_id)),
                    AttachDecision::Suspend { next_seq } => {
                        return answer(&mut send, Frame::Suspended { next_seq }).await;
                    }
                    AttachDecision::Superseded { generation } => {
                        return answer(&mut send, Frame::Superseded { generation }).await;
                    }
                },
                None => None,
            };
            let (tx, rx) = oneshot::channel();
            shared.calls.lock().unwrap().insert(id, CallSlot::Unary(tx));
            // A unary handler has no checkpoints: on a link it reads every item the director
            // replays from the first.
            let rule = if link {
                ClientItems::relayed(0)
            } else {
                ClientItems::plain()
            };
            let inbound = kind
                .client_streaming()
                .then(|| start_inbound(&mut recv, rule, None));
            let reset = client_cancelled(&inbound);
            tokio::pin!(reset);
            shared.emit(ServerEvent::Call {
                id,
                method: request.method,
                payload: request.payload,
                metadata: request.metadata,
                kind,
                deadline_ms,
                connection,
                client_connection_id,
                resume: None,
            });
            let outcome = tokio::select! {
                r = rx => Some(r.unwrap_or_else(|_| (Err(RpcError::internal("handler dropped the call")), Default::default()))),
                _ = &mut sleep => {
                    shared.emit(ServerEvent::Cancelled { id, code: ErrorCode::DeadlineExceeded, message: format!("deadline of {deadline_ms} ms exceeded"), moved: false });
                    Some((Err(RpcError::deadline_exceeded(deadline_ms)), Default::default()))
                }
                r = &mut stopped => {
                    let code = stop_code(r);
                    shared.emit(ServerEvent::Cancelled { id, code, message: "the client cancelled the call".into(), moved: false });
                    None
                }
                code = &mut reset => {
                    shared.emit(ServerEvent::Cancelled { id, code, message: "the client cancelled the call".into(), moved: false });
                    None
                }
            };
            shared.calls.lock().unwrap().remove(&id);
            match outcome {
                Some((result, metadata)) => {
                    let last = match result {
                        Ok(payload) => Frame::Response { payload }.to_bytes(),
                        Err(e) => error_frame(&e),
                    };
                    let mut out = with_trailers(version, metadata.trailers, last);
                    if version >= Version::V2 && !metadata.headers.is_empty() {
                        let headers = Frame::Headers {
                            metadata: metadata.headers,
                        };
                        out.insert(0, headers.to_bytes());
                    }
                    let _ = send.write_all_chunks(&mut out).await;
                    let _ = send.finish();
                }
                None => {
                    let _ = send.reset(app_code(ErrorCode::Cancelled));
                }
            }
            if let Some((session_id, call_id)) = registered {
                shared.sessions.close_call(session_id, call_id);
            }
        }
        true => {
            // Where this call (re)starts is the session core's decision: an ATTACH may be stale
            // or arrive while the session is captured (SUSPENDED at once), and a served one
            // resumes from the latest checkpoint and any kept or restored state.
            let decision = attach
                .as_ref()
                .map(|a| (a, shared.sessions.attach(a, director.as_deref())));
            let restored = match decision {
                Some((_, AttachDecision::Suspend { next_seq })) => {
                    return answer(&mut send, Frame::Suspended { next_seq }).await;
                }
                Some((_, AttachDecision::Superseded { generation })) => {
                    return answer(&mut send, Frame::Superseded { generation }).await;
                }
                Some((_, AttachDecision::Serve(r))) => r,
                None => None,
            };
            let (mut call, first) = match &attach {
                Some(a) => ServerCall::attached(a, &request, restored),
                None => (ServerCall::plain(&request), Vec::new()),
            };
            let mut first_writes: Vec<Bytes> = first.iter().map(Frame::to_bytes).collect();
            let rule = match attach {
                Some(_) => ClientItems::relayed(call.read_from()),
                None => ClientItems::plain(),
            };
            // A resumable session's ACKs come between the client's items: the item reader
            // passes them on to this call's writer.
            let resumable = attach.as_ref().is_some_and(|a| a.resumable);
            let (ack_tx, mut ack_rx) = tokio::sync::watch::channel(0u64);
            let inbound = kind
                .client_streaming()
                .then(|| start_inbound(&mut recv, rule, resumable.then_some(ack_tx)));
            let reset = client_cancelled(&inbound);
            tokio::pin!(reset);

            let queue = Arc::new(ItemQueue::new(
                shared.config.stream_window_items,
                shared.config.stream_window_bytes,
            ));
            shared
                .calls
                .lock()
                .unwrap()
                .insert(id, CallSlot::Streaming(queue.clone()));
            let mut freeze = attach
                .as_ref()
                .map(|a| shared.sessions.open_call(a.session_id, a.call_id));
            shared.emit(ServerEvent::Call {
                id,
                method: request.method,
                payload: request.payload,
                metadata: request.metadata,
                kind,
                deadline_ms,
                connection,
                client_connection_id,
                resume: call.resume().cloned(),
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
            let mut acks = RequestTail::acks(after_request, resumable && !kind.client_streaming());
            let mut acks_from_items = resumable && kind.client_streaming();
            let result: Stop = 'call: loop {
                let (unacked_items, unacked_bytes) = call.unacked();
                let retention_full =
                    unacked_items >= RETAIN_MAX_ITEMS || unacked_bytes >= RETAIN_MAX_BYTES;
                let taken = tokio::select! {
                    t = queue.take(WRITE_BATCH), if !retention_full => t,
                    // (select! evaluates a disabled branch's expression too, so no deref of a
                    // stream a client-item reader took.)
                    a = async {
                        match recv.get_mut() {
                            Some(r) => acks.next(r).await,
                            None => std::future::pending().await,
                        }
                    }, if acks.live() => match a {
                        Ok(Some(Frame::Ack { next_seq })) => {
                            call.on_ack(next_seq);
                            continue 'call;
                        }
                        Ok(Some(_)) => unreachable!("the tail reads ACKs only"),
                        Ok(None) => continue 'call,
                        Err(e) => break Stop::Early(e.code, false),
                    },
                    a = ack_rx.changed(), if acks_from_items => {
                        match a {
                            Ok(()) => call.on_ack(*ack_rx.borrow_and_update()),
                            Err(_) => acks_from_items = false, // the item reader is done
                        }
                        continue 'call;
                    }
                    _ = &mut sleep => break Stop::Early(ErrorCode::DeadlineExceeded, true),
                    r = &mut stopped => break Stop::Early(stop_code(r), false),
                    code = &mut reset => break Stop::Early(code, false),
                    f = next_freeze(&mut freeze) => {
                        // State Capture at an item boundary, with nothing in flight.
                        suspend(&mut send, &queue, f, Vec::new(), &mut call).await;
                        break Stop::Frozen;
                    }
                };
                match taken {
                    Taken::Items(entries) => {
                        // Frames of this batch; `frames[i]` = (first chunk index, item seq and
                        // payload if it is an ITEM). Writes go through `write_chunks`, which is
                        // cancel-safe, so a freeze can stop at the first frame not yet started.
                        let mut chunks: Vec<Bytes> = Vec::with_capacity(entries.len() * 2);
                        let mut frames: Vec<(usize, Option<Frame>)> =
                            Vec::with_capacity(entries.len());
                        for entry in entries {
                            match call.on_produced(entry) {
                                Some(Frame::Item { seq, payload }) => {
                                    let mut head = BytesMut::with_capacity(14);
                                    encode_item_header(seq, payload.len(), &mut head);
                                    let item = Frame::Item {
                                        seq,
                                        payload: payload.clone(),
                                    };
                                    frames.push((chunks.len(), Some(item)));
                                    chunks.push(head.freeze());
                                    chunks.push(payload);
                                }
                                // rpcnet/1 has no HEADERS (PROTOCOL.md section 2).
                                Some(Frame::Headers { .. }) if version == Version::V1 => {}
                                Some(f) => {
                                    frames.push((chunks.len(), None));
                                    chunks.push(f.to_bytes());
                                }
                                None => {}
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
                                    let unsent: Vec<Frame> = frames[current..]
                                        .iter()
                                        .filter_map(|f| f.1.clone())
                                        .collect();
                                    suspend(&mut send, &queue, reply, unsent, &mut call).await;
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
                            suspend(&mut send, &queue, reply, Vec::new(), &mut call).await;
                            break Stop::Frozen;
                        }
                    }
                    Taken::Ended(ending) => {
                        let (trailers, last) = match ending {
                            Ending::End(t) => (t, call.end().to_bytes()),
                            Ending::Error(e, t) => (t, error_frame(&e)),
                        };
                        let mut out = with_trailers(version, trailers, last);
                        let _ = send.write_all_chunks(&mut out).await;
                        let _ = send.finish();
                        break Stop::Done;
                    }
                }
            };
            let link_lost = matches!(result, Stop::Early(code, false)
                if resumable && !matches!(code, ErrorCode::Cancelled | ErrorCode::DeadlineExceeded));
            if let (true, Some(a)) = (link_lost, &attach) {
                // PROTOCOL.md 15.6: the director is gone (or lost its client); the call waits,
                // frozen with its unacknowledged items, for the client to resume.
                let (rest, _ending) = queue.close_and_drain();
                let (_, snapshot) = call.freeze(Vec::new(), rest);
                shared.sessions.detach(a.session_id, snapshot);
            }
            queue.close();
            shared.calls.lock().unwrap().remove(&id);
            // Our freeze receiver goes first, so that close_call tells our registration from a
            // re-attach's that may have replaced it.
            drop(freeze);
            if let Some(a) = &attach {
                shared.sessions.close_call(a.session_id, a.call_id);
            }
            match result {
                Stop::Done => {}
                Stop::Early(..) if link_lost => {
                    tracing::debug!(id, "resumable call detached: its director link was lost");
                    shared.emit(ServerEvent::Cancelled {
                        id,
                        code: ErrorCode::Unavailable,
                        message: "the director link was lost; the call is kept for a resume".into(),
                        moved: true,
                    });
                }
                Stop::Frozen => {
                    tracing::debug!(id, "streaming call frozen for migration");
                    shared.emit(ServerEvent::Cancelled {
                        id,
                        code: ErrorCode::Unavailable,
                        message: "the session migrated to another worker".into(),
                        moved: true,
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
                    shared.emit(ServerEvent::Cancelled {
                        id,
                        code,
                        message,
                        moved: false,
                    });
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

/// Removes a call's client-item queue when the call ends, closing it (its reader stops and a
/// handler still pulling gets `UNAVAILABLE`).
struct InboundGuard<'a>(&'a Shared, u64);

impl Drop for InboundGuard<'_> {
    fn drop(&mut self) {
        if let Some(q) = self.0.inbound.lock().unwrap().remove(&self.1) {
            q.close();
        }
    }
}

/// Why `request` does not fit the method's `kind` (its STREAMING and CLIENT_STREAMING flags,
/// PROTOCOL.md 3.3), if it does not: `INVALID_ARGUMENT`.
fn kind_mismatch(request: &Request, kind: MethodKind) -> Option<RpcError> {
    let flag = |set: bool| if set { "set" } else { "clear" };
    if request.streaming != kind.server_streaming() {
        return Some(RpcError::invalid_argument(format!(
            "method {} is {}, but the request's STREAMING flag is {}",
            request.method,
            kind.name(),
            flag(request.streaming),
        )));
    }
    if request.client_streaming != kind.client_streaming() {
        return Some(RpcError::invalid_argument(format!(
            "method {} is {}, but the request's CLIENT_STREAMING flag is {}",
            request.method,
            kind.name(),
            flag(request.client_streaming),
        )));
    }
    None
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
/// the call's state ([`ServerCall::freeze`] of the `unsent` frames of the batch in flight and the
/// queued entries) and ends the stream with SUSPENDED at the first seq not sent.
async fn suspend(
    send: &mut quinn::SendStream,
    queue: &ItemQueue,
    reply: oneshot::Sender<CallSnapshot>,
    unsent: Vec<Frame>,
    call: &mut ServerCall,
) {
    let (rest, _ending) = queue.close_and_drain();
    let (suspended, snapshot) = call.freeze(unsent, rest);
    let _ = reply.send(snapshot);
    let _ = send.write_all(&suspended.to_bytes()).await;
    let _ = send.finish();
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

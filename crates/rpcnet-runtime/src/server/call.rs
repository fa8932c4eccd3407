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
use rpcnet_protocol::frame::encode_item_header;
use rpcnet_protocol::{Decoder, ErrorCode, Frame, Request};

/// Most items written to the stream in one batch.
const WRITE_BATCH: usize = 256;

/// Reads frames until the REQUEST is complete. Errors carry the code to answer with.
pub(crate) async fn read_request(recv: &mut quinn::RecvStream, max_frame_size: u32) -> Result<Request, RpcError> {
    let mut decoder = Decoder::new(max_frame_size);
    let mut buf = BytesMut::new();
    loop {
        match recv.read_chunk(64 * 1024, true).await? {
            Some(chunk) => {
                buf.extend_from_slice(&chunk.bytes);
                if let Some(frame) = decoder.decode(&mut buf)? {
                    return match frame {
                        Frame::Request(r) => Ok(r),
                        other => Err(RpcError::protocol(format!(
                            "expected REQUEST as the first frame of a call, got {:?}",
                            other.frame_type()
                        ))),
                    };
                }
            }
            None => {
                decoder.decode_eof(&mut buf)?;
                return Err(RpcError::protocol("stream finished before a REQUEST frame"));
            }
        }
    }
}

fn error_frame(e: &RpcError) -> Bytes {
    Frame::Error { code: e.code, message: e.message.clone() }.to_bytes()
}

async fn fail(send: &mut quinn::SendStream, recv: &mut quinn::RecvStream, e: RpcError) {
    let _ = send.write_all(&error_frame(&e)).await;
    let _ = send.finish();
    if e.code == ErrorCode::Protocol || e.code == ErrorCode::ResourceExhausted {
        let _ = recv.stop(app_code(e.code));
    }
}

pub(crate) async fn serve_call(
    shared: Arc<Shared>,
    connection: ConnectionInfo,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let request = match read_request(&mut recv, shared.config.max_frame_size).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(connection_id = %connection.id, error = %e, "bad request");
            return fail(&mut send, &mut recv, e).await;
        }
    };
    let kind = shared.methods.read().unwrap().get(&request.method).copied();
    let kind = match kind {
        None => {
            let e = RpcError::new(ErrorCode::NotFound, format!("no such method: {}", request.method));
            return fail(&mut send, &mut recv, e).await;
        }
        Some(k) => k,
    };
    if request.streaming != (kind == MethodKind::ServerStreaming) {
        let e = RpcError::invalid_argument(format!(
            "method {} is {}, but the request's STREAMING flag is {}",
            request.method,
            if kind == MethodKind::Unary { "unary" } else { "server-streaming" },
            if request.streaming { "set" } else { "clear" },
        ));
        return fail(&mut send, &mut recv, e).await;
    }

    let id = shared.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let deadline = (request.deadline_ms > 0).then(|| Instant::now() + Duration::from_millis(request.deadline_ms.into()));
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
            });
            let outcome = tokio::select! {
                r = rx => Some(r.unwrap_or_else(|_| Err(RpcError::internal("handler dropped the call")))),
                _ = &mut sleep => {
                    shared.emit(ServerEvent::Cancelled { id, code: ErrorCode::DeadlineExceeded });
                    Some(Err(RpcError::deadline_exceeded(deadline_ms)))
                }
                r = &mut stopped => {
                    let code = stop_code(r);
                    shared.emit(ServerEvent::Cancelled { id, code });
                    None
                }
            };
            shared.calls.lock().unwrap().remove(&id);
            match outcome {
                Some(Ok(payload)) => {
                    let _ = send.write_all(&Frame::Response { payload }.to_bytes()).await;
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
            let queue = Arc::new(ItemQueue::new(shared.config.stream_window_items, shared.config.stream_window_bytes));
            shared.calls.lock().unwrap().insert(id, CallSlot::Streaming(queue.clone()));
            shared.emit(ServerEvent::Call {
                id,
                method: request.method,
                payload: request.payload,
                kind,
                deadline_ms,
                connection,
            });
            let mut seq: u64 = 0;
            let result: Result<(), (ErrorCode, bool)> = loop {
                let taken = tokio::select! {
                    t = queue.take(WRITE_BATCH) => t,
                    _ = &mut sleep => break Err((ErrorCode::DeadlineExceeded, true)),
                    r = &mut stopped => break Err((stop_code(r), false)),
                };
                match taken {
                    Taken::Items(items) => {
                        let mut chunks = Vec::with_capacity(items.len() * 2);
                        for item in items {
                            let mut head = BytesMut::with_capacity(14);
                            encode_item_header(seq, item.len(), &mut head);
                            seq += 1;
                            chunks.push(head.freeze());
                            chunks.push(item);
                        }
                        let written = tokio::select! {
                            w = send.write_all_chunks(&mut chunks) => w,
                            _ = &mut sleep => break Err((ErrorCode::DeadlineExceeded, true)),
                        };
                        if let Err(e) = written {
                            break Err((RpcError::from(e).code, false));
                        }
                    }
                    Taken::Ended(Ending::End) => {
                        let _ = send.write_all(&Frame::End { items: seq }.to_bytes()).await;
                        let _ = send.finish();
                        break Ok(());
                    }
                    Taken::Ended(Ending::Error(e)) => {
                        let _ = send.write_all(&error_frame(&e)).await;
                        let _ = send.finish();
                        break Ok(());
                    }
                }
            };
            queue.close();
            shared.calls.lock().unwrap().remove(&id);
            if let Err((code, tell_client)) = result {
                tracing::debug!(id, %code, "streaming call ended early");
                shared.emit(ServerEvent::Cancelled { id, code });
                if tell_client {
                    let _ = send.write_all(&error_frame(&RpcError::deadline_exceeded(deadline_ms))).await;
                    let _ = send.finish();
                } else {
                    let _ = send.reset(app_code(code));
                }
            }
        }
    }
}

fn stop_code(r: Result<Option<quinn::VarInt>, quinn::StoppedError>) -> ErrorCode {
    match r {
        Ok(Some(code)) => u16::try_from(code.into_inner()).ok().and_then(ErrorCode::from_u16).unwrap_or(ErrorCode::Cancelled),
        Ok(None) => ErrorCode::Cancelled,
        Err(_) => ErrorCode::Unavailable,
    }
}

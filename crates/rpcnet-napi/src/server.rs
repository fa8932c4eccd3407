//! `listen` and `NativeServer`: forwards to `rpcnet_runtime::Server`.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use rpcnet_runtime::addr::bind_address;
use rpcnet_runtime::{
    ErrorCode, MethodKind, PushStatus, ResponseMetadata, RpcError, Server, ServerConfig,
    ServerEvent, ServerIdentity,
};

use crate::metadata::{entries, to_metadata, NativeMetadataEntry};
use crate::{buffers, bytes, stats, Fallible, NativeErrorCode, NativeStats};

/// Options of `listen`, already validated by src/options.ts (see `ServerOptions` in
/// src/server.ts for the documented public shape). Sizes in bytes.
#[napi(object)]
pub struct NativeServerOptions {
    /// IP address or DNS name to bind; default `127.0.0.1`.
    pub host: Option<String>,
    /// UDP port, 0..65535; default 0 (any).
    pub port: Option<u32>,
    /// PEM certificate chain path (with `key_path`); default: self-signed.
    pub cert_path: Option<String>,
    /// PEM private key path (with `cert_path`).
    pub key_path: Option<String>,
    /// Largest accepted frame body, bytes.
    pub max_frame_size: Option<u32>,
    /// Items queued per streaming call before the handler is paused.
    pub stream_window_items: Option<u32>,
    /// Bytes queued per streaming call before the handler is paused.
    pub stream_window_bytes: Option<u32>,
    /// QUIC idle timeout the server offers, ms.
    pub idle_timeout_ms: Option<u32>,
    /// Keep-alive PING interval, ms; 0 for none.
    pub keep_alive_ms: Option<u32>,
}

/// Where a resumed call continues: the handler's last checkpoint.
#[napi(object)]
pub struct NativeResume {
    /// The first item to produce.
    pub seq: f64,
    /// The first client item the handler reads (a client-streaming or bidi call; 0 otherwise).
    pub read: f64,
    /// The state saved by `ctx.checkpoint` (empty when the handler never checkpointed).
    pub state: Buffer,
}

/// One server event, tagged by `kind`.
// Each event becomes a JavaScript object once and is dropped; boxing the large `Call` variant
// would only add an allocation (napi-rs converts the fields, not the enum's layout).
#[allow(clippy::large_enum_variant)]
#[napi(discriminant = "kind", discriminant_case = "lowercase")]
pub enum NativeServerEvent {
    /// A new call: answer it by `id` (`respond`/`fail` for unary, `push`/`end`/`fail` for
    /// streaming).
    Call {
        /// Server-unique call id.
        id: i64,
        /// The method name.
        method: String,
        /// The request payload.
        payload: Buffer,
        /// The request headers.
        metadata: Vec<NativeMetadataEntry>,
        /// Whether the method is server-streaming (or bidi).
        streaming: bool,
        /// Whether the client streams its requests (client-streaming or bidi): pull them with
        /// `nextClientItems`.
        client_streaming: bool,
        /// The client's deadline in ms from reception; 0 = none.
        deadline_ms: u32,
        /// The client connection's `connectionId`.
        connection_id: String,
        /// The peer's UDP address, `ip:port` (on a worker: the director's).
        remote_address: String,
        /// Set for a call resumed after a migration or failover.
        resume: Option<NativeResume>,
    },
    /// A call ended early (client cancelled, deadline, connection lost): stop its handler.
    Cancel {
        /// The call id.
        id: i64,
        /// Why: `CANCELLED`, `DEADLINE_EXCEEDED` or `UNAVAILABLE`.
        code: NativeErrorCode,
        /// What happened, for humans.
        message: String,
        /// The call goes on elsewhere (migrated, or kept for a resume): not a failure.
        moved: bool,
    },
}

/// Answer of `push` and `checkpoint`.
#[napi(string_enum = "lowercase")]
pub enum NativePushStatus {
    /// Accepted; push more now.
    Ready,
    /// Accepted, but the call's window is full: await `writable` before pushing more.
    Full,
    /// Not accepted: the call is over (cancelled, deadline, connection lost, ended, captured by
    /// a migration).
    Closed,
}

impl From<PushStatus> for NativePushStatus {
    fn from(s: PushStatus) -> Self {
        match s {
            PushStatus::Ready => Self::Ready,
            PushStatus::Full => Self::Full,
            PushStatus::Closed => Self::Closed,
        }
    }
}

/// A bound server (or a cluster worker's user port). Call ids come from `nextEvents`.
#[napi]
pub struct NativeServer {
    pub(crate) inner: Arc<Server>,
}

/// Binds a server (see `RpcServer.listen`). Rejects with `INVALID_ARGUMENT` (bad address,
/// unreadable PEM files) or `UNAVAILABLE` (the address cannot be bound).
#[napi(ts_return_type = "Promise<NativeServer>")]
pub async fn listen(options: NativeServerOptions) -> Fallible<NativeServer> {
    Fallible(bind(options).await)
}

async fn bind(options: NativeServerOptions) -> std::result::Result<NativeServer, RpcError> {
    let mut config = ServerConfig {
        bind: bind_address(options.host.as_deref(), options.port).await?,
        identity: ServerIdentity::from_pem_paths(
            options.cert_path.map(Into::into),
            options.key_path.map(Into::into),
        )?,
        ..ServerConfig::default()
    };
    if let Some(m) = options.max_frame_size {
        config.max_frame_size = m;
    }
    if let Some(n) = options.stream_window_items {
        config.stream_window_items = n as usize;
    }
    if let Some(n) = options.stream_window_bytes {
        config.stream_window_bytes = n as usize;
    }
    if let Some(ms) = options.idle_timeout_ms {
        config.idle_timeout_ms = ms.into();
    }
    if let Some(ms) = options.keep_alive_ms {
        config.keep_alive_ms = ms.into();
    }
    let server = Server::bind(config).await?;
    Ok(NativeServer {
        inner: Arc::new(server),
    })
}

#[napi]
impl NativeServer {
    /// The bound address, `ip:port`.
    #[napi(getter)]
    pub fn address(&self) -> String {
        self.inner.local_addr().to_string()
    }

    /// SHA-256 fingerprint of the certificate, 64 lowercase hex digits.
    #[napi(getter)]
    pub fn cert_fingerprint(&self) -> String {
        self.inner.cert_fingerprint().to_string()
    }

    /// Registers (or replaces) a method: `streaming` for server-streaming answers,
    /// `client_streaming` for streamed requests (both: bidi).
    #[napi]
    pub fn register(&self, method: String, streaming: bool, client_streaming: Option<bool>) {
        let kind = MethodKind::of(streaming, client_streaming.unwrap_or(false));
        self.inner.register(&method, kind);
    }

    /// Up to `max` of the client's items of a client-streaming or bidi call; `null` after the
    /// client's END. Rejects with `PROTOCOL` (the client broke the rules), the code of the
    /// client's reset, or `UNAVAILABLE` once the call is over.
    #[napi(ts_return_type = "Promise<Array<Buffer> | null>")]
    pub async fn next_client_items(&self, id: i64, max: u32) -> Fallible<Option<Vec<Buffer>>> {
        self.inner
            .next_client_items(id as u64, max as usize)
            .await
            .map(buffers)
            .into()
    }

    /// Waits for up to `max` events; an empty array means the server is closed.
    #[napi]
    pub async fn next_events(&self, max: u32) -> Vec<NativeServerEvent> {
        let events = self.inner.next_events(max as usize).await;
        events
            .into_iter()
            .map(|e| match e {
                ServerEvent::Call {
                    id,
                    method,
                    payload,
                    metadata,
                    kind,
                    deadline_ms,
                    connection,
                    client_connection_id,
                    resume,
                } => NativeServerEvent::Call {
                    id: id as i64,
                    method,
                    payload: Buffer::from(payload.to_vec()),
                    metadata: entries(&metadata),
                    streaming: kind.server_streaming(),
                    client_streaming: kind.client_streaming(),
                    deadline_ms,
                    connection_id: client_connection_id,
                    remote_address: connection.remote_address().to_string(),
                    resume: resume.map(|c| NativeResume {
                        seq: c.seq as f64,
                        read: c.read as f64,
                        state: Buffer::from(c.state.to_vec()),
                    }),
                },
                ServerEvent::Cancelled {
                    id,
                    code,
                    message,
                    moved,
                } => NativeServerEvent::Cancel {
                    id: id as i64,
                    code: code.into(),
                    message,
                    moved,
                },
            })
            .collect()
    }

    /// Answers a unary call, with the response `header` and `trailer` if any. False if the
    /// call is over or not unary. Metadata that breaks PROTOCOL.md section 5.6 fails the call
    /// with `INTERNAL` instead.
    #[napi]
    pub fn respond(
        &self,
        id: i64,
        payload: Buffer,
        header: Option<Vec<NativeMetadataEntry>>,
        trailer: Option<Vec<NativeMetadataEntry>>,
    ) -> bool {
        match response_metadata(header, trailer) {
            Ok(m) => self.inner.respond_with(id as u64, Ok(bytes(&payload)), m),
            Err(e) => self.inner.respond(id as u64, Err(e)),
        }
    }

    /// Fails a call (unary or streaming) with `code` and `message`, after the response `header`
    /// (if none went out yet) and `trailer`. False if it is over.
    #[napi]
    pub fn fail(
        &self,
        id: i64,
        code: NativeErrorCode,
        message: String,
        header: Option<Vec<NativeMetadataEntry>>,
        trailer: Option<Vec<NativeMetadataEntry>>,
    ) -> bool {
        // Invalid metadata does not hide the handler's own code: it joins the message.
        let (e, m) = match response_metadata(header, trailer) {
            Ok(m) => (RpcError::new(code.into(), message), m),
            Err(bad) => (
                RpcError::new(code.into(), format!("{message} ({})", bad.message)),
                ResponseMetadata::default(),
            ),
        };
        self.inner.fail(id as u64, e, m)
    }

    /// Pushes one item of a streaming call, after `checkpoint` (the handler's latest
    /// `ctx.checkpoint` since the previous item, if any, taken after reading `read` client
    /// items) and, before its first item, the response `header`, in one crossing.
    #[napi]
    pub fn push(
        &self,
        id: i64,
        payload: Buffer,
        checkpoint: Option<Buffer>,
        header: Option<Vec<NativeMetadataEntry>>,
        read: Option<f64>,
    ) -> NativePushStatus {
        let id = id as u64;
        if header.is_some() {
            match to_metadata(header) {
                Ok(m) => {
                    if self.inner.push_headers(id, m) == PushStatus::Closed {
                        return NativePushStatus::Closed;
                    }
                }
                Err(e) => {
                    self.inner.end(id, Err(internal(e)));
                    return NativePushStatus::Closed;
                }
            }
        }
        self.inner
            .push_checkpointed(
                id,
                checkpoint.as_ref().map(|c| (bytes(c), count(read))),
                bytes(&payload),
            )
            .into()
    }

    /// Records a checkpoint of a streaming call on its own, after the items pushed so far (for
    /// a handler that checkpoints and then waits before its next item), taken after reading
    /// `read` client items.
    #[napi]
    pub fn checkpoint(&self, id: i64, state: Buffer, read: Option<f64>) -> NativePushStatus {
        self.inner
            .checkpoint(id as u64, bytes(&state), count(read))
            .into()
    }

    /// Resolves true once the call can take more items, false if it is over.
    #[napi]
    pub async fn writable(&self, id: i64) -> bool {
        self.inner.writable(id as u64).await
    }

    /// Ends a streaming call normally, after the response `header` (if none went out yet) and
    /// the `trailer`. False if it is over.
    #[napi]
    pub fn end(
        &self,
        id: i64,
        header: Option<Vec<NativeMetadataEntry>>,
        trailer: Option<Vec<NativeMetadataEntry>>,
    ) -> bool {
        match response_metadata(header, trailer) {
            Ok(m) => self.inner.finish(id as u64, Ok(()), m),
            Err(e) => self.inner.end(id as u64, Err(e)),
        }
    }

    /// Calls in progress.
    #[napi]
    pub fn open_calls(&self) -> u32 {
        self.inner.open_calls() as u32
    }

    /// quinn's statistics of a connection, `null` once it is closed.
    #[napi]
    pub fn connection_stats(&self, connection_id: String) -> Option<NativeStats> {
        self.inner
            .connection(&connection_id)
            .map(|c| stats(c.stats()))
    }

    /// Closes; resolves once the UDP port(s) can be bound again.
    #[napi]
    pub async fn close(&self) {
        self.inner.close().await;
    }
}

/// A handler's response headers and trailers as the runtime's.
///
/// Errors: `INTERNAL` naming the entry that breaks PROTOCOL.md section 5.6 (the handler's fault,
/// not the client's).
fn response_metadata(
    header: Option<Vec<NativeMetadataEntry>>,
    trailer: Option<Vec<NativeMetadataEntry>>,
) -> std::result::Result<ResponseMetadata, RpcError> {
    Ok(ResponseMetadata {
        headers: to_metadata(header).map_err(internal)?,
        trailers: to_metadata(trailer).map_err(internal)?,
    })
}

fn internal(e: RpcError) -> RpcError {
    RpcError::new(
        ErrorCode::Internal,
        format!("the handler set invalid response metadata: {}", e.message),
    )
}

/// A count that crossed as a JavaScript number (absent = 0; negative or fractional values are
/// clamped and truncated).
fn count(n: Option<f64>) -> u64 {
    n.map_or(0, |n| n.max(0.0) as u64)
}

//! `connect`, `NativeClient`, `NativeCall`, `NativeStream`: forward to `rpcnet_runtime::Client`.

use std::sync::Arc;

use bytes::Bytes;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use rpcnet_runtime::addr::resolve_all;
use rpcnet_runtime::client::{RequestSender, SessionEvent, StreamHandle};
use rpcnet_runtime::{
    CallOptions, Canceller, Client, ClientConfig, ClientTrust, ResponseMetadata, RpcError,
    UnaryOutcome,
};

use crate::metadata::{
    response, to_metadata, NativeMetadataEntry, NativeResponseMetadata, WithMetadata,
};
use crate::{buffers, bytes, stats, Fallible, NativeStats};

/// A unary call's response: the payload, and the response headers and trailers when the server
/// sent any (`null` otherwise, the common case, which saves building empty arrays).
#[napi(object)]
pub struct NativeReply {
    /// The response payload.
    pub payload: Buffer,
    /// The response headers and trailers, `null` when both are empty.
    pub metadata: Option<NativeResponseMetadata>,
}

/// A unary call with `options`, as the binding's outcome (request headers invalid: rejected with
/// `INVALID_ARGUMENT` before anything is sent).
async fn unary_call(
    client: &Client,
    (method, payload): (String, Buffer),
    mut options: CallOptions<'_>,
    metadata: Option<Vec<NativeMetadataEntry>>,
) -> WithMetadata<NativeReply> {
    let metadata = match to_metadata(metadata) {
        Ok(m) => m,
        Err(e) => return WithMetadata(Err(e), ResponseMetadata::default()),
    };
    options.metadata = &metadata;
    let UnaryOutcome { result, metadata } =
        client.unary_with(&method, bytes(&payload), options).await;
    reply(result, metadata)
}

/// A call's result and response metadata as the binding's reply (metadata `null` when empty).
fn reply(
    result: std::result::Result<Bytes, RpcError>,
    metadata: ResponseMetadata,
) -> WithMetadata<NativeReply> {
    let empty = metadata.headers.is_empty() && metadata.trailers.is_empty();
    let reply = result.map(|out| NativeReply {
        payload: Buffer::from(out.to_vec()),
        metadata: (!empty).then(|| response(&metadata)),
    });
    WithMetadata(reply, metadata)
}

/// Options of `connect`, already validated by src/options.ts (see `ClientOptions` in
/// src/client.ts).
#[napi(object)]
pub struct NativeClientOptions {
    /// SHA-256 pin of the server certificate (one of `pin`, `ca_file`, `system_roots`).
    pub pin: Option<String>,
    /// PEM file of CA certificates.
    pub ca_file: Option<String>,
    /// Verify against the operating system's roots.
    pub system_roots: Option<bool>,
    /// TLS server name; default `localhost`.
    pub server_name: Option<String>,
    /// Largest accepted frame body, bytes.
    pub max_frame_size: Option<u32>,
    /// Handshake time limit, ms.
    pub connect_timeout_ms: Option<u32>,
    /// Silence from the server after which the connection is declared lost, ms (QUIC idle
    /// timeout; keep-alive every quarter of it). Default: 400 with `resume`, else 750.
    pub loss_detection_ms: Option<u32>,
    /// Open a resumable session (PROTOCOL.md section 15) that moves to any of the addresses
    /// when its connection is lost or its director says MOVE.
    pub resume: Option<bool>,
}

/// One event of a resumable session, tagged by `kind`: `reconnecting` (with `reason`),
/// `resumed` (with `pause_ms`, `connection_id`, `address`) or `lost` (with `error`).
#[napi(object)]
pub struct NativeSessionEvent {
    /// `reconnecting`, `resumed` or `lost`.
    pub kind: String,
    /// Why the client reconnects (`reconnecting`).
    pub reason: Option<String>,
    /// From the loss to the new connection's WELCOME, ms (`resumed`).
    pub pause_ms: Option<f64>,
    /// The new connection's `connectionId` (`resumed`).
    pub connection_id: Option<String>,
    /// The director reached, `ip:port` (`resumed`).
    pub address: Option<String>,
    /// The code of the error every open call fails with (`lost`).
    pub error_code: Option<crate::NativeErrorCode>,
    /// Its message (`lost`).
    pub error_message: Option<String>,
}

impl From<SessionEvent> for NativeSessionEvent {
    fn from(e: SessionEvent) -> Self {
        let mut out = NativeSessionEvent {
            kind: String::new(),
            reason: None,
            pause_ms: None,
            connection_id: None,
            address: None,
            error_code: None,
            error_message: None,
        };
        match e {
            SessionEvent::Reconnecting { reason } => {
                out.kind = "reconnecting".into();
                out.reason = Some(reason);
            }
            SessionEvent::Resumed {
                pause_ms,
                connection_id,
                address,
            } => {
                out.kind = "resumed".into();
                out.pause_ms = Some(pause_ms);
                out.connection_id = Some(connection_id);
                out.address = Some(address.to_string());
            }
            SessionEvent::Lost { error } => {
                out.kind = "lost".into();
                out.error_code = Some(error.code.into());
                out.error_message = Some(error.message);
            }
        }
        out
    }
}

/// One client connection.
#[napi]
pub struct NativeClient {
    inner: Arc<Client>,
}

/// Connects a client to the first of `addresses` that answers (each `host:port`; a DNS name may
/// give several). Rejects with `INVALID_ARGUMENT` (bad address or trust options), `UNAVAILABLE`
/// (unreachable, certificate refused, or no resumption where `resume` asked for it) or
/// `DEADLINE_EXCEEDED`.
#[napi(ts_return_type = "Promise<NativeClient>")]
pub async fn connect(
    addresses: Vec<String>,
    options: NativeClientOptions,
) -> Fallible<NativeClient> {
    Fallible(open(addresses, options).await)
}

async fn open(
    addresses: Vec<String>,
    options: NativeClientOptions,
) -> std::result::Result<NativeClient, RpcError> {
    let mut addrs = Vec::new();
    for a in &addresses {
        addrs.extend(resolve_all(a, "address").await?);
    }
    let trust = ClientTrust::from_options(
        options.pin.as_deref(),
        options.ca_file.map(Into::into),
        options.system_roots.unwrap_or(false),
    )?;
    let mut config = ClientConfig::new(trust);
    if let Some(name) = options.server_name {
        config.server_name = name;
    }
    if let Some(m) = options.max_frame_size {
        config.max_frame_size = m;
    }
    if let Some(t) = options.connect_timeout_ms {
        config.connect_timeout_ms = t.into();
    }
    if let Some(t) = options.loss_detection_ms {
        config.loss_detection_ms = Some(t.into());
    }
    config.resume = options.resume.unwrap_or(false);
    let client = Client::connect_any(&addrs, config).await?;
    Ok(NativeClient {
        inner: Arc::new(client),
    })
}

#[napi]
impl NativeClient {
    /// The connection's `connectionId`.
    #[napi(getter)]
    pub fn connection_id(&self) -> String {
        self.inner.connection_id().to_string()
    }

    /// The server's UDP address, `ip:port`.
    #[napi(getter)]
    pub fn remote_address(&self) -> String {
        self.inner.remote_address().to_string()
    }

    /// quinn's statistics now.
    #[napi]
    pub fn stats(&self) -> NativeStats {
        stats(self.inner.stats())
    }

    /// The resumable session's id (16 hex digits), `null` without `resume`.
    #[napi(getter)]
    pub fn session_id(&self) -> Option<String> {
        self.inner.session_id()
    }

    /// Waits for up to `max` session events; empty once the client is closed or without
    /// `resume`.
    #[napi(ts_return_type = "Promise<Array<NativeSessionEvent>>")]
    pub async fn next_session_events(&self, max: u32) -> Vec<NativeSessionEvent> {
        let events = self.inner.next_session_events(max as usize).await;
        events.into_iter().map(Into::into).collect()
    }

    /// A unary call; `deadline_ms` 0 = none; `idempotent`: may be sent again after a resume;
    /// `metadata`: the request headers. Rejects with the call's coded error, whose `metadata`
    /// property holds the response headers and trailers.
    #[napi(ts_return_type = "Promise<NativeReply>")]
    pub async fn unary(
        &self,
        method: String,
        payload: Buffer,
        deadline_ms: u32,
        idempotent: bool,
        metadata: Option<Vec<NativeMetadataEntry>>,
    ) -> WithMetadata<NativeReply> {
        let options = CallOptions {
            deadline_ms,
            idempotent,
            ..CallOptions::default()
        };
        unary_call(&self.inner, (method, payload), options, metadata).await
    }

    /// A handle for one cancellable unary call.
    #[napi]
    pub fn new_call(&self) -> NativeCall {
        NativeCall {
            client: self.inner.clone(),
            canceller: Arc::new(Canceller::new()),
        }
    }

    /// Opens a server-streaming call with the request headers `metadata`; rejects with the
    /// call's coded error.
    #[napi(ts_return_type = "Promise<NativeStream>")]
    pub async fn open_stream(
        &self,
        method: String,
        payload: Buffer,
        deadline_ms: u32,
        metadata: Option<Vec<NativeMetadataEntry>>,
    ) -> Fallible<NativeStream> {
        let opened = async {
            let metadata = to_metadata(metadata)?;
            let options = CallOptions {
                deadline_ms,
                metadata: &metadata,
                ..CallOptions::default()
            };
            self.inner
                .streaming_with(&method, bytes(&payload), options)
                .await
        };
        opened
            .await
            .map(|stream| NativeStream {
                inner: Arc::new(StreamHandle::new(stream)),
            })
            .into()
    }

    /// Opens a client-streaming call (`streaming` false: read the reply with `response`) or a
    /// bidi call (`streaming` true: read items with `nextBatch`) with the request headers
    /// `metadata`; send the requests with `send` and `closeSend`. Rejects with the call's coded
    /// error (`UNIMPLEMENTED` on an `rpcnet/1` connection or with `resume`).
    #[napi(ts_return_type = "Promise<NativeDuplex>")]
    pub async fn open_duplex(
        &self,
        method: String,
        deadline_ms: u32,
        metadata: Option<Vec<NativeMetadataEntry>>,
        streaming: bool,
        idempotent: Option<bool>,
    ) -> Fallible<NativeDuplex> {
        let opened = async {
            let metadata = to_metadata(metadata)?;
            let options = CallOptions {
                deadline_ms,
                metadata: &metadata,
                idempotent: idempotent.unwrap_or(false),
                ..CallOptions::default()
            };
            self.inner.open_duplex(&method, options, streaming).await
        };
        opened
            .await
            .map(|(sender, stream)| NativeDuplex {
                sender: Arc::new(sender),
                stream: Arc::new(StreamHandle::new(stream)),
            })
            .into()
    }

    /// Closes the connection; pending calls fail with `UNAVAILABLE`.
    #[napi]
    pub async fn close(&self) {
        self.inner.close().await;
    }
}

/// One cancellable unary call.
#[napi]
pub struct NativeCall {
    client: Arc<Client>,
    canceller: Arc<Canceller>,
}

#[napi]
impl NativeCall {
    /// Makes the call (as `NativeClient.unary`); rejects with `CANCELLED` after `cancel`, or
    /// the call's coded error.
    #[napi(ts_return_type = "Promise<NativeReply>")]
    pub async fn unary(
        &self,
        method: String,
        payload: Buffer,
        deadline_ms: u32,
        idempotent: bool,
        metadata: Option<Vec<NativeMetadataEntry>>,
    ) -> WithMetadata<NativeReply> {
        let options = CallOptions {
            deadline_ms,
            idempotent,
            canceller: Some(&self.canceller),
            ..CallOptions::default()
        };
        unary_call(&self.client, (method, payload), options, metadata).await
    }

    /// Cancels the call.
    #[napi]
    pub fn cancel(&self) {
        self.canceller.cancel();
    }
}

/// The receiving end of a server-streaming call.
#[napi]
pub struct NativeStream {
    inner: Arc<StreamHandle>,
}

#[napi]
impl NativeStream {
    /// Up to `max` items; `null` after the end. Rejects with the call's coded error.
    #[napi(ts_return_type = "Promise<Array<Buffer> | null>")]
    pub async fn next_batch(&self, max: u32) -> Fallible<Option<Vec<Buffer>>> {
        self.inner
            .next_batch(max as usize)
            .await
            .map(buffers)
            .into()
    }

    /// Cancels the call.
    #[napi]
    pub fn cancel(&self) {
        self.inner.cancel();
    }

    /// The response headers and trailers received so far (headers: with the first batch;
    /// trailers: by the end or the error).
    #[napi]
    pub fn response_metadata(&self) -> NativeResponseMetadata {
        response(&self.inner.response_metadata())
    }
}

/// A client-streaming or bidi call: its requests (`send`, `closeSend`) and its responses
/// (`response` or `nextBatch`).
#[napi]
pub struct NativeDuplex {
    sender: Arc<RequestSender>,
    stream: Arc<StreamHandle>,
}

#[napi]
impl NativeDuplex {
    /// Sends one request; resolves once QUIC took it (flow control applies). Rejects when the
    /// call is over or the requests were closed.
    #[napi(ts_return_type = "Promise<void>")]
    pub async fn send(&self, payload: Buffer) -> Fallible<()> {
        self.sender.send(bytes(&payload)).await.into()
    }

    /// Sends several requests in order, in one crossing; resolves once QUIC took them all.
    /// Rejects as `send`.
    #[napi(ts_return_type = "Promise<void>")]
    pub async fn send_many(&self, payloads: Vec<Buffer>) -> Fallible<()> {
        let payloads = payloads.iter().map(bytes).collect();
        self.sender.send_many(payloads).await.into()
    }

    /// Ends the requests (END, then FIN).
    #[napi(ts_return_type = "Promise<void>")]
    pub async fn close_send(&self) -> Fallible<()> {
        self.sender.close().await.into()
    }

    /// The reply of a client-streaming call; on failure the requests are reset too.
    #[napi(ts_return_type = "Promise<NativeReply>")]
    pub async fn response(&self) -> WithMetadata<NativeReply> {
        let result = self.stream.response().await;
        let metadata = self.stream.response_metadata();
        if let Err(e) = &result {
            self.sender.abort(e.code);
        }
        reply(result, metadata)
    }

    /// Up to `max` items of a bidi call; `null` after the end. On failure the requests are reset
    /// too.
    #[napi(ts_return_type = "Promise<Array<Buffer> | null>")]
    pub async fn next_batch(&self, max: u32) -> Fallible<Option<Vec<Buffer>>> {
        let result = self.stream.next_batch(max as usize).await;
        if let Err(e) = &result {
            self.sender.abort(e.code);
        }
        result.map(buffers).into()
    }

    /// The response headers and trailers received so far.
    #[napi]
    pub fn response_metadata(&self) -> NativeResponseMetadata {
        response(&self.stream.response_metadata())
    }

    /// Cancels the call: both directions end with `CANCELLED`.
    #[napi]
    pub fn cancel(&self) {
        self.stream.cancel();
        self.sender.abort(rpcnet_runtime::ErrorCode::Cancelled);
    }
}

//! Node.js binding of rpcnet-runtime (napi-rs v3). It converts JavaScript values to runtime types
//! and back and forwards every call; all logic lives in `rpcnet-runtime` and in the TypeScript
//! package (`src/`), which is the public API. Nothing depends on this crate.
//!
//! Errors cross as `Error` objects whose message is `[CODE] message` (CODE is an
//! `rpcnet_protocol::ErrorCode` name); the TypeScript layer turns them into `RpcError`s.

#![deny(clippy::all)]

use std::sync::Arc;

use bytes::Bytes;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use rpcnet_runtime::client::StreamHandle;
use rpcnet_runtime::{Canceller, Client, ClientConfig, ClientTrust, ConnectionStats, ErrorCode, MethodKind, PushStatus, RpcError, Server, ServerConfig, ServerEvent, ServerIdentity};

fn to_napi(e: RpcError) -> napi::Error {
    napi::Error::new(Status::GenericFailure, format!("[{}] {}", e.code, e.message))
}

fn code_from_name(name: &str) -> ErrorCode {
    ErrorCode::from_name(name).unwrap_or(ErrorCode::Unknown)
}

fn bytes(buf: &Buffer) -> Bytes {
    Bytes::copy_from_slice(buf.as_ref())
}

/// Options of `listen` (see `ServerOptions` in src/server.ts for the documented public shape).
#[napi(object)]
pub struct NativeServerOptions {
    pub host: Option<String>,
    pub port: Option<u32>,
    pub cert_path: Option<String>,
    pub key_path: Option<String>,
    pub max_frame_size: Option<u32>,
    pub stream_window_items: Option<u32>,
    pub stream_window_bytes: Option<u32>,
}

/// One server event (kind `call` or `cancel`).
#[napi(object)]
pub struct NativeEvent {
    pub kind: String,
    pub id: i64,
    pub method: Option<String>,
    pub payload: Option<Buffer>,
    pub streaming: Option<bool>,
    pub deadline_ms: Option<u32>,
    pub connection_id: Option<String>,
    pub remote_address: Option<String>,
    pub code: Option<String>,
}

/// quinn connection statistics.
#[napi(object)]
pub struct NativeStats {
    pub rtt_ms: f64,
    pub cwnd: f64,
    pub bytes_sent: f64,
    pub bytes_received: f64,
    pub packets_sent: f64,
    pub lost_packets: f64,
    pub mtu: u32,
}

fn stats(s: ConnectionStats) -> NativeStats {
    NativeStats {
        rtt_ms: s.rtt_ms,
        cwnd: s.cwnd as f64,
        bytes_sent: s.bytes_sent as f64,
        bytes_received: s.bytes_received as f64,
        packets_sent: s.packets_sent as f64,
        lost_packets: s.lost_packets as f64,
        mtu: s.mtu.into(),
    }
}

#[napi]
pub struct NativeServer {
    inner: Arc<Server>,
}

/// Binds a server (see `RpcServer.listen`).
#[napi]
pub async fn listen(options: NativeServerOptions) -> Result<NativeServer> {
    let mut config = ServerConfig::default();
    let host = options.host.unwrap_or_else(|| "127.0.0.1".into());
    let port = options.port.unwrap_or(0);
    let ip: std::net::IpAddr = host
        .parse()
        .map_err(|_| to_napi(RpcError::invalid_argument(format!("host must be an IP address, got {host:?}"))))?;
    config.bind = std::net::SocketAddr::new(ip, u16::try_from(port).map_err(|_| to_napi(RpcError::invalid_argument(format!("port out of range: {port}"))))?);
    config.identity = match (options.cert_path, options.key_path) {
        (Some(cert), Some(key)) => ServerIdentity::PemFiles { cert: cert.into(), key: key.into() },
        (None, None) => ServerIdentity::SelfSigned,
        _ => return Err(to_napi(RpcError::invalid_argument("tls.certPath and tls.keyPath must be given together"))),
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
    let server = Server::bind(config).await.map_err(to_napi)?;
    Ok(NativeServer { inner: Arc::new(server) })
}

#[napi]
impl NativeServer {
    #[napi(getter)]
    pub fn address(&self) -> String {
        self.inner.local_addr().to_string()
    }

    #[napi(getter)]
    pub fn cert_fingerprint(&self) -> String {
        self.inner.cert_fingerprint().to_string()
    }

    #[napi]
    pub fn register(&self, method: String, streaming: bool) {
        self.inner.register(&method, if streaming { MethodKind::ServerStreaming } else { MethodKind::Unary });
    }

    /// Waits for events; an empty array means the server is closed.
    #[napi]
    pub async fn next_events(&self, max: u32) -> Vec<NativeEvent> {
        let events = self.inner.next_events(max as usize).await;
        events
            .into_iter()
            .map(|e| match e {
                ServerEvent::Call { id, method, payload, kind, deadline_ms, connection } => NativeEvent {
                    kind: "call".into(),
                    id: id as i64,
                    method: Some(method),
                    payload: Some(Buffer::from(payload.to_vec())),
                    streaming: Some(kind == MethodKind::ServerStreaming),
                    deadline_ms: Some(deadline_ms),
                    connection_id: Some(connection.id.clone()),
                    remote_address: Some(connection.remote_address().to_string()),
                    code: None,
                },
                ServerEvent::Cancelled { id, code } => NativeEvent {
                    kind: "cancel".into(),
                    id: id as i64,
                    method: None,
                    payload: None,
                    streaming: None,
                    deadline_ms: None,
                    connection_id: None,
                    remote_address: None,
                    code: Some(code.as_str().into()),
                },
            })
            .collect()
    }

    #[napi]
    pub fn respond(&self, id: i64, payload: Buffer) -> bool {
        self.inner.respond(id as u64, Ok(bytes(&payload)))
    }

    #[napi]
    pub fn fail(&self, id: i64, code: String, message: String) -> bool {
        let e = RpcError::new(code_from_name(&code), message);
        if !self.inner.respond(id as u64, Err(e.clone())) {
            return self.inner.end(id as u64, Err(e));
        }
        true
    }

    /// 0 = ready, 1 = full (await `writable`), 2 = closed.
    #[napi]
    pub fn push(&self, id: i64, payload: Buffer) -> u32 {
        status(self.inner.push(id as u64, bytes(&payload)))
    }

    #[napi]
    pub fn push_many(&self, id: i64, payloads: Vec<Buffer>) -> u32 {
        status(self.inner.push_many(id as u64, payloads.iter().map(bytes).collect()))
    }

    #[napi]
    pub async fn writable(&self, id: i64) -> bool {
        self.inner.writable(id as u64).await
    }

    #[napi]
    pub fn end(&self, id: i64) -> bool {
        self.inner.end(id as u64, Ok(()))
    }

    #[napi]
    pub fn open_calls(&self) -> u32 {
        self.inner.open_calls() as u32
    }

    #[napi]
    pub fn connection_stats(&self, connection_id: String) -> Option<NativeStats> {
        self.inner.connection(&connection_id).map(|c| stats(c.stats()))
    }

    #[napi]
    pub fn close(&self) {
        self.inner.close();
    }
}

fn status(s: PushStatus) -> u32 {
    match s {
        PushStatus::Ready => 0,
        PushStatus::Full => 1,
        PushStatus::Closed => 2,
    }
}

/// Options of `connect` (see `ClientOptions` in src/client.ts).
#[napi(object)]
pub struct NativeClientOptions {
    pub pin: Option<String>,
    pub ca_file: Option<String>,
    pub system_roots: Option<bool>,
    pub server_name: Option<String>,
    pub max_frame_size: Option<u32>,
    pub connect_timeout_ms: Option<u32>,
}

#[napi]
pub struct NativeClient {
    inner: Arc<Client>,
}

/// Connects a client (see `RpcClient.connect`).
#[napi]
pub async fn connect(address: String, options: NativeClientOptions) -> Result<NativeClient> {
    let addr = tokio::net::lookup_host(&address)
        .await
        .map_err(|e| to_napi(RpcError::invalid_argument(format!("cannot resolve {address:?}: {e}"))))?
        .next()
        .ok_or_else(|| to_napi(RpcError::invalid_argument(format!("{address:?} resolves to no address"))))?;
    let trust = match (options.pin, options.ca_file, options.system_roots.unwrap_or(false)) {
        (Some(pin), None, false) => ClientTrust::Pin(rpcnet_runtime::tls::parse_fingerprint(&pin).map_err(to_napi)?),
        (None, Some(ca), false) => ClientTrust::CaFile(ca.into()),
        (None, None, true) => ClientTrust::SystemRoots,
        (None, None, false) => {
            return Err(to_napi(RpcError::invalid_argument(
                "no way to verify the server: give tls.pin, tls.caFile or tls.systemRoots (there is no insecure mode)",
            )))
        }
        _ => return Err(to_napi(RpcError::invalid_argument("give exactly one of tls.pin, tls.caFile, tls.systemRoots"))),
    };
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
    let client = Client::connect(addr, config).await.map_err(to_napi)?;
    Ok(NativeClient { inner: Arc::new(client) })
}

#[napi]
impl NativeClient {
    #[napi(getter)]
    pub fn connection_id(&self) -> String {
        self.inner.connection_id().to_string()
    }

    #[napi(getter)]
    pub fn remote_address(&self) -> String {
        self.inner.remote_address().to_string()
    }

    #[napi]
    pub fn stats(&self) -> NativeStats {
        stats(self.inner.stats())
    }

    #[napi]
    pub async fn unary(&self, method: String, payload: Buffer, deadline_ms: u32) -> Result<Buffer> {
        let out = self.inner.unary(&method, bytes(&payload), deadline_ms).await.map_err(to_napi)?;
        Ok(Buffer::from(out.to_vec()))
    }

    /// A handle for one cancellable unary call.
    #[napi]
    pub fn new_call(&self) -> NativeCall {
        NativeCall { client: self.inner.clone(), canceller: Arc::new(Canceller::new()) }
    }

    #[napi]
    pub async fn open_stream(&self, method: String, payload: Buffer, deadline_ms: u32) -> Result<NativeStream> {
        let stream = self.inner.streaming(&method, bytes(&payload), deadline_ms).await.map_err(to_napi)?;
        Ok(NativeStream { inner: Arc::new(StreamHandle::new(stream)) })
    }

    #[napi]
    pub async fn close(&self) {
        self.inner.close().await;
    }
}

#[napi]
pub struct NativeCall {
    client: Arc<Client>,
    canceller: Arc<Canceller>,
}

#[napi]
impl NativeCall {
    #[napi]
    pub async fn unary(&self, method: String, payload: Buffer, deadline_ms: u32) -> Result<Buffer> {
        let out = self
            .client
            .unary_cancellable(&method, bytes(&payload), deadline_ms, Some(&self.canceller))
            .await
            .map_err(to_napi)?;
        Ok(Buffer::from(out.to_vec()))
    }

    #[napi]
    pub fn cancel(&self) {
        self.canceller.cancel();
    }
}

#[napi]
pub struct NativeStream {
    inner: Arc<StreamHandle>,
}

#[napi]
impl NativeStream {
    /// Up to `max` items; `null` after the end.
    #[napi]
    pub async fn next_batch(&self, max: u32) -> Result<Option<Vec<Buffer>>> {
        let batch = self.inner.next_batch(max as usize).await.map_err(to_napi)?;
        Ok(batch.map(|items| items.into_iter().map(|b| Buffer::from(b.to_vec())).collect()))
    }

    #[napi]
    pub fn cancel(&self) {
        self.inner.cancel();
    }
}

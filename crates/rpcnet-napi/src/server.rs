//! `listen` and `NativeServer`: forwards to `rpcnet_runtime::Server`.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use rpcnet_runtime::addr::bind_addr;
use rpcnet_runtime::{
    MethodKind, PushStatus, RpcError, Server, ServerConfig, ServerEvent, ServerIdentity,
};

use crate::{bytes, code_from_name, stats, to_napi, NativeStats};

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
    pub message: Option<String>,
    pub resume_seq: Option<f64>,
    pub resume_state: Option<Buffer>,
}

#[napi]
pub struct NativeServer {
    pub(crate) inner: Arc<Server>,
}

/// Binds a server (see `RpcServer.listen`).
#[napi]
pub async fn listen(options: NativeServerOptions) -> Result<NativeServer> {
    let mut config = ServerConfig {
        bind: bind_addr(options.host.as_deref(), options.port).map_err(to_napi)?,
        identity: ServerIdentity::from_pem_paths(
            options.cert_path.map(Into::into),
            options.key_path.map(Into::into),
        )
        .map_err(to_napi)?,
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
    let server = Server::bind(config).await.map_err(to_napi)?;
    Ok(NativeServer {
        inner: Arc::new(server),
    })
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
        self.inner.register(
            &method,
            if streaming {
                MethodKind::ServerStreaming
            } else {
                MethodKind::Unary
            },
        );
    }

    /// Waits for events; an empty array means the server is closed.
    #[napi]
    pub async fn next_events(&self, max: u32) -> Vec<NativeEvent> {
        let events = self.inner.next_events(max as usize).await;
        events
            .into_iter()
            .map(|e| match e {
                ServerEvent::Call {
                    id,
                    method,
                    payload,
                    kind,
                    deadline_ms,
                    connection,
                    client_connection_id,
                    resume,
                } => NativeEvent {
                    kind: "call".into(),
                    id: id as i64,
                    method: Some(method),
                    payload: Some(Buffer::from(payload.to_vec())),
                    streaming: Some(kind == MethodKind::ServerStreaming),
                    deadline_ms: Some(deadline_ms),
                    connection_id: Some(client_connection_id),
                    remote_address: Some(connection.remote_address().to_string()),
                    code: None,
                    message: None,
                    resume_seq: resume.as_ref().map(|r| r.0 as f64),
                    resume_state: resume.map(|r| Buffer::from(r.1.to_vec())),
                },
                ServerEvent::Cancelled { id, code, message } => NativeEvent {
                    kind: "cancel".into(),
                    id: id as i64,
                    method: None,
                    payload: None,
                    streaming: None,
                    deadline_ms: None,
                    connection_id: None,
                    remote_address: None,
                    code: Some(code.as_str().into()),
                    message: Some(message),
                    resume_seq: None,
                    resume_state: None,
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

    /// Pushes one item, after the checkpoint recorded since the previous one (if any).
    /// 0 = ready, 1 = full (await `writable`), 2 = closed.
    #[napi]
    pub fn push(&self, id: i64, payload: Buffer, checkpoint: Option<Buffer>) -> u32 {
        status(self.inner.push_checkpointed(
            id as u64,
            checkpoint.as_ref().map(bytes),
            bytes(&payload),
        ))
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

fn status(s: PushStatus) -> u32 {
    match s {
        PushStatus::Ready => 0,
        PushStatus::Full => 1,
        PushStatus::Closed => 2,
    }
}

//! `connect`, `NativeClient`, `NativeCall`, `NativeStream`: forward to `rpcnet_runtime::Client`.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use rpcnet_runtime::addr::resolve;
use rpcnet_runtime::client::StreamHandle;
use rpcnet_runtime::{Canceller, Client, ClientConfig, ClientTrust, RpcError};

use crate::{bytes, stats, Fallible, NativeStats};

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
    /// timeout; keep-alive every third of it).
    pub loss_detection_ms: Option<u32>,
}

/// One client connection.
#[napi]
pub struct NativeClient {
    inner: Arc<Client>,
}

/// Connects a client (see `RpcClient.connect`). Rejects with `INVALID_ARGUMENT` (bad address or
/// trust options), `UNAVAILABLE` (unreachable, certificate refused) or `DEADLINE_EXCEEDED`.
#[napi(ts_return_type = "Promise<NativeClient>")]
pub async fn connect(address: String, options: NativeClientOptions) -> Fallible<NativeClient> {
    Fallible(open(address, options).await)
}

async fn open(
    address: String,
    options: NativeClientOptions,
) -> std::result::Result<NativeClient, RpcError> {
    let addr = resolve(&address).await?;
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
        config.loss_detection_ms = t.into();
    }
    let client = Client::connect(addr, config).await?;
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

    /// A unary call; `deadline_ms` 0 = none. Rejects with the call's coded error.
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub async fn unary(
        &self,
        method: String,
        payload: Buffer,
        deadline_ms: u32,
    ) -> Fallible<Buffer> {
        self.inner
            .unary(&method, bytes(&payload), deadline_ms)
            .await
            .map(|out| Buffer::from(out.to_vec()))
            .into()
    }

    /// A handle for one cancellable unary call.
    #[napi]
    pub fn new_call(&self) -> NativeCall {
        NativeCall {
            client: self.inner.clone(),
            canceller: Arc::new(Canceller::new()),
        }
    }

    /// Opens a server-streaming call; rejects with the call's coded error.
    #[napi(ts_return_type = "Promise<NativeStream>")]
    pub async fn open_stream(
        &self,
        method: String,
        payload: Buffer,
        deadline_ms: u32,
    ) -> Fallible<NativeStream> {
        self.inner
            .streaming(&method, bytes(&payload), deadline_ms)
            .await
            .map(|stream| NativeStream {
                inner: Arc::new(StreamHandle::new(stream)),
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
    /// Makes the call; rejects with `CANCELLED` after `cancel`, or the call's coded error.
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub async fn unary(
        &self,
        method: String,
        payload: Buffer,
        deadline_ms: u32,
    ) -> Fallible<Buffer> {
        self.client
            .unary_cancellable(&method, bytes(&payload), deadline_ms, Some(&self.canceller))
            .await
            .map(|out| Buffer::from(out.to_vec()))
            .into()
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
            .map(|batch| {
                batch.map(|items| {
                    items
                        .into_iter()
                        .map(|b| Buffer::from(b.to_vec()))
                        .collect()
                })
            })
            .into()
    }

    /// Cancels the call.
    #[napi]
    pub fn cancel(&self) {
        self.inner.cancel();
    }
}

//! `connect`, `NativeClient`, `NativeCall`, `NativeStream`: forward to `rpcnet_runtime::Client`.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use rpcnet_runtime::addr::resolve;
use rpcnet_runtime::client::StreamHandle;
use rpcnet_runtime::{Canceller, Client, ClientConfig, ClientTrust};

use crate::{bytes, stats, to_napi, NativeStats};

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
    let addr = resolve(&address).await.map_err(to_napi)?;
    let trust = ClientTrust::from_options(
        options.pin.as_deref(),
        options.ca_file.map(Into::into),
        options.system_roots.unwrap_or(false),
    )
    .map_err(to_napi)?;
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
    Ok(NativeClient {
        inner: Arc::new(client),
    })
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
        let out = self
            .inner
            .unary(&method, bytes(&payload), deadline_ms)
            .await
            .map_err(to_napi)?;
        Ok(Buffer::from(out.to_vec()))
    }

    /// A handle for one cancellable unary call.
    #[napi]
    pub fn new_call(&self) -> NativeCall {
        NativeCall {
            client: self.inner.clone(),
            canceller: Arc::new(Canceller::new()),
        }
    }

    #[napi]
    pub async fn open_stream(
        &self,
        method: String,
        payload: Buffer,
        deadline_ms: u32,
    ) -> Result<NativeStream> {
        let stream = self
            .inner
            .streaming(&method, bytes(&payload), deadline_ms)
            .await
            .map_err(to_napi)?;
        Ok(NativeStream {
            inner: Arc::new(StreamHandle::new(stream)),
        })
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
        Ok(batch.map(|items| {
            items
                .into_iter()
                .map(|b| Buffer::from(b.to_vec()))
                .collect()
        }))
    }

    #[napi]
    pub fn cancel(&self) {
        self.inner.cancel();
    }
}

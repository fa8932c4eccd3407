//! `startWorker` and `NativeWorker`: forwards to `rpcnet_runtime::worker::Worker`.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use rpcnet_protocol::migration::ConfirmationDecision;
use rpcnet_runtime::cluster::ClusterCredentials;
use rpcnet_runtime::worker::{HookAnswer, Worker, WorkerConfig, WorkerHook, DEFAULT_HEARTBEAT_MS};
use rpcnet_runtime::RpcError;

use rpcnet_runtime::addr::{bind_addr, peer_addr};

use crate::server::NativeServer;
use crate::{bytes, to_napi};

#[napi(object)]
pub struct NativeWorkerOptions {
    pub id: String,
    pub director: String,
    pub cluster_dir: String,
    pub host: Option<String>,
    pub user_port: Option<u32>,
    pub mgmt_port: Option<u32>,
    pub heartbeat_ms: Option<u32>,
}

#[napi(object)]
pub struct NativeHook {
    pub kind: String,
    pub id: i64,
    pub session_id: String,
    pub migration_id: Option<f64>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub reason: Option<String>,
    pub state: Option<Buffer>,
}

#[napi]
pub struct NativeWorker {
    inner: Arc<Worker>,
}

pub(crate) async fn credentials(dir: String, name: String) -> Result<Arc<ClusterCredentials>> {
    let creds = tokio::task::spawn_blocking(move || {
        ClusterCredentials::load_or_create(std::path::Path::new(&dir), &name)
    })
    .await
    .map_err(|e| to_napi(RpcError::internal(e.to_string())))?
    .map_err(to_napi)?;
    Ok(Arc::new(creds))
}

/// Starts a worker and registers it with the director.
#[napi]
pub async fn start_worker(options: NativeWorkerOptions) -> Result<NativeWorker> {
    let config = WorkerConfig {
        cluster: credentials(options.cluster_dir, options.id.clone()).await?,
        id: options.id,
        user: bind_addr(options.host.as_deref(), options.user_port).map_err(to_napi)?,
        mgmt: bind_addr(options.host.as_deref(), options.mgmt_port).map_err(to_napi)?,
        director: peer_addr(&options.director, "director").map_err(to_napi)?,
        heartbeat_ms: options.heartbeat_ms.map_or(DEFAULT_HEARTBEAT_MS, u64::from),
    };
    let worker = Worker::start(config).await.map_err(to_napi)?;
    Ok(NativeWorker {
        inner: Arc::new(worker),
    })
}

#[napi]
impl NativeWorker {
    #[napi(getter)]
    pub fn id(&self) -> String {
        self.inner.id().to_string()
    }

    #[napi(getter)]
    pub fn mgmt_address(&self) -> String {
        self.inner.mgmt_addr().to_string()
    }

    /// The user-port server, for registering handlers and answering calls.
    #[napi]
    pub fn server(&self) -> NativeServer {
        NativeServer {
            inner: self.inner.server().clone(),
        }
    }

    #[napi]
    pub fn set_hooks(&self, confirm: bool, capture: bool, restore: bool) {
        self.inner.set_hooks(confirm, capture, restore);
    }

    #[napi]
    pub async fn next_hooks(&self, max: u32) -> Vec<NativeHook> {
        self.inner
            .next_hooks(max as usize)
            .await
            .into_iter()
            .map(|h| match h {
                WorkerHook::MigrationRequest { id, request } => NativeHook {
                    kind: "migration-request".into(),
                    id: id as i64,
                    session_id: format!("{:016x}", request.session_id),
                    migration_id: Some(request.migration_id as f64),
                    source: Some(request.source),
                    target: Some(request.target),
                    reason: Some(request.reason.to_string()),
                    state: None,
                },
                WorkerHook::Capture { id, session_id } => NativeHook {
                    kind: "capture".into(),
                    id: id as i64,
                    session_id: format!("{session_id:016x}"),
                    migration_id: None,
                    source: None,
                    target: None,
                    reason: None,
                    state: None,
                },
                WorkerHook::Restore {
                    id,
                    session_id,
                    state,
                } => NativeHook {
                    kind: "restore".into(),
                    id: id as i64,
                    session_id: format!("{session_id:016x}"),
                    migration_id: None,
                    source: None,
                    target: None,
                    reason: None,
                    state: Some(Buffer::from(state.to_vec())),
                },
            })
            .collect()
    }

    /// kind: `accept`, `reject` or `defer`.
    #[napi]
    pub fn answer_decision(
        &self,
        id: i64,
        kind: String,
        reason: Option<String>,
        retry_after_ms: Option<u32>,
    ) -> bool {
        let d = match kind.as_str() {
            "reject" => ConfirmationDecision::Reject {
                reason: reason.unwrap_or_default(),
            },
            "defer" => ConfirmationDecision::Defer {
                retry_after_ms: retry_after_ms.unwrap_or(100),
            },
            _ => ConfirmationDecision::Accept,
        };
        self.inner.answer_hook(id as u64, HookAnswer::Decision(d))
    }

    #[napi]
    pub fn answer_state(&self, id: i64, state: Buffer) -> bool {
        self.inner
            .answer_hook(id as u64, HookAnswer::State(bytes(&state)))
    }

    #[napi]
    pub fn fail_hook(&self, id: i64, message: String) -> bool {
        self.inner
            .answer_hook(id as u64, HookAnswer::Failed(message))
    }

    #[napi]
    pub async fn drain(&self, timeout_ms: u32) -> Result<()> {
        self.inner.drain(timeout_ms).await.map_err(to_napi)
    }

    /// Closes; resolves once the UDP port(s) can be bound again.
    #[napi]
    pub async fn close(&self) {
        self.inner.close().await;
    }
}

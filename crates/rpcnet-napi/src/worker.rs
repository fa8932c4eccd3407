//! `startWorker` and `NativeWorker`: forwards to `rpcnet_runtime::worker::Worker`.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use rpcnet_protocol::migration::ConfirmationDecision;
use rpcnet_runtime::addr::bind_address;
use rpcnet_runtime::cluster::Role;

use crate::cluster::credentials;
use rpcnet_runtime::worker::{HookAnswer, Worker, WorkerConfig, WorkerHook};
use rpcnet_runtime::RpcError;

use crate::server::NativeServer;
use crate::{bytes, Fallible};

/// Options of `startWorker`, already validated by src/options.ts (see `WorkerOptions` in
/// src/worker.ts).
#[napi(object)]
pub struct NativeWorkerOptions {
    /// The worker's id in the cluster; absent: the name in its issued certificate.
    pub id: Option<String>,
    /// The directors' management addresses, each `host:port` (a DNS name or an IP address).
    pub director: Vec<String>,
    /// Directory of the cluster CA and secret.
    pub cluster_dir: String,
    /// IP address or DNS name to bind both ports; default `127.0.0.1`.
    pub host: Option<String>,
    /// User port, 0..65535 (0 = any).
    pub user_port: Option<u32>,
    /// Management port, 0..65535 (0 = any).
    pub mgmt_port: Option<u32>,
    /// The user address told to the directors, `host:port` or a host (the bound port).
    pub advertise_address: Option<String>,
    /// The management address told to the directors, as `advertise_address`.
    pub advertise_mgmt_address: Option<String>,
    /// Heartbeat interval, ms.
    pub heartbeat_ms: Option<u32>,
    /// How long starting may wait for a director to accept the worker, ms.
    pub connect_timeout_ms: Option<u32>,
}

/// A migration request as the target's `onMigrationRequest` hook sees it.
#[napi(object)]
pub struct NativeMigrationRequest {
    /// Migration id.
    pub migration_id: f64,
    /// Session id, 16 hex digits.
    pub session_id: String,
    /// Source worker.
    pub source: String,
    /// Target worker (this one).
    pub target: String,
    /// `drain`, `admin`, ...
    pub reason: String,
}

/// A hook question, tagged by `kind`. Answer `migration-request` with `answerDecision`,
/// `capture` and `restore` with `answerState`, or any of them with `failHook`.
#[napi(discriminant = "kind", discriminant_case = "kebab-case")]
pub enum NativeHook {
    /// Confirmation (RFC-001 phase 2) on the target.
    MigrationRequest {
        /// Hook id.
        id: i64,
        /// The request.
        request: NativeMigrationRequest,
    },
    /// State Capture on the source: the session's application state.
    Capture {
        /// Hook id.
        id: i64,
        /// Session id, 16 hex digits.
        session_id: String,
    },
    /// Restore on the target, before the session's calls resume.
    Restore {
        /// Hook id.
        id: i64,
        /// Session id, 16 hex digits.
        session_id: String,
        /// The state `capture` returned on the source.
        state: Buffer,
    },
}

/// The answer to a `migration-request` hook, tagged by `decision` (the public
/// `MigrationDecision`).
#[napi(discriminant = "decision", discriminant_case = "lowercase")]
pub enum NativeDecision {
    /// Proceed.
    Accept,
    /// Refuse; the session stays on the source.
    Reject {
        /// Why, at most 65535 bytes of UTF-8.
        reason: String,
    },
    /// Ask again later.
    Defer {
        /// Delay before the director asks again, ms.
        retry_after_ms: u32,
    },
}

impl From<NativeDecision> for ConfirmationDecision {
    fn from(d: NativeDecision) -> Self {
        match d {
            NativeDecision::Accept => ConfirmationDecision::Accept,
            NativeDecision::Reject { reason } => ConfirmationDecision::Reject { reason },
            NativeDecision::Defer { retry_after_ms } => {
                ConfirmationDecision::Defer { retry_after_ms }
            }
        }
    }
}

/// A running worker.
#[napi]
pub struct NativeWorker {
    inner: Arc<Worker>,
}

/// Starts a worker and registers it with the directors. Rejects with `INVALID_ARGUMENT` (bad id,
/// address or cluster directory, or a director refuses the id) or `UNAVAILABLE` (no director
/// accepted it within `connect_timeout_ms`).
#[napi(ts_return_type = "Promise<NativeWorker>")]
pub async fn start_worker(options: NativeWorkerOptions) -> Fallible<NativeWorker> {
    Fallible(start(options).await)
}

async fn start(options: NativeWorkerOptions) -> std::result::Result<NativeWorker, RpcError> {
    let cluster = credentials(options.cluster_dir, Role::Worker, options.id).await?;
    let mut config = WorkerConfig::new(cluster.name.clone(), options.director, cluster);
    config.user = bind_address(options.host.as_deref(), options.user_port).await?;
    config.mgmt = bind_address(options.host.as_deref(), options.mgmt_port).await?;
    config.advertise_user = options.advertise_address;
    config.advertise_mgmt = options.advertise_mgmt_address;
    if let Some(ms) = options.heartbeat_ms {
        config.heartbeat_ms = ms.into();
    }
    if let Some(ms) = options.connect_timeout_ms {
        config.connect_timeout_ms = ms.into();
    }
    let worker = Worker::start(config).await?;
    Ok(NativeWorker {
        inner: Arc::new(worker),
    })
}

#[napi]
impl NativeWorker {
    /// The worker's id.
    #[napi(getter)]
    pub fn id(&self) -> String {
        self.inner.id().to_string()
    }

    /// The management port's bound address, `ip:port`.
    #[napi(getter)]
    pub fn mgmt_address(&self) -> String {
        self.inner.mgmt_addr().to_string()
    }

    /// The user address told to the directors, `host:port`.
    #[napi(getter)]
    pub fn advertised_address(&self) -> String {
        self.inner.advertised_addr().to_string()
    }

    /// The management address told to the directors, `host:port`.
    #[napi(getter)]
    pub fn advertised_mgmt_address(&self) -> String {
        self.inner.advertised_mgmt_addr().to_string()
    }

    /// The directors that accepted the worker and were not lost since.
    #[napi(getter)]
    pub fn directors(&self) -> Vec<String> {
        self.inner.directors()
    }

    /// The user-port server, for registering handlers and answering calls.
    #[napi]
    pub fn server(&self) -> NativeServer {
        NativeServer {
            inner: self.inner.server().clone(),
        }
    }

    /// Which hooks JavaScript implements (the others use their defaults).
    #[napi]
    pub fn set_hooks(&self, confirm: bool, capture: bool, restore: bool) {
        self.inner.set_hooks(confirm, capture, restore);
    }

    /// Waits for up to `max` hook questions; empty once the worker is closed.
    #[napi]
    pub async fn next_hooks(&self, max: u32) -> Vec<NativeHook> {
        self.inner
            .next_hooks(max as usize)
            .await
            .into_iter()
            .map(|h| match h {
                WorkerHook::MigrationRequest { id, request } => NativeHook::MigrationRequest {
                    id: id as i64,
                    request: NativeMigrationRequest {
                        migration_id: request.migration_id as f64,
                        session_id: format!("{:016x}", request.session_id),
                        source: request.source,
                        target: request.target,
                        reason: request.reason.to_string(),
                    },
                },
                WorkerHook::Capture { id, session_id } => NativeHook::Capture {
                    id: id as i64,
                    session_id: format!("{session_id:016x}"),
                },
                WorkerHook::Restore {
                    id,
                    session_id,
                    state,
                } => NativeHook::Restore {
                    id: id as i64,
                    session_id: format!("{session_id:016x}"),
                    state: Buffer::from(state.to_vec()),
                },
            })
            .collect()
    }

    /// Answers a `migration-request` hook. False if it was already answered.
    #[napi]
    pub fn answer_decision(&self, id: i64, decision: NativeDecision) -> bool {
        self.inner
            .answer_hook(id as u64, HookAnswer::Decision(decision.into()))
    }

    /// Answers a `capture` hook with the state, or a `restore` hook with an empty buffer.
    #[napi]
    pub fn answer_state(&self, id: i64, state: Buffer) -> bool {
        self.inner
            .answer_hook(id as u64, HookAnswer::State(bytes(&state)))
    }

    /// Fails a hook (it threw or answered something invalid); the migration aborts.
    #[napi]
    pub fn fail_hook(&self, id: i64, message: String) -> bool {
        self.inner
            .answer_hook(id as u64, HookAnswer::Failed(message))
    }

    /// Asks the director to move every session away; resolves once none is left. Rejects with
    /// `DEADLINE_EXCEEDED` after `timeout_ms`, `UNAVAILABLE`, or the migration's error.
    #[napi(ts_return_type = "Promise<void>")]
    pub async fn drain(&self, timeout_ms: u32) -> Fallible<()> {
        Fallible(self.inner.drain(timeout_ms).await)
    }

    /// Closes; resolves once the UDP port(s) can be bound again.
    #[napi]
    pub async fn close(&self) {
        self.inner.close().await;
    }
}

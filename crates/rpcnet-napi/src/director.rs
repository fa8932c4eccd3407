//! `startDirector` and `NativeDirector`: forwards to `rpcnet_runtime::director::Director`.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use rpcnet_runtime::director::{Director, DirectorConfig, DirectorEvent, MigrationReport};
use rpcnet_runtime::{RpcError, ServerIdentity};

use crate::to_napi;
use crate::worker::credentials;
use rpcnet_runtime::addr::bind_addr;

#[napi(object)]
pub struct NativeDirectorOptions {
    pub cluster_dir: String,
    pub host: Option<String>,
    pub port: Option<u32>,
    pub mgmt_port: Option<u32>,
    pub cert_path: Option<String>,
    pub key_path: Option<String>,
    pub failover_after_ms: Option<u32>,
    pub auto_confirm: Option<bool>,
    pub phase_timeout_ms: Option<u32>,
    pub total_timeout_ms: Option<u32>,
}

#[napi(object)]
pub struct NativeMigrationReport {
    pub migration_id: f64,
    pub session_id: String,
    pub source: String,
    pub target: String,
    pub reason: String,
    pub completed: bool,
    pub error: Option<String>,
    pub aborted_in: Option<String>,
    pub phase_names: Vec<String>,
    pub phase_ms: Vec<f64>,
    pub duration_ms: f64,
    pub frozen_ms: f64,
    pub snapshot_bytes: f64,
}

fn report(r: MigrationReport) -> NativeMigrationReport {
    NativeMigrationReport {
        migration_id: r.migration_id as f64,
        session_id: format!("{:016x}", r.session_id),
        source: r.source,
        target: r.target,
        reason: r.reason,
        completed: r.completed,
        error: r.error,
        aborted_in: r.aborted_in,
        phase_names: r.phases.iter().map(|p| p.0.clone()).collect(),
        phase_ms: r.phases.iter().map(|p| p.1 as f64).collect(),
        duration_ms: r.duration_ms,
        frozen_ms: r.frozen_ms,
        snapshot_bytes: r.snapshot_bytes as f64,
    }
}

#[napi(object)]
pub struct NativeDirectorEvent {
    pub kind: String,
    pub worker: Option<String>,
    pub session_id: Option<String>,
    pub connection_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub detected_after_ms: Option<f64>,
    pub migration_id: Option<f64>,
    pub reason: Option<String>,
    pub migration: Option<NativeMigrationReport>,
}

fn event(kind: &str) -> NativeDirectorEvent {
    NativeDirectorEvent {
        kind: kind.into(),
        worker: None,
        session_id: None,
        connection_id: None,
        from: None,
        to: None,
        detected_after_ms: None,
        migration_id: None,
        reason: None,
        migration: None,
    }
}

#[napi(object)]
pub struct NativeWorkerInfo {
    pub id: String,
    pub sessions: u32,
}

#[napi(object)]
pub struct NativeSessionInfo {
    pub session_id: String,
    pub connection_id: String,
    pub worker: String,
}

#[napi(object)]
pub struct NativeSelectQuestion {
    pub id: i64,
    pub session_id: String,
    pub exclude: Option<String>,
    pub workers: Vec<NativeWorkerInfo>,
}

#[napi]
pub struct NativeDirector {
    inner: Arc<Director>,
}

fn session_id(text: &str) -> Result<u64> {
    u64::from_str_radix(text, 16).map_err(|_| {
        to_napi(RpcError::invalid_argument(format!(
            "session id must be 16 hex digits, got {text:?}"
        )))
    })
}

/// Starts a director.
#[napi]
pub async fn start_director(options: NativeDirectorOptions) -> Result<NativeDirector> {
    let mut config =
        DirectorConfig::new(credentials(options.cluster_dir, "director".into()).await?);
    config.bind = bind_addr(options.host.as_deref(), options.port).map_err(to_napi)?;
    config.mgmt_bind = bind_addr(options.host.as_deref(), options.mgmt_port).map_err(to_napi)?;
    config.identity = ServerIdentity::from_pem_paths(
        options.cert_path.map(Into::into),
        options.key_path.map(Into::into),
    )
    .map_err(to_napi)?;
    if let Some(ms) = options.failover_after_ms {
        config.failover_after_ms = ms.into();
    }
    if let Some(a) = options.auto_confirm {
        config.migration.auto_confirm = a;
    }
    if let Some(ms) = options.phase_timeout_ms {
        config.migration.phase_timeout_ms = ms.into();
    }
    if let Some(ms) = options.total_timeout_ms {
        config.migration.total_timeout_ms = ms.into();
    }
    let director = Director::bind(config).await.map_err(to_napi)?;
    Ok(NativeDirector {
        inner: Arc::new(director),
    })
}

#[napi]
impl NativeDirector {
    #[napi(getter)]
    pub fn address(&self) -> String {
        self.inner.local_addr().to_string()
    }

    #[napi(getter)]
    pub fn mgmt_address(&self) -> String {
        self.inner.mgmt_addr().to_string()
    }

    #[napi(getter)]
    pub fn cert_fingerprint(&self) -> String {
        self.inner.cert_fingerprint().to_string()
    }

    #[napi]
    pub async fn next_events(&self, max: u32) -> Vec<NativeDirectorEvent> {
        self.inner
            .next_events(max as usize)
            .await
            .into_iter()
            .map(|e| match e {
                DirectorEvent::WorkerJoined { worker } => NativeDirectorEvent {
                    worker: Some(worker),
                    ..event("worker-joined")
                },
                DirectorEvent::WorkerLost { worker } => NativeDirectorEvent {
                    worker: Some(worker),
                    ..event("worker-lost")
                },
                DirectorEvent::SessionOpened {
                    session_id,
                    connection_id,
                    worker,
                } => NativeDirectorEvent {
                    session_id: Some(format!("{session_id:016x}")),
                    connection_id: Some(connection_id),
                    worker: Some(worker),
                    ..event("session-opened")
                },
                DirectorEvent::SessionClosed { session_id } => NativeDirectorEvent {
                    session_id: Some(format!("{session_id:016x}")),
                    ..event("session-closed")
                },
                DirectorEvent::MigrationStarted {
                    migration_id,
                    session_id,
                    source,
                    target,
                    reason,
                } => NativeDirectorEvent {
                    session_id: Some(format!("{session_id:016x}")),
                    from: Some(source),
                    to: Some(target),
                    migration_id: Some(migration_id as f64),
                    reason: Some(reason),
                    ..event("migration-started")
                },
                DirectorEvent::MigrationFinished(r) => NativeDirectorEvent {
                    session_id: Some(format!("{:016x}", r.session_id)),
                    from: Some(r.source.clone()),
                    to: Some(r.target.clone()),
                    migration: Some(report(r)),
                    ..event("migration-finished")
                },
                DirectorEvent::Failover {
                    session_id,
                    from,
                    to,
                    detected_after_ms,
                } => NativeDirectorEvent {
                    session_id: Some(format!("{session_id:016x}")),
                    from: Some(from),
                    to: Some(to),
                    detected_after_ms: Some(detected_after_ms as f64),
                    ..event("failover")
                },
            })
            .collect()
    }

    #[napi]
    pub fn workers(&self) -> Vec<NativeWorkerInfo> {
        self.inner
            .workers()
            .into_iter()
            .map(|(id, n)| NativeWorkerInfo {
                id,
                sessions: n as u32,
            })
            .collect()
    }

    #[napi]
    pub fn sessions(&self) -> Vec<NativeSessionInfo> {
        self.inner
            .sessions()
            .into_iter()
            .map(|(id, c, w)| NativeSessionInfo {
                session_id: format!("{id:016x}"),
                connection_id: c,
                worker: w,
            })
            .collect()
    }

    #[napi]
    pub async fn wait_for_workers(&self, n: u32, timeout_ms: u32) -> bool {
        self.inner
            .wait_for_workers(n as usize, timeout_ms.into())
            .await
    }

    #[napi]
    pub async fn migrate(
        &self,
        session: String,
        target: Option<String>,
    ) -> Result<NativeMigrationReport> {
        let id = session_id(&session)?;
        self.inner
            .migrate(id, target)
            .await
            .map(report)
            .map_err(to_napi)
    }

    #[napi]
    pub async fn drain(&self, worker: String) -> Result<Vec<NativeMigrationReport>> {
        Ok(self
            .inner
            .drain(&worker)
            .await
            .map_err(to_napi)?
            .into_iter()
            .map(report)
            .collect())
    }

    #[napi]
    pub fn set_select_hook(&self, on: bool) {
        self.inner.set_select_hook(on);
    }

    #[napi]
    pub async fn next_select_questions(&self, max: u32) -> Vec<NativeSelectQuestion> {
        self.inner
            .next_select_questions(max as usize)
            .await
            .into_iter()
            .map(|q| NativeSelectQuestion {
                id: q.id as i64,
                session_id: format!("{:016x}", q.session_id),
                exclude: q.exclude,
                workers: q
                    .workers
                    .into_iter()
                    .map(|(id, n)| NativeWorkerInfo {
                        id,
                        sessions: n as u32,
                    })
                    .collect(),
            })
            .collect()
    }

    #[napi]
    pub fn answer_select(&self, id: i64, worker: Option<String>) -> bool {
        self.inner.answer_select(id as u64, worker)
    }

    /// Closes; resolves once the UDP port(s) can be bound again.
    #[napi]
    pub async fn close(&self) {
        self.inner.close().await;
    }
}

//! `startDirector` and `NativeDirector`: forwards to `rpcnet_runtime::director::Director`.

use std::sync::Arc;

use napi_derive::napi;
use rpcnet_runtime::addr::bind_address;
use rpcnet_runtime::director::{Director, DirectorConfig, DirectorEvent, MigrationReport};
use rpcnet_runtime::{RpcError, ServerIdentity};

use crate::cluster::credentials;
use crate::Fallible;
use rpcnet_runtime::cluster::Role;

/// Options of `startDirector`, already validated by src/options.ts (see `DirectorOptions` in
/// src/director.ts). Durations in ms.
#[napi(object)]
pub struct NativeDirectorOptions {
    /// Directory of the cluster CA and secret.
    pub cluster_dir: String,
    /// IP address or DNS name to bind; default `127.0.0.1`.
    pub host: Option<String>,
    /// User port, 0..65535 (0 = any).
    pub port: Option<u32>,
    /// Management port, 0..65535 (0 = any).
    pub mgmt_port: Option<u32>,
    /// The management address to give workers, `host:port` or a host (the bound port);
    /// default: the bound address, or an interface address for a wildcard bind.
    pub advertise_mgmt_address: Option<String>,
    /// PEM certificate chain shown to clients (with `key_path`); default: issued by the
    /// cluster CA.
    pub cert_path: Option<String>,
    /// PEM private key (with `cert_path`).
    pub key_path: Option<String>,
    /// Extra names (DNS names or IP literals) of the cluster-issued certificate; `host`, when it
    /// is a DNS name, is added.
    pub server_names: Option<Vec<String>>,
    /// Silence after which a worker is declared dead.
    pub failover_after_ms: Option<u32>,
    /// Skip the Confirmation phase.
    pub auto_confirm: Option<bool>,
    /// Longest single migration phase.
    pub phase_timeout_ms: Option<u32>,
    /// Longest migration before the Pivot.
    pub total_timeout_ms: Option<u32>,
    /// Migrations that run at once at most (RFC-001 Appendix B `max_concurrent`).
    pub max_concurrent_migrations: Option<u32>,
    /// QUIC idle timeout the user port offers clients, ms.
    pub idle_timeout_ms: Option<u32>,
    /// Keep-alive PING interval of the user port, ms; 0 for none.
    pub keep_alive_ms: Option<u32>,
}

/// Time spent in one RFC-001 phase.
#[napi(object)]
pub struct NativePhase {
    /// Phase name (`Initiation`, `Confirmation`, ...).
    pub phase: String,
    /// Duration, ms.
    pub ms: f64,
}

/// What one migration did (see `MigrationReport` in src/director.ts).
#[napi(object)]
pub struct NativeMigrationReport {
    /// Migration id.
    pub migration_id: f64,
    /// Session id, 16 hex digits.
    pub session_id: String,
    /// Source worker.
    pub source: String,
    /// Target worker.
    pub target: String,
    /// `drain`, `admin`, ...
    pub reason: String,
    /// True if the session now lives on the target.
    pub completed: bool,
    /// For an abort: `CODE: message` of the cause.
    pub error: Option<String>,
    /// For an abort: the phase that was running.
    pub aborted_in: Option<String>,
    /// Time per phase, in order.
    pub phases: Vec<NativePhase>,
    /// Total, ms.
    pub duration_ms: f64,
    /// Calls frozen, ms.
    pub frozen_ms: f64,
    /// Sealed snapshot size, bytes.
    pub snapshot_bytes: f64,
}

fn report(r: MigrationReport) -> NativeMigrationReport {
    NativeMigrationReport {
        migration_id: r.migration_id as f64,
        session_id: hex_id(r.session_id),
        source: r.source,
        target: r.target,
        reason: r.reason,
        completed: r.completed,
        error: r.error,
        aborted_in: r.aborted_in,
        phases: r
            .phases
            .into_iter()
            .map(|(phase, ms)| NativePhase { phase, ms })
            .collect(),
        duration_ms: r.duration_ms,
        frozen_ms: r.frozen_ms,
        snapshot_bytes: r.snapshot_bytes as f64,
    }
}

/// One director event, tagged by `kind` (kebab-case of the variant). Session ids are 16 hex
/// digits.
#[napi(discriminant = "kind", discriminant_case = "kebab-case")]
pub enum NativeDirectorEvent {
    /// A worker registered.
    WorkerJoined {
        /// Worker id.
        worker: String,
    },
    /// A worker missed its heartbeats or closed.
    WorkerLost {
        /// Worker id.
        worker: String,
    },
    /// A client connected: a new session, placed on `worker`.
    SessionOpened {
        /// Session id.
        session_id: String,
        /// The client connection's `connectionId`.
        connection_id: String,
        /// Its owner.
        worker: String,
    },
    /// A client connection ended and its session was freed.
    SessionClosed {
        /// Session id.
        session_id: String,
    },
    /// A migration began (Initiation).
    MigrationStarted {
        /// Migration id.
        migration_id: f64,
        /// Session id.
        session_id: String,
        /// Source worker.
        source: String,
        /// Target worker.
        target: String,
        /// `drain`, `admin`, ...
        reason: String,
    },
    /// A migration completed (`report.completed`) or was rolled back.
    MigrationFinished {
        /// What it did.
        report: NativeMigrationReport,
    },
    /// A session was re-opened on a new worker after its owner died.
    Failover {
        /// Session id.
        session_id: String,
        /// The dead owner.
        from: String,
        /// The new owner.
        to: String,
        /// Time between the owner's last heartbeat and the failover, ms.
        detected_after_ms: f64,
    },
}

impl From<DirectorEvent> for NativeDirectorEvent {
    fn from(e: DirectorEvent) -> Self {
        match e {
            DirectorEvent::WorkerJoined { worker } => Self::WorkerJoined { worker },
            DirectorEvent::WorkerLost { worker } => Self::WorkerLost { worker },
            DirectorEvent::SessionOpened {
                session_id,
                connection_id,
                worker,
            } => Self::SessionOpened {
                session_id: hex_id(session_id),
                connection_id,
                worker,
            },
            DirectorEvent::SessionClosed { session_id } => Self::SessionClosed {
                session_id: hex_id(session_id),
            },
            DirectorEvent::MigrationStarted {
                migration_id,
                session_id,
                source,
                target,
                reason,
            } => Self::MigrationStarted {
                migration_id: migration_id as f64,
                session_id: hex_id(session_id),
                source,
                target,
                reason,
            },
            DirectorEvent::MigrationFinished(r) => Self::MigrationFinished { report: report(r) },
            DirectorEvent::Failover {
                session_id,
                from,
                to,
                detected_after_ms,
            } => Self::Failover {
                session_id: hex_id(session_id),
                from,
                to,
                detected_after_ms: detected_after_ms as f64,
            },
        }
    }
}

/// A live worker and how many sessions it owns.
#[napi(object)]
pub struct NativeWorkerInfo {
    /// Worker id.
    pub id: String,
    /// Sessions it owns.
    pub sessions: u32,
}

/// An open session and its owner.
#[napi(object)]
pub struct NativeSessionInfo {
    /// Session id, 16 hex digits.
    pub session_id: String,
    /// The client connection's `connectionId`.
    pub connection_id: String,
    /// Its owner.
    pub worker: String,
}

/// A question for the `selectTarget` policy hook; answer it with `answerSelect(id, ...)`.
#[napi(object)]
pub struct NativeSelectQuestion {
    /// Question id.
    pub id: i64,
    /// Session id, 16 hex digits.
    pub session_id: String,
    /// The worker that is not a candidate (the owner or the dead worker), if any.
    pub exclude: Option<String>,
    /// Candidates, fewest sessions first.
    pub workers: Vec<NativeWorkerInfo>,
}

/// A running director.
#[napi]
pub struct NativeDirector {
    inner: Arc<Director>,
}

fn hex_id(id: u64) -> String {
    format!("{id:016x}")
}

fn session_id(text: &str) -> std::result::Result<u64, RpcError> {
    if text.len() != 16 {
        return Err(RpcError::invalid_argument(format!(
            "session id must be 16 hex digits, got {text:?}"
        )));
    }
    u64::from_str_radix(text, 16).map_err(|_| {
        RpcError::invalid_argument(format!("session id must be 16 hex digits, got {text:?}"))
    })
}

/// Starts a director. Rejects with `INVALID_ARGUMENT` (bad address, PEM files or cluster
/// directory) or `UNAVAILABLE` (a port cannot be bound).
#[napi(ts_return_type = "Promise<NativeDirector>")]
pub async fn start_director(options: NativeDirectorOptions) -> Fallible<NativeDirector> {
    Fallible(bind(options).await)
}

async fn bind(options: NativeDirectorOptions) -> std::result::Result<NativeDirector, RpcError> {
    let mut config =
        DirectorConfig::new(credentials(options.cluster_dir, Role::Director, None).await?);
    config.bind = bind_address(options.host.as_deref(), options.port).await?;
    config.mgmt_bind = bind_address(options.host.as_deref(), options.mgmt_port).await?;
    config.advertise_mgmt = options.advertise_mgmt_address;
    config.identity = match (options.cert_path, options.key_path) {
        (None, None) => ServerIdentity::ClusterIssued,
        (cert, key) => ServerIdentity::from_pem_paths(cert.map(Into::into), key.map(Into::into))?,
    };
    config.server_names = options.server_names.unwrap_or_default();
    // A host given by name is a name clients use too.
    if let Some(host) = options
        .host
        .filter(|h| h.parse::<std::net::IpAddr>().is_err())
    {
        config.server_names.insert(0, host);
    }
    if let Some(ms) = options.failover_after_ms {
        config.failover_after_ms = ms.into();
    }
    if let Some(a) = options.auto_confirm {
        config.migration.auto_confirm = a;
    }
    if let Some(ms) = options.phase_timeout_ms {
        config.migration.phase_timeout_ms = ms.into();
    }
    if let Some(n) = options.max_concurrent_migrations {
        config.max_concurrent_migrations = n as usize;
    }
    if let Some(ms) = options.total_timeout_ms {
        config.migration.total_timeout_ms = ms.into();
    }
    if let Some(ms) = options.idle_timeout_ms {
        config.idle_timeout_ms = ms.into();
    }
    if let Some(ms) = options.keep_alive_ms {
        config.keep_alive_ms = ms.into();
    }
    let director = Director::bind(config).await?;
    Ok(NativeDirector {
        inner: Arc::new(director),
    })
}

#[napi]
impl NativeDirector {
    /// The user port's address, `ip:port`.
    #[napi(getter)]
    pub fn address(&self) -> String {
        self.inner.local_addr().to_string()
    }

    /// The management port's bound address, `ip:port`.
    #[napi(getter)]
    pub fn mgmt_address(&self) -> String {
        self.inner.mgmt_addr().to_string()
    }

    /// The management address to give workers, `host:port`.
    #[napi(getter)]
    pub fn advertised_mgmt_address(&self) -> String {
        self.inner.advertised_mgmt_addr().to_string()
    }

    /// SHA-256 fingerprint of the certificate clients see.
    #[napi(getter)]
    pub fn cert_fingerprint(&self) -> String {
        self.inner.cert_fingerprint().to_string()
    }

    /// Waits for up to `max` events; an empty array means the director is closed.
    #[napi]
    pub async fn next_events(&self, max: u32) -> Vec<NativeDirectorEvent> {
        self.inner
            .next_events(max as usize)
            .await
            .into_iter()
            .map(Into::into)
            .collect()
    }

    /// Live workers.
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

    /// Open sessions.
    #[napi]
    pub fn sessions(&self) -> Vec<NativeSessionInfo> {
        self.inner
            .sessions()
            .into_iter()
            .map(|(id, c, w)| NativeSessionInfo {
                session_id: hex_id(id),
                connection_id: c,
                worker: w,
            })
            .collect()
    }

    /// Resolves true once `n` workers are registered, false after `timeout_ms`.
    #[napi]
    pub async fn wait_for_workers(&self, n: u32, timeout_ms: u32) -> bool {
        self.inner
            .wait_for_workers(n as usize, timeout_ms.into())
            .await
    }

    /// Admin migration of `session` (16 hex digits) to `target` (default: fewest sessions).
    /// Rejects with `INVALID_ARGUMENT`, `NOT_FOUND` or `UNAVAILABLE` (aborted).
    #[napi(ts_return_type = "Promise<NativeMigrationReport>")]
    pub async fn migrate(
        &self,
        session: String,
        target: Option<String>,
    ) -> Fallible<NativeMigrationReport> {
        let result = match session_id(&session) {
            Ok(id) => self.inner.migrate(id, target).await.map(report),
            Err(e) => Err(e),
        };
        Fallible(result)
    }

    /// Moves every session off `worker`. Rejects with `NOT_FOUND` or a migration's error.
    #[napi(ts_return_type = "Promise<Array<NativeMigrationReport>>")]
    pub async fn drain(&self, worker: String) -> Fallible<Vec<NativeMigrationReport>> {
        self.inner
            .drain(&worker)
            .await
            .map(|reports| reports.into_iter().map(report).collect())
            .into()
    }

    /// Turns the `selectTarget` hook on or off.
    #[napi]
    pub fn set_select_hook(&self, on: bool) {
        self.inner.set_select_hook(on);
    }

    /// Waits for up to `max` placement questions; empty once the director is closed.
    #[napi]
    pub async fn next_select_questions(&self, max: u32) -> Vec<NativeSelectQuestion> {
        self.inner
            .next_select_questions(max as usize)
            .await
            .into_iter()
            .map(|q| NativeSelectQuestion {
                id: q.id as i64,
                session_id: hex_id(q.session_id),
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

    /// Answers a placement question (`null` = the default). False if it was already answered.
    #[napi]
    pub fn answer_select(&self, id: i64, worker: Option<String>) -> bool {
        self.inner.answer_select(id as u64, worker)
    }

    /// Client TLS handshakes completed on the user port: `{ full, resumed }` (resumed: with a
    /// session ticket of the cluster).
    #[napi]
    pub fn handshakes(&self) -> NativeHandshakes {
        let (full, resumed) = self.inner.handshakes();
        NativeHandshakes {
            full: full as f64,
            resumed: resumed as f64,
        }
    }

    /// Shutdown for an upgrade: no new connections, MOVE to every resumable client, waits up to
    /// `timeout_ms` for them to leave, then closes. Resolves with how many had not left.
    #[napi]
    pub async fn shutdown(&self, timeout_ms: u32) -> u32 {
        self.inner.shutdown(timeout_ms.into()).await as u32
    }

    /// Closes; resolves once the UDP port(s) can be bound again.
    #[napi]
    pub async fn close(&self) {
        self.inner.close().await;
    }
}

/// Client TLS handshakes a director completed.
#[napi(object)]
pub struct NativeHandshakes {
    /// Full handshakes (certificate and key exchange).
    pub full: f64,
    /// Resumed handshakes (a session ticket of the cluster, RFC 8446 section 2.2).
    pub resumed: f64,
}

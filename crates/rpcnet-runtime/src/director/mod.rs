//! The director (DESIGN.md topology 1): the client-facing front. It holds every client's QUIC
//! connection for its whole life, routes each client's session to one worker at a time, and
//! relays the bytes of each call between the client's stream and the owner's stream in Rust.
//!
//! What decides anything lives in the sans-IO machines of `rpcnet-session`; these modules move
//! bytes, timers and events between them and quinn:
//!
//! - `session`: one session's [`rpcnet_session::Coordinator`] (route, epoch, freeze, RFC-001
//!   phases, failover) and its driver;
//! - `relay`: one client call through [`rpcnet_session::RelayCall`], re-attached after a
//!   migration or a failover, dropping items the client already has (exactly once, in order);
//! - `migrate`: starting admin and drain migrations, bounded in number, and their reports;
//! - `failover`: the heartbeat watchdog and re-routing off dead workers;
//! - `registry`: registered workers, their links, heartbeats and leases;
//! - `placement`: the default policy and the `selectTarget` hook;
//! - `clients` and `management`: the user and management ports;
//! - `resume`: resumable sessions: HELLO and WELCOME, credentials, claims at the workers;
//! - `config` and `events`: settings and what the embedder observes;
//! - this module: [`Director`], the handle the embedder holds.

mod admin;
mod clients;
mod config;
mod events;
mod failover;
mod management;
mod migrate;
mod placement;
mod registry;
mod relay;
mod resume;
mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpcnet_protocol::migration::{MigrationReason, TokenKey};
use rpcnet_protocol::ErrorCode;
use tokio::sync::{Notify, Semaphore};

use crate::cancel::Canceller;
use crate::endpoint::BoundEndpoint;
use crate::error::RpcError;
use crate::events::EventQueue;
use crate::mgmt;
use crate::server::{MethodKind, Server, ServerConfig};
use crate::ticketer::ClusterTicketer;
use crate::tls::{server_crypto, ServerIdentity};

pub use config::{DirectorConfig, DEFAULT_FAILOVER_AFTER_MS, DEFAULT_MAX_CONCURRENT_MIGRATIONS};
pub use events::{DirectorEvent, MigrationReport};
pub use placement::{SelectTarget, SELECT_HOOK_TIMEOUT_MS};
pub(crate) use registry::WorkerLink;
pub(crate) use session::Session;

/// The director's shared state, reached by every task it runs.
pub(crate) struct Inner {
    pub(crate) config: DirectorConfig,
    user: BoundEndpoint,
    mgmt: Arc<Server>,
    /// The management address to give workers (`host:port`).
    mgmt_advertised: String,
    fingerprint: String,
    pub(crate) workers: Mutex<HashMap<String, Arc<WorkerLink>>>,
    workers_changed: Notify,
    pub(crate) sessions: Mutex<HashMap<u64, Arc<Session>>>,
    /// Sessions per worker.
    pub(crate) placement: placement::Load,
    pub(crate) events: EventQueue<DirectorEvent>,
    pub(crate) next_call: AtomicU64,
    pub(crate) next_migration: AtomicU64,
    /// One permit per migration allowed to run at once.
    migration_slots: Semaphore,
    pub(crate) token_key: TokenKey,
    /// Set when the director shuts down: every session stream sends MOVE (PROTOCOL.md 15.5).
    pub(crate) moving: tokio::sync::watch::Sender<bool>,
    /// Client connections of resumable sessions still open (a shutdown waits for them to move).
    pub(crate) resumable_clients: tokio::sync::watch::Sender<usize>,
    /// TLS session tickets of the cluster; counts resumed handshakes.
    pub(crate) ticketer: Arc<ClusterTicketer>,
    /// Client connections accepted (handshakes completed) on the user port.
    pub(crate) handshakes: AtomicU64,
    /// Seals and opens resume credentials (PROTOCOL.md section 15.1).
    pub(crate) resume_key: rpcnet_protocol::resume::ResumeKey,
    closed: Canceller,
    select_hook: AtomicBool,
    select_questions: EventQueue<SelectTarget>,
    select_waiters: Mutex<HashMap<u64, tokio::sync::oneshot::Sender<Option<String>>>>,
    next_hook: AtomicU64,
}

impl Inner {
    pub(crate) fn emit(&self, e: DirectorEvent) {
        self.events.push(e);
    }

    pub(crate) fn worker(&self, id: &str) -> Option<Arc<WorkerLink>> {
        self.workers.lock().unwrap().get(id).cloned()
    }

    /// The open session `id`. Errors: `NOT_FOUND`.
    pub(crate) fn session(&self, id: u64) -> Result<Arc<Session>, RpcError> {
        self.sessions
            .lock()
            .unwrap()
            .get(&id)
            .cloned()
            .ok_or_else(|| RpcError::new(ErrorCode::NotFound, format!("no session {id:016x}")))
    }

    pub(crate) fn has_session(&self, id: u64) -> bool {
        self.sessions.lock().unwrap().contains_key(&id)
    }

    /// Every open session now.
    pub(crate) fn all_sessions(&self) -> Vec<Arc<Session>> {
        self.sessions.lock().unwrap().values().cloned().collect()
    }
}

/// A running director (see module docs).
pub struct Director {
    inner: Arc<Inner>,
}

impl Director {
    /// Binds the user and management ports and starts serving. Must run inside tokio.
    ///
    /// Errors: `UNAVAILABLE` when a port cannot be bound; `INVALID_ARGUMENT` for a bad identity
    /// or a server name that is neither an IP address nor a DNS name, or an `advertise_mgmt`
    /// that is malformed or does not resolve.
    pub async fn bind(config: DirectorConfig) -> Result<Director, RpcError> {
        crate::log::init();
        let identity = match &config.identity {
            // Issued credentials: the director's own certificate, checked against the names
            // configured (the bound IP, a pod's say, cannot be known when it was issued).
            ServerIdentity::ClusterIssued if !config.cluster.holds_ca_key() => {
                config.cluster.issue_server_identity(&config.server_names)?
            }
            ServerIdentity::ClusterIssued => config
                .cluster
                .issue_server_identity(&config.certificate_names())?,
            other => other.load()?,
        };
        let fingerprint = identity.fingerprint.clone();
        // Session tickets every director of the cluster opens: a client resuming its session on
        // another director makes a resumed TLS handshake (crate::ticketer).
        let ticketer = Arc::new(ClusterTicketer::new(
            config.cluster.derive_key(crate::ticketer::TICKET_KEY_LABEL),
        ));
        let mut crypto = server_crypto(identity)?;
        crypto.ticketer = ticketer.clone();
        let quic = quinn::crypto::rustls::QuicServerConfig::try_from(crypto)
            .map_err(|e| RpcError::internal(format!("TLS config unusable for QUIC: {e}")))?;
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(quic));
        server_config.transport_config(crate::transport::serving_transport_config(
            config.idle_timeout_ms,
            config.keep_alive_ms,
        )?);
        // The cluster's stateless reset key: a director restarted on this address resets the
        // connections of its predecessor (ClusterCredentials::endpoint_config).
        let user =
            BoundEndpoint::server(server_config, config.cluster.endpoint_config(), config.bind)
                .map_err(|e| {
                    RpcError::unavailable(format!("cannot bind UDP {}: {e}", config.bind))
                })?;
        let mgmt = Arc::new(
            Server::bind(ServerConfig {
                bind: config.mgmt_bind,
                cluster: Some(config.cluster.clone()),
                ..ServerConfig::default()
            })
            .await?,
        );
        let mgmt_advertised = match crate::addr::advertised(
            config.advertise_mgmt.as_deref(),
            mgmt.local_addr(),
            "advertiseMgmtAddress",
        )
        .await
        {
            Ok(a) => a,
            Err(e) => {
                tokio::join!(user.close(0, b"director closed"), mgmt.close());
                return Err(e);
            }
        };
        for m in mgmt::DIRECTOR_METHODS
            .into_iter()
            .chain(crate::admin::METHODS)
        {
            mgmt.register(m, MethodKind::Unary);
        }
        let inner = Arc::new(Inner {
            mgmt_advertised,
            token_key: crate::worker::token_key(&config.cluster),
            resume_key: resume::resume_key(&config.cluster),
            ticketer,
            handshakes: AtomicU64::new(0),
            moving: tokio::sync::watch::channel(false).0,
            resumable_clients: tokio::sync::watch::channel(0).0,
            migration_slots: Semaphore::new(config.max_concurrent_migrations.max(1)),
            config,
            user,
            mgmt,
            fingerprint,
            workers: Mutex::new(HashMap::new()),
            workers_changed: Notify::new(),
            sessions: Mutex::new(HashMap::new()),
            placement: Default::default(),
            events: EventQueue::default(),
            next_call: AtomicU64::new(1),
            next_migration: AtomicU64::new(1),
            closed: Canceller::new(),
            select_hook: AtomicBool::new(false),
            select_questions: EventQueue::default(),
            select_waiters: Mutex::new(HashMap::new()),
            next_hook: AtomicU64::new(1),
        });
        tokio::spawn(clients::accept_clients(inner.clone()));
        tokio::spawn(management::serve_mgmt(inner.clone()));
        tokio::spawn(failover::watchdog(inner.clone()));
        Ok(Director { inner })
    }

    /// The user port's address (clients connect here).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.user.local_addr()
    }

    /// The management port's bound address (workers register here).
    pub fn mgmt_addr(&self) -> SocketAddr {
        self.inner.mgmt.local_addr()
    }

    /// The management address to give workers (`host:port`): the configured `advertise_mgmt`,
    /// or the default of [`crate::addr::default_advertised`] for the bound address.
    pub fn advertised_mgmt_addr(&self) -> &str {
        &self.inner.mgmt_advertised
    }

    /// Client TLS handshakes completed on the user port so far: `(full, resumed)`. A resumed one
    /// used a session ticket of the cluster (any director's), as a client resuming its session
    /// here does (crate::ticketer).
    pub fn handshakes(&self) -> (u64, u64) {
        let all = self.inner.handshakes.load(Ordering::Relaxed);
        let resumed = self.inner.ticketer.resumed().min(all);
        (all - resumed, resumed)
    }

    /// SHA-256 fingerprint of the certificate clients see.
    pub fn cert_fingerprint(&self) -> &str {
        &self.inner.fingerprint
    }

    /// Waits for events; up to `max`; empty once closed.
    pub async fn next_events(&self, max: usize) -> Vec<DirectorEvent> {
        self.inner.events.next_batch(max, &self.inner.closed).await
    }

    /// Live workers and the number of sessions each owns.
    pub fn workers(&self) -> Vec<(String, usize)> {
        let load = self.inner.load();
        let mut v: Vec<_> = self
            .inner
            .workers
            .lock()
            .unwrap()
            .values()
            .filter(|w| w.alive())
            .map(|w| (w.id.clone(), load.get(&w.id).copied().unwrap_or(0)))
            .collect();
        v.sort();
        v
    }

    /// Open sessions: `(session id, connectionId, owner)`.
    pub fn sessions(&self) -> Vec<(u64, String, String)> {
        let mut v: Vec<_> = self
            .inner
            .sessions
            .lock()
            .unwrap()
            .values()
            .map(|s| (s.id, s.connection_id.clone(), s.owner()))
            .collect();
        v.sort();
        v
    }

    /// Waits until at least `n` live workers are registered, or `timeout_ms` passes.
    pub async fn wait_for_workers(&self, n: usize, timeout_ms: u64) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
        loop {
            let notified = self.inner.workers_changed.notified();
            if self.workers().len() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.workers().len() >= n;
            }
        }
    }

    /// Admin migration (RFC-001, all phases): moves `session_id` to `target` (or the default
    /// choice: the live worker with the fewest sessions other than the owner). A migration of
    /// the same session already running is waited for first; at most
    /// `max_concurrent_migrations` run at once, further ones wait for a slot.
    ///
    /// Errors: `NOT_FOUND` for an unknown session or worker; `INVALID_ARGUMENT` when `target`
    /// already owns the session; `UNAVAILABLE` when no other worker is available, or when the
    /// migration aborted (the message names the phase and the migration code); the session then
    /// stays where it was, nothing lost.
    pub async fn migrate(
        &self,
        session_id: u64,
        target: Option<String>,
    ) -> Result<MigrationReport, RpcError> {
        let order = migrate::Order {
            session_id,
            from: None,
            target,
            reason: MigrationReason::Admin,
        };
        let report = migrate::migrate(&self.inner, order).await?;
        report.ok_or_else(|| RpcError::internal("an admin migration has no expected source"))
    }

    /// Graceful drain of one worker: marks it draining (no new sessions) and migrates every
    /// session it owns to other workers, up to `max_concurrent_migrations` at once. Returns the
    /// reports.
    ///
    /// Errors: `NOT_FOUND` for an unknown worker; the first failed migration's error (after
    /// every session was tried).
    pub async fn drain(&self, worker: &str) -> Result<Vec<MigrationReport>, RpcError> {
        migrate::drain(&self.inner, worker).await
    }

    /// Turns the embedder's `selectTarget` policy hook on or off (off: fewest sessions).
    pub fn set_select_hook(&self, on: bool) {
        self.inner.select_hook.store(on, Ordering::SeqCst);
    }

    /// Waits for placement questions for the `selectTarget` hook; empty once closed.
    pub async fn next_select_questions(&self, max: usize) -> Vec<SelectTarget> {
        self.inner
            .select_questions
            .next_batch(max, &self.inner.closed)
            .await
    }

    /// Answers a placement question (`None`: use the default). False for an unknown id.
    pub fn answer_select(&self, id: u64, worker: Option<String>) -> bool {
        match self.inner.select_waiters.lock().unwrap().remove(&id) {
            Some(tx) => tx.send(worker).is_ok(),
            None => false,
        }
    }

    /// Graceful shutdown for an upgrade (SIGTERM): accepts no new connection, tells every client
    /// of a resumable session to move (MOVE on its session stream, PROTOCOL.md section 15.5),
    /// waits until they have left for another director (at most `timeout_ms`), then closes as
    /// [`Director::close`] does (clients of plain sessions are closed with it). Returns how many
    /// resumable clients had not left in time.
    pub async fn shutdown(&self, timeout_ms: u64) -> usize {
        if let Some(endpoint) = self.inner.user.endpoint() {
            endpoint.set_server_config(None);
        }
        self.inner.moving.send_replace(true);
        let mut left = self.inner.resumable_clients.subscribe();
        let waited = tokio::time::timeout(
            Duration::from_millis(timeout_ms),
            left.wait_for(|&n| n == 0),
        )
        .await
        .is_ok();
        let stayed = if waited { 0 } else { *left.borrow() };
        if stayed > 0 {
            tracing::warn!(
                stayed,
                timeout_ms,
                "clients did not move before the shutdown timeout"
            );
        }
        self.close().await;
        stayed
    }

    /// Closes both ports and all client connections (application code 0). Returns once both
    /// UDP ports are released, so they can be bound again at once (waits at most 5 s, for
    /// connections to drain and their relays to end). Idempotent.
    pub async fn close(&self) {
        self.inner.closed.cancel();
        tokio::join!(
            self.inner.user.close(0, b"director closed"),
            self.inner.mgmt.close()
        );
    }
}

//! The director (DESIGN.md topology 1): the client-facing front. It holds every client's QUIC
//! connection for its whole life, routes each client's session to one worker at a time, and
//! relays the bytes of each call between the client's stream and the owner's stream in Rust.
//!
//! - [`relay`]: one client call, relayed to the owner and re-attached after a migration or a
//!   failover, dropping items the client already has (exactly once, in order).
//! - [`migrate`]: RFC-001's phases driven by the sans-IO [`Migration`] state machine.
//! - this module: the user and management ports, the worker registry with heartbeats and
//!   failover, sessions and their routes, and the events the embedder observes.

mod migrate;
mod relay;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpcnet_protocol::migration::{Heartbeat, ManagementMessage, MigrationConfig, TokenKey};
use tokio::sync::{watch, Notify};

use crate::cancel::Canceller;
use crate::client::{Client, ClientConfig};
use crate::cluster::ClusterCredentials;
use crate::connection::ConnectionInfo;
use crate::endpoint::BoundEndpoint;
use crate::error::RpcError;
use crate::events::EventQueue;
use crate::mgmt::{self, now_ms};
use crate::server::{MethodKind, Server, ServerConfig, ServerEvent};
use crate::tls::{server_crypto, ServerIdentity};
use crate::transport::{transport_config, CallWindow, MAX_CONCURRENT_CALLS};
use rpcnet_protocol::DEFAULT_MAX_FRAME_SIZE;

pub use migrate::MigrationReport;

/// Default time without a heartbeat after which a worker is declared dead, ms.
pub const DEFAULT_FAILOVER_AFTER_MS: u64 = 500;

/// Director settings.
#[derive(Clone)]
pub struct DirectorConfig {
    /// User port: where clients connect.
    pub bind: SocketAddr,
    /// Certificate shown to clients (default: self-signed; clients pin its fingerprint).
    pub identity: ServerIdentity,
    /// Management port: where workers register and heartbeat (mutual TLS under the cluster CA).
    pub mgmt_bind: SocketAddr,
    /// Cluster CA, leaf and secret.
    pub cluster: Arc<ClusterCredentials>,
    /// A worker silent for this long (ms) is declared dead and its sessions fail over.
    pub failover_after_ms: u64,
    /// Migration settings (RFC-001 Appendix B): auto-confirm, phase and total timeouts.
    pub migration: MigrationConfig,
    /// Largest accepted frame body from clients, bytes.
    pub max_frame_size: u32,
}

impl DirectorConfig {
    /// Loopback defaults with any free ports.
    pub fn new(cluster: Arc<ClusterCredentials>) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            identity: ServerIdentity::SelfSigned,
            mgmt_bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            cluster,
            failover_after_ms: DEFAULT_FAILOVER_AFTER_MS,
            migration: MigrationConfig::default(),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        }
    }
}

/// Something the embedder can observe.
#[derive(Debug, Clone)]
pub enum DirectorEvent {
    /// A worker registered (or re-registered).
    WorkerJoined {
        /// Worker id.
        worker: String,
    },
    /// A worker missed heartbeats for `failover_after_ms` and was declared dead.
    WorkerLost {
        /// Worker id.
        worker: String,
    },
    /// A client connected; its session was placed on `worker`.
    SessionOpened {
        /// Session id.
        session_id: u64,
        /// The client's `connectionId`.
        connection_id: String,
        /// The owner.
        worker: String,
    },
    /// A client connection ended.
    SessionClosed {
        /// Session id.
        session_id: u64,
    },
    /// A migration began (RFC-001 Initiation).
    MigrationStarted {
        /// Migration id.
        migration_id: u64,
        /// Session id.
        session_id: u64,
        /// Source worker.
        source: String,
        /// Target worker.
        target: String,
        /// `drain`, `admin`, ...
        reason: String,
    },
    /// A migration finished; see [`MigrationReport`].
    MigrationFinished(MigrationReport),
    /// A session was re-opened on `to` after its owner `from` died.
    Failover {
        /// Session id.
        session_id: u64,
        /// The dead owner.
        from: String,
        /// The new owner.
        to: String,
        /// Time from the last heartbeat of `from` to the new route, ms.
        detected_after_ms: u64,
    },
}

/// A placement question for the embedder's `selectTarget` policy hook, answered with
/// [`Director::answer_select`]. Asked for a new session (`exclude` = none), a migration target
/// (`exclude` = the owner) and a failover (`exclude` = the dead owner).
#[derive(Debug, Clone)]
pub struct SelectTarget {
    /// Hook id.
    pub id: u64,
    /// The session to place.
    pub session_id: u64,
    /// The worker that must not be chosen, if any.
    pub exclude: Option<String>,
    /// Live, non-draining candidates with their session counts.
    pub workers: Vec<(String, usize)>,
}

/// How long the director waits for `selectTarget` before using the default policy, ms.
pub const SELECT_HOOK_TIMEOUT_MS: u64 = 1_000;

pub(crate) struct WorkerLink {
    pub(crate) id: String,
    pub(crate) link: Client,
    pub(crate) mgmt: Client,
    /// The user and management addresses it registered with: they tell a re-registration of
    /// this worker from another worker claiming its id.
    addrs: (SocketAddr, SocketAddr),
    last_heartbeat: AtomicU64,
    pub(crate) dead: Canceller,
    draining: AtomicBool,
    /// Call streams currently relayed to this worker.
    active: Arc<std::sync::atomic::AtomicUsize>,
}

/// Decrements a worker's active stream count when dropped.
pub(crate) struct ActiveStream(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for ActiveStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl WorkerLink {
    pub(crate) fn track_stream(&self) -> ActiveStream {
        self.active.fetch_add(1, Ordering::SeqCst);
        ActiveStream(self.active.clone())
    }

    pub(crate) fn alive(&self) -> bool {
        !self.dead.is_cancelled()
    }
}

pub(crate) use rpcnet_session::Route;

pub(crate) struct Session {
    pub(crate) id: u64,
    pub(crate) connection_id: String,
    pub(crate) route: watch::Sender<Route>,
    pub(crate) migrating: tokio::sync::Mutex<()>,
}

pub(crate) struct Inner {
    pub(crate) config: DirectorConfig,
    user: BoundEndpoint,
    mgmt: Arc<Server>,
    fingerprint: String,
    pub(crate) workers: Mutex<HashMap<String, Arc<WorkerLink>>>,
    workers_changed: Notify,
    pub(crate) sessions: Mutex<HashMap<u64, Arc<Session>>>,
    pub(crate) events: EventQueue<DirectorEvent>,
    pub(crate) next_call: AtomicU64,
    pub(crate) next_migration: AtomicU64,
    pub(crate) token_key: TokenKey,
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

    /// Sessions owned by each worker now.
    fn load(&self) -> HashMap<String, usize> {
        let mut load = HashMap::new();
        for s in self.sessions.lock().unwrap().values() {
            *load.entry(s.route.borrow().owner.clone()).or_insert(0) += 1;
        }
        load
    }

    /// Live, non-draining workers other than `exclude`, with their session counts, ordered by the
    /// default policy: fewest sessions first (ties: lowest id).
    fn candidates(&self, exclude: Option<&str>) -> Vec<(String, usize)> {
        let load = self.load();
        let workers = self.workers.lock().unwrap();
        let mut candidates: Vec<(String, usize)> = workers
            .values()
            .filter(|w| {
                w.alive() && !w.draining.load(Ordering::SeqCst) && Some(w.id.as_str()) != exclude
            })
            .map(|w| (w.id.clone(), load.get(&w.id).copied().unwrap_or(0)))
            .collect();
        candidates.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        candidates
    }

    /// Chooses a worker for `session_id`: the embedder's `selectTarget` hook when set (its answer
    /// must be one of the candidates), else, or if it does not answer within
    /// [`SELECT_HOOK_TIMEOUT_MS`], the default policy.
    pub(crate) async fn select_worker(
        &self,
        session_id: u64,
        exclude: Option<&str>,
    ) -> Option<String> {
        let candidates = self.candidates(exclude);
        let default = candidates.first().map(|c| c.0.clone());
        if candidates.is_empty() || !self.select_hook.load(Ordering::SeqCst) {
            return default;
        }
        let id = self.next_hook.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.select_waiters.lock().unwrap().insert(id, tx);
        self.select_questions.push(SelectTarget {
            id,
            session_id,
            exclude: exclude.map(str::to_string),
            workers: candidates.clone(),
        });
        let answer = tokio::time::timeout(Duration::from_millis(SELECT_HOOK_TIMEOUT_MS), rx).await;
        self.select_waiters.lock().unwrap().remove(&id);
        match answer {
            Ok(Ok(Some(choice))) if candidates.iter().any(|c| c.0 == choice) => Some(choice),
            Ok(Ok(Some(choice))) => {
                tracing::warn!(%choice, "selectTarget chose a worker that is not a candidate; using the default");
                default
            }
            _ => default,
        }
    }
}

/// A running director (see module docs).
pub struct Director {
    inner: Arc<Inner>,
}

impl Director {
    /// Binds the user and management ports and starts serving. Must run inside tokio.
    ///
    /// Errors: `UNAVAILABLE` when a port cannot be bound; `INVALID_ARGUMENT` for a bad identity.
    pub async fn bind(config: DirectorConfig) -> Result<Director, RpcError> {
        crate::log::init();
        let identity = config.identity.load()?;
        let fingerprint = identity.fingerprint.clone();
        let quic = quinn::crypto::rustls::QuicServerConfig::try_from(server_crypto(identity)?)
            .map_err(|e| RpcError::internal(format!("TLS config unusable for QUIC: {e}")))?;
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(quic));
        server_config.transport_config(transport_config());
        let user = BoundEndpoint::server(server_config, config.bind)
            .map_err(|e| RpcError::unavailable(format!("cannot bind UDP {}: {e}", config.bind)))?;
        let mgmt = Arc::new(
            Server::bind(ServerConfig {
                bind: config.mgmt_bind,
                cluster: Some(config.cluster.clone()),
                ..ServerConfig::default()
            })
            .await?,
        );
        for m in mgmt::DIRECTOR_METHODS {
            mgmt.register(m, MethodKind::Unary);
        }
        let inner = Arc::new(Inner {
            token_key: crate::worker::token_key(&config.cluster),
            config,
            user,
            mgmt,
            fingerprint,
            workers: Mutex::new(HashMap::new()),
            workers_changed: Notify::new(),
            sessions: Mutex::new(HashMap::new()),
            events: EventQueue::default(),
            next_call: AtomicU64::new(1),
            next_migration: AtomicU64::new(1),
            closed: Canceller::new(),
            select_hook: AtomicBool::new(false),
            select_questions: EventQueue::default(),
            select_waiters: Mutex::new(HashMap::new()),
            next_hook: AtomicU64::new(1),
        });
        tokio::spawn(accept_clients(inner.clone()));
        tokio::spawn(serve_mgmt(inner.clone()));
        tokio::spawn(watchdog(inner.clone()));
        Ok(Director { inner })
    }

    /// The user port's address (clients connect here).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.user.local_addr()
    }

    /// The management port's address (workers register here).
    pub fn mgmt_addr(&self) -> SocketAddr {
        self.inner.mgmt.local_addr()
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
            .map(|s| {
                (
                    s.id,
                    s.connection_id.clone(),
                    s.route.borrow().owner.clone(),
                )
            })
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
    /// choice: the live worker with the fewest sessions other than the owner).
    ///
    /// Errors: `NOT_FOUND` for an unknown session or worker; `UNAVAILABLE` when no other worker
    /// is available; `ABORTED`-style failures are reported as `UNAVAILABLE` with the migration
    /// code and phase in the message — the session then stays where it was, nothing lost.
    pub async fn migrate(
        &self,
        session_id: u64,
        target: Option<String>,
    ) -> Result<MigrationReport, RpcError> {
        migrate::migrate(
            &self.inner,
            session_id,
            target,
            rpcnet_protocol::migration::MigrationReason::Admin,
        )
        .await
    }

    /// Graceful drain of one worker: marks it draining (no new sessions) and migrates every
    /// session it owns to other workers. Returns the reports.
    ///
    /// Errors: `NOT_FOUND` for an unknown worker; the first failed migration's error.
    pub async fn drain(&self, worker: &str) -> Result<Vec<MigrationReport>, RpcError> {
        drain(&self.inner, worker).await
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

async fn drain(inner: &Arc<Inner>, worker: &str) -> Result<Vec<MigrationReport>, RpcError> {
    let w = inner.worker(worker).ok_or_else(|| {
        RpcError::new(
            rpcnet_protocol::ErrorCode::NotFound,
            format!("no worker {worker}"),
        )
    })?;
    w.draining.store(true, Ordering::SeqCst);
    let owned: Vec<u64> = inner
        .sessions
        .lock()
        .unwrap()
        .values()
        .filter(|s| s.route.borrow().owner == worker)
        .map(|s| s.id)
        .collect();
    let mut reports = Vec::new();
    for id in owned {
        reports.push(
            migrate::migrate(
                inner,
                id,
                None,
                rpcnet_protocol::migration::MigrationReason::Drain,
            )
            .await?,
        );
    }
    // Before the worker may exit, every relayed stream must have read its last frame from it
    // (SUSPENDED, or the result of an in-flight unary call), or those bytes could be lost.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(10_000);
    while w.active.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(reports)
}

fn session_id_of(connection_id: &str) -> u64 {
    u64::from_str_radix(connection_id, 16).unwrap_or_else(|_| {
        let d = ring::digest::digest(&ring::digest::SHA256, connection_id.as_bytes());
        u64::from_be_bytes(d.as_ref()[..8].try_into().expect("8 bytes"))
    })
}

async fn accept_clients(inner: Arc<Inner>) {
    let Some(endpoint) = inner.user.endpoint() else {
        return;
    };
    while let Some(incoming) = endpoint.accept().await {
        let inner = inner.clone();
        tokio::spawn(async move {
            let Ok(connection) = incoming.await else {
                return;
            };
            let info = ConnectionInfo::new(connection.clone());
            let session_id = session_id_of(&info.id);
            let Some(owner) = inner.select_worker(session_id, None).await else {
                tracing::warn!("no worker available for a new session");
                connection.close(
                    crate::error::app_code(rpcnet_protocol::ErrorCode::Unavailable),
                    b"no worker available",
                );
                return;
            };
            let (route, _) = watch::channel(Route::new(owner.clone()));
            let session = Arc::new(Session {
                id: session_id,
                connection_id: info.id.clone(),
                route,
                migrating: tokio::sync::Mutex::new(()),
            });
            inner
                .sessions
                .lock()
                .unwrap()
                .insert(session_id, session.clone());
            inner.emit(DirectorEvent::SessionOpened {
                session_id,
                connection_id: info.id.clone(),
                worker: owner,
            });
            let window = CallWindow::new(connection.clone(), MAX_CONCURRENT_CALLS);
            while let Ok((send, recv)) = connection.accept_bi().await {
                let open = window.opened();
                let call = relay::relay(inner.clone(), session.clone(), send, recv);
                tokio::spawn(async move {
                    call.await;
                    drop(open);
                });
            }
            // The connection's handles keep the user port's socket open (Director::close).
            drop((connection, info, window));
            inner.sessions.lock().unwrap().remove(&session_id);
            // Tell the owner, so it frees whatever it still holds for the session (captured or
            // restored calls that will never be re-attached).
            let owner = session.route.borrow().owner.clone();
            if let Some(w) = inner.worker(&owner).filter(|w| w.alive()) {
                let msg =
                    ManagementMessage::SessionClosed(rpcnet_protocol::migration::SessionClosed {
                        session_id,
                    });
                if let Err(e) = mgmt::call(&w.mgmt, mgmt::SESSION_CLOSED, &msg, 2_000).await {
                    tracing::debug!(error = %e, "SessionClosed to the owner failed");
                }
            }
            inner.emit(DirectorEvent::SessionClosed { session_id });
        });
    }
}

async fn serve_mgmt(inner: Arc<Inner>) {
    loop {
        let events = inner.mgmt.next_events(64).await;
        if events.is_empty() {
            return;
        }
        for event in events {
            let ServerEvent::Call {
                id,
                method,
                payload,
                ..
            } = event
            else {
                continue;
            };
            let inner = inner.clone();
            tokio::spawn(async move {
                let result = match mgmt::decode(&payload) {
                    Ok(msg) => handle_mgmt(&inner, &method, msg).await,
                    Err(e) => Err(e),
                };
                inner
                    .mgmt
                    .respond(id, result.and_then(|m| mgmt::encode(&m)));
            });
        }
    }
}

async fn handle_mgmt(
    inner: &Arc<Inner>,
    method: &str,
    msg: ManagementMessage,
) -> Result<ManagementMessage, RpcError> {
    match (method, msg) {
        (mgmt::REGISTER, ManagementMessage::Register(r)) => {
            let parse = |a: &str| {
                a.parse::<SocketAddr>()
                    .map_err(|_| RpcError::invalid_argument(format!("bad address {a:?}")))
            };
            let (user_addr, mgmt_addr) = (parse(&r.user_addr)?, parse(&r.mgmt_addr)?);
            if let Some(current) = inner.worker(&r.worker_id) {
                claimable(inner, &current, (user_addr, mgmt_addr))?;
            }
            let cfg = ClientConfig::cluster(inner.config.cluster.clone());
            let link = Client::connect(user_addr, cfg.clone()).await?;
            let mgmt = Client::connect(mgmt_addr, cfg).await?;
            let w = Arc::new(WorkerLink {
                id: r.worker_id.clone(),
                link,
                mgmt,
                addrs: (user_addr, mgmt_addr),
                last_heartbeat: AtomicU64::new(now_ms()),
                dead: Canceller::new(),
                draining: AtomicBool::new(false),
                active: Default::default(),
            });
            let replaced = {
                // Checked again: another registration may have taken the id while we connected.
                let mut workers = inner.workers.lock().unwrap();
                if let Some(current) = workers.get(&r.worker_id) {
                    claimable(inner, current, (user_addr, mgmt_addr))?;
                }
                workers.insert(r.worker_id.clone(), w)
            };
            if let Some(old) = replaced {
                // Relays on the old link see it die; give them a newer route to the new link.
                old.dead.cancel();
                for s in inner.sessions.lock().unwrap().values() {
                    if s.route.borrow().owner == r.worker_id {
                        s.route.send_modify(|route| route.epoch += 1);
                    }
                }
            }
            inner.workers_changed.notify_waiters();
            // Sessions left without a live owner (a failover found no worker) get this one.
            reroute_orphans(inner).await;
            tracing::info!(worker = %r.worker_id, %user_addr, %mgmt_addr, "worker registered");
            inner.emit(DirectorEvent::WorkerJoined {
                worker: r.worker_id.clone(),
            });
            Ok(ManagementMessage::Register(r))
        }
        (mgmt::HEARTBEAT, ManagementMessage::Heartbeat(h)) => {
            match inner.worker(&h.worker_id) {
                Some(w) if w.alive() => w.last_heartbeat.store(now_ms(), Ordering::SeqCst),
                _ => {
                    return Err(RpcError::new(
                        rpcnet_protocol::ErrorCode::NotFound,
                        format!("worker {} is not registered", h.worker_id),
                    ))
                }
            }
            Ok(ManagementMessage::Heartbeat(h))
        }
        (mgmt::DRAIN, ManagementMessage::Register(r)) => {
            drain(inner, &r.worker_id).await?;
            Ok(ManagementMessage::Heartbeat(Heartbeat {
                worker_id: r.worker_id,
                sessions: 0,
                at_ms: now_ms(),
            }))
        }
        (m, msg) => Err(RpcError::invalid_argument(format!(
            "MESSAGE_MALFORMED: {} is not accepted by {m}",
            msg.name()
        ))),
    }
}

/// Whether a REGISTER with addresses `addrs` (user, management) may take the id of `current`: a
/// worker id has one owner at a time. Yes if `current` was declared dead, or if it registered
/// with the same addresses (the same worker registering again, or its restart on the same
/// ports). Otherwise `INVALID_ARGUMENT` naming the id and the live worker's addresses.
fn claimable(
    inner: &Inner,
    current: &WorkerLink,
    addrs: (SocketAddr, SocketAddr),
) -> Result<(), RpcError> {
    if !current.alive() || current.addrs == addrs {
        return Ok(());
    }
    Err(RpcError::invalid_argument(format!(
        "worker id {} is already registered by a live worker at {} (management port {}); \
         the id is free again once that worker is declared dead ({} ms without a heartbeat)",
        current.id, current.addrs.0, current.addrs.1, inner.config.failover_after_ms
    )))
}

/// Failover (DESIGN.md vocabulary): declares silent workers dead and re-routes their sessions.
async fn watchdog(inner: Arc<Inner>) {
    let period = Duration::from_millis((inner.config.failover_after_ms / 5).clamp(10, 200));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = inner.closed.cancelled() => return,
        }
        let now = now_ms();
        let dead: Vec<(Arc<WorkerLink>, u64)> = inner
            .workers
            .lock()
            .unwrap()
            .values()
            .filter(|w| w.alive())
            .filter_map(|w| {
                let last = w.last_heartbeat.load(Ordering::SeqCst);
                (now.saturating_sub(last) > inner.config.failover_after_ms)
                    .then(|| (w.clone(), last))
            })
            .collect();
        for (w, last) in dead {
            w.dead.cancel();
            if w.draining.load(Ordering::SeqCst) {
                tracing::info!(worker = %w.id, "drained worker left");
            } else {
                tracing::warn!(worker = %w.id, silent_ms = now - last, "worker declared dead");
            }
            inner.emit(DirectorEvent::WorkerLost {
                worker: w.id.clone(),
            });
            failover(&inner, &w.id, last).await;
        }
    }
}

/// Re-routes every session owned by `dead` to a live worker; relays re-attach from their last
/// checkpoint and drop the items the client already has. A session being migrated is left to its
/// migration, which pivots to the target or, on abort, re-routes it itself.
pub(crate) async fn failover(inner: &Arc<Inner>, dead: &str, last_heartbeat_ms: u64) {
    let sessions: Vec<Arc<Session>> = inner
        .sessions
        .lock()
        .unwrap()
        .values()
        .filter(|s| s.route.borrow().owner == dead)
        .cloned()
        .collect();
    for s in sessions {
        let Ok(_not_migrating) = s.migrating.try_lock() else {
            continue;
        };
        reroute(inner, &s, dead, last_heartbeat_ms).await;
    }
}

/// Moves one session off its dead owner `dead`. With no live worker the session keeps its dead
/// owner and [`reroute_orphans`] places it when a worker registers.
pub(crate) async fn reroute(inner: &Arc<Inner>, s: &Session, dead: &str, last_heartbeat_ms: u64) {
    match inner.select_worker(s.id, Some(dead)).await {
        Some(to) => {
            s.route.send_modify(|r| {
                r.owner = to.clone();
                r.frozen = false;
                r.epoch += 1;
            });
            inner.emit(DirectorEvent::Failover {
                session_id: s.id,
                from: dead.to_string(),
                to,
                detected_after_ms: now_ms().saturating_sub(last_heartbeat_ms),
            });
        }
        None => tracing::error!(
            session = s.id,
            "no live worker to fail over to; waiting for one to register"
        ),
    }
}

/// Fails over every session whose owner is not a live worker (used when a worker registers).
async fn reroute_orphans(inner: &Arc<Inner>) {
    let orphans: Vec<(Arc<Session>, String)> = inner
        .sessions
        .lock()
        .unwrap()
        .values()
        .filter_map(|s| {
            let owner = s.route.borrow().owner.clone();
            let alive = inner.worker(&owner).is_some_and(|w| w.alive());
            (!alive).then(|| (s.clone(), owner))
        })
        .collect();
    for (s, owner) in orphans {
        let Ok(_not_migrating) = s.migrating.try_lock() else {
            continue;
        };
        reroute(inner, &s, &owner, now_ms()).await;
    }
}

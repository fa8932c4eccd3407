//! A cluster worker: the process that runs handlers for sessions the director routes to it.
//!
//! It has two ports (RFC-001 "dual port"): the user port, an rpcnet [`Server`] in cluster mode
//! where the director opens one stream per call (ATTACH + REQUEST), and the management port,
//! where the director drives migrations (see [`crate::mgmt`]). It registers with every director
//! it is given and sends each heartbeats so each can tell when it dies; a lost director is
//! reconnected with backoff (`membership`).
//!
//! The application's policy and state hooks (`onMigrationRequest`, `captureState`,
//! `restoreState`) live in TypeScript: they reach the embedder as [`WorkerHook`]s and are
//! answered with [`Worker::answer_hook`]. Token checks, freezing, sealing and restoring are here.

mod membership;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ring::rand::{SecureRandom, SystemRandom};
use rpcnet_protocol::migration::{
    Claimed, ConfirmationDecision, ManagementMessage, MigrationConfirmation, MigrationRequest,
    TokenKey,
};
use rpcnet_session::participant::DirectorKey;
use rpcnet_session::Participant;
use tokio::sync::oneshot;

use crate::addr;
use crate::cancel::Canceller;
use crate::cluster::{ClusterCredentials, PeerIdentity, Role};
use crate::error::RpcError;
use crate::events::EventQueue;
use crate::mgmt::{self, now_ms, rejected};
use crate::server::{MethodKind, Server, ServerConfig, ServerEvent};
use crate::transport::MAX_CONCURRENT_LINK_CALLS;
use rpcnet_protocol::resume::ResumeError;
use rpcnet_protocol::ErrorCode;

/// Largest snapshot a worker accepts after decompression, bytes (64 MiB).
pub const MAX_SNAPSHOT_BYTES: usize = 64 * 1024 * 1024;
/// Default heartbeat interval, ms.
pub const DEFAULT_HEARTBEAT_MS: u64 = 100;
/// Time a management exchange may take, ms.
pub const MGMT_TIMEOUT_MS: u32 = 5_000;

/// Default time a worker's start waits for a director to accept its registration, ms.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;

/// Worker settings. [`WorkerConfig::new`] fills in the defaults.
#[derive(Clone)]
pub struct WorkerConfig {
    /// The worker's id in the cluster (e.g. `worker-a`), at most 255 bytes.
    pub id: String,
    /// Address to bind the user port to (port 0 = any); `0.0.0.0` / `[::]` bind every
    /// interface, and [`advertise_user`](Self::advertise_user) says what the directors connect
    /// to.
    pub user: SocketAddr,
    /// Address to bind the management port to (port 0 = any), as for `user`.
    pub mgmt: SocketAddr,
    /// The management addresses of the directors to register with, at least one: each `host:port`
    /// with an IP address or a DNS name ([`crate::addr::host_port`]). A name is resolved with
    /// tokio's `lookup_host` and every address it resolves to is a director of its own. The worker
    /// registers with every director, heartbeats each independently and holds a lease from each
    /// (PROTOCOL.md section 14.1).
    pub director: Vec<String>,
    /// Cluster CA, leaf and secret.
    pub cluster: Arc<ClusterCredentials>,
    /// Heartbeat interval, ms (at least 10).
    pub heartbeat_ms: u64,
    /// The user address told to the directors (Register's `user_addr`): `host:port` or a host
    /// alone (the bound port), an IP address or a DNS name that the directors resolve. `None`:
    /// [`crate::addr::default_advertised`] of the bound address (the bound address, or for a
    /// wildcard bind the host's first non-loopback interface address).
    pub advertise_user: Option<String>,
    /// The management address told to the directors (Register's `mgmt_addr`), as
    /// [`advertise_user`](Self::advertise_user). For a worker behind NAT or a container port
    /// mapping, or a proxy in front of its management port.
    pub advertise_mgmt: Option<String>,
    /// How long [`Worker::start`] tries to register before it fails, ms: a director that does not
    /// run yet is retried (with backoff) until then. Default [`DEFAULT_CONNECT_TIMEOUT_MS`].
    pub connect_timeout_ms: u64,
}

impl WorkerConfig {
    /// Settings for worker `id` registering with `director` (see [`WorkerConfig::director`]):
    /// both ports on loopback, any free port, heartbeats every [`DEFAULT_HEARTBEAT_MS`],
    /// the bound addresses advertised, [`DEFAULT_CONNECT_TIMEOUT_MS`] to start.
    pub fn new(
        id: impl Into<String>,
        director: Vec<String>,
        cluster: Arc<ClusterCredentials>,
    ) -> Self {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        WorkerConfig {
            id: id.into(),
            user: loopback,
            mgmt: loopback,
            director,
            cluster,
            heartbeat_ms: DEFAULT_HEARTBEAT_MS,
            advertise_user: None,
            advertise_mgmt: None,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
        }
    }
}

/// A hook the embedder must answer with [`Worker::answer_hook`].
#[derive(Debug, Clone)]
pub enum WorkerHook {
    /// Confirmation (RFC-001 phase 2): accept, reject or defer moving `session_id` here.
    MigrationRequest {
        /// Hook id.
        id: u64,
        /// The request (migration id, session, source, target, reason).
        request: MigrationRequest,
    },
    /// State Capture: return the session's application state as bytes.
    Capture {
        /// Hook id.
        id: u64,
        /// The session.
        session_id: u64,
    },
    /// Restore: install the application state captured on the source.
    Restore {
        /// Hook id.
        id: u64,
        /// The session.
        session_id: u64,
        /// The captured application state.
        state: Bytes,
    },
}

/// The embedder's answer to a [`WorkerHook`].
#[derive(Debug, Clone)]
pub enum HookAnswer {
    /// For `MigrationRequest`.
    Decision(ConfirmationDecision),
    /// For `Capture`: the state; for `Restore`: empty.
    State(Bytes),
    /// The hook threw.
    Failed(String),
}

/// What a worker keeps for migrations, in entries (see [`Worker::migration_memory`]). Each
/// count is bounded by time and by count (`rpcnet_session::participant` and
/// `rpcnet_protocol::migration::token` document the bounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationMemory {
    /// Sessions with state here: open calls, calls kept from a capture, a frozen or a restored
    /// session.
    pub sessions: usize,
    /// Fences of sessions this worker no longer holds, kept for
    /// [`rpcnet_session::participant::FENCE_MEMORY_MS`] (with the fenced sessions it holds, at
    /// most [`rpcnet_session::participant::MAX_FENCES`]).
    pub tombstones: usize,
    /// Migrations this worker takes part in that have not ended for it (at most
    /// [`rpcnet_session::participant::MAX_OPEN_MIGRATIONS`]).
    pub open_migrations: usize,
    /// Redeemed, unexpired migration tokens remembered for replay protection (at most
    /// [`rpcnet_protocol::migration::token::DEFAULT_MAX_REDEEMED_TOKENS`]).
    pub redeemed_tokens: usize,
    /// Resumable sessions waiting for their client to resume them (PROTOCOL.md section 15.6),
    /// each forgotten [`rpcnet_session::session_book::RESUME_WINDOW_MS`] after it began to wait.
    pub detached: usize,
}

/// Which hooks the embedder implements; the others use their defaults (accept, empty state,
/// nothing to restore).
#[derive(Debug, Default)]
pub struct HookFlags {
    /// `onMigrationRequest` is set.
    pub confirm: AtomicBool,
    /// `captureState` is set.
    pub capture: AtomicBool,
    /// `restoreState` is set.
    pub restore: AtomicBool,
}

struct Inner {
    id: String,
    user: Arc<Server>,
    mgmt: Arc<Server>,
    /// The user address told to the directors (`host:port`).
    user_addr: String,
    /// The management address told to the directors (`host:port`).
    mgmt_addr: String,
    /// Cluster CA, leaf and secret (for the connections to the directors).
    cluster: Arc<ClusterCredentials>,
    /// The worker's migration rules (sans-IO): tokens through the one ledger, prepared and
    /// captured migrations, sealing and opening. Lock order: the sessions' book, then this.
    participant: Mutex<Participant>,
    hooks: EventQueue<WorkerHook>,
    hook_waiters: Mutex<HashMap<u64, oneshot::Sender<HookAnswer>>>,
    next_hook: AtomicU64,
    flags: HookFlags,
    membership: membership::Membership,
    stopped: Canceller,
}

/// A running worker (see module docs).
pub struct Worker {
    inner: Arc<Inner>,
}

/// The token key every cluster member derives from the cluster secret: HMAC-SHA256(secret,
/// "rpcnet/1 migration token key"), so the token MAC key differs from the snapshot sealing key.
pub fn token_key(cluster: &ClusterCredentials) -> TokenKey {
    TokenKey::from_bytes(&cluster.derive_key(b"rpcnet/1 migration token key"))
}

impl Worker {
    /// Binds both ports, registers with every director and starts heartbeats. Returns once one
    /// director accepted the worker; the others (and any director lost later) are retried in
    /// the background with backoff.
    ///
    /// Errors: `INVALID_ARGUMENT` for a bad id, no director, a director address that is not
    /// `host:port`, an advertised address that is malformed or does not resolve, or a refusal
    /// by a director: an id that a live worker at other addresses holds (the message names the
    /// id and that worker's address; the id is free again once the director declares that worker
    /// dead); `UNAVAILABLE` if a port cannot be bound, if the TLS handshake with a director fails
    /// (a certificate of another cluster, on either side: at once, not retried), or if no
    /// director accepted the worker within `connect_timeout_ms` (the message names each director
    /// address and its last error).
    pub async fn start(config: WorkerConfig) -> Result<Worker, RpcError> {
        crate::log::init();
        if config.id.is_empty() || config.id.len() > 255 {
            return Err(RpcError::invalid_argument(format!(
                "worker id must be 1..=255 bytes, got {:?}",
                config.id
            )));
        }
        check_directors(&config.director)?;
        let user = Arc::new(
            Server::bind(ServerConfig {
                bind: config.user,
                cluster: Some(config.cluster.clone()),
                max_concurrent_calls: MAX_CONCURRENT_LINK_CALLS,
                ..ServerConfig::default()
            })
            .await?,
        );
        let mgmt = Arc::new(
            Server::bind(ServerConfig {
                bind: config.mgmt,
                cluster: Some(config.cluster.clone()),
                ..ServerConfig::default()
            })
            .await?,
        );
        let advertised = async {
            let user_addr = addr::advertised(
                config.advertise_user.as_deref(),
                user.local_addr(),
                "advertiseAddress",
            )
            .await?;
            let mgmt_addr = addr::advertised(
                config.advertise_mgmt.as_deref(),
                mgmt.local_addr(),
                "advertiseMgmtAddress",
            )
            .await?;
            Ok::<_, RpcError>((user_addr, mgmt_addr))
        };
        let (user_addr, mgmt_addr) = match advertised.await {
            Ok(a) => a,
            Err(e) => {
                tokio::join!(user.close(), mgmt.close());
                return Err(e);
            }
        };
        for m in mgmt::WORKER_METHODS {
            mgmt.register(m, MethodKind::Unary);
        }
        let inner = Arc::new(Inner {
            id: config.id.clone(),
            participant: Mutex::new(Participant::new(
                config.id.clone(),
                token_key(&config.cluster),
                &config.cluster.secret,
            )),
            user,
            mgmt,
            user_addr,
            mgmt_addr,
            cluster: config.cluster.clone(),
            hooks: EventQueue::default(),
            hook_waiters: Mutex::new(HashMap::new()),
            next_hook: AtomicU64::new(1),
            flags: HookFlags::default(),
            membership: Default::default(),
            stopped: Canceller::new(),
        });
        tokio::spawn(serve_mgmt(inner.clone()));
        let every_ms = config.heartbeat_ms.max(10);
        tokio::spawn(membership::prune(inner.clone(), every_ms));
        let started = membership::start(
            &inner,
            &config.director,
            every_ms,
            config.connect_timeout_ms,
        )
        .await;
        let worker = Worker { inner };
        if let Err(e) = started {
            worker.close().await;
            return Err(e);
        }
        tracing::info!(worker = %config.id, user = %worker.inner.user.local_addr(), mgmt = %worker.inner.mgmt.local_addr(), advertised_user = %worker.inner.user_addr, advertised_mgmt = %worker.inner.mgmt_addr, "worker started");
        Ok(worker)
    }

    /// The user-port server: register methods and answer calls on it as on any [`Server`].
    pub fn server(&self) -> &Arc<Server> {
        &self.inner.user
    }

    /// The worker's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The management port's bound address.
    pub fn mgmt_addr(&self) -> SocketAddr {
        self.inner.mgmt.local_addr()
    }

    /// The user address told to the directors (Register's `user_addr`, `host:port`): the
    /// configured `advertise_user`, or the default of [`crate::addr::default_advertised`].
    pub fn advertised_addr(&self) -> &str {
        &self.inner.user_addr
    }

    /// The management address told to the directors (Register's `mgmt_addr`, `host:port`), as
    /// [`Worker::advertised_addr`].
    pub fn advertised_mgmt_addr(&self) -> &str {
        &self.inner.mgmt_addr
    }

    /// Each director this worker knows (as configured, with the address a DNS name resolved
    /// to) and whether its heartbeat lease holds now (PROTOCOL.md section 14.1): false while it
    /// has lapsed or was not granted yet, and then the calls that director relays are suspended.
    pub fn leases(&self) -> Vec<(String, bool)> {
        self.inner.membership.leases()
    }

    /// The directors that have accepted this worker's registration and not been lost since, as
    /// configured (with the address a DNS name resolved to).
    pub fn directors(&self) -> Vec<String> {
        self.inner
            .membership
            .registered()
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    /// What the worker keeps for migrations now, in entries (for tests and diagnostics of
    /// bounded memory).
    pub fn migration_memory(&self) -> MigrationMemory {
        let (sessions, tombstones, detached) = self
            .inner
            .user
            .sessions()
            .with_book(|b| (b.len(), b.tombstones(), b.detached()));
        let p = self.inner.participant.lock().unwrap();
        MigrationMemory {
            sessions,
            tombstones,
            open_migrations: p.open_parts(),
            redeemed_tokens: p.redeemed_tokens(),
            detached,
        }
    }

    /// Declares which hooks the embedder answers.
    pub fn set_hooks(&self, confirm: bool, capture: bool, restore: bool) {
        self.inner.flags.confirm.store(confirm, Ordering::SeqCst);
        self.inner.flags.capture.store(capture, Ordering::SeqCst);
        self.inner.flags.restore.store(restore, Ordering::SeqCst);
    }

    /// Waits for hooks; returns up to `max`; empty once the worker stopped.
    pub async fn next_hooks(&self, max: usize) -> Vec<WorkerHook> {
        self.inner.hooks.next_batch(max, &self.inner.stopped).await
    }

    /// Answers a hook. Returns false for an unknown (or timed-out) hook id.
    pub fn answer_hook(&self, id: u64, answer: HookAnswer) -> bool {
        match self.inner.hook_waiters.lock().unwrap().remove(&id) {
            Some(tx) => tx.send(answer).is_ok(),
            None => false,
        }
    }

    /// Graceful drain: asks every director it is registered with to move every session it
    /// relays to other workers, waits until they have, and returns. The worker keeps serving
    /// until then. A director it is not registered with now (lost, or not reached yet) is not
    /// asked: the sessions it relayed are failed over by it if it lives.
    ///
    /// Errors: `UNAVAILABLE` if no director is registered, or a director's error (the message
    /// names the director); `DEADLINE_EXCEEDED` after `timeout_ms`.
    pub async fn drain(&self, timeout_ms: u32) -> Result<(), RpcError> {
        let directors = self.inner.membership.registered();
        if directors.is_empty() {
            return Err(RpcError::unavailable(
                "no director is registered with this worker: nothing can drain it",
            ));
        }
        let msg = membership::register_message(&self.inner);
        let mut drains = tokio::task::JoinSet::new();
        for (name, client) in directors {
            let msg = msg.clone();
            drains.spawn(async move {
                mgmt::call(&client, mgmt::DRAIN, &msg, timeout_ms)
                    .await
                    .map_err(|e| RpcError::new(e.code, format!("director {name}: {}", e.message)))
            });
        }
        let mut first_error = None;
        while let Some(done) = drains.join_next().await {
            let result = done.unwrap_or_else(|e| Err(RpcError::internal(e.to_string())));
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Stops heartbeats and closes both ports and the connections to the directors. Returns once
    /// both UDP ports are released, so they can be bound again at once (waits at most 5 s, for
    /// connections to drain and their calls to end). Idempotent.
    pub async fn close(&self) {
        self.inner.stopped.cancel();
        tokio::join!(
            self.inner.user.close(),
            self.inner.mgmt.close(),
            self.inner.membership.close()
        );
    }
}

/// Checks the director list: at least one, each `host:port`.
///
/// Errors: `INVALID_ARGUMENT` naming `director` (or `director[i]` in a list of several).
fn check_directors(directors: &[String]) -> Result<(), RpcError> {
    if directors.is_empty() {
        return Err(RpcError::invalid_argument(
            "director must name at least one director management address (host:port), got none",
        ));
    }
    for (i, d) in directors.iter().enumerate() {
        let what = if directors.len() == 1 {
            "director".to_string()
        } else {
            format!("director[{i}]")
        };
        addr::host_port(d, &what)?;
    }
    Ok(())
}

async fn serve_mgmt(inner: Arc<Inner>) {
    loop {
        let events = inner.mgmt.next_events(64).await;
        if events.is_empty() {
            return;
        }
        for event in events {
            if let ServerEvent::Call {
                id,
                method,
                payload,
                connection,
                ..
            } = event
            {
                let inner = inner.clone();
                tokio::spawn(async move {
                    // Only cluster peers reach this port (mutual TLS), and of those only
                    // directors may drive migrations (PROTOCOL.md section 14.2).
                    let asker =
                        PeerIdentity::require_peer(connection.quinn(), Role::Director, &method);
                    // Its handle would keep the management port's socket open (Worker::close).
                    drop(connection);
                    let peer = asker
                        .as_ref()
                        .map(|p| p.fingerprint.clone())
                        .unwrap_or_default();
                    // The director that asks: a session migrated here is relayed by it.
                    let via = inner.user.sessions().known_director(&peer);
                    let result = match asker.and_then(|_| mgmt::decode(&payload)) {
                        Ok(msg) => handle(&inner, &method, msg, via).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = &result {
                        tracing::warn!(worker = %inner.id, %method, peer = %&peer[..peer.len().min(16)], error = %e, "management request refused");
                    }
                    let reply = result.and_then(|m| mgmt::encode(&m));
                    inner.mgmt.respond(id, reply);
                });
            }
        }
    }
}

async fn ask(inner: &Inner, make: impl FnOnce(u64) -> WorkerHook) -> Result<HookAnswer, RpcError> {
    let id = inner.next_hook.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = oneshot::channel();
    inner.hook_waiters.lock().unwrap().insert(id, tx);
    inner.hooks.push(make(id));
    match tokio::time::timeout(Duration::from_millis(u64::from(MGMT_TIMEOUT_MS) / 2), rx).await {
        Ok(Ok(HookAnswer::Failed(m))) => Err(RpcError::new(
            ErrorCode::Unknown,
            format!("hook failed: {m}"),
        )),
        Ok(Ok(a)) => Ok(a),
        _ => {
            inner.hook_waiters.lock().unwrap().remove(&id);
            Err(RpcError::new(
                ErrorCode::DeadlineExceeded,
                "the application hook did not answer in time",
            ))
        }
    }
}

/// Confirmation (RFC-001 phase 2): the `onMigrationRequest` hook's decision, or accept.
async fn confirm(inner: &Inner, req: &MigrationRequest) -> Result<ConfirmationDecision, RpcError> {
    if !inner.flags.confirm.load(Ordering::SeqCst) {
        return Ok(ConfirmationDecision::Accept);
    }
    let request = req.clone();
    match ask(inner, |id| WorkerHook::MigrationRequest { id, request }).await? {
        HookAnswer::Decision(d) => Ok(d),
        _ => Err(RpcError::internal(
            "onMigrationRequest answered with something else than a decision",
        )),
    }
}

/// State Capture: the `captureState` hook's application state, or none.
async fn capture_state(inner: &Inner, session_id: u64) -> Result<Bytes, RpcError> {
    if !inner.flags.capture.load(Ordering::SeqCst) {
        return Ok(Bytes::new());
    }
    match ask(inner, |id| WorkerHook::Capture { id, session_id }).await? {
        HookAnswer::State(s) => Ok(s),
        _ => Err(RpcError::internal(
            "captureState answered with something else than state",
        )),
    }
}

fn nonce() -> Result<[u8; 12], RpcError> {
    let mut n = [0u8; 12];
    SystemRandom::new()
        .fill(&mut n)
        .map_err(|_| RpcError::internal("no randomness for a snapshot nonce"))?;
    Ok(n)
}

/// Answers one management call from director `via` (the book's key of the director whose leaf
/// the caller presented).
async fn handle(
    inner: &Arc<Inner>,
    method: &str,
    msg: ManagementMessage,
    via: DirectorKey,
) -> Result<ManagementMessage, RpcError> {
    let sessions = inner.user.sessions();
    match (method, msg) {
        (mgmt::REQUEST, ManagementMessage::Request(req)) => {
            inner
                .participant
                .lock()
                .unwrap()
                .on_request(&req, now_ms())
                .map_err(rejected)?;
            let decision = confirm(inner, &req).await?;
            Ok(ManagementMessage::Confirmation(MigrationConfirmation {
                migration_id: req.migration_id,
                decision,
            }))
        }
        (mgmt::PREPARE, ManagementMessage::Request(req)) => inner
            .participant
            .lock()
            .unwrap()
            .on_prepare(&req, now_ms())
            .map_err(rejected),
        (mgmt::CAPTURE, ManagementMessage::Request(req)) => {
            sessions
                .with_book(|b| {
                    inner
                        .participant
                        .lock()
                        .unwrap()
                        .on_capture(b, &req, now_ms())
                })
                .map_err(rejected)?;
            let mut snap = sessions
                .capture(req.session_id, Duration::from_millis(1_000))
                .await?;
            snap.captured_at_ms = now_ms();
            snap.app_state = capture_state(inner, req.session_id).await?;
            let nonce = nonce()?;
            inner
                .participant
                .lock()
                .unwrap()
                .seal(&snap, req.migration_id, nonce)
                .map_err(rejected)
        }
        (mgmt::TRANSFER, ManagementMessage::StateTransfer(st)) => {
            let snap = inner
                .participant
                .lock()
                .unwrap()
                .on_transfer(&st, MAX_SNAPSHOT_BYTES)
                .map_err(rejected)?;
            if inner.flags.restore.load(Ordering::SeqCst) {
                ask(inner, |id| WorkerHook::Restore {
                    id,
                    session_id: snap.session_id,
                    state: snap.app_state.clone(),
                })
                .await?;
            }
            Ok(sessions.with_book(|b| {
                inner
                    .participant
                    .lock()
                    .unwrap()
                    .restored(b, st.migration_id, &snap, via, now_ms())
            }))
        }
        (mgmt::COMPLETE, ManagementMessage::Complete(c)) => {
            sessions.with_book(|b| {
                inner
                    .participant
                    .lock()
                    .unwrap()
                    .on_complete(b, &c, now_ms())
            });
            Ok(ManagementMessage::Complete(c))
        }
        (mgmt::ABORT, ManagementMessage::Abort(a)) => {
            // The target forgets what it prepared or restored; the source unfreezes and keeps its
            // captured calls, which the director re-attaches here. If this message is lost, the
            // route epoch in the next ATTACH has the same effect (PROTOCOL.md section 13.5).
            sessions.with_book(|b| inner.participant.lock().unwrap().on_abort(b, &a, now_ms()));
            Ok(ManagementMessage::Abort(a))
        }
        (mgmt::SESSION_CLOSED, ManagementMessage::SessionClosed(c)) => {
            sessions.with_book(|b| b.drop_session(c.session_id, now_ms()));
            Ok(ManagementMessage::SessionClosed(c))
        }
        (mgmt::SESSION_DETACHED, ManagementMessage::Claim(c)) => {
            // Only the director of the session's current generation may start its window.
            sessions.with_book(|b| {
                if b.generation(c.session_id) <= c.generation {
                    b.detach(c.session_id, &[], now_ms());
                }
            });
            Ok(ManagementMessage::Claim(c))
        }
        (mgmt::SESSION_OPENED, ManagementMessage::Claim(c)) => {
            sessions.with_book(|b| b.adopt(c.session_id, c.generation, via));
            Ok(ManagementMessage::Claim(c))
        }
        (mgmt::CLAIM, ManagementMessage::Claim(c)) => {
            let (status, epoch) = match sessions
                .claim(
                    &inner.participant,
                    c.session_id,
                    c.generation,
                    Duration::from_millis(1_000),
                )
                .await
            {
                Ok((status, epoch)) => (status.as_u8(), epoch),
                Err(ResumeError::Unknown { .. }) => (0, 0),
                Err(e) => {
                    return Err(RpcError::invalid_argument(format!("{}: {e}", e.code())));
                }
            };
            Ok(ManagementMessage::Claimed(Claimed {
                session_id: c.session_id,
                status,
                epoch,
            }))
        }
        (m, msg) => Err(RpcError::invalid_argument(format!(
            "MESSAGE_MALFORMED: {} is not accepted by {m}",
            msg.name()
        ))),
    }
}

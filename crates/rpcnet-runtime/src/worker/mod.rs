//! A cluster worker: the process that runs handlers for sessions the director routes to it.
//!
//! It has two ports (RFC-001 "dual port"): the user port, an rpcnet [`Server`] in cluster mode
//! where the director opens one stream per call (ATTACH + REQUEST), and the management port,
//! where the director drives migrations (see [`crate::mgmt`]). It registers with the director and
//! sends heartbeats so the director can tell when it dies.
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
    ConfirmationDecision, ManagementMessage, MigrationConfirmation, MigrationRequest, TokenKey,
};
use rpcnet_session::Participant;
use tokio::sync::oneshot;

use crate::cancel::Canceller;
use crate::client::{Client, ClientConfig};
use crate::cluster::ClusterCredentials;
use crate::error::RpcError;
use crate::events::EventQueue;
use crate::mgmt::{self, now_ms, rejected};
use crate::server::{MethodKind, Server, ServerConfig, ServerEvent};
use crate::transport::MAX_CONCURRENT_LINK_CALLS;
use rpcnet_protocol::ErrorCode;

/// Largest snapshot a worker accepts after decompression, bytes (64 MiB).
pub const MAX_SNAPSHOT_BYTES: usize = 64 * 1024 * 1024;
/// Default heartbeat interval, ms.
pub const DEFAULT_HEARTBEAT_MS: u64 = 100;
/// Time a management exchange may take, ms.
pub const MGMT_TIMEOUT_MS: u32 = 5_000;

/// Worker settings.
#[derive(Clone)]
pub struct WorkerConfig {
    /// The worker's id in the cluster (e.g. `worker-a`), at most 255 bytes.
    pub id: String,
    /// Address of the user port (port 0 = any).
    pub user: SocketAddr,
    /// Address of the management port (port 0 = any).
    pub mgmt: SocketAddr,
    /// The director's management address to register with.
    pub director: SocketAddr,
    /// Cluster CA, leaf and secret.
    pub cluster: Arc<ClusterCredentials>,
    /// Heartbeat interval, ms.
    pub heartbeat_ms: u64,
    /// The management address the director is told to connect to (Register's `mgmt_addr`);
    /// `None`: the bound address. For a worker behind NAT or a container port mapping, or a
    /// proxy in front of its management port.
    pub advertise_mgmt: Option<SocketAddr>,
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
    /// The management address told to the director.
    mgmt_addr: SocketAddr,
    /// The worker's migration rules (sans-IO): tokens through the one ledger, prepared and
    /// captured migrations, sealing and opening. Lock order: the sessions' book, then this.
    participant: Mutex<Participant>,
    hooks: EventQueue<WorkerHook>,
    hook_waiters: Mutex<HashMap<u64, oneshot::Sender<HookAnswer>>>,
    next_hook: AtomicU64,
    flags: HookFlags,
    director: Client,
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
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &cluster.secret);
    let tag = ring::hmac::sign(&k, b"rpcnet/1 migration token key");
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    TokenKey::from_bytes(&out)
}

impl Worker {
    /// Binds both ports, registers with the director and starts heartbeats.
    ///
    /// Errors: `UNAVAILABLE` if a port cannot be bound or the director is unreachable or refuses
    /// the worker (no cluster certificate); `INVALID_ARGUMENT` for a bad id, or for an id that a
    /// live worker at other addresses holds (the message names the id and that worker's address;
    /// the id is free again once the director declares that worker dead).
    pub async fn start(config: WorkerConfig) -> Result<Worker, RpcError> {
        if config.id.is_empty() || config.id.len() > 255 {
            return Err(RpcError::invalid_argument(format!(
                "worker id must be 1..=255 bytes, got {:?}",
                config.id
            )));
        }
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
        for m in mgmt::WORKER_METHODS {
            mgmt.register(m, MethodKind::Unary);
        }
        let director = Client::connect(
            config.director,
            ClientConfig::cluster(config.cluster.clone()),
        )
        .await
        .map_err(|e| {
            RpcError::unavailable(format!(
                "cannot reach the director at {}: {}",
                config.director, e.message
            ))
        })?;
        let inner = Arc::new(Inner {
            id: config.id.clone(),
            participant: Mutex::new(Participant::new(
                config.id.clone(),
                token_key(&config.cluster),
                &config.cluster.secret,
            )),
            user,
            mgmt_addr: config.advertise_mgmt.unwrap_or(mgmt.local_addr()),
            mgmt,
            hooks: EventQueue::default(),
            hook_waiters: Mutex::new(HashMap::new()),
            next_hook: AtomicU64::new(1),
            flags: HookFlags::default(),
            director,
            membership: Default::default(),
            stopped: Canceller::new(),
        });
        membership::register(&inner).await?;
        tokio::spawn(serve_mgmt(inner.clone()));
        tokio::spawn(membership::heartbeats(
            inner.clone(),
            config.heartbeat_ms.max(10),
        ));
        tracing::info!(worker = %config.id, user = %inner.user.local_addr(), mgmt = %inner.mgmt.local_addr(), "worker registered");
        Ok(Worker { inner })
    }

    /// The user-port server: register methods and answer calls on it as on any [`Server`].
    pub fn server(&self) -> &Arc<Server> {
        &self.inner.user
    }

    /// The worker's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The management port's address.
    pub fn mgmt_addr(&self) -> SocketAddr {
        self.inner.mgmt.local_addr()
    }

    /// What the worker keeps for migrations now, in entries (for tests and diagnostics of
    /// bounded memory).
    pub fn migration_memory(&self) -> MigrationMemory {
        let (sessions, tombstones) = self
            .inner
            .user
            .sessions()
            .with_book(|b| (b.len(), b.tombstones()));
        let p = self.inner.participant.lock().unwrap();
        MigrationMemory {
            sessions,
            tombstones,
            open_migrations: p.open_parts(),
            redeemed_tokens: p.redeemed_tokens(),
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

    /// Graceful drain: asks the director to move every session away, waits until it has, and
    /// returns. The worker keeps serving until then.
    ///
    /// Errors: `UNAVAILABLE` if the director cannot be reached; `DEADLINE_EXCEEDED` after
    /// `timeout_ms`.
    pub async fn drain(&self, timeout_ms: u32) -> Result<(), RpcError> {
        let msg = membership::register_message(&self.inner);
        mgmt::call(&self.inner.director, mgmt::DRAIN, &msg, timeout_ms).await?;
        Ok(())
    }

    /// Stops heartbeats and closes both ports. Returns once both UDP ports are released, so
    /// they can be bound again at once (waits at most 5 s, for connections to drain and their
    /// calls to end). Idempotent.
    pub async fn close(&self) {
        self.inner.stopped.cancel();
        tokio::join!(self.inner.user.close(), self.inner.mgmt.close());
    }
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
                    // Defence in depth: only cluster peers reach this port (mutual TLS), and we
                    // log which one asked.
                    let peer = ClusterCredentials::peer_fingerprint(connection.quinn())
                        .unwrap_or_default();
                    // Its handle would keep the management port's socket open (Worker::close).
                    drop(connection);
                    let result = match mgmt::decode(&payload) {
                        Ok(msg) => handle(&inner, &method, msg).await,
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

async fn handle(
    inner: &Arc<Inner>,
    method: &str,
    msg: ManagementMessage,
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
                    .restored(b, st.migration_id, &snap, now_ms())
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
        (m, msg) => Err(RpcError::invalid_argument(format!(
            "MESSAGE_MALFORMED: {} is not accepted by {m}",
            msg.name()
        ))),
    }
}

//! The worker registry: who may serve sessions. A worker registers (PROTOCOL.md section 14),
//! heartbeats, and is declared dead by [`super::failover::watchdog`] when it falls silent. A
//! worker id has one owner at a time; the Register reply grants the worker its heartbeat lease.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpcnet_protocol::migration::{Heartbeat, ManagementMessage, Register};
use rpcnet_protocol::ErrorCode;

use super::failover::reroute_orphans;
use super::{DirectorEvent, Inner};
use crate::cancel::Canceller;
use crate::client::{Client, ClientConfig};
use crate::cluster::role::name_allows;
use crate::cluster::{PeerIdentity, Role};
use crate::error::RpcError;
use crate::mgmt::now_ms;

/// How long a drain waits for the relays to read their last frame from the drained worker, ms.
const STREAMS_END_WAIT_MS: u64 = 10_000;

/// The director's side of one registered worker: its cluster link (calls) and management
/// connection, its liveness and its relayed streams.
pub(crate) struct WorkerLink {
    pub(crate) id: String,
    pub(crate) link: Client,
    pub(crate) mgmt: Client,
    /// The user and management addresses it registered with: they tell a re-registration of
    /// this worker from another worker claiming its id.
    pub(crate) addrs: (SocketAddr, SocketAddr),
    last_heartbeat: AtomicU64,
    pub(crate) dead: Canceller,
    draining: AtomicBool,
    /// Call streams currently relayed to this worker.
    active: Arc<AtomicUsize>,
}

/// Decrements a worker's active stream count when dropped.
pub(crate) struct ActiveStream(Arc<AtomicUsize>);

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

    /// When its last heartbeat arrived, unix ms.
    pub(crate) fn last_heartbeat(&self) -> u64 {
        self.last_heartbeat.load(Ordering::SeqCst)
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub(crate) fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Waits (up to [`STREAMS_END_WAIT_MS`]) until no relayed stream reads from this worker:
    /// before a drained worker may exit, every relay must have read its last frame (SUSPENDED,
    /// or the result of an in-flight unary call), or those bytes could be lost.
    pub(crate) async fn wait_streams_ended(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(STREAMS_END_WAIT_MS);
        while self.active.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The heartbeat lease granted to workers, ms: a worker that has had no heartbeat acknowledged
/// for this long stops producing (it fences itself) before the director, after
/// `failover_after_ms` of silence, may declare it dead and fail its sessions over. Seven tenths
/// leave the rest for the watchdog's period and for clock rate differences.
pub(crate) fn lease_ms(failover_after_ms: u64) -> u32 {
    (failover_after_ms * 7 / 10).max(1).min(u64::from(u32::MAX)) as u32
}

/// A Register address (`host:port`, an IP address or a DNS name): its first address, resolved
/// with tokio's `lookup_host` (PROTOCOL.md section 14).
///
/// Errors: `INVALID_ARGUMENT` naming the field, for a malformed address or a name that does not
/// resolve.
async fn resolve(text: &str, field: &str) -> Result<SocketAddr, RpcError> {
    let addrs = crate::addr::resolve_all(text, field)
        .await
        .map_err(|e| RpcError::invalid_argument(e.message))?;
    Ok(addrs[0])
}

/// The process at the other end of `client`, which a Register named as worker `id`'s `port`,
/// must hold a worker certificate that allows `id` (PROTOCOL.md section 14.2): the addresses
/// are the registering worker's word, and nothing else may stand behind them.
///
/// Errors: `PERMISSION_DENIED` naming the port, its address and the certificate found there.
fn check_worker(client: &Client, id: &str, port: &str, addr: SocketAddr) -> Result<(), RpcError> {
    let what = format!("the {port} {addr} that worker {id:?} registered");
    let peer = PeerIdentity::require_peer(client.connection().quinn(), Role::Worker, &what)?;
    if name_allows(&peer.name, id) {
        return Ok(());
    }
    Err(RpcError::new(
        ErrorCode::PermissionDenied,
        format!(
            "{what} presents the certificate of worker {:?}, not one for {id:?}",
            peer.name
        ),
    ))
}

/// `rpcnet.cluster/register`: connects to the worker's ports, checks that they are that worker's
/// (their certificates), and records it. The reply is the
/// Register with the lease filled in.
///
/// Errors: `INVALID_ARGUMENT` for a bad address (malformed, or a name that does not resolve) or
/// an id a live worker holds; `UNAVAILABLE` when the worker's ports cannot be reached;
/// `PERMISSION_DENIED` when they present no worker certificate for the id.
pub(crate) async fn register(
    inner: &Arc<Inner>,
    r: Register,
) -> Result<ManagementMessage, RpcError> {
    let addrs = (
        resolve(&r.user_addr, "user_addr").await?,
        resolve(&r.mgmt_addr, "mgmt_addr").await?,
    );
    if let Some(current) = inner.worker(&r.worker_id) {
        claimable(inner, &current, addrs)?;
    }
    let cfg = ClientConfig::cluster(inner.config.cluster.clone());
    let link = Client::connect(addrs.0, cfg.clone()).await?;
    let mgmt = match Client::connect(addrs.1, cfg).await {
        Ok(m) => m,
        Err(e) => {
            link.close().await;
            return Err(e);
        }
    };
    let checked = check_worker(&link, &r.worker_id, "user port", addrs.0)
        .and_then(|_| check_worker(&mgmt, &r.worker_id, "management port", addrs.1));
    if let Err(e) = checked {
        tokio::join!(link.close(), mgmt.close());
        return Err(e);
    }
    let w = Arc::new(WorkerLink {
        id: r.worker_id.clone(),
        link,
        mgmt,
        addrs,
        last_heartbeat: AtomicU64::new(now_ms()),
        dead: Canceller::new(),
        draining: AtomicBool::new(false),
        active: Default::default(),
    });
    let replaced = {
        // Checked again: another registration may have taken the id while we connected.
        let mut workers = inner.workers.lock().unwrap();
        if let Some(current) = workers.get(&r.worker_id) {
            claimable(inner, current, addrs)?;
        }
        workers.insert(r.worker_id.clone(), w)
    };
    if let Some(old) = replaced {
        // Relays on the old link see it die; give them a newer route to the new link.
        old.dead.cancel();
        for s in inner.all_sessions() {
            s.drive(inner, |c, _| c.owner_relinked(&r.worker_id));
        }
    }
    inner.workers_changed.notify_waiters();
    // Sessions left without a live owner (a failover found no worker) get this one.
    reroute_orphans(inner).await;
    tracing::info!(worker = %r.worker_id, user = %addrs.0, mgmt = %addrs.1, "worker registered");
    inner.emit(DirectorEvent::WorkerJoined {
        worker: r.worker_id.clone(),
    });
    Ok(ManagementMessage::Register(Register {
        lease_ms: lease_ms(inner.config.failover_after_ms),
        ..r
    }))
}

/// `rpcnet.cluster/heartbeat`: records a live worker's heartbeat and echoes it (the echo renews
/// the worker's lease).
///
/// Errors: `NOT_FOUND` when the worker is not registered or was declared dead: it must register
/// again (its sessions were failed over).
pub(crate) fn heartbeat(inner: &Inner, h: Heartbeat) -> Result<ManagementMessage, RpcError> {
    match inner.worker(&h.worker_id) {
        Some(w) if w.alive() => w.last_heartbeat.store(now_ms(), Ordering::SeqCst),
        _ => {
            return Err(RpcError::new(
                ErrorCode::NotFound,
                format!("worker {} is not registered", h.worker_id),
            ))
        }
    }
    Ok(ManagementMessage::Heartbeat(h))
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

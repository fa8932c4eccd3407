//! The worker's membership in the cluster: registration with every director, heartbeats, one
//! heartbeat lease per director, and reconnection.
//!
//! A worker may register with several directors (`WorkerConfig::director`, where a DNS name that
//! resolves to several addresses names several directors). Each director is a [`Slot`] with its
//! own management connection, its own heartbeat tasks and its own [`Lease`]:
//!
//! - Heartbeats are sent every `heartbeat_ms`, each on its own task, so one lost or slow heartbeat
//!   never delays the next: under packet loss the director still hears from the worker well
//!   within its `failover_after_ms` (ISSUE 6 defect 7). Each acknowledged heartbeat renews that
//!   director's lease, granted in its Register reply (PROTOCOL.md section 14.1).
//! - When director D's lease lapses, the worker stops producing for the calls D relays: the book
//!   ([`rpcnet_session::participant::SessionBook::lease_lapsed`]) names them, they are frozen at
//!   an item boundary with their state kept, and D's ATTACHes are answered SUSPENDED until a
//!   heartbeat to D is acknowledged again. Calls relayed by other directors go on: D may declare
//!   the worker dead and fail over the sessions D relays, not the others'.
//! - A heartbeat refused with `NOT_FOUND` means D did declare the worker dead: the worker forgets
//!   the sessions D relays and registers with D again at once.
//! - When the connection to D is lost (closed, or no heartbeat answered for
//!   [`SILENCE_RECONNECT_MS`], as when D was killed and restarted on the same port), the worker
//!   connects and registers again, retrying with jittered exponential backoff ([`Backoff`]:
//!   [`RETRY_MIN_MS`] doubling to [`RETRY_MAX_MS`], ±50%). It logs once when an outage begins
//!   and once when it ends, not at every attempt or heartbeat. A director that answers with a new
//!   leaf certificate is a new process (a restart): the sessions the old one relayed are
//!   forgotten, as after `NOT_FOUND`. One that answers with the leaf it had (issued credentials
//!   are kept across restarts) is first sent a Heartbeat: `NOT_FOUND` means it no longer knows
//!   the worker, and the same happens (PROTOCOL.md section 14.2). The director must present a
//!   director certificate.
//!
//! [`start`] returns once one director accepted the worker; the others are retried in the
//! background, forever, as are directors lost later.
//!
//! Lock order: a slot's state, then the sessions' book, then the participant.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpcnet_protocol::migration::{Heartbeat, ManagementMessage, Register};
use rpcnet_protocol::ErrorCode;
use rpcnet_session::participant::{DirectorKey, UNKNOWN_DIRECTOR};
use rpcnet_session::Lease;
use tokio::sync::{mpsc, Notify};

use super::Inner;
use crate::backoff::{random_u32, Backoff};
use crate::client::{Client, ClientConfig};
use crate::cluster::{PeerIdentity, Role};
use crate::error::RpcError;
use crate::mgmt::{self, now_ms};

/// First delay before trying a director again after a failed attempt or a lost connection, ms.
pub const RETRY_MIN_MS: u64 = 50;
/// Longest delay between two attempts to reach a director, ms: the delay doubles from
/// [`RETRY_MIN_MS`] up to this.
pub const RETRY_MAX_MS: u64 = 2_000;
/// Time one attempt to connect to a director may take, ms. A director that is down does not
/// answer at all (QUIC has no refusal), and QUIC repeats its first packet only after ~1 s, so
/// an attempt gives up after this and the next one starts after the backoff delay.
pub const CONNECT_ATTEMPT_MS: u64 = 1_000;
/// A connection to a director on which no heartbeat has been acknowledged for this long (or for
/// three leases, if longer), ms, is taken as lost and replaced by a new one. QUIC may still deem
/// it open: a director killed and restarted on the same port does not know the old connection,
/// and its stateless reset is not recognised (the new process has another reset key), so only
/// the idle timeout (30 s) would close it.
pub const SILENCE_RECONNECT_MS: u64 = 1_000;
/// How long a registration may take, ms.
const REGISTER_TIMEOUT_MS: u32 = 5_000;
/// How long a lapsed lease waits for the calls it suspends to freeze, ms.
const FENCE_FREEZE_TIMEOUT_MS: u64 = 1_000;

/// Every director the worker registers with.
#[derive(Default)]
pub(crate) struct Membership {
    /// One per director address, in the order they were resolved.
    slots: Mutex<Vec<Arc<Slot>>>,
    /// Addresses with a slot: a director named twice (by a name and by its IP) gets one.
    claimed: Mutex<HashSet<SocketAddr>>,
    /// The last error of each configured director (`host:port` as given), for the message of a
    /// start that fails.
    errors: Mutex<Vec<(String, String)>>,
}

impl Membership {
    fn record_error(&self, target: &str, error: String) {
        let mut errors = self.errors.lock().unwrap();
        match errors.iter_mut().find(|(t, _)| t == target) {
            Some(e) => e.1 = error,
            None => errors.push((target.to_string(), error)),
        }
    }

    /// The registered directors' management clients, with their names (for a drain).
    pub(crate) fn registered(&self) -> Vec<(String, Arc<Client>)> {
        self.slots
            .lock()
            .unwrap()
            .iter()
            .filter_map(|s| {
                let st = s.state.lock().unwrap();
                st.client
                    .clone()
                    .filter(|_| st.registered)
                    .map(|c| (s.name(), c))
            })
            .collect()
    }

    /// Each director (named as [`Slot::name`]) and whether its lease holds now.
    pub(crate) fn leases(&self) -> Vec<(String, bool)> {
        let now = now_ms();
        self.slots
            .lock()
            .unwrap()
            .iter()
            .map(|s| {
                let holds = s
                    .state
                    .lock()
                    .unwrap()
                    .lease
                    .as_ref()
                    .is_some_and(|l| l.is_valid(now));
                (s.name(), holds)
            })
            .collect()
    }

    /// Closes every management connection (the worker stops).
    pub(crate) async fn close(&self) {
        let clients: Vec<Arc<Client>> = self
            .slots
            .lock()
            .unwrap()
            .iter()
            .filter_map(|s| s.state.lock().unwrap().client.take())
            .collect();
        for c in clients {
            c.close().await;
        }
    }

    /// The slot other than `me` whose director presents the leaf `fingerprint`.
    fn holder_of(&self, fingerprint: &str, me: &Slot) -> Option<String> {
        self.slots
            .lock()
            .unwrap()
            .iter()
            .filter(|s| !std::ptr::eq(s.as_ref(), me))
            .find(|s| s.state.lock().unwrap().fingerprint.as_deref() == Some(fingerprint))
            .map(|s| s.name())
    }
}

/// One director: its address, its management connection, its lease.
pub(crate) struct Slot {
    /// The director as configured (`host:port`).
    target: String,
    /// The address it resolved to.
    addr: SocketAddr,
    state: Mutex<SlotState>,
    /// Woken when a heartbeat is refused with `NOT_FOUND`.
    not_found: Notify,
}

#[derive(Default)]
struct SlotState {
    /// The management connection (kept to tell a restarted director by its new leaf).
    client: Option<Arc<Client>>,
    /// Fingerprint of the leaf the director presented on `client`.
    fingerprint: Option<String>,
    /// The book's key of that director.
    key: DirectorKey,
    /// Bumped at every registration: heartbeats sent under an older one renew nothing, and their
    /// `NOT_FOUND` is stale.
    generation: u64,
    registered: bool,
    lease: Option<Lease>,
    /// When a heartbeat (or the registration) was last acknowledged, ms.
    last_ack_ms: u64,
    /// A heartbeat of this generation was refused with `NOT_FOUND`.
    not_found: Option<u64>,
    /// When the current outage began, ms (`None` while registered and answering).
    down_since: Option<u64>,
}

impl Slot {
    /// How logs name the director: as configured, with the address a name resolved to.
    fn name(&self) -> String {
        if self.target == self.addr.to_string() {
            self.target.clone()
        } else {
            format!("{} ({})", self.target, self.addr)
        }
    }

    /// The management connection, if it is still open.
    fn live_client(&self) -> Option<Arc<Client>> {
        let st = self.state.lock().unwrap();
        st.client
            .clone()
            .filter(|c| c.connection().quinn().close_reason().is_none())
    }

    /// An attempt failed: remembers why, and logs once per outage.
    fn failed(&self, inner: &Inner, e: &RpcError) {
        inner
            .membership
            .record_error(&self.target, format!("{}: {}", self.addr, e));
        let mut st = self.state.lock().unwrap();
        if st.down_since.is_none() {
            st.down_since = Some(now_ms());
            tracing::warn!(worker = %inner.id, director = %self.name(), error = %e, "cannot register with the director; retrying with backoff");
        } else {
            tracing::debug!(worker = %inner.id, director = %self.name(), error = %e, "director still unreachable");
        }
    }

    /// The connection was lost: drops it (closing it in the background) and logs once per
    /// outage. The lease lapses on its own.
    fn lost(&self, inner: &Inner, why: &str) {
        let old = {
            let mut st = self.state.lock().unwrap();
            st.registered = false;
            if st.down_since.is_none() {
                st.down_since = Some(now_ms());
                tracing::warn!(worker = %inner.id, director = %self.name(), reason = %why, "lost the director; reconnecting with backoff");
            }
            st.client.take()
        };
        if let Some(c) = old {
            tokio::spawn(async move { c.close().await });
        }
    }

    /// Registered: ends the outage, if any, with one log line.
    fn back(&self, inner: &Inner) {
        let since = self.state.lock().unwrap().down_since.take();
        match since {
            Some(t) => {
                tracing::info!(worker = %inner.id, director = %self.name(), after_ms = now_ms().saturating_sub(t), "registered with the director again")
            }
            None => {
                tracing::info!(worker = %inner.id, director = %self.name(), "registered with the director")
            }
        }
    }

    /// A heartbeat sent at `sent_at` under registration `generation` was acknowledged: renews
    /// the lease, and serves the director's calls again if it holds.
    fn acked(&self, inner: &Inner, generation: u64, sent_at: u64) {
        let mut st = self.state.lock().unwrap();
        if st.generation != generation || !st.registered {
            return;
        }
        let now = now_ms();
        st.last_ack_ms = st.last_ack_ms.max(now);
        let key = st.key;
        if let Some(lease) = st.lease.as_mut() {
            lease.acked(sent_at);
            if lease.is_valid(now) {
                inner.user.sessions().with_book(|b| b.lease_held(key));
            }
        }
    }

    /// Time until the lease lapses (a day when there is none).
    fn until_lapse(&self) -> Duration {
        let expires = self
            .state
            .lock()
            .unwrap()
            .lease
            .as_ref()
            .and_then(Lease::expires_at);
        expires.map_or(Duration::from_secs(86_400), |at| {
            Duration::from_millis(at.saturating_sub(now_ms()) + 1)
        })
    }
}

/// This worker's `Register` message (its id and both advertised addresses), sent to register, to
/// re-register and to ask for a drain.
pub(crate) fn register_message(inner: &Inner) -> ManagementMessage {
    ManagementMessage::Register(Register {
        worker_id: inner.id.clone(),
        user_addr: inner.user_addr.clone(),
        mgmt_addr: inner.mgmt_addr.clone(),
        lease_ms: 0,
    })
}

/// Registers with every director of `targets` (each `host:port`, checked by the caller) and
/// keeps heartbeating them until the worker stops. Returns once one director accepted the
/// worker; the others are retried in the background.
///
/// Errors: the first refusal of a director (`INVALID_ARGUMENT` for an id that a live worker
/// holds or an address it cannot use, `PROTOCOL` for a reply without a lease, `UNAVAILABLE` for
/// a TLS handshake that failed: a certificate of another cluster); `UNAVAILABLE` when no
/// director accepted the worker within `connect_timeout_ms`, naming each director and its last
/// error. The caller stops the worker then.
pub(crate) async fn start(
    inner: &Arc<Inner>,
    targets: &[String],
    every_ms: u64,
    connect_timeout_ms: u64,
) -> Result<(), RpcError> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    for t in targets {
        tokio::spawn(run_target(inner.clone(), t.clone(), every_ms, tx.clone()));
    }
    drop(tx);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(connect_timeout_ms);
    let outcome = tokio::time::timeout_at(deadline, rx.recv()).await;
    match outcome {
        Ok(Some(result)) => result,
        Ok(None) | Err(_) => {
            let errors = inner.membership.errors.lock().unwrap().clone();
            let why = |t: &str| {
                errors
                    .iter()
                    .find(|(target, _)| target == t)
                    .map_or("no answer".to_string(), |(_, e)| e.clone())
            };
            Err(RpcError::unavailable(match targets {
                [one] => format!(
                    "cannot register with the director at {one} within {connect_timeout_ms} ms: {}",
                    why(one)
                ),
                many => format!(
                    "cannot register with any director within {connect_timeout_ms} ms: {}",
                    many.iter()
                        .map(|t| format!("{t} ({})", why(t)))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            }))
        }
    }
}

/// One configured director: resolves it (retrying until it resolves), then runs a slot per
/// address it names.
async fn run_target(
    inner: Arc<Inner>,
    target: String,
    every_ms: u64,
    outcomes: mpsc::UnboundedSender<Result<(), RpcError>>,
) {
    let mut backoff = Backoff::new(RETRY_MIN_MS, RETRY_MAX_MS);
    let mut logged = false;
    let addrs = loop {
        match crate::addr::resolve_all(&target, "director").await {
            Ok(addrs) => break addrs,
            Err(e) => {
                inner.membership.record_error(&target, e.to_string());
                if !logged {
                    logged = true;
                    tracing::warn!(worker = %inner.id, director = %target, error = %e, "cannot resolve the director; retrying with backoff");
                }
            }
        }
        let delay = Duration::from_millis(backoff.next_delay(random_u32()));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = inner.stopped.cancelled() => return,
        }
    };
    for addr in addrs {
        if !inner.membership.claimed.lock().unwrap().insert(addr) {
            continue;
        }
        let slot = Arc::new(Slot {
            target: target.clone(),
            addr,
            state: Mutex::default(),
            not_found: Notify::new(),
        });
        inner.membership.slots.lock().unwrap().push(slot.clone());
        tokio::spawn(watch_lease(inner.clone(), slot.clone(), every_ms));
        tokio::spawn(run_slot(inner.clone(), slot, every_ms, outcomes.clone()));
    }
}

/// Why a slot stopped heartbeating on its connection.
enum Lost {
    /// The worker stops.
    Stopped,
    /// A heartbeat was refused with `NOT_FOUND`: register again on the same connection.
    NotFound,
    /// The connection is gone (or silent): connect again.
    Connection(String),
}

/// The outcome of an attempt to register with a slot's director.
enum Attempt {
    /// Registered under this generation, on this connection.
    Registered(Arc<Client>, u64),
    /// The director is already served by another slot (named).
    Duplicate(String),
}

/// Registers with one director and keeps heartbeating it, reconnecting with backoff, until the
/// worker stops. Reports the first outcome to `start`: accepted, or refused.
async fn run_slot(
    inner: Arc<Inner>,
    slot: Arc<Slot>,
    every_ms: u64,
    outcomes: mpsc::UnboundedSender<Result<(), RpcError>>,
) {
    let mut outcomes = Some(outcomes);
    let mut backoff = Backoff::new(RETRY_MIN_MS, RETRY_MAX_MS);
    loop {
        if inner.stopped.is_cancelled() {
            return;
        }
        match attempt(&inner, &slot).await {
            Ok(Attempt::Registered(client, generation)) => {
                backoff.reset();
                slot.back(&inner);
                if let Some(tx) = outcomes.take() {
                    let _ = tx.send(Ok(()));
                }
                match heartbeat_until_lost(&inner, &slot, &client, generation, every_ms).await {
                    Lost::Stopped => return,
                    Lost::NotFound => {
                        declared_dead(&inner, &slot).await;
                        continue; // register again at once
                    }
                    Lost::Connection(why) => slot.lost(&inner, &why),
                }
            }
            Ok(Attempt::Duplicate(other)) => {
                tracing::info!(worker = %inner.id, director = %slot.name(), same_as = %other, "this address reaches a director already registered with; not registering twice");
                return;
            }
            Err(e) => {
                let refused = matches!(
                    e.code,
                    ErrorCode::InvalidArgument
                        | ErrorCode::Protocol
                        | ErrorCode::PermissionDenied
                        | ErrorCode::Unimplemented
                ) || handshake_refused(&e);
                // A refusal fails a start still waiting; after the start it is retried.
                let waiting = outcomes.as_ref().is_some_and(|tx| !tx.is_closed());
                if refused && waiting {
                    let e =
                        RpcError::new(e.code, format!("{} (director {})", e.message, slot.name()));
                    let _ = outcomes.take().map(|tx| tx.send(Err(e)));
                    return;
                }
                slot.failed(&inner, &e);
            }
        }
        let delay = Duration::from_millis(backoff.next_delay(random_u32()));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = inner.stopped.cancelled() => return,
        }
    }
}

/// True for a connection that failed in the TLS handshake: a certificate of another cluster on
/// either side (quinn reports TLS alerts as "the cryptographic handshake failed"). Something
/// answered and refused the worker: trying again does not help, so a start fails at once.
fn handshake_refused(e: &RpcError) -> bool {
    e.message.contains("cryptographic handshake failed")
}

/// Connects (unless the connection is still open) and registers with the slot's director.
///
/// Errors: those of connecting (`UNAVAILABLE`, `DEADLINE_EXCEEDED` after
/// [`CONNECT_ATTEMPT_MS`]) and of the `rpcnet.cluster/register` call.
async fn attempt(inner: &Inner, slot: &Slot) -> Result<Attempt, RpcError> {
    let client = match slot.live_client() {
        Some(c) => c,
        None => {
            let mut config = ClientConfig::cluster(inner.cluster.clone());
            config.connect_timeout_ms = CONNECT_ATTEMPT_MS;
            let client = Arc::new(
                Client::connect(slot.addr, config)
                    .await
                    .map_err(crate::cluster::explain_handshake)?,
            );
            let peer = PeerIdentity::of_peer(client.connection().quinn())
                .ok_or_else(|| RpcError::unavailable("the director presented no certificate"))
                .and_then(|p| {
                    p.require(Role::Director, "a director's management port")
                        .map(|_| p)
                });
            let peer = match peer {
                Ok(p) => p,
                Err(e) => {
                    client.close().await;
                    return Err(e);
                }
            };
            let fingerprint = peer.fingerprint;
            if let Some(other) = inner.membership.holder_of(&fingerprint, slot) {
                client.close().await;
                return Ok(Attempt::Duplicate(other));
            }
            let known = {
                let st = slot.state.lock().unwrap();
                st.generation > 0 && st.fingerprint.as_deref() == Some(fingerprint.as_str())
            };
            adopt(inner, slot, client.clone(), fingerprint).await;
            // The same certificate as before: the same director run after a lost connection,
            // or (issued credentials are kept across restarts) a restarted one, which no
            // longer knows this worker.
            if known {
                match director_forgot(inner, &client).await {
                    Ok(true) => declared_dead(inner, slot).await,
                    Ok(false) => {}
                    Err(e) => {
                        // Unknown: drop the connection, so that the next attempt asks again.
                        slot.lost(inner, "no answer to the restart check");
                        return Err(e);
                    }
                }
            }
            client
        }
    };
    let generation = register(inner, slot, &client).await?;
    Ok(Attempt::Registered(client, generation))
}

/// Takes a new connection to the slot's director, whose leaf has `fingerprint`. If the slot's
/// director presented another leaf before, it was replaced by a new process (a restart): the
/// sessions the old one relayed are forgotten (their calls frozen first) and its key retired.
async fn adopt(inner: &Inner, slot: &Slot, client: Arc<Client>, fingerprint: String) {
    let sessions = inner.user.sessions();
    let key = sessions.director_key(&fingerprint);
    let replaced = {
        let mut st = slot.state.lock().unwrap();
        let old = st.fingerprint.replace(fingerprint.clone());
        let old_key = std::mem::replace(&mut st.key, key);
        st.client = Some(client);
        st.registered = false;
        let replaced = old.filter(|f| *f != fingerprint).map(|f| (f, old_key));
        if replaced.is_some() {
            // The new director granted nothing yet. (The same director's lease runs on: it
            // still fences the calls it relays if the registration fails.)
            st.lease = None;
        }
        replaced
    };
    if let Some((old, old_key)) = replaced {
        tracing::info!(worker = %inner.id, director = %slot.name(), "the director is a new process; forgetting the sessions the old one relayed");
        forget(inner, old_key).await;
        sessions.forget_director_key(&old);
    }
}

/// Whether the director on `client` answers a Heartbeat with `NOT_FOUND`: it does not know this
/// worker (it was restarted, or declared the worker dead while the connection was down).
///
/// Errors: any other failure of the Heartbeat (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, ...): the
/// answer is unknown.
async fn director_forgot(inner: &Inner, client: &Client) -> Result<bool, RpcError> {
    let hb = ManagementMessage::Heartbeat(Heartbeat {
        worker_id: inner.id.clone(),
        sessions: inner.user.sessions().len() as u32,
        at_ms: now_ms(),
    });
    match mgmt::call(client, mgmt::HEARTBEAT, &hb, REGISTER_TIMEOUT_MS).await {
        Ok(_) => Ok(false),
        Err(e) if e.code == ErrorCode::NotFound => Ok(true),
        Err(e) => Err(e),
    }
}

/// Stops producing for the calls director `key` relays and forgets its sessions.
async fn forget(inner: &Inner, key: DirectorKey) {
    let sessions = inner.user.sessions();
    let calls = sessions.with_book(|b| b.lease_lapsed(key));
    let timeout = Duration::from_millis(FENCE_FREEZE_TIMEOUT_MS);
    sessions.freeze_calls(key, calls, timeout).await;
    sessions.with_book(|b| b.forget_director(key, now_ms()));
}

/// Registers on `client` and takes the lease the reply grants; returns the new generation.
///
/// Errors: those of the `rpcnet.cluster/register` call (PROTOCOL.md section 14), e.g.
/// `INVALID_ARGUMENT` for an id a live worker holds, `UNAVAILABLE` when unreachable; `PROTOCOL`
/// for a reply that is not a Register with a lease.
async fn register(inner: &Inner, slot: &Slot, client: &Client) -> Result<u64, RpcError> {
    let sent_at = now_ms();
    let reply = mgmt::call(
        client,
        mgmt::REGISTER,
        &register_message(inner),
        REGISTER_TIMEOUT_MS,
    )
    .await
    .map_err(|e| match e.code {
        ErrorCode::Unimplemented => mgmt::not_a_management_port(e, &slot.name()),
        _ => e,
    })?;
    let ManagementMessage::Register(r) = reply else {
        return Err(RpcError::protocol(format!(
            "the director answered Register with {}",
            reply.name()
        )));
    };
    if r.lease_ms == 0 {
        return Err(RpcError::protocol(
            "the director granted no lease (lease_ms 0)",
        ));
    }
    let mut st = slot.state.lock().unwrap();
    st.generation += 1;
    st.registered = true;
    st.lease = Some(Lease::new(u64::from(r.lease_ms), sent_at));
    st.last_ack_ms = now_ms();
    st.not_found = None;
    let key = st.key;
    inner.user.sessions().with_book(|b| b.lease_held(key));
    Ok(st.generation)
}

/// Sends a heartbeat every `every_ms` on `client` until the connection is lost or silent, a
/// heartbeat of this `generation` is refused with `NOT_FOUND`, or the worker stops.
async fn heartbeat_until_lost(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    client: &Arc<Client>,
    generation: u64,
    every_ms: u64,
) -> Lost {
    let silence_ms = SILENCE_RECONNECT_MS.max(3 * slot_lease_ms(slot));
    let mut tick = tokio::time::interval(Duration::from_millis(every_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let connection = client.connection().quinn().clone();
    let closed = connection.closed();
    tokio::pin!(closed);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let silent = now_ms().saturating_sub(slot.state.lock().unwrap().last_ack_ms);
                if silent > silence_ms {
                    return Lost::Connection(format!("no heartbeat answered for {silent} ms"));
                }
                tokio::spawn(heartbeat(inner.clone(), slot.clone(), client.clone(), generation, every_ms));
            }
            _ = slot.not_found.notified() => {
                if slot.state.lock().unwrap().not_found == Some(generation) {
                    return Lost::NotFound;
                }
            }
            e = &mut closed => return Lost::Connection(e.to_string()),
            _ = inner.stopped.cancelled() => return Lost::Stopped,
        }
    }
}

/// The lease the slot's director granted, ms (0 when none).
fn slot_lease_ms(slot: &Slot) -> u64 {
    slot.state
        .lock()
        .unwrap()
        .lease
        .as_ref()
        .map_or(0, Lease::lease_ms)
}

/// One heartbeat: renews the lease when acknowledged.
async fn heartbeat(
    inner: Arc<Inner>,
    slot: Arc<Slot>,
    client: Arc<Client>,
    generation: u64,
    every_ms: u64,
) {
    let sent_at = now_ms();
    let hb = ManagementMessage::Heartbeat(Heartbeat {
        worker_id: inner.id.clone(),
        sessions: inner.user.sessions().len() as u32,
        at_ms: sent_at,
    });
    // Long enough for a few retransmissions under loss; a later heartbeat renews the lease
    // anyway, and an answer older than the lease renews nothing.
    let timeout = (every_ms * 10).clamp(1_000, 10_000) as u32;
    match mgmt::call(&client, mgmt::HEARTBEAT, &hb, timeout).await {
        Ok(_) => slot.acked(&inner, generation, sent_at),
        Err(e) if e.code == ErrorCode::NotFound => {
            let mut st = slot.state.lock().unwrap();
            if st.generation == generation && st.registered {
                st.not_found = Some(generation);
                slot.not_found.notify_one();
            }
        }
        Err(e) => {
            tracing::debug!(worker = %inner.id, director = %slot.name(), error = %e, "heartbeat failed")
        }
    }
}

/// The director no longer knows this worker: it declared it dead (missed heartbeats) and failed
/// the sessions it relays over. Stops producing for them and forgets them; the caller registers
/// again.
async fn declared_dead(inner: &Inner, slot: &Slot) {
    tracing::warn!(worker = %inner.id, director = %slot.name(), "the director no longer knows this worker (it declared it dead, or it was restarted); forgetting the sessions it relays and registering again");
    let key = {
        let mut st = slot.state.lock().unwrap();
        st.registered = false;
        st.lease = None;
        st.key
    };
    forget(inner, key).await;
}

/// Suspends the calls a director relays while its lease has lapsed (checked at the lease's
/// expiry, and at least every `every_ms`), until the worker stops.
async fn watch_lease(inner: Arc<Inner>, slot: Arc<Slot>, every_ms: u64) {
    let sessions = inner.user.sessions();
    loop {
        let wait = slot.until_lapse().min(Duration::from_millis(every_ms));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = inner.stopped.cancelled() => return,
        }
        let lapsed = {
            let st = slot.state.lock().unwrap();
            let key = st.key;
            let lapsed = st.lease.as_ref().is_some_and(|l| !l.is_valid(now_ms()));
            (lapsed && key != UNKNOWN_DIRECTOR)
                .then(|| {
                    sessions.with_book(|b| b.is_leased(key).then(|| (key, b.lease_lapsed(key))))
                })
                .flatten()
        };
        if let Some((key, calls)) = lapsed {
            tracing::warn!(worker = %inner.id, director = %slot.name(), calls = calls.len(), "heartbeat lease lapsed; suspending the calls this director relays until it answers");
            let timeout = Duration::from_millis(FENCE_FREEZE_TIMEOUT_MS);
            sessions.freeze_calls(key, calls, timeout).await;
        }
    }
}

/// What is kept for fencing and replay protection expires with time (bounded by count too, see
/// `rpcnet_session::participant`): forgets what expired, every `every_ms`, until the worker
/// stops.
pub(crate) async fn prune(inner: Arc<Inner>, every_ms: u64) {
    let mut tick = tokio::time::interval(Duration::from_millis(every_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = inner.stopped.cancelled() => return,
        }
        let now = now_ms();
        inner.user.sessions().with_book(|b| {
            b.prune(now);
            inner.participant.lock().unwrap().prune(now);
        });
    }
}

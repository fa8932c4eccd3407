//! The worker's membership in the cluster: registration, heartbeats and the heartbeat lease.
//!
//! Heartbeats are sent every `heartbeat_ms`, each on its own task, so one lost or slow heartbeat
//! never delays the next: under packet loss the director still hears from the worker well within
//! its `failover_after_ms` (ISSUE 6 defect 7). Each acknowledged heartbeat renews the
//! [`Lease`] the director granted in its Register reply (PROTOCOL.md section 14.1). When the
//! lease lapses, the worker fences itself: it freezes every call at an item boundary, keeps its
//! state and answers every ATTACH with SUSPENDED, so that it has stopped producing before the
//! director can declare it dead and fail its sessions over (one owner at a time). An
//! acknowledged heartbeat lifts the fence; a heartbeat refused with `NOT_FOUND` means the
//! director did declare it dead: the worker forgets its sessions and registers again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpcnet_protocol::migration::{Heartbeat, ManagementMessage, Register};
use rpcnet_protocol::ErrorCode;
use rpcnet_session::Lease;

use super::Inner;
use crate::error::RpcError;
use crate::mgmt::{self, now_ms};

/// How long a drain or a registration may take, ms.
const REGISTER_TIMEOUT_MS: u32 = 5_000;
/// How long the fence waits for calls to freeze, ms.
const FENCE_FREEZE_TIMEOUT_MS: u64 = 1_000;

/// The lease and whether a re-registration is under way.
#[derive(Default)]
pub(crate) struct Membership {
    lease: Mutex<Option<Lease>>,
    registering: AtomicBool,
}

/// This worker's `Register` message (its id and both addresses), sent to register, to re-register
/// and to ask for a drain.
pub(crate) fn register_message(inner: &Inner) -> ManagementMessage {
    ManagementMessage::Register(Register {
        worker_id: inner.id.clone(),
        user_addr: inner.user.local_addr().to_string(),
        mgmt_addr: inner.mgmt_addr.to_string(),
        lease_ms: 0,
    })
}

/// Registers with the director and takes the lease its reply grants.
///
/// Errors: those of the `rpcnet.cluster/register` call (PROTOCOL.md section 14), e.g.
/// `INVALID_ARGUMENT` for an id a live worker holds, `UNAVAILABLE` when unreachable.
pub(crate) async fn register(inner: &Inner) -> Result<(), RpcError> {
    let sent_at = now_ms();
    let reply = mgmt::call(
        &inner.director,
        mgmt::REGISTER,
        &register_message(inner),
        REGISTER_TIMEOUT_MS,
    )
    .await?;
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
    *inner.membership.lease.lock().unwrap() = Some(Lease::new(u64::from(r.lease_ms), sent_at));
    inner.user.sessions().with_book(|b| b.unfence_self());
    Ok(())
}

/// Sends heartbeats every `every_ms` and keeps the lease until the worker stops.
pub(crate) async fn heartbeats(inner: Arc<Inner>, every_ms: u64) {
    let mut tick = tokio::time::interval(Duration::from_millis(every_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let lapse = tokio::time::sleep(until_lapse(&inner));
        tokio::select! {
            _ = tick.tick() => {
                tokio::spawn(heartbeat(inner.clone(), every_ms));
                prune(&inner);
            }
            _ = lapse => {}
            _ = inner.stopped.cancelled() => return,
        }
        check_lease(&inner).await;
    }
}

/// What is kept for fencing and replay protection expires with time (bounded by count too, see
/// `rpcnet_session::participant`): forgets what expired.
fn prune(inner: &Inner) {
    let now = now_ms();
    inner.user.sessions().with_book(|b| {
        b.prune(now);
        inner.participant.lock().unwrap().prune(now);
    });
}

/// Time until the lease lapses (a day when there is none or the worker is already fenced).
fn until_lapse(inner: &Inner) -> Duration {
    let far = Duration::from_secs(86_400);
    if inner.user.sessions().with_book(|b| b.is_self_fenced()) {
        return far;
    }
    let expires = inner
        .membership
        .lease
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|l| l.expires_at());
    expires.map_or(far, |at| {
        Duration::from_millis(at.saturating_sub(now_ms()) + 1)
    })
}

/// One heartbeat: renews the lease when acknowledged.
async fn heartbeat(inner: Arc<Inner>, every_ms: u64) {
    let sent_at = now_ms();
    let hb = ManagementMessage::Heartbeat(Heartbeat {
        worker_id: inner.id.clone(),
        sessions: inner.user.sessions().len() as u32,
        at_ms: sent_at,
    });
    // Long enough for a few retransmissions under loss; a later heartbeat renews the lease
    // anyway, and an answer older than the lease renews nothing.
    let timeout = (every_ms * 10).clamp(1_000, 10_000) as u32;
    match mgmt::call(&inner.director, mgmt::HEARTBEAT, &hb, timeout).await {
        Ok(_) => {
            let valid = {
                let mut lease = inner.membership.lease.lock().unwrap();
                lease.as_mut().map(|l| {
                    l.acked(sent_at);
                    l.is_valid(now_ms())
                })
            };
            if valid == Some(true) {
                inner.user.sessions().with_book(|b| b.unfence_self());
            }
        }
        Err(e) if e.code == ErrorCode::NotFound => declared_dead(&inner).await,
        Err(e) => tracing::debug!(error = %e, "heartbeat failed"),
    }
}

/// The director no longer knows this worker: it declared it dead (missed heartbeats) or
/// restarted, and failed its sessions over. Drops their state and registers again.
async fn declared_dead(inner: &Inner) {
    if inner.membership.registering.swap(true, Ordering::SeqCst) {
        return;
    }
    tracing::warn!(worker = %inner.id, "director does not know this worker; registering again");
    inner.user.sessions().with_book(|b| {
        b.fence_self();
        b.forget_all(now_ms())
    });
    if let Err(e) = register(inner).await {
        tracing::warn!(error = %e, "re-registration failed");
    }
    inner.membership.registering.store(false, Ordering::SeqCst);
}

/// Fences the worker when its lease has lapsed.
async fn check_lease(inner: &Inner) {
    let lapsed = inner
        .membership
        .lease
        .lock()
        .unwrap()
        .as_ref()
        .is_some_and(|l| !l.is_valid(now_ms()));
    let fenced = inner.user.sessions().with_book(|b| b.is_self_fenced());
    if lapsed && !fenced {
        tracing::warn!(worker = %inner.id, "heartbeat lease lapsed; fencing this worker until the director answers");
        let timeout = Duration::from_millis(FENCE_FREEZE_TIMEOUT_MS);
        inner.user.sessions().fence_self(timeout).await;
    }
}

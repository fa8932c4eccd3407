//! Failure detection and failover (DESIGN.md vocabulary): the watchdog declares a worker dead
//! after `failover_after_ms` without a heartbeat; every session's coordinator then aborts a
//! migration the worker takes part in, and a session the worker owned is re-opened on a live
//! worker chosen by the placement policy. A session with no live worker to go to keeps its dead
//! owner until a worker registers ([`reroute_orphans`]).

use std::sync::Arc;
use std::time::Duration;

use super::registry::WorkerLink;
use super::session::Session;
use super::{DirectorEvent, Inner};
use crate::mgmt::now_ms;

/// Declares silent workers dead, every `failover_after_ms / 5` (10 to 200 ms).
pub(crate) async fn watchdog(inner: Arc<Inner>) {
    let period = Duration::from_millis((inner.config.failover_after_ms / 5).clamp(10, 200));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = inner.closed.cancelled() => return,
        }
        let now = now_ms();
        let silent: Vec<Arc<WorkerLink>> = inner
            .workers
            .lock()
            .unwrap()
            .values()
            .filter(|w| {
                w.alive() && now.saturating_sub(w.last_heartbeat()) > inner.config.failover_after_ms
            })
            .cloned()
            .collect();
        for w in silent {
            w.dead.cancel();
            if w.is_draining() {
                tracing::info!(worker = %w.id, "drained worker left");
            } else {
                let silent_ms = now.saturating_sub(w.last_heartbeat());
                tracing::warn!(worker = %w.id, silent_ms, "worker declared dead");
            }
            inner.emit(DirectorEvent::WorkerLost {
                worker: w.id.clone(),
            });
            worker_lost(&inner, &w.id).await;
        }
    }
}

/// Tells every session that `dead` is gone; fails over the ones it owned.
pub(crate) async fn worker_lost(inner: &Arc<Inner>, dead: &str) {
    for s in inner.all_sessions() {
        if s.drive(inner, |c, now| c.worker_lost(dead, now)) {
            fail_over(inner, &s, dead).await;
        }
    }
}

/// Re-opens `s` on a live worker other than `from` (its owner, lost); relays re-attach there from
/// their last checkpoint and drop the items the client already has.
pub(crate) async fn fail_over(inner: &Arc<Inner>, s: &Arc<Session>, from: &str) {
    match inner.select_worker(s.id, Some(from)).await {
        Some(to) => s.drive(inner, |c, _| {
            if c.route().owner == from {
                c.fail_over(&to);
            }
        }),
        None => tracing::error!(
            session = s.id,
            "no live worker to fail over to; waiting for one to register"
        ),
    }
}

/// Fails over every session whose owner is not a live worker (used when a worker registers).
pub(crate) async fn reroute_orphans(inner: &Arc<Inner>) {
    for s in inner.all_sessions() {
        let owner = s.owner();
        if inner.worker(&owner).is_none_or(|w| !w.alive()) {
            fail_over(inner, &s, &owner).await;
        }
    }
}

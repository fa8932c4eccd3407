//! RFC-001's migration phases as the director runs them: the sans-IO
//! [`rpcnet_protocol::migration::Migration`] decides what happens next; this module performs each
//! action over the management ports ([`crate::mgmt`]) and feeds the results and the clock back.
//!
//! Initiation issues a single-use token (HMAC-SHA256 over session, source, target, expiry);
//! Confirmation asks the target's policy hook; Preparation has the target redeem the token;
//! State Capture freezes the session's route, then the source freezes its calls at an item
//! boundary and seals the snapshot; State Transfer hands the sealed bytes to the target, which
//! opens and restores them; Pivot switches the route atomically and tells the source to drop the
//! session. Any failure before the Pivot is a MigrationAbort: the route unfreezes on the source,
//! whose captured calls re-attach there, so nothing is lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ring::rand::SystemRandom;
use rpcnet_protocol::migration::{
    Action, Event, ManagementMessage, Migration, MigrationAbort, MigrationComplete, MigrationError,
    MigrationReason, MigrationRequest, Outcome, StateTransfer, DEFAULT_TOKEN_TTL_MS,
};
use rpcnet_protocol::ErrorCode;

use super::{DirectorEvent, Inner, WorkerLink};
use crate::error::RpcError;
use crate::mgmt::{self, now_ms};

/// What one migration did, reported to the embedder.
#[derive(Debug, Clone)]
pub struct MigrationReport {
    /// Migration id.
    pub migration_id: u64,
    /// Session id.
    pub session_id: u64,
    /// Source worker.
    pub source: String,
    /// Target worker.
    pub target: String,
    /// `drain`, `admin`, ...
    pub reason: String,
    /// True if the session now lives on the target; false if it was rolled back.
    pub completed: bool,
    /// For an abort: `CODE: message` of the cause.
    pub error: Option<String>,
    /// For an abort: the phase that was running.
    pub aborted_in: Option<String>,
    /// Time spent in each phase, ms, in order.
    pub phases: Vec<(String, u64)>,
    /// Total time, ms.
    pub duration_ms: f64,
    /// Time the session's calls were frozen (State Capture to Pivot or abort), ms.
    pub frozen_ms: f64,
    /// Size of the sealed snapshot, bytes.
    pub snapshot_bytes: u64,
}

fn failure(e: &RpcError) -> Event {
    Event::Failure(MigrationError::Aborted {
        reason: format!("{}: {}", e.code, e.message),
    })
}

/// Runs one exchange against a worker, bounded by the machine's next timeout.
async fn exchange(
    m: &Migration,
    w: &WorkerLink,
    method: &str,
    msg: &ManagementMessage,
) -> Result<ManagementMessage, RpcError> {
    let left = m
        .poll_timeout()
        .map_or(5_000, |t| t.saturating_sub(now_ms()).max(1));
    if !w.alive() {
        return Err(RpcError::unavailable(format!("worker {} is dead", w.id)));
    }
    tokio::select! {
        r = mgmt::call(&w.mgmt, method, msg, left.min(u64::from(u32::MAX)) as u32) => r,
        _ = w.dead.cancelled() => Err(RpcError::unavailable(format!("worker {} died", w.id))),
    }
}

pub(crate) async fn migrate(
    inner: &Arc<Inner>,
    session_id: u64,
    target: Option<String>,
    reason: MigrationReason,
) -> Result<MigrationReport, RpcError> {
    let session = inner
        .sessions
        .lock()
        .unwrap()
        .get(&session_id)
        .cloned()
        .ok_or_else(|| {
            RpcError::new(ErrorCode::NotFound, format!("no session {session_id:016x}"))
        })?;
    let _one_at_a_time = session.migrating.lock().await;
    let source_id = session.route.borrow().owner.clone();
    let target_id = match target {
        Some(t) => t,
        None => inner
            .select_worker(session_id, Some(&source_id))
            .await
            .ok_or_else(|| {
                RpcError::unavailable(format!(
                    "no worker other than {source_id} to migrate session {session_id:016x} to"
                ))
            })?,
    };
    if target_id == source_id {
        return Err(RpcError::invalid_argument(format!(
            "session {session_id:016x} already lives on {target_id}"
        )));
    }
    let source = inner
        .worker(&source_id)
        .filter(|w| w.alive())
        .ok_or_else(|| RpcError::unavailable(format!("source {source_id} is not alive")))?;
    let target = inner
        .worker(&target_id)
        .filter(|w| w.alive())
        .ok_or_else(|| RpcError::new(ErrorCode::NotFound, format!("no live worker {target_id}")))?;

    let migration_id = inner
        .next_migration
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let now = now_ms();
    let mut m = Migration::new(
        inner.config.migration,
        migration_id,
        session_id,
        source_id.clone(),
        target_id.clone(),
        now,
    );
    let reason_text = reason.to_string();
    inner.emit(DirectorEvent::MigrationStarted {
        migration_id,
        session_id,
        source: source_id.clone(),
        target: target_id.clone(),
        reason: reason_text.clone(),
    });
    let token = inner
        .token_key
        .issue(
            &SystemRandom::new(),
            session_id,
            &source_id,
            &target_id,
            now,
            DEFAULT_TOKEN_TTL_MS,
        )
        .map_err(|e| RpcError::internal(e.to_string()))?;
    let mut request = ManagementMessage::Request(MigrationRequest {
        migration_id,
        session_id,
        source: source_id.clone(),
        target: target_id.clone(),
        reason,
        token,
        requested_at_ms: now,
        route_epoch: 0,
    });
    let mut sealed = Bytes::new();
    let mut frozen_at: Option<Instant> = None;
    let mut frozen_ms = 0.0;
    let mut unfreeze =
        |session: &super::Session, frozen_at: &mut Option<Instant>, owner: Option<&str>| {
            session.route.send_modify(|r| {
                if let Some(o) = owner {
                    r.owner = o.to_string();
                }
                r.frozen = false;
                r.epoch += 1;
            });
            if let Some(t) = frozen_at.take() {
                frozen_ms = t.elapsed().as_secs_f64() * 1000.0;
            }
        };
    loop {
        while let Some(action) = m.poll_action() {
            let result = match action {
                Action::SendRequest => m.handle(Event::RequestSent, now_ms()),
                Action::AskConfirmation => {
                    match exchange(&m, &target, mgmt::REQUEST, &request).await {
                        Ok(ManagementMessage::Confirmation(c)) => {
                            m.handle(Event::Confirmed(c.decision), now_ms())
                        }
                        Ok(other) => m.handle(
                            failure(&RpcError::protocol(format!("unexpected {}", other.name()))),
                            now_ms(),
                        ),
                        Err(e) => m.handle(failure(&e), now_ms()),
                    }
                }
                Action::SendPrepare => match exchange(&m, &target, mgmt::PREPARE, &request).await {
                    Ok(ManagementMessage::PrepareAck(a)) => {
                        m.handle(Event::PrepareAck { ready: a.ready }, now_ms())
                    }
                    Ok(other) => m.handle(
                        failure(&RpcError::protocol(format!("unexpected {}", other.name()))),
                        now_ms(),
                    ),
                    Err(e) => m.handle(failure(&e), now_ms()),
                },
                Action::CaptureState => {
                    // New attaches wait from here until the Pivot or the abort.
                    session.route.send_modify(|r| r.frozen = true);
                    frozen_at = Some(Instant::now());
                    // The source fences the session at this epoch (PROTOCOL.md section 13.5).
                    if let ManagementMessage::Request(r) = &mut request {
                        r.route_epoch = session.route.borrow().epoch;
                    }
                    match exchange(&m, &source, mgmt::CAPTURE, &request).await {
                        Ok(ManagementMessage::StateTransfer(st)) => {
                            sealed = st.sealed;
                            m.handle(
                                Event::Captured {
                                    sealed_bytes: sealed.len() as u64,
                                },
                                now_ms(),
                            )
                        }
                        Ok(other) => m.handle(
                            failure(&RpcError::protocol(format!("unexpected {}", other.name()))),
                            now_ms(),
                        ),
                        Err(e) => m.handle(failure(&e), now_ms()),
                    }
                }
                Action::SendStateTransfer => {
                    let msg = ManagementMessage::StateTransfer(StateTransfer {
                        migration_id,
                        sealed: sealed.clone(),
                    });
                    match exchange(&m, &target, mgmt::TRANSFER, &msg).await {
                        Ok(ManagementMessage::Complete(_)) => m.handle(Event::Restored, now_ms()),
                        Ok(other) => m.handle(
                            failure(&RpcError::protocol(format!("unexpected {}", other.name()))),
                            now_ms(),
                        ),
                        Err(e) => m.handle(failure(&e), now_ms()),
                    }
                }
                Action::SwitchRoute => {
                    unfreeze(&session, &mut frozen_at, Some(&target_id));
                    m.handle(Event::PivotDone, now_ms())
                }
                Action::SendComplete => {
                    let msg = ManagementMessage::Complete(MigrationComplete {
                        migration_id,
                        session_id,
                    });
                    if let Err(e) = mgmt::call(&source.mgmt, mgmt::COMPLETE, &msg, 2_000).await {
                        tracing::warn!(error = %e, "MigrationComplete to the source failed");
                    }
                    Ok(())
                }
                Action::SendAbort { reason } => {
                    let msg = ManagementMessage::Abort(MigrationAbort {
                        migration_id,
                        reason,
                    });
                    for w in [&target, &source] {
                        if w.alive() {
                            let _ = mgmt::call(&w.mgmt, mgmt::ABORT, &msg, 1_000).await;
                        }
                    }
                    // Roll back: the session stays on the source (its captured calls re-attach
                    // there). If the source died meanwhile, failover has already re-routed it.
                    let owner = if source.alive() {
                        Some(source_id.as_str())
                    } else {
                        None
                    };
                    unfreeze(&session, &mut frozen_at, owner);
                    if !source.alive() {
                        super::reroute(inner, &session, &source_id, now_ms()).await;
                    }
                    Ok(())
                }
                Action::RetryAt(at) => {
                    tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await;
                    m.handle_timeout(now_ms());
                    Ok(())
                }
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "migration state machine refused an event");
            }
        }
        if m.is_finished() {
            break;
        }
        match m.poll_timeout() {
            Some(t) => {
                tokio::time::sleep(Duration::from_millis(t.saturating_sub(now_ms()))).await;
                m.handle_timeout(now_ms());
            }
            None => break,
        }
    }
    let (completed, error, aborted_in) = match m.outcome() {
        Some(Outcome::Completed) => (true, None, None),
        Some(Outcome::Aborted { phase, error }) => (
            false,
            Some(format!("{}: {error}", error.code())),
            Some(phase.to_string()),
        ),
        None => (
            false,
            Some("MIGRATION_STATE: the migration did not finish".into()),
            None,
        ),
    };
    let report = MigrationReport {
        migration_id,
        session_id,
        source: source_id,
        target: target_id,
        reason: reason_text,
        completed,
        error,
        aborted_in,
        phases: m
            .phase_durations()
            .into_iter()
            .map(|(p, d)| (p.to_string(), d))
            .collect(),
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        frozen_ms,
        snapshot_bytes: sealed.len() as u64,
    };
    inner.emit(DirectorEvent::MigrationFinished(report.clone()));
    if completed {
        Ok(report)
    } else {
        Err(RpcError::unavailable(format!(
            "migration {migration_id} of session {session_id:016x} aborted in {}: {}",
            report.aborted_in.as_deref().unwrap_or("?"),
            report.error.as_deref().unwrap_or("?")
        )))
    }
}

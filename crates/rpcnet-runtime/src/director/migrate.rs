//! Starting migrations (admin and drain) and waiting for their reports. RFC-001's phases run in
//! the session's [`rpcnet_session::Coordinator`], driven by [`super::session`]; this module picks
//! the target, takes one of the director's concurrent-migration slots, starts the machine and
//! waits for the end. One migration of a session runs at a time; a second one waits for the
//! first to end and then starts from wherever the session is.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ring::rand::{SecureRandom, SystemRandom};
use rpcnet_protocol::migration::MigrationReason;
use rpcnet_protocol::ErrorCode;
use rpcnet_session::coordinator::MigrationStart;
use tokio::sync::oneshot;

use super::session::Session;
use super::{DirectorEvent, Inner, MigrationReport};
use crate::error::RpcError;

/// What to migrate, where to, and why.
pub(crate) struct Order {
    /// The session.
    pub(crate) session_id: u64,
    /// Only if it still lives here (a drain moves what its worker owns).
    pub(crate) from: Option<String>,
    /// The target; `None`: the placement policy chooses.
    pub(crate) target: Option<String>,
    /// Why (RFC-001 MigrationRequest `reason`).
    pub(crate) reason: MigrationReason,
}

/// Runs one migration to its end. `Ok(None)` when the order's `from` no longer owns the session
/// (nothing to do).
///
/// Errors: `NOT_FOUND` for an unknown session or target; `UNAVAILABLE` when no other worker is
/// available, when the source is not alive, or when the migration aborted (the message names the
/// phase and the cause; the session then stays on the source, nothing lost); `INVALID_ARGUMENT`
/// when the target already owns the session.
pub(crate) async fn migrate(
    inner: &Arc<Inner>,
    order: Order,
) -> Result<Option<MigrationReport>, RpcError> {
    let _slot = inner
        .migration_slots
        .acquire()
        .await
        .map_err(|_| RpcError::unavailable("director closed"))?;
    let session = inner.session(order.session_id)?;
    loop {
        let idle = session.idle.notified();
        tokio::pin!(idle);
        idle.as_mut().enable();
        match try_start(inner, &session, &order).await? {
            Start::Started(ended) => return finished(ended.await).map(Some),
            Start::Moved => return Ok(None),
            Start::Busy => idle.await,
        }
    }
}

/// What [`try_start`] did.
enum Start {
    /// The migration runs; its report arrives here.
    Started(oneshot::Receiver<MigrationReport>),
    /// Another migration of the session runs: wait for it to end.
    Busy,
    /// The session no longer lives on the order's `from`.
    Moved,
}

/// Starts the migration unless another one of the session runs.
async fn try_start(
    inner: &Arc<Inner>,
    session: &Arc<Session>,
    order: &Order,
) -> Result<Start, RpcError> {
    let source = session.owner();
    if order.from.as_deref().is_some_and(|f| f != source) {
        return Ok(Start::Moved);
    }
    let target = target(inner, session, &source, order.target.clone()).await?;
    let migration_id = inner.next_migration.fetch_add(1, Ordering::Relaxed);
    let mut nonce = [0u8; 32];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| RpcError::internal("no random bytes for the migration token"))?;
    let (tx, rx) = oneshot::channel();
    session.await_migration(migration_id, tx);
    let started = session.drive(inner, |c, now| -> Result<bool, rpcnet_session::CallError> {
        if c.migration().is_some() || c.route().owner != source {
            return Ok(false);
        }
        let start = MigrationStart {
            config: inner.config.migration,
            migration_id,
            target: &target,
            reason: order.reason.clone(),
            key: &inner.token_key,
            nonce,
        };
        c.start_migration(start, now)?;
        inner.emit(DirectorEvent::MigrationStarted {
            migration_id,
            session_id: session.id,
            source: source.clone(),
            target: target.clone(),
            reason: order.reason.to_string(),
        });
        Ok(true)
    });
    match started {
        Ok(true) => Ok(Start::Started(rx)),
        Ok(false) => {
            session.forget_migration(migration_id);
            Ok(Start::Busy)
        }
        Err(e) => {
            session.forget_migration(migration_id);
            Err(RpcError::new(e.code, e.message))
        }
    }
}

/// The target: `wanted` if given and alive, else the placement policy's choice.
async fn target(
    inner: &Arc<Inner>,
    session: &Session,
    source: &str,
    wanted: Option<String>,
) -> Result<String, RpcError> {
    if inner.worker(source).filter(|w| w.alive()).is_none() {
        return Err(RpcError::unavailable(format!(
            "source {source} is not alive"
        )));
    }
    let target = match wanted {
        Some(t) => t,
        None => inner
            .select_worker(session.id, Some(source))
            .await
            .ok_or_else(|| {
                RpcError::unavailable(format!(
                    "no worker other than {source} to migrate session {:016x} to",
                    session.id
                ))
            })?,
    };
    if target == source {
        return Err(RpcError::invalid_argument(format!(
            "session {:016x} already lives on {target}",
            session.id
        )));
    }
    if inner.worker(&target).filter(|w| w.alive()).is_none() {
        return Err(RpcError::new(
            ErrorCode::NotFound,
            format!("no live worker {target}"),
        ));
    }
    Ok(target)
}

fn finished(
    report: Result<MigrationReport, oneshot::error::RecvError>,
) -> Result<MigrationReport, RpcError> {
    let report = report.map_err(|_| RpcError::unavailable("director closed"))?;
    if report.completed {
        return Ok(report);
    }
    Err(RpcError::unavailable(format!(
        "migration {} of session {:016x} aborted in {}: {}",
        report.migration_id,
        report.session_id,
        report.aborted_in.as_deref().unwrap_or("?"),
        report.error.as_deref().unwrap_or("?")
    )))
}

/// Graceful drain of `worker`: marks it draining (no new sessions), migrates every session it
/// owns to other workers, up to the director's concurrent-migration limit at once, and waits
/// until the relays have read their last frame from it. Returns the reports.
///
/// Errors: `NOT_FOUND` for an unknown worker; the first failed migration's error (after all
/// were tried; the sessions whose migration failed stay on the worker).
pub(crate) async fn drain(
    inner: &Arc<Inner>,
    worker: &str,
) -> Result<Vec<MigrationReport>, RpcError> {
    let w = inner
        .worker(worker)
        .ok_or_else(|| RpcError::new(ErrorCode::NotFound, format!("no worker {worker}")))?;
    w.set_draining();
    let owned: Vec<u64> = inner
        .sessions
        .lock()
        .unwrap()
        .values()
        .filter(|s| s.route.borrow().owner == worker)
        .map(|s| s.id)
        .collect();
    let mut running = tokio::task::JoinSet::new();
    for session_id in owned {
        let (inner, from) = (inner.clone(), worker.to_string());
        running.spawn(async move {
            let order = Order {
                session_id,
                from: Some(from),
                target: None,
                reason: MigrationReason::Drain,
            };
            (session_id, migrate(&inner, order).await)
        });
    }
    let mut reports = Vec::new();
    let mut first_error = None;
    while let Some(r) = running.join_next().await {
        let (session_id, result) =
            r.map_err(|e| RpcError::internal(format!("migration task failed: {e}")))?;
        match result {
            Ok(Some(report)) => reports.push(report),
            // Moved away by another migration meanwhile: nothing left to drain.
            Ok(None) => {}
            // The session closed meanwhile.
            Err(e) if e.code == ErrorCode::NotFound && !inner.has_session(session_id) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    w.wait_streams_ended().await;
    Ok(reports)
}

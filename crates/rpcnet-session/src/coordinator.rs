//! The director side of one session, sans-IO: its route, RFC-001's migration phases, and
//! failover, in one machine so that nothing outside it freezes, unfreezes or moves the route.
//!
//! The phases themselves are sequenced by [`rpcnet_protocol::migration::Migration`]; this machine
//! turns each of its actions into a message to send ([`Transmit`]) or a route change, turns each
//! reply into its event, and ends every migration with exactly one owner and an unfrozen route:
//!
//! | ending | route afterwards |
//! |---|---|
//! | completed (Pivot) | owner = target, next epoch |
//! | refused, deferred too often, timed out, a reply lost, the target lost | owner = source, next epoch |
//! | the source lost | owner = source until the driver calls [`Coordinator::fail_over`] |
//!
//! Replies are matched to the exchange that is outstanding (migration id and method), so a
//! duplicated or late reply is ignored. MigrationComplete and MigrationAbort are sent and not
//! waited for: the Pivot is the end of a migration, and a lost MigrationAbort is made harmless by
//! the route epoch carried in every ATTACH (PROTOCOL.md section 13.5).

use std::collections::VecDeque;

use bytes::Bytes;
use rpcnet_protocol::migration::{
    Action, Event, ManagementMessage, Migration, MigrationAbort, MigrationComplete,
    MigrationConfig, MigrationError, MigrationReason, MigrationRequest, Outcome, Phase,
    StateTransfer, TokenKey,
};
use rpcnet_protocol::ErrorCode;

use crate::route::Route;
use crate::CallError;

/// A management method on a worker (PROTOCOL.md section 14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkerMethod {
    /// Confirmation on the target (`MigrationRequest` -> `MigrationConfirmation`).
    Request,
    /// Preparation on the target (`MigrationRequest` -> `PrepareAck`).
    Prepare,
    /// State Capture on the source (`MigrationRequest` -> `StateTransfer`).
    Capture,
    /// State Transfer to the target (`StateTransfer` -> `MigrationComplete`).
    Transfer,
    /// Pivot done, to the source (`MigrationComplete`), not waited for.
    Complete,
    /// Roll back, to both (`MigrationAbort`), not waited for.
    Abort,
}

/// A message for the driver to send to worker `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The worker id.
    pub to: String,
    /// Which method.
    pub method: WorkerMethod,
    /// The message.
    pub message: ManagementMessage,
    /// The migration it belongs to (replies are reported with it).
    pub migration_id: u64,
}

/// How one migration went, reported when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationSummary {
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
    /// True if the session lives on the target now.
    pub completed: bool,
    /// For an abort: `CODE: message` of the cause.
    pub error: Option<String>,
    /// For an abort: the phase that was running.
    pub aborted_in: Option<Phase>,
    /// Time in each phase left, ms, in order.
    pub phases: Vec<(Phase, u64)>,
    /// Start to end, ms.
    pub duration_ms: u64,
    /// Time the route was frozen, ms.
    pub frozen_ms: u64,
    /// Size of the sealed snapshot, bytes.
    pub snapshot_bytes: u64,
}

/// What [`Coordinator::start_migration`] needs besides the clock.
#[derive(Debug, Clone)]
pub struct MigrationStart<'a> {
    /// Phase and total timeouts, auto-confirm (RFC-001 Appendix B).
    pub config: MigrationConfig,
    /// The new migration's id (unique per director).
    pub migration_id: u64,
    /// The worker to move the session to.
    pub target: &'a str,
    /// Why (carried in the MigrationRequest).
    pub reason: MigrationReason,
    /// The cluster's token key (RFC-001 section 6.1).
    pub key: &'a TokenKey,
    /// 32 random bytes from the driver for the token.
    pub nonce: [u8; 32],
}

/// Something the driver reports to the embedder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoordinatorEvent {
    /// A migration ended.
    MigrationFinished(MigrationSummary),
    /// The session was re-opened on `to` after its owner `from` was lost.
    Failover {
        /// The lost owner.
        from: String,
        /// The new owner.
        to: String,
    },
    /// A worker answered SUPERSEDED: the session was resumed through another director, at
    /// `generation` (PROTOCOL.md section 15.6). This director must forget it.
    Superseded {
        /// The session's generation at the worker.
        generation: u32,
    },
}

#[derive(Debug)]
struct Run {
    machine: Migration,
    request: MigrationRequest,
    reason: String,
    sealed: Bytes,
    awaiting: Option<WorkerMethod>,
    frozen_at: Option<u64>,
    frozen_ms: u64,
}

/// One session's route, migrations and failover. See the module docs.
#[derive(Debug)]
pub struct Coordinator {
    session_id: u64,
    route: Route,
    run: Option<Run>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<CoordinatorEvent>,
}

impl Coordinator {
    /// A session placed on `owner`.
    pub fn new(session_id: u64, owner: impl Into<String>) -> Self {
        Self::with_route(session_id, Route::new(owner))
    }

    /// A session that starts on `route` (a resumed session: [`Route::resumed`]).
    pub fn with_route(session_id: u64, route: Route) -> Self {
        Coordinator {
            session_id,
            route,
            run: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// A worker answered one of this session's ATTACHes with SUPERSEDED(`generation`): the
    /// session was resumed through another director (PROTOCOL.md section 15.6). A running
    /// migration aborts (its MigrationAbort is sent), the route is marked
    /// ([`Route::superseded`]: no call attaches any more), and from now on the session neither
    /// migrates ([`Coordinator::start_migration`] fails) nor fails over
    /// ([`Coordinator::worker_lost`] returns false): another director's copy of it is the only
    /// one, and a failover here from this director's checkpoints would give it a second owner.
    /// Reports [`CoordinatorEvent::Superseded`] once; later calls change nothing.
    pub fn on_superseded(&mut self, generation: u32, now_ms: u64) {
        if self.route.superseded.is_some() {
            return;
        }
        self.route.superseded = Some(generation);
        if let Some(run) = self.run.as_mut() {
            let why = format!(
                "UNAVAILABLE: session {:016x} was resumed through another director",
                self.session_id
            );
            let _ = run.machine.handle(failure(why), now_ms);
            self.pump(now_ms);
        }
        self.events
            .push_back(CoordinatorEvent::Superseded { generation });
    }

    /// The session id.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// The route now.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// The running migration's id, source, target and phase, if one runs.
    pub fn migration(&self) -> Option<(u64, &str, &str, Phase)> {
        self.run.as_ref().map(|r| {
            (
                r.machine.migration_id(),
                r.machine.source(),
                r.machine.target(),
                r.machine.phase(),
            )
        })
    }

    /// When the running migration started, ms (for invariant checks).
    pub fn migration_total_timeout_ms(&self) -> Option<u64> {
        self.run
            .as_ref()
            .map(|r| r.machine.config().total_timeout_ms)
    }

    /// Starts a migration of the session from its owner to `start.target` (RFC-001 Initiation):
    /// issues the single-use token with the driver's random nonce and sends what the first phase
    /// needs. `now_ms` must be unix ms (tokens carry an absolute expiry).
    ///
    /// Errors: `UNAVAILABLE` while another migration of the session runs, or once the session
    /// was resumed through another director ([`Coordinator::on_superseded`]); `INVALID_ARGUMENT`
    /// when the target already owns the session or a worker id is too long for a token.
    pub fn start_migration(
        &mut self,
        start: MigrationStart<'_>,
        now_ms: u64,
    ) -> Result<(), CallError> {
        let MigrationStart {
            config,
            migration_id,
            target,
            reason,
            key,
            nonce,
        } = start;
        if let Some(generation) = self.route.superseded {
            return Err(CallError {
                code: ErrorCode::Unavailable,
                message: format!(
                    "session {:016x} was resumed through another director (generation {generation})",
                    self.session_id
                ),
            });
        }
        if let Some((id, ..)) = self.migration() {
            return Err(CallError {
                code: ErrorCode::Unavailable,
                message: format!(
                    "session {:016x} is already being migrated (migration {id})",
                    self.session_id
                ),
            });
        }
        let source = self.route.owner.clone();
        if target == source {
            return Err(invalid(format!(
                "session {:016x} already lives on {target}",
                self.session_id
            )));
        }
        let ttl = config.total_timeout_ms.max(1);
        let token = key
            .issue_with_nonce(nonce, self.session_id, &source, target, now_ms, ttl)
            .map_err(|e| invalid(e.to_string()))?;
        let request = MigrationRequest {
            migration_id,
            session_id: self.session_id,
            source: source.clone(),
            target: target.to_string(),
            reason: reason.clone(),
            token,
            requested_at_ms: now_ms,
            route_epoch: 0,
        };
        let machine = Migration::new(
            config,
            migration_id,
            self.session_id,
            source,
            target,
            now_ms,
        );
        self.run = Some(Run {
            machine,
            request,
            reason: reason.to_string(),
            sealed: Bytes::new(),
            awaiting: None,
            frozen_at: None,
            frozen_ms: 0,
        });
        self.pump(now_ms);
        Ok(())
    }

    /// A worker answered `method` of `migration_id` (or the exchange failed with `Err`). Replies
    /// that do not match the outstanding exchange (late, duplicated, another migration's) are
    /// ignored.
    pub fn on_reply(
        &mut self,
        migration_id: u64,
        method: WorkerMethod,
        reply: Result<ManagementMessage, CallError>,
        now_ms: u64,
    ) {
        let Some(run) = self.run.as_mut() else { return };
        if run.machine.migration_id() != migration_id || run.awaiting != Some(method) {
            return;
        }
        run.awaiting = None;
        let event = match (method, reply) {
            (_, Err(e)) => failure(format!("{}: {}", e.code, e.message)),
            (WorkerMethod::Request, Ok(ManagementMessage::Confirmation(c)))
                if c.migration_id == migration_id =>
            {
                Event::Confirmed(c.decision)
            }
            (WorkerMethod::Prepare, Ok(ManagementMessage::PrepareAck(a)))
                if a.migration_id == migration_id =>
            {
                Event::PrepareAck { ready: a.ready }
            }
            (WorkerMethod::Capture, Ok(ManagementMessage::StateTransfer(st)))
                if st.migration_id == migration_id =>
            {
                let len = st.sealed.len() as u64;
                run.sealed = st.sealed;
                Event::Captured { sealed_bytes: len }
            }
            (WorkerMethod::Transfer, Ok(ManagementMessage::Complete(c)))
                if c.migration_id == migration_id =>
            {
                Event::Restored
            }
            (m, Ok(other)) => failure(format!(
                "PROTOCOL: {m:?} answered with an unexpected {}",
                other.name()
            )),
        };
        let _ = run.machine.handle(event, now_ms);
        self.pump(now_ms);
    }

    /// The next time [`Coordinator::handle_timeout`] must be called, ms.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.run.as_ref().and_then(|r| r.machine.poll_timeout())
    }

    /// Applies timers at `now_ms` (phase and total timeouts, a deferred confirmation).
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if let Some(run) = self.run.as_mut() {
            run.machine.handle_timeout(now_ms);
            self.pump(now_ms);
        }
    }

    /// `worker` was declared dead. A migration it takes part in aborts (the session stays on
    /// the source). Returns true when the session's owner is `worker`: the driver must choose a
    /// live worker and call [`Coordinator::fail_over`]. Never true once the session was
    /// superseded ([`Coordinator::on_superseded`]).
    pub fn worker_lost(&mut self, worker: &str, now_ms: u64) -> bool {
        if let Some(run) = self.run.as_mut() {
            if run.machine.source() == worker || run.machine.target() == worker {
                let why = format!("UNAVAILABLE: worker {worker} was lost");
                let _ = run.machine.handle(failure(why), now_ms);
                self.pump(now_ms);
            }
        }
        self.run.is_none() && self.route.superseded.is_none() && self.route.owner == worker
    }

    /// Re-opens the session on `to` after its owner was lost (failover): the relays re-attach
    /// there from their checkpoints. Ignored while a migration runs (it ends first), and once the
    /// session was superseded.
    pub fn fail_over(&mut self, to: &str) {
        if self.run.is_some() || self.route.superseded.is_some() || to == self.route.owner {
            return;
        }
        let from = self.route.owner.clone();
        self.route.advance(Some(to));
        self.events.push_back(CoordinatorEvent::Failover {
            from,
            to: to.to_string(),
        });
    }

    /// A worker re-registered (a new link to it): relays must re-attach. Bumps the epoch if it
    /// owns the session and no migration runs.
    pub fn owner_relinked(&mut self, worker: &str) {
        if self.run.is_none() && self.route.superseded.is_none() && self.route.owner == worker {
            self.route.advance(None);
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event to report.
    pub fn poll_event(&mut self) -> Option<CoordinatorEvent> {
        self.events.pop_front()
    }

    /// Performs the phase machine's actions until it waits for a reply or a timer.
    fn pump(&mut self, now_ms: u64) {
        loop {
            let Some(run) = self.run.as_mut() else { return };
            let Some(action) = run.machine.poll_action() else {
                if run.machine.is_finished() {
                    self.finish(now_ms);
                }
                return;
            };
            let id = run.machine.migration_id();
            let (source, target) = (
                run.machine.source().to_string(),
                run.machine.target().to_string(),
            );
            let request = ManagementMessage::Request(run.request.clone());
            match action {
                Action::SendRequest => {
                    let _ = run.machine.handle(Event::RequestSent, now_ms);
                }
                Action::AskConfirmation => {
                    run.awaiting = Some(WorkerMethod::Request);
                    self.send(target, WorkerMethod::Request, request, id);
                }
                Action::SendPrepare => {
                    run.awaiting = Some(WorkerMethod::Prepare);
                    self.send(target, WorkerMethod::Prepare, request, id);
                }
                Action::CaptureState => {
                    self.route.frozen = true;
                    run.frozen_at = Some(now_ms);
                    run.request.route_epoch = self.route.epoch;
                    run.awaiting = Some(WorkerMethod::Capture);
                    let capture = ManagementMessage::Request(run.request.clone());
                    self.send(source, WorkerMethod::Capture, capture, id);
                }
                Action::SendStateTransfer => {
                    run.awaiting = Some(WorkerMethod::Transfer);
                    let st = ManagementMessage::StateTransfer(StateTransfer {
                        migration_id: id,
                        sealed: run.sealed.clone(),
                    });
                    self.send(target.clone(), WorkerMethod::Transfer, st, id);
                }
                Action::SwitchRoute => {
                    run.frozen_ms = thaw(run, now_ms);
                    self.route.advance(Some(&target));
                    let _ = run.machine.handle(Event::PivotDone, now_ms);
                }
                Action::SendComplete => {
                    let c = ManagementMessage::Complete(MigrationComplete {
                        migration_id: id,
                        session_id: self.session_id,
                    });
                    self.send(source, WorkerMethod::Complete, c, id);
                }
                Action::SendAbort { reason } => {
                    run.frozen_ms = thaw(run, now_ms);
                    run.awaiting = None;
                    self.route.advance(None);
                    let a = ManagementMessage::Abort(MigrationAbort {
                        migration_id: id,
                        reason,
                    });
                    self.send(target, WorkerMethod::Abort, a.clone(), id);
                    self.send(source, WorkerMethod::Abort, a, id);
                }
                Action::RetryAt(_) => {}
            }
        }
    }

    fn send(&mut self, to: String, method: WorkerMethod, message: ManagementMessage, id: u64) {
        self.transmits.push_back(Transmit {
            to,
            method,
            message,
            migration_id: id,
        });
    }

    fn finish(&mut self, now_ms: u64) {
        let Some(run) = self.run.take() else { return };
        let m = &run.machine;
        let (completed, error, aborted_in) = match m.outcome() {
            Some(Outcome::Completed) => (true, None, None),
            Some(Outcome::Aborted { phase, error }) => (
                false,
                Some(format!("{}: {error}", error.code())),
                Some(*phase),
            ),
            None => (false, Some("MIGRATION_STATE: unfinished".into()), None),
        };
        self.events
            .push_back(CoordinatorEvent::MigrationFinished(MigrationSummary {
                migration_id: m.migration_id(),
                session_id: self.session_id,
                source: m.source().to_string(),
                target: m.target().to_string(),
                reason: run.reason.clone(),
                completed,
                error,
                aborted_in,
                phases: m.phase_durations(),
                duration_ms: m
                    .total_duration_ms()
                    .unwrap_or_else(|| now_ms.saturating_sub(run.request.requested_at_ms)),
                frozen_ms: run.frozen_ms,
                snapshot_bytes: run.sealed.len() as u64,
            }));
    }
}

/// Ends the freeze of `run` at `now_ms`; returns how long it lasted, ms.
fn thaw(run: &mut Run, now_ms: u64) -> u64 {
    run.frozen_at
        .take()
        .map_or(run.frozen_ms, |t| now_ms.saturating_sub(t))
}

fn failure(reason: String) -> Event {
    Event::Failure(MigrationError::Aborted { reason })
}

fn invalid(message: String) -> CallError {
    CallError {
        code: ErrorCode::InvalidArgument,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rpcnet_protocol::migration::{ConfirmationDecision, MigrationConfirmation, PrepareAck};

    fn start() -> (Coordinator, TokenKey) {
        let key = TokenKey::from_bytes(&[7; 32]);
        let mut c = Coordinator::new(5, "a");
        let config = MigrationConfig::default();
        c.start_migration(
            MigrationStart {
                config,
                migration_id: 1,
                target: "b",
                reason: MigrationReason::Admin,
                key: &key,
                nonce: [1; 32],
            },
            1_000,
        )
        .unwrap();
        (c, key)
    }

    fn reply_ok(c: &mut Coordinator, method: WorkerMethod, now: u64) {
        let msg = match method {
            WorkerMethod::Request => ManagementMessage::Confirmation(MigrationConfirmation {
                migration_id: 1,
                decision: ConfirmationDecision::Accept,
            }),
            WorkerMethod::Prepare => ManagementMessage::PrepareAck(PrepareAck {
                migration_id: 1,
                ready: true,
            }),
            WorkerMethod::Capture => ManagementMessage::StateTransfer(StateTransfer {
                migration_id: 1,
                sealed: Bytes::from_static(b"sealed"),
            }),
            WorkerMethod::Transfer => ManagementMessage::Complete(MigrationComplete {
                migration_id: 1,
                session_id: 5,
            }),
            _ => unreachable!(),
        };
        c.on_reply(1, method, Ok(msg), now);
    }

    #[test]
    fn a_completed_migration_moves_the_route_once() {
        let (mut c, _) = start();
        for m in [
            WorkerMethod::Request,
            WorkerMethod::Prepare,
            WorkerMethod::Capture,
        ] {
            assert_eq!(c.poll_transmit().unwrap().method, m);
            reply_ok(&mut c, m, 1_001);
        }
        assert!(c.route().frozen);
        let t = c.poll_transmit().unwrap();
        assert_eq!(t.method, WorkerMethod::Transfer);
        reply_ok(&mut c, WorkerMethod::Transfer, 1_003);
        assert_eq!(
            c.route(),
            &Route {
                owner: "b".into(),
                epoch: 2,
                frozen: false,
                superseded: None,
            }
        );
        assert_eq!(c.poll_transmit().unwrap().method, WorkerMethod::Complete);
        let Some(CoordinatorEvent::MigrationFinished(s)) = c.poll_event() else {
            panic!()
        };
        assert!(s.completed);
        assert_eq!(s.frozen_ms, 2);
        // A duplicated late reply changes nothing.
        reply_ok(&mut c, WorkerMethod::Transfer, 1_004);
        assert_eq!(c.route().epoch, 2);
    }

    #[test]
    fn a_lost_reply_times_out_and_unfreezes_on_the_source() {
        let (mut c, _) = start();
        for m in [WorkerMethod::Request, WorkerMethod::Prepare] {
            c.poll_transmit();
            reply_ok(&mut c, m, 1_001);
        }
        c.poll_transmit(); // Capture, whose reply is lost
        assert!(c.route().frozen);
        let t = c.poll_timeout().unwrap();
        c.handle_timeout(t);
        assert_eq!(
            c.route(),
            &Route {
                owner: "a".into(),
                epoch: 2,
                frozen: false,
                superseded: None,
            }
        );
        let aborts: Vec<_> = std::iter::from_fn(|| c.poll_transmit()).collect();
        assert_eq!(aborts.len(), 2);
        assert!(aborts.iter().all(|t| t.method == WorkerMethod::Abort));
        assert!(c.migration().is_none());
    }

    #[test]
    fn losing_the_source_aborts_then_asks_for_failover() {
        let (mut c, _) = start();
        c.poll_transmit();
        reply_ok(&mut c, WorkerMethod::Request, 1_001);
        assert!(c.worker_lost("a", 1_002));
        c.fail_over("c");
        assert_eq!(c.route().owner, "c");
        assert!(!c.route().frozen);
        // Losing the target of the next migration leaves the session where it is.
        let key = TokenKey::from_bytes(&[7; 32]);
        c.start_migration(
            MigrationStart {
                config: MigrationConfig::default(),
                migration_id: 2,
                target: "d",
                reason: MigrationReason::Admin,
                key: &key,
                nonce: [2; 32],
            },
            2_000,
        )
        .unwrap();
        assert!(c
            .start_migration(
                MigrationStart {
                    config: MigrationConfig::default(),
                    migration_id: 3,
                    target: "e",
                    reason: MigrationReason::Admin,
                    key: &key,
                    nonce: [3; 32]
                },
                2_000
            )
            .is_err());
        assert!(!c.worker_lost("d", 2_001));
        assert_eq!(c.route().owner, "c");
    }
}

//! The coordinator's migration state machine (RFC-001 section 3.2 and Appendix A), sans-IO.
//!
//! The director runs one [`Migration`] per session being moved. Like `quinn-proto`'s
//! `Connection`, it performs no I/O and reads no clock: the runtime feeds it [`Event`]s and the
//! current time (`now_ms`, unix ms), drains [`Action`]s with [`Migration::poll_action`], and
//! calls [`Migration::handle_timeout`] once [`Migration::poll_timeout`] is reached.
//!
//! ```text
//! Initiation --RequestSent--> Confirmation --Confirmed(Accept)--> Preparation
//!      \__________(auto_confirm)_________________________________/ |
//!                              Confirmed(Defer) -> RetryAt, then AskConfirmation again
//! Preparation --PrepareAck{ready}--> StateCapture --Captured--> StateTransfer
//! StateTransfer --Restored--> Pivot --PivotDone--> Completed
//! any phase before Pivot --Failure / Reject / not ready / timeout--> Aborted (SendAbort)
//! ```
//!
//! Suggested mapping onto [`super::message`] in the director topology: `SendRequest` sends a
//! `MigrationRequest` (with its token) to the target and the source; the policy hook's answer
//! arrives as a `MigrationConfirmation`; `SendPrepare` tells the target to redeem the token
//! (it answers `PrepareAck`); `CaptureState` forwards that `PrepareAck` to the source, which
//! freezes the session and answers `StateTransfer`; `SendStateTransfer` forwards it to the
//! target, which restores and answers `MigrationComplete` (`Restored`); `SwitchRoute` is the
//! director's own atomic route swap; `SendComplete` sends `MigrationComplete` to the source;
//! `SendAbort` sends `MigrationAbort` to both workers.
//!
//! Why nothing can abort after the route switch: once `SwitchRoute` is emitted the director
//! relays the client's calls to the target, which may already have sent items past the
//! snapshot; the source's copy is stale, so rolling back would lose or repeat items. Before the
//! switch the source still owns the session (it only froze it), so an abort just unfreezes it
//! and nothing is lost.

use super::message::ConfirmationDecision;
use super::MigrationError;

/// RFC-001's migration phases (section 3.2) plus the two terminal states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Phase 1: a token is issued and the `MigrationRequest` sent.
    Initiation,
    /// Phase 2: waiting for the policy hook's decision (skipped with `auto_confirm`).
    Confirmation,
    /// Phase 3: waiting for the target's `PrepareAck`.
    Preparation,
    /// Phase 4: the source freezes the session at an item boundary and captures it.
    StateCapture,
    /// Phase 5: the sealed snapshot travels to the target, which restores it.
    StateTransfer,
    /// Phase 6: the route switches to the target. No abort from here on.
    Pivot,
    /// Terminal: the session lives on the target.
    Completed,
    /// Terminal: rolled back; the session stays on (or returned to) the source.
    Aborted,
}

impl Phase {
    /// True for `Completed` and `Aborted`.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Completed | Phase::Aborted)
    }

    /// True for the phases an abort can still roll back (every phase before `Pivot`).
    pub fn can_abort(self) -> bool {
        self < Phase::Pivot
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Settings of one migration (RFC-001 section 4.1 and Appendix B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationConfig {
    /// Skip the Confirmation phase (RFC-001 phase 2, step 4). Default `false`.
    pub auto_confirm: bool,
    /// Longest any single phase before the Pivot may take, in ms. Default 2000.
    pub phase_timeout_ms: u64,
    /// Longest the whole migration may take before the Pivot, in ms. Default 5000
    /// (RFC-001's migration timeout).
    pub total_timeout_ms: u64,
    /// How many `Defer` answers are tolerated before the migration is given up as rejected.
    /// Default 3.
    pub max_defers: u32,
}

impl Default for MigrationConfig {
    fn default() -> Self {
        MigrationConfig {
            auto_confirm: false,
            phase_timeout_ms: 2_000,
            total_timeout_ms: 5_000,
            max_defers: 3,
        }
    }
}

/// An input to the machine, passed with the time it happened to [`Migration::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Initiation: the runtime issued the token and sent the `MigrationRequest`.
    RequestSent,
    /// Confirmation: the policy hook decided.
    Confirmed(ConfirmationDecision),
    /// Preparation: the target answered `PrepareAck`.
    PrepareAck {
        /// Whether the target redeemed the token and is ready.
        ready: bool,
    },
    /// State Capture: the source froze and sealed the session.
    Captured {
        /// Size of the sealed snapshot in bytes (for metrics).
        sealed_bytes: u64,
    },
    /// State Transfer: the target restored the session.
    Restored,
    /// Pivot: the director switched the route to the target.
    PivotDone,
    /// Something failed (a received `MigrationAbort`, a dead worker, a local error). Aborts any
    /// phase before the Pivot.
    Failure(MigrationError),
}

impl Event {
    /// The event's name, as used in `MIGRATION_STATE` errors.
    pub fn name(&self) -> &'static str {
        match self {
            Event::RequestSent => "RequestSent",
            Event::Confirmed(_) => "Confirmed",
            Event::PrepareAck { .. } => "PrepareAck",
            Event::Captured { .. } => "Captured",
            Event::Restored => "Restored",
            Event::PivotDone => "PivotDone",
            Event::Failure(_) => "Failure",
        }
    }
}

/// An instruction to the runtime, drained with [`Migration::poll_action`] in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Issue a token and send the `MigrationRequest`; then report [`Event::RequestSent`].
    SendRequest,
    /// Ask the policy hook for a decision; report [`Event::Confirmed`].
    AskConfirmation,
    /// Tell the target to redeem the token and prepare; report [`Event::PrepareAck`].
    SendPrepare,
    /// Tell the source to freeze the session at an item boundary, capture and seal it; report
    /// [`Event::Captured`].
    CaptureState,
    /// Send the sealed snapshot to the target; report [`Event::Restored`].
    SendStateTransfer,
    /// Atomically route the session to the target; report [`Event::PivotDone`].
    SwitchRoute,
    /// Tell the source the migration completed so it drops the session.
    SendComplete,
    /// Tell both workers the migration is rolled back: the source unfreezes and keeps the
    /// session, the target discards what it prepared.
    SendAbort {
        /// `CODE: message` of the error that caused the abort.
        reason: String,
    },
    /// The policy deferred; the machine will emit `AskConfirmation` again at this time
    /// (unix ms; also reported by `poll_timeout`).
    RetryAt(u64),
}

/// How a migration ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The session lives on the target.
    Completed,
    /// Rolled back; the session stays on the source.
    Aborted {
        /// The phase that was running.
        phase: Phase,
        /// Why (`MIGRATION_TIMEOUT`, `MIGRATION_REJECTED`, or the reported failure).
        error: MigrationError,
    },
}

/// One migration of one session, driven by the director. See the module docs.
#[derive(Debug, Clone)]
pub struct Migration {
    config: MigrationConfig,
    migration_id: u64,
    session_id: u64,
    source: String,
    target: String,
    phase: Phase,
    started_at_ms: u64,
    phase_started_at_ms: u64,
    /// Pending re-ask after a `Defer`, unix ms.
    retry_at_ms: Option<u64>,
    defers: u32,
    sealed_bytes: Option<u64>,
    /// Each phase entered, with the time it was entered.
    history: Vec<(Phase, u64)>,
    actions: std::collections::VecDeque<Action>,
    outcome: Option<Outcome>,
}

impl Migration {
    /// Starts a migration of `session_id` from `source` to `target` at `now_ms` (unix ms), in
    /// the Initiation phase with [`Action::SendRequest`] queued.
    pub fn new(
        config: MigrationConfig,
        migration_id: u64,
        session_id: u64,
        source: impl Into<String>,
        target: impl Into<String>,
        now_ms: u64,
    ) -> Self {
        let mut m = Migration {
            config,
            migration_id,
            session_id,
            source: source.into(),
            target: target.into(),
            phase: Phase::Initiation,
            started_at_ms: now_ms,
            phase_started_at_ms: now_ms,
            retry_at_ms: None,
            defers: 0,
            sealed_bytes: None,
            history: vec![(Phase::Initiation, now_ms)],
            actions: Default::default(),
            outcome: None,
        };
        m.actions.push_back(Action::SendRequest);
        m
    }

    /// The migration's id.
    pub fn migration_id(&self) -> u64 {
        self.migration_id
    }

    /// The session being moved.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// The worker the session moves from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The worker the session moves to.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The settings this migration runs with.
    pub fn config(&self) -> &MigrationConfig {
        &self.config
    }

    /// How many times the policy deferred so far.
    pub fn defers(&self) -> u32 {
        self.defers
    }

    /// Size of the sealed snapshot, once captured, in bytes.
    pub fn sealed_bytes(&self) -> Option<u64> {
        self.sealed_bytes
    }

    /// How it ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// True once `Completed` or `Aborted`.
    pub fn is_finished(&self) -> bool {
        self.phase.is_terminal()
    }

    /// The next instruction for the runtime, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next time (unix ms) at which [`handle_timeout`](Self::handle_timeout) must be called:
    /// the earliest of the total deadline, the current phase's deadline and a deferred re-ask.
    /// `None` once finished and during the Pivot (which has no timeout: it cannot abort).
    pub fn poll_timeout(&self) -> Option<u64> {
        if !self.phase.can_abort() {
            return None;
        }
        let total = self
            .started_at_ms
            .saturating_add(self.config.total_timeout_ms);
        let next = match self.retry_at_ms {
            Some(retry) => retry,
            None => self
                .phase_started_at_ms
                .saturating_add(self.config.phase_timeout_ms),
        };
        Some(total.min(next))
    }

    /// Processes timers at `now_ms`: aborts with `MIGRATION_TIMEOUT` when the total or the
    /// phase deadline has passed (before the Pivot), or emits `AskConfirmation` again when a
    /// deferral is due (the phase timer restarts then). Calling it early is harmless.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if self.check_deadlines(now_ms) {
            return;
        }
        if let Some(retry) = self.retry_at_ms {
            if now_ms >= retry {
                self.retry_at_ms = None;
                self.phase_started_at_ms = now_ms;
                self.actions.push_back(Action::AskConfirmation);
            }
        }
    }

    /// Applies `event`, which happened at `now_ms`. Deadlines already passed are applied first
    /// (so a reply that arrives after its deadline finds the migration aborted).
    ///
    /// Errors: `MIGRATION_STATE` when the event is not valid in the current phase (including
    /// any event once finished and `Failure` in the Pivot); the machine is then unchanged.
    /// An abort is not an error of this call: it shows up as [`Action::SendAbort`] and
    /// [`outcome`](Self::outcome).
    pub fn handle(&mut self, event: Event, now_ms: u64) -> Result<(), MigrationError> {
        self.check_deadlines(now_ms);
        let invalid = MigrationError::State {
            phase: self.phase,
            event: event.name(),
        };
        match (self.phase, event) {
            (Phase::Initiation, Event::RequestSent) => {
                if self.config.auto_confirm {
                    self.enter(Phase::Preparation, now_ms, Action::SendPrepare);
                } else {
                    self.enter(Phase::Confirmation, now_ms, Action::AskConfirmation);
                }
            }
            (Phase::Confirmation, Event::Confirmed(decision)) => {
                self.retry_at_ms = None;
                match decision {
                    ConfirmationDecision::Accept => {
                        self.enter(Phase::Preparation, now_ms, Action::SendPrepare)
                    }
                    ConfirmationDecision::Reject { reason } => {
                        self.abort(MigrationError::Rejected { reason }, now_ms)
                    }
                    ConfirmationDecision::Defer { retry_after_ms } => {
                        self.defers += 1;
                        if self.defers > self.config.max_defers {
                            let reason = format!(
                                "deferred {} times, more than the limit of {}",
                                self.defers, self.config.max_defers
                            );
                            self.abort(MigrationError::Rejected { reason }, now_ms);
                        } else {
                            let at = now_ms.saturating_add(u64::from(retry_after_ms));
                            self.retry_at_ms = Some(at);
                            self.actions.push_back(Action::RetryAt(at));
                        }
                    }
                }
            }
            (Phase::Preparation, Event::PrepareAck { ready: true }) => {
                self.enter(Phase::StateCapture, now_ms, Action::CaptureState)
            }
            (Phase::Preparation, Event::PrepareAck { ready: false }) => self.abort(
                MigrationError::Rejected {
                    reason: format!("target {} is not ready", self.target),
                },
                now_ms,
            ),
            (Phase::StateCapture, Event::Captured { sealed_bytes }) => {
                self.sealed_bytes = Some(sealed_bytes);
                self.enter(Phase::StateTransfer, now_ms, Action::SendStateTransfer)
            }
            (Phase::StateTransfer, Event::Restored) => {
                self.enter(Phase::Pivot, now_ms, Action::SwitchRoute)
            }
            (Phase::Pivot, Event::PivotDone) => {
                self.enter(Phase::Completed, now_ms, Action::SendComplete);
                self.outcome = Some(Outcome::Completed);
            }
            (phase, Event::Failure(error)) if phase.can_abort() => self.abort(error, now_ms),
            _ => return Err(invalid),
        }
        Ok(())
    }

    /// How long each phase took, in ms, for every phase that was entered and left, in order.
    /// A skipped Confirmation (auto-confirm) does not appear; the current phase does not
    /// appear until it ends.
    pub fn phase_durations(&self) -> Vec<(Phase, u64)> {
        self.history
            .windows(2)
            .map(|w| (w[0].0, w[1].1.saturating_sub(w[0].1)))
            .collect()
    }

    /// Time from start to completion or abort, in ms, once finished.
    pub fn total_duration_ms(&self) -> Option<u64> {
        match self.history.last() {
            Some(&(phase, at)) if phase.is_terminal() => {
                Some(at.saturating_sub(self.started_at_ms))
            }
            _ => None,
        }
    }

    /// Aborts on a passed deadline; returns true if it did.
    fn check_deadlines(&mut self, now_ms: u64) -> bool {
        if !self.phase.can_abort() {
            return false;
        }
        let total = self
            .started_at_ms
            .saturating_add(self.config.total_timeout_ms);
        let phase_deadline = self
            .phase_started_at_ms
            .saturating_add(self.config.phase_timeout_ms);
        let (limit, limit_ms) = if now_ms >= total {
            ("total", self.config.total_timeout_ms)
        } else if self.retry_at_ms.is_none() && now_ms >= phase_deadline {
            ("phase", self.config.phase_timeout_ms)
        } else {
            return false;
        };
        let error = MigrationError::Timeout {
            phase: self.phase,
            limit,
            limit_ms,
        };
        self.abort(error, now_ms);
        true
    }

    fn enter(&mut self, phase: Phase, now_ms: u64, action: Action) {
        self.phase = phase;
        self.phase_started_at_ms = now_ms;
        self.history.push((phase, now_ms));
        self.actions.push_back(action);
    }

    fn abort(&mut self, error: MigrationError, now_ms: u64) {
        let phase = self.phase;
        self.retry_at_ms = None;
        // Instructions not yet carried out are moot: the abort supersedes them.
        self.actions.clear();
        let reason = format!("{}: {error}", error.code());
        self.enter(Phase::Aborted, now_ms, Action::SendAbort { reason });
        self.outcome = Some(Outcome::Aborted { phase, error });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_000_000;

    fn cfg(auto_confirm: bool) -> MigrationConfig {
        MigrationConfig {
            auto_confirm,
            ..Default::default()
        }
    }

    fn new(auto: bool) -> Migration {
        Migration::new(cfg(auto), 1, 2, "w1", "w2", T0)
    }

    fn drain(m: &mut Migration) -> Vec<Action> {
        std::iter::from_fn(|| m.poll_action()).collect()
    }

    /// Drives a fresh migration to `phase` (auto_confirm off), 10 ms per step.
    fn at_phase(phase: Phase) -> Migration {
        let mut m = new(false);
        let steps = [
            (Phase::Confirmation, Event::RequestSent),
            (
                Phase::Preparation,
                Event::Confirmed(ConfirmationDecision::Accept),
            ),
            (Phase::StateCapture, Event::PrepareAck { ready: true }),
            (Phase::StateTransfer, Event::Captured { sealed_bytes: 100 }),
            (Phase::Pivot, Event::Restored),
            (Phase::Completed, Event::PivotDone),
        ];
        let mut now = T0;
        for (next, ev) in steps {
            if m.phase() == phase {
                break;
            }
            now += 10;
            m.handle(ev, now).unwrap();
            assert_eq!(m.phase(), next);
        }
        assert_eq!(m.phase(), phase);
        drain(&mut m);
        m
    }

    #[test]
    fn happy_path_emits_each_action_and_durations() {
        let mut m = new(false);
        assert_eq!(m.phase(), Phase::Initiation);
        assert_eq!(drain(&mut m), [Action::SendRequest]);
        m.handle(Event::RequestSent, T0 + 1).unwrap();
        assert_eq!(drain(&mut m), [Action::AskConfirmation]);
        m.handle(Event::Confirmed(ConfirmationDecision::Accept), T0 + 3)
            .unwrap();
        assert_eq!(drain(&mut m), [Action::SendPrepare]);
        m.handle(Event::PrepareAck { ready: true }, T0 + 6).unwrap();
        assert_eq!(drain(&mut m), [Action::CaptureState]);
        m.handle(Event::Captured { sealed_bytes: 512 }, T0 + 10)
            .unwrap();
        assert_eq!(drain(&mut m), [Action::SendStateTransfer]);
        assert_eq!(m.sealed_bytes(), Some(512));
        m.handle(Event::Restored, T0 + 15).unwrap();
        assert_eq!(drain(&mut m), [Action::SwitchRoute]);
        assert_eq!(m.poll_timeout(), None);
        m.handle(Event::PivotDone, T0 + 16).unwrap();
        assert_eq!(drain(&mut m), [Action::SendComplete]);
        assert_eq!(m.outcome(), Some(&Outcome::Completed));
        assert!(m.is_finished());
        assert_eq!(
            m.phase_durations(),
            [
                (Phase::Initiation, 1),
                (Phase::Confirmation, 2),
                (Phase::Preparation, 3),
                (Phase::StateCapture, 4),
                (Phase::StateTransfer, 5),
                (Phase::Pivot, 1),
            ]
        );
        assert_eq!(m.total_duration_ms(), Some(16));
        assert_eq!(m.poll_timeout(), None);
    }

    #[test]
    fn auto_confirm_skips_confirmation() {
        let mut m = new(true);
        drain(&mut m);
        m.handle(Event::RequestSent, T0 + 1).unwrap();
        assert_eq!(m.phase(), Phase::Preparation);
        assert_eq!(drain(&mut m), [Action::SendPrepare]);
        assert_eq!(m.phase_durations(), [(Phase::Initiation, 1)]);
        let e = m
            .handle(Event::Confirmed(ConfirmationDecision::Accept), T0 + 2)
            .unwrap_err();
        assert_eq!(e.code(), "MIGRATION_STATE");
    }

    #[test]
    fn reject_aborts() {
        let mut m = at_phase(Phase::Confirmation);
        m.handle(
            Event::Confirmed(ConfirmationDecision::Reject {
                reason: "busy".into(),
            }),
            T0 + 20,
        )
        .unwrap();
        assert_eq!(m.phase(), Phase::Aborted);
        assert_eq!(
            drain(&mut m),
            [Action::SendAbort {
                reason: "MIGRATION_REJECTED: migration rejected: busy".into()
            }]
        );
        match m.outcome() {
            Some(Outcome::Aborted { phase, error }) => {
                assert_eq!(*phase, Phase::Confirmation);
                assert_eq!(error.code(), "MIGRATION_REJECTED");
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(m.total_duration_ms(), Some(20));
    }

    #[test]
    fn defer_then_retry_then_accept() {
        let mut m = at_phase(Phase::Confirmation);
        m.handle(
            Event::Confirmed(ConfirmationDecision::Defer {
                retry_after_ms: 300,
            }),
            T0 + 20,
        )
        .unwrap();
        assert_eq!(drain(&mut m), [Action::RetryAt(T0 + 320)]);
        assert_eq!(m.poll_timeout(), Some(T0 + 320));
        m.handle_timeout(T0 + 319);
        assert_eq!(drain(&mut m), []);
        m.handle_timeout(T0 + 320);
        assert_eq!(drain(&mut m), [Action::AskConfirmation]);
        // Phase timer restarted at the re-ask.
        assert_eq!(m.poll_timeout(), Some(T0 + 320 + 2_000));
        m.handle(Event::Confirmed(ConfirmationDecision::Accept), T0 + 400)
            .unwrap();
        assert_eq!(m.phase(), Phase::Preparation);
        assert_eq!(m.defers(), 1);
    }

    #[test]
    fn early_answer_during_deferral_is_accepted() {
        let mut m = at_phase(Phase::Confirmation);
        m.handle(
            Event::Confirmed(ConfirmationDecision::Defer {
                retry_after_ms: 300,
            }),
            T0 + 20,
        )
        .unwrap();
        drain(&mut m);
        m.handle(Event::Confirmed(ConfirmationDecision::Accept), T0 + 100)
            .unwrap();
        assert_eq!(drain(&mut m), [Action::SendPrepare]);
        assert_eq!(m.poll_timeout(), Some(T0 + 100 + 2_000));
    }

    #[test]
    fn too_many_defers_reject() {
        let mut m = at_phase(Phase::Confirmation);
        let mut now = T0 + 20;
        for _ in 0..3 {
            m.handle(
                Event::Confirmed(ConfirmationDecision::Defer { retry_after_ms: 10 }),
                now,
            )
            .unwrap();
            now += 10;
            m.handle_timeout(now);
            assert_eq!(m.phase(), Phase::Confirmation);
        }
        m.handle(
            Event::Confirmed(ConfirmationDecision::Defer { retry_after_ms: 10 }),
            now,
        )
        .unwrap();
        assert_eq!(m.phase(), Phase::Aborted);
        let Some(Outcome::Aborted { error, .. }) = m.outcome() else {
            panic!()
        };
        assert_eq!(error.code(), "MIGRATION_REJECTED");
        assert!(error.to_string().contains("deferred 4 times"), "{error}");
    }

    #[test]
    fn deferral_cannot_outlive_total_timeout() {
        let mut m = at_phase(Phase::Confirmation);
        m.handle(
            Event::Confirmed(ConfirmationDecision::Defer {
                retry_after_ms: 60_000,
            }),
            T0 + 20,
        )
        .unwrap();
        assert_eq!(m.poll_timeout(), Some(T0 + 5_000));
        m.handle_timeout(T0 + 5_000);
        let Some(Outcome::Aborted { error, .. }) = m.outcome() else {
            panic!()
        };
        assert_eq!(
            error,
            &MigrationError::Timeout {
                phase: Phase::Confirmation,
                limit: "total",
                limit_ms: 5_000
            }
        );
    }

    #[test]
    fn target_not_ready_aborts() {
        let mut m = at_phase(Phase::Preparation);
        m.handle(Event::PrepareAck { ready: false }, T0 + 30)
            .unwrap();
        let Some(Outcome::Aborted { phase, error }) = m.outcome() else {
            panic!()
        };
        assert_eq!(*phase, Phase::Preparation);
        assert!(error.to_string().contains("target w2 is not ready"));
    }

    #[test]
    fn failure_aborts_every_phase_before_pivot() {
        for phase in [
            Phase::Initiation,
            Phase::Confirmation,
            Phase::Preparation,
            Phase::StateCapture,
            Phase::StateTransfer,
        ] {
            let mut m = at_phase(phase);
            let err = MigrationError::Aborted {
                reason: "source crashed".into(),
            };
            m.handle(Event::Failure(err.clone()), T0 + 60).unwrap();
            assert_eq!(m.phase(), Phase::Aborted, "{phase}");
            assert_eq!(
                drain(&mut m),
                [Action::SendAbort {
                    reason: "MIGRATION_ABORTED: migration aborted: source crashed".into()
                }]
            );
            assert_eq!(m.outcome(), Some(&Outcome::Aborted { phase, error: err }));
            assert_eq!(m.poll_timeout(), None);
        }
    }

    #[test]
    fn no_abort_from_pivot_or_terminal() {
        for phase in [Phase::Pivot, Phase::Completed] {
            let mut m = at_phase(phase);
            let e = m
                .handle(
                    Event::Failure(MigrationError::Aborted { reason: "x".into() }),
                    T0 + 70,
                )
                .unwrap_err();
            assert_eq!(
                e,
                MigrationError::State {
                    phase,
                    event: "Failure"
                }
            );
            assert_eq!(m.phase(), phase);
            assert_eq!(drain(&mut m), []);
        }
        // Timeouts do not touch the Pivot either.
        let mut m = at_phase(Phase::Pivot);
        m.handle_timeout(T0 + 1_000_000);
        assert_eq!(m.phase(), Phase::Pivot);
        m.handle(Event::PivotDone, T0 + 1_000_001).unwrap();
        assert_eq!(m.outcome(), Some(&Outcome::Completed));
    }

    #[test]
    fn phase_timeout_in_each_phase() {
        for phase in [
            Phase::Initiation,
            Phase::Confirmation,
            Phase::Preparation,
            Phase::StateCapture,
            Phase::StateTransfer,
        ] {
            let mut m = at_phase(phase);
            let deadline = m.poll_timeout().unwrap();
            // at_phase enters each phase 10 ms after the previous one.
            let entered = T0 + 10 * (phase as u64);
            assert_eq!(deadline, entered + 2_000, "{phase}");
            m.handle_timeout(deadline - 1);
            assert_eq!(m.phase(), phase);
            m.handle_timeout(deadline);
            assert_eq!(m.phase(), Phase::Aborted);
            let Some(Outcome::Aborted { phase: p, error }) = m.outcome() else {
                panic!()
            };
            assert_eq!(*p, phase);
            assert_eq!(
                error,
                &MigrationError::Timeout {
                    phase,
                    limit: "phase",
                    limit_ms: 2_000
                }
            );
            let actions = drain(&mut m);
            assert!(
                matches!(&actions[..], [Action::SendAbort { reason }] if reason.starts_with("MIGRATION_TIMEOUT"))
            );
        }
    }

    #[test]
    fn total_timeout_beats_phase_timeout() {
        let config = MigrationConfig {
            phase_timeout_ms: 4_000,
            total_timeout_ms: 5_000,
            ..cfg(true)
        };
        let mut m = Migration::new(config, 1, 2, "a", "b", T0);
        m.handle(Event::RequestSent, T0 + 3_000).unwrap();
        assert_eq!(m.poll_timeout(), Some(T0 + 5_000));
        m.handle_timeout(T0 + 5_000);
        let Some(Outcome::Aborted { error, .. }) = m.outcome() else {
            panic!()
        };
        assert_eq!(
            error,
            &MigrationError::Timeout {
                phase: Phase::Preparation,
                limit: "total",
                limit_ms: 5_000
            }
        );
    }

    #[test]
    fn late_reply_finds_migration_aborted() {
        let mut m = at_phase(Phase::Preparation);
        let e = m
            .handle(Event::PrepareAck { ready: true }, T0 + 20 + 2_000)
            .unwrap_err();
        assert_eq!(
            e,
            MigrationError::State {
                phase: Phase::Aborted,
                event: "PrepareAck"
            }
        );
        assert!(matches!(m.outcome(), Some(Outcome::Aborted { .. })));
        let actions = drain(&mut m);
        assert_eq!(actions.len(), 1);
        assert!(matches!(actions[0], Action::SendAbort { .. }));
    }

    #[test]
    fn abort_discards_unpolled_actions() {
        let mut m = new(true);
        m.handle(Event::RequestSent, T0 + 1).unwrap();
        m.handle(
            Event::Failure(MigrationError::Aborted { reason: "x".into() }),
            T0 + 2,
        )
        .unwrap();
        let actions = drain(&mut m);
        assert_eq!(actions.len(), 1, "{actions:?}");
        assert!(matches!(actions[0], Action::SendAbort { .. }));
    }

    #[test]
    fn every_invalid_event_in_every_phase_changes_nothing() {
        let all = |n: u8| -> Event {
            match n {
                0 => Event::RequestSent,
                1 => Event::Confirmed(ConfirmationDecision::Accept),
                2 => Event::PrepareAck { ready: true },
                3 => Event::Captured { sealed_bytes: 1 },
                4 => Event::Restored,
                5 => Event::PivotDone,
                _ => Event::Failure(MigrationError::Aborted { reason: "x".into() }),
            }
        };
        let valid = |phase: Phase, n: u8| -> bool {
            matches!(
                (phase, n),
                (Phase::Initiation, 0)
                    | (Phase::Confirmation, 1)
                    | (Phase::Preparation, 2)
                    | (Phase::StateCapture, 3)
                    | (Phase::StateTransfer, 4)
                    | (Phase::Pivot, 5)
            ) || (n == 6 && phase.can_abort())
        };
        let mut aborted = at_phase(Phase::Initiation);
        aborted
            .handle(
                Event::Failure(MigrationError::Aborted { reason: "x".into() }),
                T0,
            )
            .unwrap();
        drain(&mut aborted);
        let mut machines: Vec<Migration> = [
            Phase::Initiation,
            Phase::Confirmation,
            Phase::Preparation,
            Phase::StateCapture,
            Phase::StateTransfer,
            Phase::Pivot,
            Phase::Completed,
        ]
        .into_iter()
        .map(at_phase)
        .collect();
        machines.push(aborted);
        for m in machines {
            for n in 0..7u8 {
                let phase = m.phase();
                if valid(phase, n) {
                    continue;
                }
                let mut copy = m.clone();
                let ev = all(n);
                let name = ev.name();
                let e = copy.handle(ev, T0 + 70).unwrap_err();
                assert_eq!(e, MigrationError::State { phase, event: name });
                assert_eq!(copy.phase(), phase);
                assert_eq!(copy.poll_action(), None);
                assert_eq!(copy.phase_durations(), m.phase_durations());
                assert_eq!(copy.outcome(), m.outcome());
            }
        }
    }

    #[test]
    fn accessors_and_phase_helpers() {
        let m = Migration::new(MigrationConfig::default(), 9, 8, "src", "dst", 5);
        assert_eq!(
            (m.migration_id(), m.session_id(), m.source(), m.target()),
            (9, 8, "src", "dst")
        );
        assert_eq!(m.config().total_timeout_ms, 5_000);
        assert_eq!(m.poll_timeout(), Some(5 + 2_000));
        assert_eq!(m.total_duration_ms(), None);
        assert!(Phase::StateTransfer.can_abort());
        assert!(!Phase::Pivot.can_abort());
        assert!(Phase::Aborted.is_terminal());
        assert_eq!(Phase::StateCapture.to_string(), "StateCapture");
    }

    #[test]
    fn clock_going_backwards_does_not_panic() {
        let mut m = Migration::new(MigrationConfig::default(), 1, 1, "a", "b", u64::MAX - 10);
        m.handle(Event::RequestSent, 0).unwrap();
        m.handle_timeout(0);
        assert_eq!(m.phase_durations(), [(Phase::Initiation, 0)]);
        assert_eq!(m.poll_timeout(), Some(2_000));
    }
}

//! One client session on the director: its sans-IO [`Coordinator`] (route, epoch, freeze,
//! migrations, failover) and the thin driver that moves the machine's messages, timers and
//! events between it and the workers' management ports.
//!
//! Nothing else changes a route. Every input goes through [`Session::drive`], which feeds the
//! machine under its lock, publishes the route to the relays (a `watch` channel), sends what the
//! machine asks for, arms its next timer and reports what it says happened.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rpcnet_protocol::migration::{ManagementMessage, Phase};
use rpcnet_session::{CallError, Coordinator, CoordinatorEvent, Route, Transmit, WorkerMethod};
use tokio::sync::{oneshot, watch, Notify};

use super::events::Timings;
use super::{DirectorEvent, Inner, MigrationReport};
use crate::error::RpcError;
use crate::mgmt::{self, now_ms};

/// How long MigrationComplete may take before the driver gives up on it, ms (not waited for:
/// the Pivot already happened).
const COMPLETE_TIMEOUT_MS: u32 = 2_000;
/// How long MigrationAbort may take, ms (not waited for: the route epoch fences a source that
/// misses it, PROTOCOL.md section 13.5).
const ABORT_TIMEOUT_MS: u32 = 1_000;
/// Bound for an exchange when the machine has no timer running, ms.
const EXCHANGE_TIMEOUT_MS: u64 = 5_000;

/// A session: see the module docs.
pub(crate) struct Session {
    pub(crate) id: u64,
    pub(crate) connection_id: String,
    /// Opened with HELLO (PROTOCOL.md section 15): its calls carry CALL frames and ACKs, and
    /// it outlives its connection unless the client closes it.
    pub(crate) resumable: bool,
    /// Its resume generation here (0 for a new session; the credential's + 1 after a resume).
    pub(crate) generation: u32,
    /// The coordinator's route as of its last input, for relays and placement.
    pub(crate) route: watch::Sender<Route>,
    /// Woken whenever a migration of this session ends.
    pub(crate) idle: Notify,
    state: Mutex<State>,
}

struct State {
    coordinator: Coordinator,
    /// Migrations started here and not yet ended: when they started and who waits for them.
    waiting: HashMap<u64, Waiter>,
    /// Since when the route has been frozen (monotonic, for sub-millisecond reports).
    frozen_since: Option<Instant>,
    /// The earliest timer armed, unix ms.
    timer_at: Option<u64>,
    /// Monotonic time spent in each phase of the running migration.
    phases: Option<PhaseClock>,
    /// The client connection ended: the session no longer counts in the workers' load.
    closed: bool,
}

/// Sub-millisecond phase timings of one migration, taken by the driver as the machine moves
/// from phase to phase (the machine itself counts whole ms of its unix-ms inputs).
struct PhaseClock {
    migration_id: u64,
    phase: Phase,
    since: Instant,
    spent: Vec<(String, f64)>,
}

impl PhaseClock {
    fn new(migration_id: u64, phase: Phase) -> Self {
        PhaseClock {
            migration_id,
            phase,
            since: Instant::now(),
            spent: Vec::new(),
        }
    }

    /// Closes the current phase; `next` opens.
    fn enter(&mut self, next: Phase) {
        let ms = self.since.elapsed().as_secs_f64() * 1000.0;
        self.spent.push((self.phase.to_string(), ms));
        self.phase = next;
        self.since = Instant::now();
    }
}

/// Who waits for a migration's report, and since when.
type Waiter = (Instant, oneshot::Sender<MigrationReport>);

/// What one input produced, collected under the lock and acted on after it.
struct Output {
    route: Route,
    transmits: Vec<Transmit>,
    events: Vec<CoordinatorEvent>,
    finished: Vec<(u64, Option<Waiter>)>,
    phases: Option<Vec<(String, f64)>>,
    thawed_ms: Option<f64>,
    deadline: Option<u64>,
    arm: Option<u64>,
}

impl Session {
    /// A session placed on `owner`; `resumable` when the client opened it with HELLO.
    pub(crate) fn new(id: u64, connection_id: String, owner: String, resumable: bool) -> Self {
        Self::with_coordinator(id, connection_id, Coordinator::new(id, owner), resumable, 0)
    }

    /// A session resumed at `generation` on `owner` (PROTOCOL.md section 15.6): its route
    /// starts above every epoch of the directors before. Its `connection_id`, as handlers see
    /// it, stays the session id's hex (PROTOCOL.md section 2.1).
    pub(crate) fn resumed(id: u64, owner: String, generation: u32) -> Self {
        let route = Route::resumed(owner, generation);
        let coordinator = Coordinator::with_route(id, route);
        Self::with_coordinator(id, format!("{id:016x}"), coordinator, true, generation)
    }

    fn with_coordinator(
        id: u64,
        connection_id: String,
        coordinator: Coordinator,
        resumable: bool,
        generation: u32,
    ) -> Self {
        let (route, _) = watch::channel(coordinator.route().clone());
        Session {
            id,
            connection_id,
            resumable,
            generation,
            route,
            idle: Notify::new(),
            state: Mutex::new(State {
                coordinator,
                waiting: HashMap::new(),
                frozen_since: None,
                timer_at: None,
                phases: None,
                closed: false,
            }),
        }
    }

    /// The owner now.
    pub(crate) fn owner(&self) -> String {
        self.route.borrow().owner.clone()
    }

    /// The client connection ended: the session stops counting in its owner's load.
    pub(crate) fn close(&self, inner: &Inner) {
        let mut st = self.state.lock().unwrap();
        if !std::mem::replace(&mut st.closed, true) {
            inner.placement.moved(&st.coordinator.route().owner, "");
        }
    }

    /// Registers `reply` to receive the report of migration `migration_id` when it ends.
    pub(crate) fn await_migration(
        &self,
        migration_id: u64,
        reply: oneshot::Sender<MigrationReport>,
    ) {
        let mut st = self.state.lock().unwrap();
        st.waiting.insert(migration_id, (Instant::now(), reply));
    }

    /// Drops the registration of a migration that did not start.
    pub(crate) fn forget_migration(&self, migration_id: u64) {
        self.state.lock().unwrap().waiting.remove(&migration_id);
    }

    /// Feeds one input to the coordinator at the current time, then publishes the route, sends
    /// the machine's messages, arms its timer and reports its events. Returns the input's result.
    pub(crate) fn drive<R>(
        self: &Arc<Self>,
        inner: &Arc<Inner>,
        input: impl FnOnce(&mut Coordinator, u64) -> R,
    ) -> R {
        let (result, out, open) = {
            let mut st = self.state.lock().unwrap();
            let was_frozen = st.coordinator.route().frozen;
            let owner = st.coordinator.route().owner.clone();
            let result = input(&mut st.coordinator, now_ms());
            let out = st.collect(was_frozen);
            if !st.closed && out.route.owner != owner {
                inner.placement.moved(&owner, &out.route.owner);
            }
            // Published under the lock, so that routes reach the relays in the machine's order.
            self.route.send_if_modified(|r| {
                let changed = *r != out.route;
                *r = out.route.clone();
                changed
            });
            (result, out, !st.closed)
        };
        for t in out.transmits {
            self.dispatch(inner, t, out.deadline);
        }
        let failed_over = out
            .events
            .iter()
            .any(|e| matches!(e, CoordinatorEvent::Failover { .. }));
        if failed_over && self.resumable && open {
            // The new owner learns of the session even if no call of it re-attaches there (not
            // once its connection ended: that notice would re-create a session the owner dropped).
            let (session, inner) = (self.clone(), inner.clone());
            tokio::spawn(async move { super::clients::tell_opened(&inner, &session).await });
        }
        self.report(inner, out.events, out.finished, out.phases, out.thawed_ms);
        if let Some(at) = out.arm {
            self.arm(inner, at);
        }
        result
    }

    /// Sends one message on its own task; a reply (or the exchange's failure) is fed back.
    fn dispatch(self: &Arc<Self>, inner: &Arc<Inner>, t: Transmit, deadline: Option<u64>) {
        let (session, inner) = (self.clone(), inner.clone());
        tokio::spawn(async move {
            let timeout = match t.method {
                WorkerMethod::Complete => COMPLETE_TIMEOUT_MS,
                WorkerMethod::Abort => ABORT_TIMEOUT_MS,
                _ => deadline
                    .map_or(EXCHANGE_TIMEOUT_MS, |d| d.saturating_sub(now_ms()).max(1))
                    .min(u64::from(u32::MAX)) as u32,
            };
            let result = exchange(&inner, &t, timeout).await;
            if matches!(t.method, WorkerMethod::Complete | WorkerMethod::Abort) {
                if let Err(e) = result {
                    tracing::debug!(error = %e, to = %t.to, method = ?t.method, "not answered");
                }
                return;
            }
            let reply = result.map_err(|e| CallError {
                code: e.code,
                message: e.message,
            });
            session.drive(&inner, |c, now| {
                c.on_reply(t.migration_id, t.method, reply, now)
            });
        });
    }

    /// Wakes the machine at `at` (unix ms).
    fn arm(self: &Arc<Self>, inner: &Arc<Inner>, at: u64) {
        let (session, inner) = (self.clone(), inner.clone());
        tokio::spawn(async move {
            // One ms late rather than early: the machine's timeouts are "at or after".
            tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()) + 1)).await;
            {
                let mut st = session.state.lock().unwrap();
                if st.timer_at == Some(at) {
                    st.timer_at = None;
                }
            }
            session.drive(&inner, |c, now| c.handle_timeout(now));
        });
    }

    fn report(
        &self,
        inner: &Inner,
        events: Vec<CoordinatorEvent>,
        finished: Vec<(u64, Option<Waiter>)>,
        mut phases: Option<Vec<(String, f64)>>,
        thawed_ms: Option<f64>,
    ) {
        let mut waiters: HashMap<_, _> = finished.into_iter().collect();
        for e in events {
            match e {
                CoordinatorEvent::MigrationFinished(s) => {
                    let waiter = waiters.remove(&s.migration_id).flatten();
                    let timings = Timings {
                        started: waiter.as_ref().map(|w| w.0),
                        phases: phases.take(),
                        frozen_ms: thawed_ms,
                    };
                    let report = MigrationReport::new(s, timings);
                    inner.emit(DirectorEvent::MigrationFinished(report.clone()));
                    if let Some((_, tx)) = waiter {
                        let _ = tx.send(report);
                    }
                    self.idle.notify_waiters();
                }
                CoordinatorEvent::Superseded { generation } => {
                    tracing::info!(
                        session = self.id,
                        generation,
                        "the session was resumed through another director: given up here"
                    );
                    self.close(inner);
                }
                CoordinatorEvent::Failover { from, to } => {
                    let last = inner.worker(&from).map_or(now_ms(), |w| w.last_heartbeat());
                    inner.emit(DirectorEvent::Failover {
                        session_id: self.id,
                        from,
                        to,
                        detected_after_ms: now_ms().saturating_sub(last),
                    });
                }
            }
        }
    }
}

impl State {
    fn collect(&mut self, was_frozen: bool) -> Output {
        let c = &mut self.coordinator;
        let route = c.route().clone();
        let transmits = std::iter::from_fn(|| c.poll_transmit()).collect();
        let events: Vec<_> = std::iter::from_fn(|| c.poll_event()).collect();
        let deadline = c.poll_timeout();
        let phase_now = c.migration().map(|(id, _, _, phase)| (id, phase));
        let phases = self.time_phases(phase_now, &events);
        let mut thawed_ms = None;
        match (was_frozen, route.frozen) {
            (false, true) => self.frozen_since = Some(Instant::now()),
            (true, false) => {
                thawed_ms = self
                    .frozen_since
                    .take()
                    .map(|t| t.elapsed().as_secs_f64() * 1000.0)
            }
            _ => {}
        }
        let finished = events
            .iter()
            .filter_map(|e| match e {
                CoordinatorEvent::MigrationFinished(s) => {
                    Some((s.migration_id, self.waiting.remove(&s.migration_id)))
                }
                _ => None,
            })
            .collect();
        let arm = match (deadline, self.timer_at) {
            (Some(d), Some(a)) if a <= d => None,
            (Some(d), _) => {
                self.timer_at = Some(d);
                Some(d)
            }
            (None, _) => None,
        };
        Output {
            route,
            transmits,
            events,
            finished,
            phases,
            thawed_ms,
            deadline,
            arm,
        }
    }

    /// Advances the phase clock to `now` (the running migration and its phase, if any); returns
    /// the timings of a migration that ended among `events`.
    fn time_phases(
        &mut self,
        now: Option<(u64, Phase)>,
        events: &[CoordinatorEvent],
    ) -> Option<Vec<(String, f64)>> {
        let ended = events.iter().find_map(|e| match e {
            CoordinatorEvent::MigrationFinished(s) => Some(s.migration_id),
            _ => None,
        });
        let mut done = None;
        if let Some(clock) = self.phases.as_mut() {
            if Some(clock.migration_id) == ended {
                let last = clock.phase;
                clock.enter(last);
                done = self.phases.take().map(|c| c.spent);
            }
        }
        match (now, self.phases.as_mut()) {
            (Some((id, phase)), Some(clock)) if clock.migration_id == id => {
                if clock.phase != phase {
                    clock.enter(phase);
                }
            }
            (Some((id, phase)), _) => self.phases = Some(PhaseClock::new(id, phase)),
            (None, _) => self.phases = None,
        }
        done
    }
}

/// Runs one exchange of `t` with its worker, failing at once if the worker is (or dies) dead.
async fn exchange(
    inner: &Inner,
    t: &Transmit,
    timeout_ms: u32,
) -> Result<ManagementMessage, RpcError> {
    let Some(w) = inner.worker(&t.to).filter(|w| w.alive()) else {
        return Err(RpcError::unavailable(format!("worker {} is dead", t.to)));
    };
    tokio::select! {
        r = mgmt::call(&w.mgmt, method_name(t.method), &t.message, timeout_ms) => r,
        _ = w.dead.cancelled() => Err(RpcError::unavailable(format!("worker {} died", w.id))),
    }
}

/// The management method (PROTOCOL.md section 14) of `m`.
fn method_name(m: WorkerMethod) -> &'static str {
    match m {
        WorkerMethod::Request => mgmt::REQUEST,
        WorkerMethod::Prepare => mgmt::PREPARE,
        WorkerMethod::Capture => mgmt::CAPTURE,
        WorkerMethod::Transfer => mgmt::TRANSFER,
        WorkerMethod::Complete => mgmt::COMPLETE,
        WorkerMethod::Abort => mgmt::ABORT,
    }
}

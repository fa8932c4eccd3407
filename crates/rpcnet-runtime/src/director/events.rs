//! What the embedder observes of the director: [`DirectorEvent`]s and the [`MigrationReport`] of
//! each migration, built from the session coordinator's [`MigrationSummary`] plus the driver's
//! own sub-millisecond timings.

use std::time::Instant;

use rpcnet_session::MigrationSummary;

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
    /// Time spent in each phase, ms (monotonic, sub-millisecond), in order.
    pub phases: Vec<(String, f64)>,
    /// Total time, ms.
    pub duration_ms: f64,
    /// Time the session's route was frozen (State Capture to Pivot or abort), ms.
    pub frozen_ms: f64,
    /// Size of the sealed snapshot, bytes.
    pub snapshot_bytes: u64,
}

/// The driver's monotonic timings of one migration (the machine counts whole ms of its unix-ms
/// inputs); each is used when known, the machine's figure otherwise.
pub(crate) struct Timings {
    /// When the migration was started.
    pub(crate) started: Option<Instant>,
    /// Time in each phase, ms.
    pub(crate) phases: Option<Vec<(String, f64)>>,
    /// Time the route was frozen, ms.
    pub(crate) frozen_ms: Option<f64>,
}

impl MigrationReport {
    /// The report of `s`, with the driver's `timings` where known.
    pub(crate) fn new(s: MigrationSummary, timings: Timings) -> Self {
        // The machine's phases, in its order, with the driver's measurement where it has one (a
        // phase entered and left within one input, like the Pivot, keeps the machine's figure).
        let measured = timings.phases.unwrap_or_default();
        let phases = s
            .phases
            .iter()
            .map(|(p, d)| {
                let name = p.to_string();
                let ms = measured
                    .iter()
                    .find(|(m, _)| *m == name)
                    .map_or(*d as f64, |(_, ms)| *ms);
                (name, ms)
            })
            .collect();
        MigrationReport {
            migration_id: s.migration_id,
            session_id: s.session_id,
            source: s.source,
            target: s.target,
            reason: s.reason,
            completed: s.completed,
            error: s.error,
            aborted_in: s.aborted_in.map(|p| p.to_string()),
            phases,
            duration_ms: timings
                .started
                .map_or(s.duration_ms as f64, |t| t.elapsed().as_secs_f64() * 1000.0),
            frozen_ms: timings.frozen_ms.unwrap_or(s.frozen_ms as f64),
            snapshot_bytes: s.snapshot_bytes,
        }
    }
}

/// Something the embedder can observe.
#[derive(Debug, Clone)]
pub enum DirectorEvent {
    /// A worker registered (or re-registered).
    WorkerJoined {
        /// Worker id.
        worker: String,
    },
    /// A worker missed heartbeats for `failover_after_ms` and was declared dead.
    WorkerLost {
        /// Worker id.
        worker: String,
    },
    /// A new session, placed on `worker`: a client opened its connection's first stream (its
    /// first call, or a resumable session's HELLO). A resumed session emits nothing.
    SessionOpened {
        /// Session id.
        session_id: u64,
        /// The client's `connectionId`.
        connection_id: String,
        /// The owner.
        worker: String,
    },
    /// A client connection ended.
    SessionClosed {
        /// Session id.
        session_id: u64,
    },
    /// A migration began (RFC-001 Initiation).
    MigrationStarted {
        /// Migration id.
        migration_id: u64,
        /// Session id.
        session_id: u64,
        /// Source worker.
        source: String,
        /// Target worker.
        target: String,
        /// `drain`, `admin`, ...
        reason: String,
    },
    /// A migration finished; see [`MigrationReport`].
    MigrationFinished(MigrationReport),
    /// A session was re-opened on `to` after its owner `from` died.
    Failover {
        /// Session id.
        session_id: u64,
        /// The dead owner.
        from: String,
        /// The new owner.
        to: String,
        /// Time from the last heartbeat of `from` to the new route, ms.
        detected_after_ms: u64,
    },
}

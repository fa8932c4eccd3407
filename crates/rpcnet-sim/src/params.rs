//! The knobs of one schedule, drawn from its seed.

/// Timing and fault settings of a schedule (all times in ms of simulated time).
#[derive(Debug, Clone)]
pub struct Params {
    /// Workers in the cluster (at least 3).
    pub workers: usize,
    /// Client sessions.
    pub sessions: usize,
    /// Until this time faults and triggers happen; afterwards the cluster heals and settles.
    pub chaos_until_ms: u64,
    /// A schedule that has not finished every call by this time is a liveness violation.
    pub give_up_at_ms: u64,
    /// Probability (per mille) that a management message is dropped.
    pub drop_permille: u32,
    /// Probability (per mille) that a management message is delivered twice.
    pub dup_permille: u32,
    /// Largest one-way network delay.
    pub max_delay_ms: u64,
    /// Heartbeat period of workers.
    pub heartbeat_ms: u64,
    /// Silence after which the director declares a worker dead.
    pub failover_after_ms: u64,
    /// A worker's heartbeat lease (must be shorter than `failover_after_ms`).
    pub lease_ms: u64,
    /// Mean time between random triggers.
    pub trigger_every_ms: u64,
    /// Sessions are resumable (PROTOCOL.md section 15): clients ACK items, and the director
    /// may crash and restart, its clients resuming their sessions.
    pub resumable: bool,
}

impl Params {
    /// The settings of schedule `seed`'s cluster, drawn with `pick(lo, hi)` (inclusive).
    pub fn draw(mut pick: impl FnMut(u64, u64) -> u64) -> Self {
        Params {
            workers: pick(3, 4) as usize,
            sessions: pick(1, 3) as usize,
            chaos_until_ms: pick(1_500, 3_000),
            give_up_at_ms: 60_000,
            drop_permille: pick(0, 80) as u32,
            dup_permille: pick(0, 50) as u32,
            max_delay_ms: pick(1, 8),
            heartbeat_ms: 100,
            failover_after_ms: 500,
            lease_ms: 300,
            trigger_every_ms: pick(40, 200),
            resumable: pick(0, 1) == 1,
        }
    }
}

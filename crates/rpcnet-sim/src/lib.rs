//! # rpcnet-sim
//!
//! A seeded, deterministic simulation of a whole rpcnet cluster, built from the very machines the
//! runtime drives (`rpcnet-session`): clients ([`rpcnet_session::ClientStream`]), a director (one
//! [`rpcnet_session::Coordinator`] per session and one [`rpcnet_session::RelayCall`] per call),
//! at least three workers ([`rpcnet_session::Participant`], [`rpcnet_session::participant::SessionBook`],
//! [`rpcnet_session::ServerCall`] and the heartbeat [`rpcnet_session::Lease`]), and a simulated
//! network between them.
//!
//! The network delays and reorders management messages and may drop or duplicate them; cluster
//! link streams are delivered in order per stream (QUIC streams are reliable) after random delays,
//! and die with their worker. Random triggers: drains, admin migrations (two at once for one
//! session too), worker crashes and restarts, heartbeat partitions that make the director declare
//! a live worker dead, policy hooks that accept, reject, defer, throw or never answer, and
//! stalled client readers. In schedules with resumable sessions (PROTOCOL.md section 15) clients
//! acknowledge items and the director crashes and restarts (one failure at a time: never while a
//! worker is down or a session is still resuming), or a client's connection to the director is
//! cut while the director lives on (its stale session goes on relaying, migrating and failing
//! over, worker crashes included, until it notices or a worker answers SUPERSEDED; no worker
//! starts meanwhile, see PROTOCOL.md section 15.7); workers keep their calls, and clients resume
//! with their credentials ([`rpcnet_session::participant::SessionBook::claim`],
//! [`rpcnet_session::participant::choose_owner`]).
//!
//! After every step [`check`] verifies the invariants of issue 6:
//! 1. every client receives every item exactly once, in order, with the payload the handler
//!    produces for that seq (and, once the schedule settles, every call completes);
//! 2. a session has at most one worker producing items for it;
//! 3. no route stays frozen after its migration ended;
//! 4. every migration ends within its configured timeout;
//! 5. a resume with the client's latest credential is never refused as replayed.
//!
//! A schedule is a pure function of its seed: [`run_schedule`] with the same seed replays it
//! exactly.

mod check;
mod cluster;
mod net;
mod params;

pub use check::Violation;
pub use cluster::{run_schedule, Report};
pub use params::Params;

//! What a worker holds per session, as migration and resumption see it, sans-IO: the route-epoch
//! fence, the freeze of a State Capture, the calls kept from a capture, restored from a snapshot
//! or detached from a lost director link, which director relays each open call and whose
//! heartbeat leases hold, and the claims of a resume. [`SessionBook::attach`] decides whether an
//! ATTACH is served or suspended.
//!
//! The fence (PROTOCOL.md section 13.5): State Capture carries the route epoch the director froze
//! the session at. An ATTACH at that epoch or older is stale and answered SUSPENDED; a newer one
//! means the migration ended without moving the session (its MigrationAbort may have been lost),
//! so the session is served here again. A resume claim (PROTOCOL.md section 15.6) raises the
//! fence to the next resume generation, so whatever an earlier director still sends is stale.
//!
//! Leases (PROTOCOL.md section 14.1): a worker registered with several directors holds one lease
//! per director; when director D's lease lapses, the worker stops producing for the calls D
//! relays (D may declare it dead and fail those sessions over) and keeps serving the calls other
//! directors relay.

use std::collections::{BTreeMap, BTreeSet};

use rpcnet_protocol::migration::{CallSnapshot, MigrationError, SessionSnapshot};
use rpcnet_protocol::resume::{epoch_generation, generation_epoch, ResumeError};
use rpcnet_protocol::Attach;

/// How long a worker remembers the fence of a session it no longer holds, ms: longer than any
/// stale ATTACH can stay in flight on a live cluster link (QUIC's idle timeout is 30 s).
pub const FENCE_MEMORY_MS: u64 = 60_000;

/// Most fenced sessions a worker remembers at once: sessions it captured (State Capture) that
/// it still holds, plus the tombstones of those it no longer holds (kept for
/// [`FENCE_MEMORY_MS`]). At the bound, [`SessionBook::freeze`] refuses to fence one more session
/// (`MIGRATION_CAPACITY`, the migration aborts and the session stays where it is) instead of
/// forgetting a fence early, which could let a stale ATTACH through. Reaching it takes more than
/// 1,000 sessions moved away from one worker per second for a minute; a tombstone costs ~60
/// bytes, so the bound is ~4 MB.
pub const MAX_FENCES: usize = 65_536;

/// How long a worker keeps the calls of a resumable session whose director link was lost, ms:
/// the client has this long to resume it (PROTOCOL.md section 15.6).
pub const RESUME_WINDOW_MS: u64 = 30_000;

/// What a worker holds of a session a director claims for a resume
/// ([`SessionBook::claim`]), in the order [`choose_owner`] prefers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ClaimStatus {
    /// Frozen by a State Capture (a migration's source that has not been told the outcome).
    Captured = 1,
    /// Restored from a snapshot (a migration's target) and not attached yet.
    Restored = 2,
    /// Serving it, or keeping its calls since its director link was lost.
    Serving = 3,
}

impl ClaimStatus {
    /// The wire value (PROTOCOL.md section 15.2, Claim reply).
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The status of a wire value, `None` for 0 (not held) or an undefined value.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(ClaimStatus::Captured),
            2 => Some(ClaimStatus::Restored),
            3 => Some(ClaimStatus::Serving),
            _ => None,
        }
    }
}

/// One worker's answer to a resume claim ([`SessionBook::claim`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimAnswer {
    /// The worker's id.
    pub worker: String,
    /// What it holds.
    pub status: ClaimStatus,
    /// The highest route epoch it served the session under, or a restored session's capture
    /// epoch if higher (0 if neither).
    pub epoch: u64,
}

/// The worker a resumed session continues on, from the answers of the workers that hold it:
/// the one that served it under the latest route epoch (the latest owner: after a Pivot the
/// target, after a failover the new owner, after an abort the source); among equal epochs the
/// better [`ClaimStatus`] (a migration's target that restored the session but never served it
/// holds everything its frozen source captured). `None` when no worker holds it. Any holder
/// could continue the session exactly once, since the ATTACH tells it the client's position and
/// its state covers it; choosing the latest keeps the handler's state from going back.
pub fn choose_owner(answers: &[ClaimAnswer]) -> Option<&str> {
    answers
        .iter()
        .rev()
        .max_by_key(|a| (a.epoch, a.status))
        .map(|a| a.worker.as_str())
}

/// The driver's number for one director: the book records which director relays each call and
/// holds a lease per director. The runtime numbers each director process it meets (from 1, by the
/// SHA-256 fingerprint of the cluster certificate the director presents, PROTOCOL.md section
/// 14.1); a director the driver does not know is [`UNKNOWN_DIRECTOR`].
pub type DirectorKey = u64;

/// The key of a director the driver does not know. The book never holds its lease, so its
/// ATTACHes are always answered SUSPENDED.
pub const UNKNOWN_DIRECTOR: DirectorKey = 0;

/// What to do with an ATTACH, decided by [`SessionBook::attach`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachDecision {
    /// Answer SUSPENDED(`next_seq`) at once: the ATTACH is stale (fenced), the session is frozen,
    /// or the lease of the director that relays it does not hold (lapsed, never granted, or an
    /// unknown director).
    Suspend {
        /// The ATTACH's `next_seq`.
        next_seq: u64,
    },
    /// Answer SUPERSEDED(`generation`): the ATTACH's route epoch belongs to an earlier resume
    /// generation than the session's here, so its director lost the session to a resume through
    /// another director (PROTOCOL.md section 15.6) and must give it up.
    Superseded {
        /// The session's generation here.
        generation: u32,
    },
    /// Serve the call, from this kept or restored state if there is one.
    Serve(Option<CallSnapshot>),
}

#[derive(Debug, Default, Clone)]
struct BookEntry {
    /// ATTACHes at or below this route epoch are stale.
    fence: u64,
    frozen: bool,
    /// Calls open here now, by call id: the director that relays each (its latest ATTACH) and
    /// how many of its ATTACHes are being served (a re-attach can arrive before the stream it
    /// replaces has ended; the call is open until both ended).
    open: BTreeMap<u64, (DirectorKey, u32)>,
    /// Calls kept from a capture (for an abort) or restored from a snapshot, by call id.
    kept: BTreeMap<u64, CallSnapshot>,
    connection_id: String,
    /// Restored here by a migration: held (even with no call) until dropped.
    held: bool,
    /// The highest route epoch an ATTACH was served under (its upper half is the resume
    /// generation, PROTOCOL.md section 15.1).
    epoch: u64,
    /// Since when (ms) the session's calls are kept for a resume after their director link was
    /// lost; forgotten [`RESUME_WINDOW_MS`] later.
    detached_since: Option<u64>,
    /// A resumable session (ATTACH flag RESUMABLE): held even with no call open, so that a
    /// resume finds it, until it is dropped (SessionClosed, a Pivot elsewhere, or the resume
    /// window after its director link was lost).
    resumable: bool,

    /// The director that relayed the session's latest ATTACH or migrated it here: the one whose
    /// loss of this worker ([`SessionBook::forget_director`]) drops the session.
    via: Option<DirectorKey>,
}

impl BookEntry {
    fn idle(&self) -> bool {
        self.open.is_empty()
            && self.kept.is_empty()
            && !self.frozen
            && !self.held
            && !self.resumable
    }
}

/// The fence of a session the worker no longer holds, kept for [`FENCE_MEMORY_MS`].
#[derive(Debug, Clone, Copy)]
struct Tombstone {
    fence: u64,
    /// When the session was dropped, ms.
    since_ms: u64,
}

/// A worker's sessions as migration sees them. See the module docs.
///
/// Memory: an entry per session with state here (open, kept, frozen or restored calls); a session
/// that has none left is forgotten at once, or, if it was fenced (captured here at some epoch),
/// reduced to a tombstone that keeps only its fence for [`FENCE_MEMORY_MS`] (forgotten by
/// [`SessionBook::prune`]). Fenced sessions, live or tombstones, are at most [`MAX_FENCES`].
#[derive(Debug, Default, Clone)]
pub struct SessionBook {
    /// Sessions with state here (never idle).
    sessions: BTreeMap<u64, BookEntry>,
    /// Fences of sessions dropped from `sessions`, by session.
    tombstones: BTreeMap<u64, Tombstone>,
    /// `(since_ms, session)` of every tombstone, oldest first, for [`SessionBook::prune`].
    expiry: BTreeSet<(u64, u64)>,
    /// Directors whose heartbeat lease holds: only the ATTACHes they relay are served.
    leased: BTreeSet<DirectorKey>,
}

impl SessionBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// The entry of a session that gets state here: the existing one, or one revived from its
    /// tombstone (keeping the fence), or a new one.
    fn live(&mut self, session_id: u64) -> &mut BookEntry {
        if !self.sessions.contains_key(&session_id) {
            let mut entry = BookEntry::default();
            if let Some(t) = self.tombstones.remove(&session_id) {
                self.expiry.remove(&(t.since_ms, session_id));
                entry.fence = t.fence;
            }
            self.sessions.insert(session_id, entry);
        }
        self.sessions.get_mut(&session_id).expect("inserted above")
    }

    /// Forgets a session that has no state left at `now_ms`: unfenced, it is gone; fenced, its
    /// fence stays as a tombstone for [`FENCE_MEMORY_MS`].
    fn retire_if_idle(&mut self, session_id: u64, now_ms: u64) {
        if !self.sessions.get(&session_id).is_some_and(BookEntry::idle) {
            return;
        }
        let entry = self.sessions.remove(&session_id).expect("checked above");
        if entry.fence > 0 {
            self.tombstones.insert(
                session_id,
                Tombstone {
                    fence: entry.fence,
                    since_ms: now_ms,
                },
            );
            self.expiry.insert((now_ms, session_id));
        }
    }

    /// Decides an ATTACH relayed by director `via` (see [`AttachDecision`]); a served call is
    /// recorded as open, relayed by `via`.
    ///
    /// Rules, in order: SUPERSEDED when the ATTACH's route epoch is of an earlier resume
    /// generation than the session's (PROTOCOL.md section 15.6), whichever director sent it (the
    /// session is not that director's any more, lease or not); SUSPENDED when `via`'s lease
    /// does not hold (section 14.1); SUSPENDED when the route epoch is at or below the session's
    /// fence (section 13.5); otherwise served, with the state kept or restored for the call if
    /// any.
    pub fn attach(&mut self, a: &Attach, via: DirectorKey) -> AttachDecision {
        let suspend = AttachDecision::Suspend {
            next_seq: a.next_seq,
        };
        let generation = self.generation(a.session_id);
        if epoch_generation(a.route_epoch) < generation {
            return AttachDecision::Superseded { generation };
        }
        if !self.leased.contains(&via) {
            return suspend;
        }
        let fence = match (
            self.sessions.get(&a.session_id),
            self.tombstones.get(&a.session_id),
        ) {
            (Some(s), _) => s.fence,
            (None, Some(t)) => t.fence,
            (None, None) => 0,
        };
        if a.route_epoch <= fence {
            return suspend;
        }
        let s = self.live(a.session_id);
        // A newer route than the capture's: the migration ended without moving the session.
        s.frozen = false;
        s.epoch = s.epoch.max(a.route_epoch);
        s.detached_since = None;
        s.resumable |= a.resumable;
        if s.connection_id.is_empty() {
            s.connection_id = a.connection_id.clone();
        }
        s.via = Some(via);
        let open = s.open.entry(a.call_id).or_insert((via, 0));
        *open = (via, open.1 + 1);
        AttachDecision::Serve(s.kept.remove(&a.call_id))
    }

    /// A served call ended (finished, cancelled or frozen) at `now_ms`.
    pub fn call_ended(&mut self, session_id: u64, call_id: u64, now_ms: u64) {
        if let Some(s) = self.sessions.get_mut(&session_id) {
            if let Some(open) = s.open.get_mut(&call_id) {
                open.1 = open.1.saturating_sub(1);
                if open.1 == 0 {
                    s.open.remove(&call_id);
                }
            }
            self.retire_if_idle(session_id, now_ms);
        }
    }

    /// State Capture begins: the session is frozen and fenced at `epoch`.
    ///
    /// Errors: `MIGRATION_CAPACITY` when the session is not fenced yet and [`MAX_FENCES`]
    /// sessions are (call [`SessionBook::prune`] first); the book is unchanged.
    pub fn freeze(&mut self, session_id: u64, epoch: u64) -> Result<(), MigrationError> {
        let fenced_already = self.sessions.get(&session_id).is_some_and(|s| s.fence > 0)
            || self.tombstones.contains_key(&session_id);
        if !fenced_already && self.fenced() >= MAX_FENCES {
            return Err(MigrationError::Capacity {
                what: "fenced sessions",
                limit: MAX_FENCES,
            });
        }
        let s = self.live(session_id);
        s.fence = s.fence.max(epoch);
        s.frozen = true;
        Ok(())
    }

    /// Keeps captured calls so that an abort can re-attach them here.
    pub fn keep(&mut self, session_id: u64, calls: &[CallSnapshot]) {
        if calls.is_empty() {
            return;
        }
        let s = self.live(session_id);
        for c in calls {
            s.kept.insert(c.call_id, c.clone());
        }
    }

    /// Keeps calls frozen because the lease of director `via`, which relays them, lapsed
    /// ([`SessionBook::lease_lapsed`]), so that `via` can re-attach them here once the lease
    /// holds again. The session stays relayed by `via` even if its entry was forgotten when the
    /// frozen calls ended, so [`SessionBook::forget_director`] drops it.
    pub fn keep_relayed(&mut self, session_id: u64, calls: &[CallSnapshot], via: DirectorKey) {
        if calls.is_empty() {
            return;
        }
        self.keep(session_id, calls);
        self.live(session_id).via = Some(via);
    }

    /// The session's `connectionId`, as learnt from its ATTACHes.
    pub fn connection_id(&self, session_id: u64) -> String {
        self.sessions
            .get(&session_id)
            .map(|s| s.connection_id.clone())
            .unwrap_or_default()
    }

    /// The calls kept for a session (captured earlier, or restored), cloned, in call id order.
    pub fn kept_calls(&self, session_id: u64) -> Vec<CallSnapshot> {
        self.sessions
            .get(&session_id)
            .map(|s| s.kept.values().cloned().collect())
            .unwrap_or_default()
    }

    /// True while a capture holds the session.
    pub fn is_frozen(&self, session_id: u64) -> bool {
        self.sessions.get(&session_id).is_some_and(|s| s.frozen)
    }

    /// MigrationAbort on the source at `now_ms`: served here again.
    pub fn unfreeze(&mut self, session_id: u64, now_ms: u64) {
        if let Some(s) = self.sessions.get_mut(&session_id) {
            s.frozen = false;
            self.retire_if_idle(session_id, now_ms);
        }
    }

    /// Installs a restored session (State Transfer on the target), migrated here by director
    /// `via`.
    pub fn restore(&mut self, snap: &SessionSnapshot, via: DirectorKey) {
        let s = self.live(snap.session_id);
        // The restored state is the capture's: a claim weighs it at the capture's epoch, above
        // an older capture's frozen copy elsewhere (PROTOCOL.md section 15.6).
        s.epoch = s.epoch.max(snap.route_epoch);
        s.connection_id = snap.connection_id.clone();
        s.held = true;
        s.via = Some(via);
        for c in &snap.calls {
            s.kept.insert(c.call_id, c.clone());
        }
    }

    /// Forgets a session that lives elsewhere now (at `now_ms`), keeping its fence as a
    /// tombstone for [`FENCE_MEMORY_MS`] once no call of it is open here.
    pub fn drop_session(&mut self, session_id: u64, now_ms: u64) {
        if let Some(s) = self.sessions.get_mut(&session_id) {
            s.kept.clear();
            s.frozen = false;
            s.held = false;
            s.detached_since = None;
            s.resumable = false;
            self.retire_if_idle(session_id, now_ms);
        }
    }

    /// A director claims the session for a resume with the credential's `generation`
    /// (PROTOCOL.md section 15.2). The session moves to generation + 1: its fence rises to
    /// [`generation_epoch`]`(generation + 1)`, so every ATTACH of an earlier director is stale
    /// from now on, and the same credential cannot claim it again. The runtime then freezes the
    /// session's open calls and keeps them ([`SessionBook::detach`]) for the claiming director.
    ///
    /// Errors: `RESUME_UNKNOWN` when the session has no state here (its new fence is kept as a
    /// tombstone all the same); `RESUME_REPLAYED` when the
    /// session is at a later generation than the credential's (it was resumed with it already).
    pub fn claim(
        &mut self,
        session_id: u64,
        generation: u32,
        now_ms: u64,
    ) -> Result<(ClaimStatus, u64), ResumeError> {
        let next = generation_epoch(generation.saturating_add(1));
        let Some(s) = self.sessions.get_mut(&session_id) else {
            // Nothing held here, but a migration of the director that lost the session may
            // still bring it (a late StateTransfer): the fence of the new generation is kept, as
            // a tombstone, so that director's ATTACHes are turned away here too.
            let fence = self.tombstones.get(&session_id).map_or(0, |t| t.fence);
            if let Some(t) = self.tombstones.get(&session_id) {
                self.expiry.remove(&(t.since_ms, session_id));
            }
            self.tombstones.insert(
                session_id,
                Tombstone {
                    fence: fence.max(next),
                    since_ms: now_ms,
                },
            );
            self.expiry.insert((now_ms, session_id));
            return Err(ResumeError::Unknown { session_id });
        };
        let current = epoch_generation(s.fence.max(s.epoch));
        if generation < current {
            return Err(ResumeError::Replayed {
                session_id,
                presented: generation,
                current,
            });
        }
        let status = if s.frozen {
            ClaimStatus::Captured
        } else if s.held && s.open.is_empty() && s.detached_since.is_none() {
            ClaimStatus::Restored
        } else {
            ClaimStatus::Serving
        };
        s.fence = s.fence.max(next);
        Ok((status, s.epoch))
    }

    /// The session's resume generation here (the upper half of its fence and of the highest
    /// route epoch it was served under; 0 for a session unknown here).
    pub fn generation(&self, session_id: u64) -> u32 {
        let epoch = match (
            self.sessions.get(&session_id),
            self.tombstones.get(&session_id),
        ) {
            (Some(s), _) => s.fence.max(s.epoch),
            (None, Some(t)) => t.fence,
            (None, None) => 0,
        };
        epoch_generation(epoch)
    }

    /// Director `via` placed the resumable session `session_id`, at `generation`, here
    /// (`rpcnet.mgmt/session-opened`, PROTOCOL.md section 15.6): the session is known even
    /// before (or without) any call, so a claim after a director's loss finds it. Ignored when
    /// the session is at a later generation here (a director that lost it to a resume).
    pub fn adopt(&mut self, session_id: u64, generation: u32, via: DirectorKey) {
        if self.generation(session_id) > generation {
            return;
        }
        let s = self.live(session_id);
        s.resumable = true;
        s.via.get_or_insert(via);
    }

    /// Keeps calls of a resumable session frozen at `now_ms` because their director link was
    /// lost (or a resume claimed them): they, and the session, wait [`RESUME_WINDOW_MS`] for
    /// an ATTACH. `calls` may be empty (a session with no call open).
    pub fn detach(&mut self, session_id: u64, calls: &[CallSnapshot], now_ms: u64) {
        self.keep(session_id, calls);
        if let Some(s) = self.sessions.get_mut(&session_id) {
            s.detached_since.get_or_insert(now_ms);
        }
    }

    /// The lease of director `d` holds: it was granted by `d`'s Register reply or renewed by an
    /// acknowledged heartbeat. The ATTACHes `d` relays are served again (subject to the epoch
    /// fence).
    pub fn lease_held(&mut self, d: DirectorKey) {
        if d != UNKNOWN_DIRECTOR {
            self.leased.insert(d);
        }
    }

    /// The lease of director `d` lapsed (PROTOCOL.md section 14.1): `d` may declare this worker
    /// dead and fail the sessions it relays over, so from now on every ATTACH `d` relays is
    /// answered SUSPENDED, until [`SessionBook::lease_held`]. Returns the `(session, call)` pairs
    /// of the calls `d` relays that are open here: the driver must freeze each at an item
    /// boundary (SUSPENDED) and [`SessionBook::keep`] its state. Calls relayed by other
    /// directors are not affected.
    pub fn lease_lapsed(&mut self, d: DirectorKey) -> Vec<(u64, u64)> {
        self.leased.remove(&d);
        self.open_via(d)
    }

    /// The `(session, call)` pairs of the open calls director `d` relays, in session order.
    pub fn open_via(&self, d: DirectorKey) -> Vec<(u64, u64)> {
        self.sessions
            .iter()
            .flat_map(|(&session, s)| {
                s.open
                    .iter()
                    .filter(move |(_, &(via, _))| via == d)
                    .map(move |(&call, _)| (session, call))
            })
            .collect()
    }

    /// True while the lease of director `d` holds.
    pub fn is_leased(&self, d: DirectorKey) -> bool {
        self.leased.contains(&d)
    }

    /// Director `d` no longer knows this worker (it answered a heartbeat with `NOT_FOUND`: it
    /// declared the worker dead and failed the sessions it relays over; or it was replaced by a
    /// new director process) at `now_ms`. Its lease is gone, and every session whose latest
    /// ATTACH or migration came from `d` is dropped as [`SessionBook::drop_session`] does (fences
    /// stay as tombstones), except a resumable one, which is kept as [`SessionBook::detach`] keeps
    /// it, for [`RESUME_WINDOW_MS`], since its client may resume it through another director.
    /// Sessions relayed by other directors are kept. The driver freezes the
    /// calls [`SessionBook::lease_lapsed`] returns first: a call still open here is kept in the
    /// book until it ends.
    pub fn forget_director(&mut self, d: DirectorKey, now_ms: u64) {
        self.leased.remove(&d);
        let ids: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.via == Some(d))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            match self.sessions.get_mut(&id) {
                // Its client may resume it through another director: kept for the window.
                Some(s) if s.resumable => {
                    s.detached_since.get_or_insert(now_ms);
                }
                _ => self.drop_session(id, now_ms),
            }
        }
    }

    /// Forgets tombstones older than [`FENCE_MEMORY_MS`] at `now_ms`. Costs O(log n) per
    /// tombstone forgotten; the runtime calls it at every heartbeat.
    pub fn prune(&mut self, now_ms: u64) {
        let expired: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.open.is_empty()
                    && s.detached_since
                        .is_some_and(|t| now_ms >= t.saturating_add(RESUME_WINDOW_MS))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.drop_session(id, now_ms);
        }
        debug_assert!(self.sessions.values().all(|s| !s.idle()));
        while let Some(&(since, session)) = self.expiry.first() {
            if now_ms < since.saturating_add(FENCE_MEMORY_MS) {
                break;
            }
            self.expiry.pop_first();
            self.tombstones.remove(&session);
        }
    }

    /// Sessions with open, kept, frozen or restored state (tombstones excluded).
    pub fn len(&self) -> usize {
        self.sessions.values().filter(|s| !s.idle()).count()
    }

    /// True when no session has state here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry, tombstones included (for tests of bounded memory).
    pub fn entries(&self) -> usize {
        self.sessions.len() + self.tombstones.len()
    }

    /// Tombstones: fences of sessions no longer held here, not yet forgotten.
    pub fn tombstones(&self) -> usize {
        self.tombstones.len()
    }

    /// Fenced sessions, held or tombstones (at most [`MAX_FENCES`]).
    pub fn fenced(&self) -> usize {
        self.tombstones.len() + self.sessions.values().filter(|s| s.fence > 0).count()
    }

    /// Sessions waiting for a resume (detached, not attached since).
    pub fn detached(&self) -> usize {
        self.sessions
            .values()
            .filter(|s| s.detached_since.is_some())
            .count()
    }

    /// Ids of the resumable sessions held here (to detach when their director link is lost).
    pub fn resumable_ids(&self) -> Vec<u64> {
        self.sessions
            .iter()
            .filter(|(_, s)| s.resumable)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Ids of the sessions with state here.
    pub fn ids(&self) -> Vec<u64> {
        self.sessions
            .iter()
            .filter(|(_, s)| !s.idle())
            .map(|(id, _)| *id)
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::Bytes;

    /// The director that relays the tests' calls.
    pub(crate) const D: DirectorKey = 1;

    /// An empty book holding `D`'s lease.
    pub(crate) fn leased_book() -> SessionBook {
        let mut b = SessionBook::new();
        b.lease_held(D);
        b
    }

    pub(crate) fn attach(epoch: u64, call: u64) -> Attach {
        Attach {
            session_id: 9,
            call_id: call,
            next_seq: 3,
            route_epoch: epoch,
            connection_id: "c".into(),
            checkpoint: None,
            resumable: false,
        }
    }

    #[test]
    fn stale_attaches_are_suspended_and_newer_ones_unfreeze() {
        let mut b = leased_book();
        assert_eq!(b.attach(&attach(1, 1), D), AttachDecision::Serve(None));
        b.freeze(9, 1).unwrap();
        b.keep(
            9,
            &[CallSnapshot {
                call_id: 1,
                ..Default::default()
            }],
        );
        b.call_ended(9, 1, 0);
        assert_eq!(
            b.attach(&attach(1, 2), D),
            AttachDecision::Suspend { next_seq: 3 }
        );
        assert_eq!(
            b.attach(&attach(1, 1), D),
            AttachDecision::Suspend { next_seq: 3 }
        );
        // The abort was lost; the director re-attaches at epoch 2.
        assert!(matches!(
            b.attach(&attach(2, 1), D),
            AttachDecision::Serve(Some(_))
        ));
        assert!(!b.is_frozen(9));
    }

    /// A re-attach served before the stream it replaces ended: the old stream's end does not
    /// close the call the new one serves.
    #[test]
    fn a_call_is_open_until_every_served_attach_ended() {
        let mut b = leased_book();
        assert_eq!(b.attach(&attach(1, 1), D), AttachDecision::Serve(None));
        assert_eq!(b.attach(&attach(1, 1), D), AttachDecision::Serve(None));
        b.call_ended(9, 1, 0);
        assert_eq!(
            b.open_via(D),
            vec![(9, 1)],
            "the second attach still serves it"
        );
        b.call_ended(9, 1, 0);
        assert!(b.open_via(D).is_empty());
    }

    /// A resume's claim weighs a restored session at its capture's route epoch (PROTOCOL.md
    /// 15.6), so a later migration's target wins over an older capture still frozen elsewhere.
    #[test]
    fn a_restored_session_is_claimed_at_its_capture_epoch() {
        let mut target = leased_book();
        let snap = SessionSnapshot {
            session_id: 9,
            route_epoch: 7,
            ..Default::default()
        };
        target.restore(&snap, D);
        let mut old_source = leased_book();
        assert_eq!(
            old_source.attach(&attach(3, 1), D),
            AttachDecision::Serve(None)
        );
        old_source.freeze(9, 3).unwrap();
        let (t_status, t_epoch) = target.claim(9, 0, 0).unwrap();
        let (s_status, s_epoch) = old_source.claim(9, 0, 0).unwrap();
        assert_eq!((t_status, t_epoch), (ClaimStatus::Restored, 7));
        assert_eq!((s_status, s_epoch), (ClaimStatus::Captured, 3));
        let answers = [
            ClaimAnswer {
                worker: "old".into(),
                status: s_status,
                epoch: s_epoch,
            },
            ClaimAnswer {
                worker: "target".into(),
                status: t_status,
                epoch: t_epoch,
            },
        ];
        assert_eq!(choose_owner(&answers), Some("target"));
    }

    #[test]
    fn tombstones_keep_the_fence_then_go() {
        let mut b = leased_book();
        b.freeze(9, 4).unwrap();
        b.drop_session(9, 100);
        assert_eq!(
            b.attach(&attach(4, 1), D),
            AttachDecision::Suspend { next_seq: 3 }
        );
        assert_eq!(b.len(), 0);
        b.prune(100 + FENCE_MEMORY_MS);
        assert_eq!(b.entries(), 0);
    }

    #[test]
    fn sessions_without_a_fence_leave_nothing_behind() {
        let mut b = leased_book();
        assert_eq!(b.attach(&attach(1, 1), D), AttachDecision::Serve(None));
        b.call_ended(9, 1, 10);
        assert_eq!(b.entries(), 0);
        // Restored then dropped (an aborted migration on the target): nothing to fence.
        b.restore(
            &SessionSnapshot {
                session_id: 9,
                ..Default::default()
            },
            D,
        );
        b.drop_session(9, 20);
        assert_eq!(b.entries(), 0);
    }

    #[test]
    fn a_session_moving_back_and_forth_keeps_one_entry_and_its_fence() {
        let mut b = leased_book();
        let mut epoch = 1;
        assert_eq!(b.attach(&attach(epoch, 1), D), AttachDecision::Serve(None));
        for round in 0..1_000u64 {
            // Captured here at `epoch`, moved away (Pivot: epoch + 1).
            b.freeze(9, epoch).unwrap();
            b.call_ended(9, 1, round);
            b.keep(
                9,
                &[CallSnapshot {
                    call_id: 1,
                    ..Default::default()
                }],
            );
            b.drop_session(9, round);
            assert_eq!((b.entries(), b.tombstones()), (1, 1));
            assert_eq!(
                b.attach(&attach(epoch, 1), D),
                AttachDecision::Suspend { next_seq: 3 }
            );
            // Moved back (another Pivot), restored here: the fence survives the tombstone.
            epoch += 2;
            b.restore(
                &SessionSnapshot {
                    session_id: 9,
                    calls: vec![CallSnapshot {
                        call_id: 1,
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                D,
            );
            assert_eq!(
                b.attach(&attach(epoch - 2, 1), D),
                AttachDecision::Suspend { next_seq: 3 }
            );
            assert!(matches!(
                b.attach(&attach(epoch, 1), D),
                AttachDecision::Serve(Some(_))
            ));
            assert_eq!((b.entries(), b.tombstones()), (1, 0));
        }
    }

    #[test]
    fn fences_are_bounded_and_a_full_book_refuses_to_fence_rather_than_forget() {
        let mut b = leased_book();
        for s in 0..MAX_FENCES as u64 {
            b.freeze(s, 5).unwrap();
            b.drop_session(s, 1_000);
        }
        assert_eq!((b.tombstones(), b.fenced()), (MAX_FENCES, MAX_FENCES));
        // One more session cannot be fenced; the book is unchanged.
        let e = b.freeze(u64::MAX, 5).unwrap_err();
        assert_eq!(e.code(), "MIGRATION_CAPACITY");
        assert!(!b.is_frozen(u64::MAX));
        assert_eq!(b.entries(), MAX_FENCES);
        // Every remembered fence still holds: a stale ATTACH is suspended, a newer one served.
        let stale = Attach {
            session_id: 7,
            route_epoch: 5,
            ..attach(5, 1)
        };
        assert_eq!(b.attach(&stale, D), AttachDecision::Suspend { next_seq: 3 });
        // A session fenced already can be captured again (it adds no fence).
        b.freeze(8, 6).unwrap();
        b.unfreeze(8, 1_001);
        // Tombstones go after FENCE_MEMORY_MS, and then there is room again.
        b.prune(1_000 + FENCE_MEMORY_MS - 1);
        assert_eq!(b.tombstones(), MAX_FENCES);
        b.prune(1_001 + FENCE_MEMORY_MS);
        assert_eq!(b.entries(), 0);
        b.freeze(u64::MAX, 5).unwrap();
    }

    /// Session `session`'s call `call` at route epoch 1.
    fn attach_of(session: u64, call: u64) -> Attach {
        Attach {
            session_id: session,
            ..attach(1, call)
        }
    }

    #[test]
    fn a_lapsed_lease_suspends_only_the_calls_its_director_relays() {
        let (d1, d2) = (1, 2);
        let mut b = SessionBook::new();
        b.lease_held(d1);
        b.lease_held(d2);
        // Session 9 is relayed by d1 (two calls), session 10 by d2.
        assert_eq!(b.attach(&attach_of(9, 1), d1), AttachDecision::Serve(None));
        assert_eq!(b.attach(&attach_of(9, 2), d1), AttachDecision::Serve(None));
        assert_eq!(b.attach(&attach_of(10, 3), d2), AttachDecision::Serve(None));
        // d1's lease lapses: exactly its calls are to be frozen.
        assert_eq!(b.lease_lapsed(d1), vec![(9, 1), (9, 2)]);
        assert!(!b.is_leased(d1) && b.is_leased(d2));
        // New calls relayed by d1 are suspended; d2's are still served.
        let suspended = AttachDecision::Suspend { next_seq: 3 };
        assert_eq!(b.attach(&attach_of(11, 4), d1), suspended);
        assert_eq!(b.attach(&attach_of(12, 5), d2), AttachDecision::Serve(None));
        assert_eq!(b.open_via(d2), vec![(10, 3), (12, 5)]);
        // A renewed lease serves d1 again.
        b.lease_held(d1);
        assert_eq!(b.attach(&attach_of(11, 4), d1), AttachDecision::Serve(None));
    }

    #[test]
    fn a_director_without_a_lease_is_never_served() {
        let mut b = SessionBook::new();
        let suspended = AttachDecision::Suspend { next_seq: 3 };
        // Never granted (the Register reply has not arrived yet).
        assert_eq!(b.attach(&attach(1, 1), D), suspended);
        // The driver's key for a director it does not know can never hold a lease.
        b.lease_held(UNKNOWN_DIRECTOR);
        assert_eq!(b.attach(&attach(1, 1), UNKNOWN_DIRECTOR), suspended);
        assert_eq!(b.entries(), 0);
    }

    #[test]
    fn forgetting_a_director_drops_only_the_sessions_it_relays() {
        let (d1, d2) = (1, 2);
        let mut b = SessionBook::new();
        b.lease_held(d1);
        b.lease_held(d2);
        b.attach(&attach_of(9, 1), d1);
        b.attach(&attach_of(10, 2), d2);
        // d1's lease lapsed: its call is frozen and kept (as the runtime does), fenced at 1.
        for (session, call) in b.lease_lapsed(d1) {
            b.call_ended(session, call, 5);
            b.keep_relayed(
                session,
                &[CallSnapshot {
                    call_id: call,
                    ..Default::default()
                }],
                d1,
            );
        }
        b.freeze(9, 1).unwrap();
        // Session 11 was migrated here by d1 (restored, no call yet).
        b.restore(
            &SessionSnapshot {
                session_id: 11,
                ..Default::default()
            },
            d1,
        );
        assert_eq!(b.ids(), vec![9, 10, 11]);
        // d1 declared this worker dead: its sessions go, d2's stays; the fence of 9 remains.
        b.forget_director(d1, 10);
        assert_eq!(b.ids(), vec![10]);
        assert_eq!(b.tombstones(), 1);
        assert!(!b.is_leased(d1) && b.is_leased(d2));
        assert_eq!(b.attach(&attach_of(10, 4), d2), AttachDecision::Serve(None));
        // Re-registered with d1: a stale ATTACH of 9 is still fenced, a newer one is served.
        b.lease_held(d1);
        assert_eq!(
            b.attach(&attach_of(9, 1), d1),
            AttachDecision::Suspend { next_seq: 3 }
        );
        assert_eq!(
            b.attach(
                &Attach {
                    route_epoch: 2,
                    ..attach_of(9, 1)
                },
                d1
            ),
            AttachDecision::Serve(None)
        );
    }

    #[test]
    fn a_resumable_session_of_a_forgotten_director_waits_for_a_resume() {
        let mut b = leased_book();
        let resumable = Attach {
            resumable: true,
            ..attach(1, 1)
        };
        assert_eq!(b.attach(&resumable, D), AttachDecision::Serve(None));
        for (session, call) in b.lease_lapsed(D) {
            b.call_ended(session, call, 5);
            b.keep_relayed(session, &[kept(call)], D);
        }
        // The director is gone (a new process at its address): its client may resume the
        // session through another director, so it stays for the resume window.
        b.forget_director(D, 10);
        assert_eq!(b.ids(), vec![9]);
        assert_eq!(b.claim(9, 0, 0), Ok((ClaimStatus::Serving, 1)));
        b.prune(10 + RESUME_WINDOW_MS);
        assert!(b.ids().is_empty(), "forgotten after the window");
    }

    fn kept(call_id: u64) -> CallSnapshot {
        CallSnapshot::for_failover(call_id, "m".into(), Bytes::new(), true, 0, None, None)
    }

    #[test]
    fn a_claim_moves_the_session_to_the_next_generation_once() {
        let mut b = leased_book();
        assert_eq!(
            b.claim(8, 0, 0).unwrap_err().code(),
            "RESUME_UNKNOWN",
            "nothing held"
        );
        assert!(matches!(
            b.attach(&attach(1, 1), D),
            AttachDecision::Serve(None)
        ));
        assert_eq!(b.claim(9, 0, 0), Ok((ClaimStatus::Serving, 1)));
        // The earlier director's ATTACHes are of an earlier generation now: SUPERSEDED, so it
        // gives the session up; the claiming director's are served.
        assert_eq!(
            b.attach(&attach(7, 2), D),
            AttachDecision::Superseded { generation: 1 }
        );
        // Even from a director whose lease does not hold, and for a session known only by
        // the tombstone a claim left.
        assert_eq!(
            b.attach(&attach(7, 2), UNKNOWN_DIRECTOR),
            AttachDecision::Superseded { generation: 1 }
        );
        let unknown_here = Attach {
            session_id: 8,
            ..attach(3, 1)
        };
        assert_eq!(
            b.attach(&unknown_here, D),
            AttachDecision::Superseded { generation: 1 }
        );
        b.detach(9, &[kept(1)], 100);
        let next = generation_epoch(1) + 1;
        assert!(matches!(
            b.attach(&attach(next, 1), D),
            AttachDecision::Serve(Some(c)) if c.call_id == 1
        ));
        // The same credential (generation 0) again: replayed.
        let e = b.claim(9, 0, 0).unwrap_err();
        assert_eq!(e.code(), "RESUME_REPLAYED");
        assert!(e.to_string().contains("generation 1"), "{e}");
        assert_eq!(b.claim(9, 1, 0), Ok((ClaimStatus::Serving, next)));
    }

    #[test]
    fn an_adopted_session_with_no_call_is_kept_for_a_resume_and_claimed() {
        let mut b = leased_book();
        b.adopt(9, 0, D);
        assert_eq!(b.resumable_ids(), [9]);
        // Its director is lost: the session waits for a resume, and a claim finds it.
        b.forget_director(D, 10);
        assert_eq!(b.detached(), 1);
        assert!(b.claim(9, 0, 20).is_ok());
        // A director of an earlier generation cannot adopt it again.
        b.adopt(9, 0, D);
        assert_eq!(b.generation(9), 1);
        b.prune(20 + RESUME_WINDOW_MS);
        assert_eq!(b.len(), 0, "forgotten after the resume window");
    }

    #[test]
    fn detached_calls_wait_for_a_resume_then_are_forgotten() {
        let mut b = leased_book();
        b.attach(&attach(1, 1), D);
        b.call_ended(9, 1, 10);
        b.detach(9, &[kept(1)], 10);
        b.prune(10 + RESUME_WINDOW_MS - 1);
        assert_eq!(b.len(), 1, "kept within the resume window");
        b.prune(10 + RESUME_WINDOW_MS);
        assert_eq!(b.len(), 0, "forgotten after it");
        assert_eq!(b.claim(9, 0, 0).unwrap_err().code(), "RESUME_UNKNOWN");
    }

    #[test]
    fn the_owner_of_a_claimed_session_is_the_latest_one() {
        let a = |w: &str, status, epoch| ClaimAnswer {
            worker: w.into(),
            status,
            epoch,
        };
        assert_eq!(choose_owner(&[]), None);
        let mid = [
            a("src", ClaimStatus::Captured, 3),
            a("dst", ClaimStatus::Restored, 0),
        ];
        assert_eq!(choose_owner(&mid), Some("src"), "either holds the state");
        let after_pivot = [
            a("src", ClaimStatus::Captured, 3),
            a("dst", ClaimStatus::Serving, 5),
        ];
        assert_eq!(choose_owner(&after_pivot), Some("dst"));
        let declared_dead_then_failed_over = [
            a("old", ClaimStatus::Serving, 2),
            a("new", ClaimStatus::Serving, 3),
        ];
        assert_eq!(choose_owner(&declared_dead_then_failed_over), Some("new"));
        let never_served = [
            a("src", ClaimStatus::Captured, 0),
            a("dst", ClaimStatus::Restored, 0),
        ];
        assert_eq!(choose_owner(&never_served), Some("dst"));
        for s in [
            ClaimStatus::Captured,
            ClaimStatus::Restored,
            ClaimStatus::Serving,
        ] {
            assert_eq!(ClaimStatus::from_u8(s.as_u8()), Some(s));
        }
        assert_eq!(ClaimStatus::from_u8(0), None);
    }
}

//! The worker side of migrations (RFC-001 sections 3.2 and 5), sans-IO.
//!
//! Three pieces, each with no I/O, no clock and no randomness of its own:
//! - [`Participant`]: the management plane's rules: every token goes through the one ledger
//!   ([`TokenLedger::check`] for Confirmation and State Capture, [`TokenLedger::redeem`] for
//!   Preparation), prepared and captured migrations, sealing and opening snapshots.
//! - [`SessionBook`]: what the worker holds per session for migration: the epoch fence, the
//!   frozen flag, and the calls kept from a capture or restored from a snapshot that wait to be
//!   re-attached. Its [`SessionBook::attach`] decides whether an ATTACH is served or suspended.
//! - [`Lease`]: the heartbeat lease. A worker whose heartbeats have not been acknowledged for
//!   longer than its lease must assume the director declared it dead and moved its sessions; it
//!   fences itself (suspends every call) so that a session never has two owners producing items.
//!
//! The fence (PROTOCOL.md section 13.5): State Capture carries the route epoch the director froze
//! the session at. An ATTACH at that epoch or older is stale and answered SUSPENDED; a newer one
//! means the migration ended without moving the session (its MigrationAbort may have been lost),
//! so the session is served here again.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use rpcnet_protocol::migration::{
    snapshot, CallSnapshot, ManagementMessage, MigrationAbort, MigrationComplete, MigrationError,
    MigrationRequest, PrepareAck, SessionSnapshot, StateTransfer, TokenKey, TokenLedger,
};
use rpcnet_protocol::Attach;

/// How long a worker remembers the fence of a session it no longer holds, ms: longer than any
/// stale ATTACH can stay in flight on a live cluster link (QUIC's idle timeout is 30 s).
pub const FENCE_MEMORY_MS: u64 = 60_000;

/// What to do with an ATTACH, decided by [`SessionBook::attach`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachDecision {
    /// Answer SUSPENDED(`next_seq`) at once: the ATTACH is stale (fenced), the session is frozen,
    /// or the worker fenced itself.
    Suspend {
        /// The ATTACH's `next_seq`.
        next_seq: u64,
    },
    /// Serve the call, from this kept or restored state if there is one.
    Serve(Option<CallSnapshot>),
}

#[derive(Debug, Default, Clone)]
struct BookEntry {
    /// ATTACHes at or below this route epoch are stale.
    fence: u64,
    frozen: bool,
    /// Calls open here now.
    open: BTreeSet<u64>,
    /// Calls kept from a capture (for an abort) or restored from a snapshot, by call id.
    kept: BTreeMap<u64, CallSnapshot>,
    connection_id: String,
    /// Restored here by a migration: held (even with no call) until dropped.
    held: bool,
    /// When the session was dropped (a tombstone that only keeps the fence), ms.
    dropped_at: Option<u64>,
}

impl BookEntry {
    fn idle(&self) -> bool {
        self.open.is_empty() && self.kept.is_empty() && !self.frozen && !self.held
    }
}

/// A worker's sessions as migration sees them. See the module docs.
#[derive(Debug, Default, Clone)]
pub struct SessionBook {
    sessions: BTreeMap<u64, BookEntry>,
    /// The worker fenced itself (its heartbeat lease lapsed).
    self_fenced: bool,
}

impl SessionBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides an ATTACH (see [`AttachDecision`]); a served call is recorded as open.
    pub fn attach(&mut self, a: &Attach) -> AttachDecision {
        let suspend = AttachDecision::Suspend {
            next_seq: a.next_seq,
        };
        if self.self_fenced {
            return suspend;
        }
        let s = self.sessions.entry(a.session_id).or_default();
        if a.route_epoch <= s.fence {
            return suspend;
        }
        // A newer route than the capture's: the migration ended without moving the session.
        s.frozen = false;
        s.dropped_at = None;
        if s.connection_id.is_empty() {
            s.connection_id = a.connection_id.clone();
        }
        s.open.insert(a.call_id);
        AttachDecision::Serve(s.kept.remove(&a.call_id))
    }

    /// A served call ended (finished, cancelled or frozen).
    pub fn call_ended(&mut self, session_id: u64, call_id: u64, now_ms: u64) {
        if let Some(s) = self.sessions.get_mut(&session_id) {
            s.open.remove(&call_id);
            if s.idle() && s.dropped_at.is_none() {
                s.dropped_at = Some(now_ms);
            }
        }
    }

    /// State Capture begins: the session is frozen and fenced at `epoch`.
    pub fn freeze(&mut self, session_id: u64, epoch: u64) {
        let s = self.sessions.entry(session_id).or_default();
        s.fence = s.fence.max(epoch);
        s.frozen = true;
        s.dropped_at = None;
    }

    /// Keeps captured calls so that an abort can re-attach them here.
    pub fn keep(&mut self, session_id: u64, calls: &[CallSnapshot]) {
        let s = self.sessions.entry(session_id).or_default();
        for c in calls {
            s.kept.insert(c.call_id, c.clone());
        }
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

    /// MigrationAbort on the source: served here again.
    pub fn unfreeze(&mut self, session_id: u64) {
        if let Some(s) = self.sessions.get_mut(&session_id) {
            s.frozen = false;
        }
    }

    /// Installs a restored session (State Transfer on the target).
    pub fn restore(&mut self, snap: &SessionSnapshot) {
        let s = self.sessions.entry(snap.session_id).or_default();
        s.connection_id = snap.connection_id.clone();
        s.dropped_at = None;
        s.held = true;
        for c in &snap.calls {
            s.kept.insert(c.call_id, c.clone());
        }
    }

    /// Forgets a session that lives elsewhere now, keeping its fence as a tombstone for
    /// [`FENCE_MEMORY_MS`].
    pub fn drop_session(&mut self, session_id: u64, now_ms: u64) {
        if let Some(s) = self.sessions.get_mut(&session_id) {
            s.kept.clear();
            s.frozen = false;
            s.held = false;
            s.dropped_at = Some(now_ms);
        }
    }

    /// The worker's lease lapsed: suspend everything until [`SessionBook::unfence_self`].
    pub fn fence_self(&mut self) {
        self.self_fenced = true;
    }

    /// The lease is valid again.
    pub fn unfence_self(&mut self) {
        self.self_fenced = false;
    }

    /// True while the worker is fenced by its own lease.
    pub fn is_self_fenced(&self) -> bool {
        self.self_fenced
    }

    /// The director no longer knows this worker (it re-registers): every session it held was
    /// failed over elsewhere. Drops their state, keeping the fences.
    pub fn forget_all(&mut self, now_ms: u64) {
        for s in self.sessions.values_mut() {
            s.kept.clear();
            s.frozen = false;
            s.held = false;
            s.dropped_at.get_or_insert(now_ms);
        }
    }

    /// Forgets tombstones older than [`FENCE_MEMORY_MS`].
    pub fn prune(&mut self, now_ms: u64) {
        self.sessions.retain(|_, s| {
            !(s.idle() && s.dropped_at.is_some_and(|t| now_ms >= t + FENCE_MEMORY_MS))
        });
    }

    /// Sessions with open, kept or frozen state (tombstones excluded).
    pub fn len(&self) -> usize {
        self.sessions.values().filter(|s| !s.idle()).count()
    }

    /// True when no session has state here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry, tombstones included (for tests of bounded memory).
    pub fn entries(&self) -> usize {
        self.sessions.len()
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

/// This worker's part in a migration that has not ended.
#[derive(Debug, Clone, Copy)]
enum Part {
    Captured(u64),
    Restored(u64),
}

/// The worker's migration rules. See the module docs.
#[derive(Debug, Clone)]
pub struct Participant {
    id: String,
    key: TokenKey,
    secret: Vec<u8>,
    ledger: TokenLedger,
    /// Prepared migrations (token redeemed here): migration id to session id.
    prepared: BTreeMap<u64, u64>,
    parts: BTreeMap<u64, Part>,
}

impl Participant {
    /// The participant of worker `id`, with the cluster's token key and secret (for snapshots).
    pub fn new(id: impl Into<String>, key: TokenKey, secret: &[u8]) -> Self {
        Participant {
            id: id.into(),
            key,
            secret: secret.to_vec(),
            ledger: TokenLedger::new(),
            prepared: BTreeMap::new(),
            parts: BTreeMap::new(),
        }
    }

    /// The worker's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Initiation / Confirmation on the target: the token must be authentic, unexpired and
    /// name this worker as the target. The driver then asks the `onMigrationRequest` hook.
    ///
    /// Errors: the ledger's `TOKEN_*` errors.
    pub fn on_request(
        &mut self,
        req: &MigrationRequest,
        now_ms: u64,
    ) -> Result<(), MigrationError> {
        self.ledger.check(
            &self.key,
            &req.token,
            req.session_id,
            &req.source,
            &self.id,
            now_ms,
        )
    }

    /// Preparation on the target: redeems the single-use token and answers PrepareAck.
    ///
    /// Errors: the ledger's `TOKEN_*` errors, `TOKEN_REPLAYED` for a second redemption.
    pub fn on_prepare(
        &mut self,
        req: &MigrationRequest,
        now_ms: u64,
    ) -> Result<ManagementMessage, MigrationError> {
        self.ledger.redeem(
            &self.key,
            &req.token,
            req.session_id,
            &req.source,
            &self.id,
            now_ms,
        )?;
        self.prepared.insert(req.migration_id, req.session_id);
        Ok(ManagementMessage::PrepareAck(PrepareAck {
            migration_id: req.migration_id,
            ready: true,
        }))
    }

    /// State Capture on the source: the token must name this worker as the source; the session
    /// is frozen and fenced at the request's route epoch. The driver then freezes the calls
    /// (keeping them in the book), asks `captureState` and calls [`Participant::seal`].
    ///
    /// Errors: the ledger's `TOKEN_*` errors.
    pub fn on_capture(
        &mut self,
        book: &mut SessionBook,
        req: &MigrationRequest,
        now_ms: u64,
    ) -> Result<(), MigrationError> {
        self.ledger.check(
            &self.key,
            &req.token,
            req.session_id,
            &self.id,
            &req.target,
            now_ms,
        )?;
        book.freeze(req.session_id, req.route_epoch);
        self.parts
            .insert(req.migration_id, Part::Captured(req.session_id));
        Ok(())
    }

    /// Seals a captured snapshot for the target (StateTransfer), with a 96-bit `nonce` drawn by
    /// the driver.
    ///
    /// Errors: `SNAPSHOT_MALFORMED` when the snapshot cannot be encoded.
    pub fn seal(
        &self,
        snap: &SessionSnapshot,
        migration_id: u64,
        nonce: [u8; 12],
    ) -> Result<ManagementMessage, MigrationError> {
        let sealed = snapshot::seal(snap, &self.secret, migration_id, snap.captured_at_ms, nonce)?;
        Ok(ManagementMessage::StateTransfer(StateTransfer {
            migration_id,
            sealed: Bytes::from(sealed),
        }))
    }

    /// State Transfer on the target: opens the snapshot of a prepared migration (once: a
    /// replayed StateTransfer is refused). The driver then runs `restoreState` and calls
    /// [`Participant::restored`].
    ///
    /// Errors: `MIGRATION_STATE` for an unprepared or already transferred migration;
    /// `SNAPSHOT_TAMPERED` / `SNAPSHOT_MALFORMED` from opening, or a snapshot sealed for
    /// another migration.
    pub fn on_transfer(
        &mut self,
        st: &StateTransfer,
        max_plain_bytes: usize,
    ) -> Result<SessionSnapshot, MigrationError> {
        let Some(session) = self.prepared.remove(&st.migration_id) else {
            return Err(MigrationError::Unprepared {
                migration_id: st.migration_id,
                worker: self.id.clone(),
            });
        };
        let (header, snap) =
            snapshot::open_with_header(&st.sealed, &self.secret, Some(session), max_plain_bytes)?;
        if header.migration_id != st.migration_id {
            return Err(MigrationError::SnapshotTampered {
                detail: format!(
                    "snapshot sealed for migration {} delivered as {}",
                    header.migration_id, st.migration_id
                ),
            });
        }
        Ok(snap)
    }

    /// The restore hook succeeded: installs the calls and answers MigrationComplete.
    pub fn restored(
        &mut self,
        book: &mut SessionBook,
        migration_id: u64,
        snap: &SessionSnapshot,
    ) -> ManagementMessage {
        book.restore(snap);
        self.parts
            .insert(migration_id, Part::Restored(snap.session_id));
        ManagementMessage::Complete(MigrationComplete {
            migration_id,
            session_id: snap.session_id,
        })
    }

    /// MigrationComplete on the source: the session lives on the target now.
    pub fn on_complete(&mut self, book: &mut SessionBook, c: &MigrationComplete, now_ms: u64) {
        self.parts.remove(&c.migration_id);
        book.drop_session(c.session_id, now_ms);
    }

    /// MigrationAbort: the target forgets what it prepared or restored; the source unfreezes
    /// and keeps its captured calls for the relays to re-attach. If this message is lost, the
    /// fence gives the same result at the next ATTACH.
    pub fn on_abort(&mut self, book: &mut SessionBook, a: &MigrationAbort, now_ms: u64) {
        self.prepared.remove(&a.migration_id);
        match self.parts.remove(&a.migration_id) {
            Some(Part::Captured(session)) => book.unfreeze(session),
            Some(Part::Restored(session)) => book.drop_session(session, now_ms),
            None => {}
        }
    }

    /// Migrations this worker takes part in that have not ended (prepared or captured or
    /// restored), for tests of bounded memory.
    pub fn open_parts(&self) -> usize {
        self.prepared.len() + self.parts.len()
    }
}

/// The heartbeat lease (see the module docs). Times are ms on the driver's monotonic scale.
///
/// Safety argument: the director declares a worker dead no earlier than `failover_after_ms` after
/// it *received* the worker's last heartbeat, which was *sent* no later than that. The lease runs
/// from the send time of the last acknowledged heartbeat, for `lease_ms < failover_after_ms`, so
/// the worker has fenced itself before the director can move its sessions.
#[derive(Debug, Clone)]
pub struct Lease {
    lease_ms: u64,
    valid_from: Option<u64>,
}

impl Lease {
    /// A lease of `lease_ms`, first granted by the registration sent at `registered_at_ms`.
    pub fn new(lease_ms: u64, registered_at_ms: u64) -> Self {
        Lease {
            lease_ms,
            valid_from: Some(registered_at_ms),
        }
    }

    /// The director acknowledged the heartbeat sent at `sent_at_ms`.
    pub fn acked(&mut self, sent_at_ms: u64) {
        self.valid_from = Some(self.valid_from.map_or(sent_at_ms, |v| v.max(sent_at_ms)));
    }

    /// True while the lease holds at `now_ms`.
    pub fn is_valid(&self, now_ms: u64) -> bool {
        self.valid_from
            .is_some_and(|t| now_ms < t.saturating_add(self.lease_ms))
    }

    /// When the lease lapses, ms.
    pub fn expires_at(&self) -> Option<u64> {
        self.valid_from.map(|t| t.saturating_add(self.lease_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attach(epoch: u64, call: u64) -> Attach {
        Attach {
            session_id: 9,
            call_id: call,
            next_seq: 3,
            route_epoch: epoch,
            connection_id: "c".into(),
            checkpoint: None,
        }
    }

    #[test]
    fn stale_attaches_are_suspended_and_newer_ones_unfreeze() {
        let mut b = SessionBook::new();
        assert_eq!(b.attach(&attach(1, 1)), AttachDecision::Serve(None));
        b.freeze(9, 1);
        b.keep(
            9,
            &[CallSnapshot {
                call_id: 1,
                ..Default::default()
            }],
        );
        b.call_ended(9, 1, 0);
        assert_eq!(
            b.attach(&attach(1, 2)),
            AttachDecision::Suspend { next_seq: 3 }
        );
        assert_eq!(
            b.attach(&attach(1, 1)),
            AttachDecision::Suspend { next_seq: 3 }
        );
        // The abort was lost; the director re-attaches at epoch 2.
        assert!(matches!(
            b.attach(&attach(2, 1)),
            AttachDecision::Serve(Some(_))
        ));
        assert!(!b.is_frozen(9));
    }

    #[test]
    fn tombstones_keep_the_fence_then_go() {
        let mut b = SessionBook::new();
        b.freeze(9, 4);
        b.drop_session(9, 100);
        assert_eq!(
            b.attach(&attach(4, 1)),
            AttachDecision::Suspend { next_seq: 3 }
        );
        assert_eq!(b.len(), 0);
        b.prune(100 + FENCE_MEMORY_MS);
        assert_eq!(b.entries(), 0);
    }

    #[test]
    fn lease_lapses_without_acks() {
        let mut l = Lease::new(300, 0);
        assert!(l.is_valid(299));
        assert!(!l.is_valid(300));
        l.acked(250);
        assert!(l.is_valid(549));
    }
}

//! The worker side of migrations (RFC-001 sections 3.2 and 5), sans-IO.
//!
//! Three pieces, each with no I/O, no clock and no randomness of its own:
//! - [`Participant`]: the management plane's rules: every token goes through the one ledger
//!   ([`TokenLedger::check`] for Confirmation and State Capture, [`TokenLedger::redeem`] for
//!   Preparation), prepared and captured migrations, sealing and opening snapshots.
//! - [`SessionBook`] (in [`crate::session_book`], re-exported here): what the worker holds per
//!   session: the epoch fence, the freeze, kept and restored calls, per-director leases, claims.
//! - [`Lease`]: the heartbeat lease. A worker whose heartbeats have not been acknowledged for
//!   longer than its lease must assume the director declared it dead and moved its sessions; it
//!   fences itself (suspends every call) so that a session never has two owners producing items.
//!   A worker registered with several directors holds one lease per director, and the fence is
//!   per director too (PROTOCOL.md section 14.1): when director D's lease lapses, the worker stops
//!   producing for the calls D relays (D may declare it dead and fail those sessions over) and
//!   keeps serving the calls other directors relay. The book keeps which director relays each
//!   call ([`DirectorKey`], the driver's number for a director) and which directors' leases hold.
//!
//! The fence (PROTOCOL.md section 13.5): State Capture carries the route epoch the director froze
//! the session at. An ATTACH at that epoch or older is stale and answered SUSPENDED; a newer one
//! means the migration ended without moving the session (its MigrationAbort may have been lost),
//! so the session is served here again.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use rpcnet_protocol::migration::{
    snapshot, ManagementMessage, MigrationAbort, MigrationComplete, MigrationError,
    MigrationRequest, PrepareAck, SessionSnapshot, StateTransfer, TokenClaim, TokenKey,
    TokenLedger,
};

pub use crate::session_book::*;
use rpcnet_protocol::resume::ResumeError;

/// How long a worker remembers a migration it takes part in that has not ended for it (a
/// redeemed token waiting for its StateTransfer, a captured or a restored session waiting for a
/// MigrationAbort that may never come), ms. Longer than any migration may run before its Pivot
/// (the director gives up after its total timeout, 5 s by default) plus the abort's own
/// timeout. A StateTransfer later than this is refused (`MIGRATION_STATE`, the migration aborts);
/// a MigrationAbort later than this leaves a restored copy unused on the target (the route
/// points to the source) until the session closes.
pub const MIGRATION_MEMORY_MS: u64 = 60_000;

/// Most migrations a worker takes part in at once (prepared, captured or restored, not yet
/// ended for it; see [`MIGRATION_MEMORY_MS`]). At the bound, Preparation and State Capture are
/// refused with `MIGRATION_CAPACITY` (the migration aborts, nothing moves) rather than forgetting
/// one early. A later migration of the same session ends the earlier ones (the director runs one
/// migration per session at a time), so the bound counts distinct sessions: more than 1,000
/// sessions per second through one worker for a minute. An entry costs ~50 bytes: ~3 MB.
pub const MAX_OPEN_MIGRATIONS: usize = 65_536;

/// This worker's part in a migration that has not ended.
#[derive(Debug, Clone, Copy)]
enum Part {
    Captured,
    Restored,
}

/// A migration this worker takes part in: its session, its part (`None` while prepared), and
/// since when, ms.
#[derive(Debug, Clone, Copy)]
struct Open {
    session: u64,
    part: Option<Part>,
    since_ms: u64,
    /// The State Capture's route epoch (a captured source), stamped on the sealed snapshot.
    capture_epoch: u64,
}

/// The worker's migration rules. See the module docs.
///
/// Memory: the token ledger (bounded by [`TokenLedger`]'s count and lifetime bounds) and the
/// migrations not yet ended here (bounded by [`MAX_OPEN_MIGRATIONS`] and
/// [`MIGRATION_MEMORY_MS`]).
#[derive(Debug, Clone)]
pub struct Participant {
    id: String,
    key: TokenKey,
    secret: Vec<u8>,
    ledger: TokenLedger,
    /// Migrations not ended here, by migration id: prepared (token redeemed, `part` = `None`),
    /// captured or restored.
    open: BTreeMap<u64, Open>,
    /// `(since_ms, migration id)` of every entry of `open`, oldest first.
    by_time: BTreeSet<(u64, u64)>,
    /// The latest migration id in `open` of each session.
    latest: BTreeMap<u64, u64>,
}

impl Participant {
    /// The participant of worker `id`, with the cluster's token key and secret (for snapshots).
    pub fn new(id: impl Into<String>, key: TokenKey, secret: &[u8]) -> Self {
        Participant {
            id: id.into(),
            key,
            secret: secret.to_vec(),
            ledger: TokenLedger::new(),
            open: BTreeMap::new(),
            by_time: BTreeSet::new(),
            latest: BTreeMap::new(),
        }
    }

    /// The worker's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Forgets, at `now_ms`, migrations older than [`MIGRATION_MEMORY_MS`] and expired tokens.
    /// Called by every management step; the runtime also calls it at every heartbeat.
    pub fn prune(&mut self, now_ms: u64) {
        while let Some(&(since, m)) = self.by_time.first() {
            if now_ms < since.saturating_add(MIGRATION_MEMORY_MS) {
                break;
            }
            self.forget(m);
        }
        self.ledger.prune(now_ms);
    }

    /// Ends this worker's part in `migration_id`; returns what it was.
    fn forget(&mut self, migration_id: u64) -> Option<Open> {
        let o = self.open.remove(&migration_id)?;
        self.by_time.remove(&(o.since_ms, migration_id));
        if self.latest.get(&o.session) == Some(&migration_id) {
            self.latest.remove(&o.session);
        }
        Some(o)
    }

    /// Records this worker's part in `migration_id` of `session` at `now_ms`, ending the earlier
    /// migration of the same session here: the director runs one migration per session at a
    /// time, so it is over, and a late MigrationAbort of it must not undo this one.
    fn record(&mut self, migration_id: u64, session: u64, part: Option<Part>, now_ms: u64) {
        self.forget(migration_id);
        match self.latest.get(&session).copied() {
            Some(earlier) if earlier < migration_id => {
                self.forget(earlier);
                self.latest.insert(session, migration_id);
            }
            Some(_) => {} // a late message of an earlier migration: kept until it expires
            None => {
                self.latest.insert(session, migration_id);
            }
        }
        self.open.insert(
            migration_id,
            Open {
                session,
                part,
                since_ms: now_ms,
                capture_epoch: 0,
            },
        );
        self.by_time.insert((now_ms, migration_id));
    }

    /// Errors with `MIGRATION_CAPACITY` when [`MAX_OPEN_MIGRATIONS`] are open and
    /// `migration_id` is not one of them.
    fn has_room(&self, migration_id: u64) -> Result<(), MigrationError> {
        if self.open.len() >= MAX_OPEN_MIGRATIONS && !self.open.contains_key(&migration_id) {
            return Err(MigrationError::Capacity {
                what: "open migrations",
                limit: MAX_OPEN_MIGRATIONS,
            });
        }
        Ok(())
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
            &TokenClaim::new(req.session_id, &req.source, &self.id),
            now_ms,
        )
    }

    /// Preparation on the target: redeems the single-use token and answers PrepareAck.
    ///
    /// Errors: the ledger's `TOKEN_*` errors, `TOKEN_REPLAYED` for a second redemption,
    /// `MIGRATION_CAPACITY` when the ledger or [`MAX_OPEN_MIGRATIONS`] is full (nothing is
    /// recorded then).
    pub fn on_prepare(
        &mut self,
        req: &MigrationRequest,
        now_ms: u64,
    ) -> Result<ManagementMessage, MigrationError> {
        self.prune(now_ms);
        self.has_room(req.migration_id)?;
        self.ledger.redeem(
            &self.key,
            &req.token,
            &TokenClaim::new(req.session_id, &req.source, &self.id),
            now_ms,
        )?;
        self.record(req.migration_id, req.session_id, None, now_ms);
        Ok(ManagementMessage::PrepareAck(PrepareAck {
            migration_id: req.migration_id,
            ready: true,
        }))
    }

    /// State Capture on the source: the token must name this worker as the source; the session
    /// is frozen and fenced at the request's route epoch. The driver then freezes the calls
    /// (keeping them in the book), asks `captureState` and calls [`Participant::seal`].
    ///
    /// Errors: the ledger's `TOKEN_*` errors; `MIGRATION_CAPACITY` when [`MAX_OPEN_MIGRATIONS`]
    /// or the book's [`MAX_FENCES`] is reached (nothing is frozen then).
    pub fn on_capture(
        &mut self,
        book: &mut SessionBook,
        req: &MigrationRequest,
        now_ms: u64,
    ) -> Result<(), MigrationError> {
        self.ledger.check(
            &self.key,
            &req.token,
            &TokenClaim::new(req.session_id, &self.id, &req.target),
            now_ms,
        )?;
        self.prune(now_ms);
        book.prune(now_ms);
        let (generation, current) = (
            rpcnet_protocol::resume::epoch_generation(req.route_epoch),
            book.generation(req.session_id),
        );
        if generation < current {
            return Err(MigrationError::Superseded {
                session_id: req.session_id,
                generation,
                current,
            });
        }
        self.has_room(req.migration_id)?;
        book.freeze(req.session_id, req.route_epoch)?;
        self.record(
            req.migration_id,
            req.session_id,
            Some(Part::Captured),
            now_ms,
        );
        if let Some(o) = self.open.get_mut(&req.migration_id) {
            o.capture_epoch = req.route_epoch;
        }
        Ok(())
    }

    /// Seals a captured snapshot for the target (StateTransfer), with a 96-bit `nonce` drawn by
    /// the driver, stamped with the capture's route epoch ([`SessionSnapshot::route_epoch`]).
    ///
    /// Errors: `SNAPSHOT_MALFORMED` when the snapshot cannot be encoded.
    pub fn seal(
        &self,
        snap: &SessionSnapshot,
        migration_id: u64,
        nonce: [u8; 12],
    ) -> Result<ManagementMessage, MigrationError> {
        let mut snap = snap.clone();
        if let Some(o) = self.open.get(&migration_id) {
            snap.route_epoch = snap.route_epoch.max(o.capture_epoch);
        }
        let sealed = snapshot::seal(
            &snap,
            &self.secret,
            migration_id,
            snap.captured_at_ms,
            nonce,
        )?;
        Ok(ManagementMessage::StateTransfer(StateTransfer {
            migration_id,
            sealed: Bytes::from(sealed),
        }))
    }

    /// State Transfer on the target: opens the snapshot of a prepared migration (once: a
    /// replayed StateTransfer is refused). The driver then runs `restoreState` and calls
    /// [`Participant::restored`].
    ///
    /// Errors: `MIGRATION_STATE` for an unprepared or already transferred migration (or one
    /// prepared more than [`MIGRATION_MEMORY_MS`] ago); `SNAPSHOT_TAMPERED` /
    /// `SNAPSHOT_MALFORMED` from opening, or a snapshot sealed for another migration.
    pub fn on_transfer(
        &mut self,
        st: &StateTransfer,
        max_plain_bytes: usize,
    ) -> Result<SessionSnapshot, MigrationError> {
        let session = match self.open.get(&st.migration_id) {
            Some(o) if o.part.is_none() => o.session,
            _ => {
                return Err(MigrationError::Unprepared {
                    migration_id: st.migration_id,
                    worker: self.id.clone(),
                })
            }
        };
        self.forget(st.migration_id);
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

    /// The restore hook succeeded at `now_ms`: installs the calls (the session migrated here by
    /// director `via`, see [`SessionBook::restore`]) and answers MigrationComplete.
    pub fn restored(
        &mut self,
        book: &mut SessionBook,
        migration_id: u64,
        snap: &SessionSnapshot,
        via: DirectorKey,
        now_ms: u64,
    ) -> ManagementMessage {
        book.restore(snap, via);
        self.record(migration_id, snap.session_id, Some(Part::Restored), now_ms);
        ManagementMessage::Complete(MigrationComplete {
            migration_id,
            session_id: snap.session_id,
        })
    }

    /// MigrationComplete on the source: the session lives on the target now.
    pub fn on_complete(&mut self, book: &mut SessionBook, c: &MigrationComplete, now_ms: u64) {
        // Only a migration still open here moves the session away: a resume claim ended the
        // migrations of its session here (a director that lost the session may still send
        // their MigrationComplete), and so did a later migration of it.
        if self.forget(c.migration_id).is_some() {
            book.drop_session(c.session_id, now_ms);
        }
    }

    /// A director claims a session for a resume ([`SessionBook::claim`], PROTOCOL.md section
    /// 15.6): besides the book's move to the next generation, every migration of the session
    /// still open here ends, so that a late MigrationComplete or MigrationAbort of the director
    /// that lost the session changes nothing.
    ///
    /// Errors: those of [`SessionBook::claim`].
    pub fn on_claim(
        &mut self,
        book: &mut SessionBook,
        session_id: u64,
        generation: u32,
        now_ms: u64,
    ) -> Result<(ClaimStatus, u64), ResumeError> {
        let claimed = book.claim(session_id, generation, now_ms);
        let ended: Vec<u64> = self
            .open
            .iter()
            .filter(|(_, o)| o.session == session_id)
            .map(|(id, _)| *id)
            .collect();
        for id in ended {
            self.forget(id);
        }
        claimed
    }

    /// MigrationAbort: the target forgets what it prepared or restored; the source unfreezes
    /// and keeps its captured calls for the relays to re-attach. If this message is lost, the
    /// fence gives the same result at the next ATTACH.
    pub fn on_abort(&mut self, book: &mut SessionBook, a: &MigrationAbort, now_ms: u64) {
        match self.forget(a.migration_id) {
            Some(Open {
                session,
                part: Some(Part::Captured),
                ..
            }) => book.unfreeze(session, now_ms),
            Some(Open {
                session,
                part: Some(Part::Restored),
                ..
            }) => book.drop_session(session, now_ms),
            _ => {}
        }
    }

    /// Migrations this worker takes part in that have not ended (prepared or captured or
    /// restored), for tests of bounded memory.
    pub fn open_parts(&self) -> usize {
        self.open.len()
    }

    /// Redeemed, unexpired tokens the ledger remembers, for tests of bounded memory.
    pub fn redeemed_tokens(&self) -> usize {
        self.ledger.len()
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

    /// The lease's length, ms, as the director granted it.
    pub fn lease_ms(&self) -> u64 {
        self.lease_ms
    }

    /// When the lease lapses, ms.
    pub fn expires_at(&self) -> Option<u64> {
        self.valid_from.map(|t| t.saturating_add(self.lease_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session_book::tests::{attach, leased_book, D};
    use rpcnet_protocol::migration::CallSnapshot;

    fn key() -> TokenKey {
        TokenKey::from_bytes(&[7u8; 32])
    }

    /// A migration request for session `session` from `source` to `target`, token issued at
    /// `now` with nonce `n`.
    fn request(
        m: u64,
        session: u64,
        source: &str,
        target: &str,
        n: u64,
        now: u64,
    ) -> MigrationRequest {
        let mut nonce = [0u8; 32];
        nonce[..8].copy_from_slice(&n.to_be_bytes());
        let token = key()
            .issue_with_nonce(nonce, session, source, target, now, 5_000)
            .unwrap();
        MigrationRequest {
            migration_id: m,
            session_id: session,
            source: source.into(),
            target: target.into(),
            reason: rpcnet_protocol::migration::MigrationReason::Admin,
            token,
            requested_at_ms: now,
            route_epoch: m,
        }
    }

    /// Runs migration `m` of session 9 from `src` to `dst` to its Pivot at `now`.
    fn migrate(
        m: u64,
        (src, src_book): (&mut Participant, &mut SessionBook),
        (dst, dst_book): (&mut Participant, &mut SessionBook),
        now: u64,
    ) {
        let req = request(m, 9, &src.id.clone(), &dst.id.clone(), m, now);
        dst.on_request(&req, now).unwrap();
        dst.on_prepare(&req, now).unwrap();
        src.on_capture(src_book, &req, now).unwrap();
        let snap = SessionSnapshot {
            session_id: 9,
            calls: src_book.kept_calls(9),
            ..Default::default()
        };
        let ManagementMessage::StateTransfer(st) = src.seal(&snap, m, [0; 12]).unwrap() else {
            panic!("seal answers a StateTransfer");
        };
        let snap = dst.on_transfer(&st, 1 << 20).unwrap();
        dst.restored(dst_book, m, &snap, D, now);
        src.on_complete(
            src_book,
            &MigrationComplete {
                migration_id: m,
                session_id: 9,
            },
            now,
        );
    }

    /// Workers `a` and `b` with their books; session 9 has call 1 open on `a`.
    fn two_workers() -> (Participant, Participant, SessionBook, SessionBook) {
        let mut book_a = leased_book();
        book_a.attach(&attach(1, 1), D);
        (
            Participant::new("a", key(), b"secret"),
            Participant::new("b", key(), b"secret"),
            book_a,
            leased_book(),
        )
    }

    #[test]
    fn back_and_forth_migrations_keep_bounded_state() {
        let (mut a, mut b, mut book_a, mut book_b) = two_workers();
        for m in 1..=2_000u64 {
            let now = m * 3; // faster than tokens expire and fences are forgotten
            if m % 2 == 1 {
                migrate(m, (&mut a, &mut book_a), (&mut b, &mut book_b), now);
            } else {
                migrate(m, (&mut b, &mut book_b), (&mut a, &mut book_a), now);
            }
            for (p, book) in [(&a, &book_a), (&b, &book_b)] {
                assert!(
                    p.open_parts() <= 1,
                    "{} open parts after {m}",
                    p.open_parts()
                );
                assert!(book.entries() <= 1, "{} entries after {m}", book.entries());
            }
        }
        // The ledgers hold the tokens of the last 5 s only (a token lives 5,000 ms).
        assert!(
            b.redeemed_tokens() <= 5_000 / 3 / 2 + 2,
            "{}",
            b.redeemed_tokens()
        );
    }

    #[test]
    fn a_late_abort_of_an_ended_migration_does_not_undo_a_later_one() {
        let (mut a, mut b, mut book_a, mut book_b) = two_workers();
        book_a.call_ended(9, 1, 0);
        book_a.keep(
            9,
            &[CallSnapshot {
                call_id: 1,
                ..Default::default()
            }],
        );
        migrate(1, (&mut a, &mut book_a), (&mut b, &mut book_b), 10);
        // Migration 2 takes it back: b captures it and holds its calls for a possible abort.
        let req = request(2, 9, "b", "a", 2, 20);
        a.on_prepare(&req, 20).unwrap();
        b.on_capture(&mut book_b, &req, 20).unwrap();
        assert_eq!(book_b.kept_calls(9).len(), 1);
        // A MigrationAbort of migration 1 arrives late: it must not drop what migration 2 holds.
        b.on_abort(
            &mut book_b,
            &MigrationAbort {
                migration_id: 1,
                reason: "late".into(),
            },
            21,
        );
        assert!(book_b.is_frozen(9));
        assert_eq!(book_b.kept_calls(9).len(), 1);
        // Migration 2's own abort unfreezes b, which keeps the calls to re-attach them.
        b.on_abort(
            &mut book_b,
            &MigrationAbort {
                migration_id: 2,
                reason: "test".into(),
            },
            22,
        );
        assert!(!book_b.is_frozen(9));
        assert_eq!(book_b.kept_calls(9).len(), 1);
    }

    #[test]
    fn open_migrations_are_bounded_by_count_then_forgotten_with_time() {
        let mut p = Participant::new("t", key(), b"secret");
        // Tokens live 5 s and the ledger holds DEFAULT_MAX_REDEEMED_TOKENS of them; prepared
        // migrations live MIGRATION_MEMORY_MS: fill the open set in batches 5 s apart.
        let batch = rpcnet_protocol::migration::token::DEFAULT_MAX_REDEEMED_TOKENS as u64;
        let mut m = 0;
        let mut now = 0;
        while (p.open_parts() as u64) < MAX_OPEN_MIGRATIONS as u64 {
            for _ in 0..batch.min(MAX_OPEN_MIGRATIONS as u64 - p.open_parts() as u64) {
                m += 1;
                p.on_prepare(&request(m, m, "s", "t", m, now), now).unwrap();
            }
            now += 5_000;
        }
        assert_eq!(p.open_parts(), MAX_OPEN_MIGRATIONS);
        // Full: a new migration is refused before its token is redeemed (it can be retried).
        let late = request(m + 1, m + 1, "s", "t", m + 1, now);
        let e = p.on_prepare(&late, now).unwrap_err();
        assert_eq!(e.code(), "MIGRATION_CAPACITY");
        assert_eq!(p.open_parts(), MAX_OPEN_MIGRATIONS);
        let mut book = leased_book();
        let capture = request(m + 2, m + 2, "t", "x", m + 2, now);
        let e = p.on_capture(&mut book, &capture, now).unwrap_err();
        assert_eq!(e.code(), "MIGRATION_CAPACITY");
        assert!(!book.is_frozen(m + 2));
        // The first batch is forgotten MIGRATION_MEMORY_MS after it was prepared.
        let later = MIGRATION_MEMORY_MS;
        let retry = request(m + 1, m + 1, "s", "t", m + 3, later);
        p.on_prepare(&retry, later).unwrap();
        assert_eq!(p.open_parts(), MAX_OPEN_MIGRATIONS - batch as usize + 1);
    }

    #[test]
    fn a_capture_refused_for_a_full_book_freezes_nothing() {
        let mut p = Participant::new("s", key(), b"secret");
        let mut book = leased_book();
        for s in 100..100 + MAX_FENCES as u64 {
            book.freeze(s, 1).unwrap();
            book.drop_session(s, 0);
        }
        let req = request(1, 9, "s", "t", 1, 10);
        let e = p.on_capture(&mut book, &req, 10).unwrap_err();
        assert_eq!(e.code(), "MIGRATION_CAPACITY");
        assert!(!book.is_frozen(9));
        assert_eq!(p.open_parts(), 0);
        // Once the tombstones are forgotten the capture goes through.
        let req = request(2, 9, "s", "t", 2, FENCE_MEMORY_MS);
        p.on_capture(&mut book, &req, FENCE_MEMORY_MS).unwrap();
        assert!(book.is_frozen(9));
    }

    #[test]
    fn lease_lapses_without_acks() {
        let mut l = Lease::new(300, 0);
        assert!(l.is_valid(299));
        assert!(!l.is_valid(300));
        l.acked(250);
        assert!(l.is_valid(549));
    }

    #[test]
    fn a_director_of_an_earlier_generation_cannot_capture_a_resumed_session() {
        let (mut src, _dst, mut book, _) = two_workers();
        book.claim(9, 0, 0).unwrap(); // resumed on another director: generation 1
        let req = request(1, 9, "a", "b", 0, 5);
        let e = src.on_capture(&mut book, &req, 5).unwrap_err();
        assert_eq!(e.code(), "MIGRATION_STATE");
        assert!(e.to_string().contains("stale"), "{e}");
        assert!(!book.is_frozen(9), "nothing froze");
    }
}

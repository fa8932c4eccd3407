//! The sessions a worker holds (DESIGN.md: a session is the server side of one client
//! connection), as far as migration needs them. What is decided lives in the sans-IO
//! [`SessionBook`] (the epoch fence, the freeze, the calls kept from a capture or restored from a
//! snapshot, whether an ATTACH is served or suspended, the lease of each director); this module
//! adds the channels through which State Capture (RFC-001 phase 4) and a lapsed lease reach each
//! open call's writer task, and numbers the directors the book tells apart.
//!
//! Which director relays a call: the director's cluster link to the worker's user port presents
//! the director's cluster leaf certificate, and so does the director's management port to the
//! worker's management client. A director is known by the SHA-256 fingerprint of that leaf
//! ([`crate::cluster::ClusterCredentials::peer_fingerprint`]); each process run issues a fresh
//! leaf, so a restarted director is a new director. The worker's membership learns the
//! fingerprint when it connects to a director ([`Sessions::director_key`]); a link whose
//! fingerprint it does not know belongs to no director it registered with, and its ATTACHes are
//! answered SUSPENDED (PROTOCOL.md section 14.1).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::error::RpcError;
use crate::mgmt::now_ms;
use rpcnet_protocol::migration::{CallSnapshot, SessionSnapshot};
use rpcnet_protocol::resume::ResumeError;
use rpcnet_protocol::Attach;
use rpcnet_session::participant::{AttachDecision, DirectorKey, SessionBook, UNKNOWN_DIRECTOR};
use rpcnet_session::session_book::ClaimStatus;

/// A request to a call's writer task to stop at the next item boundary and report its state.
pub(crate) type FreezeRequest = oneshot::Sender<CallSnapshot>;

#[derive(Default)]
struct State {
    book: SessionBook,
    /// Open streaming calls: (session, call id) -> channel to freeze its writer.
    writers: HashMap<(u64, u64), mpsc::UnboundedSender<FreezeRequest>>,
    /// The book's key of each director, by the fingerprint of its cluster leaf certificate.
    directors: HashMap<String, DirectorKey>,
    /// The last key given to a director (keys start at 1; 0 is `UNKNOWN_DIRECTOR`).
    last_director: DirectorKey,
}

/// Registry of a worker's sessions.
#[derive(Default)]
pub struct Sessions {
    inner: Mutex<State>,
}

impl Sessions {
    /// Decides an ATTACH (PROTOCOL.md sections 13.5 and 14.1) that arrived on a cluster link
    /// whose peer presented the leaf certificate with fingerprint `director` (64 hex digits):
    /// serve it (with the state kept or restored for the call, if any) or answer SUSPENDED.
    pub(crate) fn attach(&self, a: &Attach, director: Option<&str>) -> AttachDecision {
        let mut inner = self.inner.lock().unwrap();
        let via = director
            .and_then(|f| inner.directors.get(f).copied())
            .unwrap_or(UNKNOWN_DIRECTOR);
        inner.book.attach(a, via)
    }

    /// The book's key of the director whose cluster leaf certificate has fingerprint
    /// `fingerprint` (64 hex digits), numbered on first use.
    pub fn director_key(&self, fingerprint: &str) -> DirectorKey {
        let mut inner = self.inner.lock().unwrap();
        if let Some(&key) = inner.directors.get(fingerprint) {
            return key;
        }
        inner.last_director += 1;
        let key = inner.last_director;
        inner.directors.insert(fingerprint.to_string(), key);
        key
    }

    /// The book's key of the director with this fingerprint, [`UNKNOWN_DIRECTOR`] if it has none.
    pub fn known_director(&self, fingerprint: &str) -> DirectorKey {
        let inner = self.inner.lock().unwrap();
        inner
            .directors
            .get(fingerprint)
            .copied()
            .unwrap_or(UNKNOWN_DIRECTOR)
    }

    /// Forgets the key of a director that is gone (replaced by a new process): its links are
    /// unknown from now on, so whatever they still send is answered SUSPENDED.
    pub fn forget_director_key(&self, fingerprint: &str) {
        self.inner.lock().unwrap().directors.remove(fingerprint);
    }

    /// Registers the writer of a served streaming call; the receiver delivers freeze requests.
    pub(crate) fn open_call(
        &self,
        session_id: u64,
        call_id: u64,
    ) -> mpsc::UnboundedReceiver<FreezeRequest> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.inner.lock().unwrap();
        inner.writers.insert((session_id, call_id), tx);
        rx
    }

    /// Forgets a call that ended (finished, cancelled or frozen). Its writer is forgotten only
    /// if no later serve of the same call registered its own (a re-attach can be served before
    /// the stream it replaces has ended): the caller has dropped its receiver first, so its own
    /// registration is the closed one.
    pub(crate) fn close_call(&self, session_id: u64, call_id: u64) {
        let mut inner = self.inner.lock().unwrap();
        let key = (session_id, call_id);
        if inner.writers.get(&key).is_some_and(|tx| tx.is_closed()) {
            inner.writers.remove(&key);
        }
        inner.book.call_ended(session_id, call_id, now_ms());
    }

    /// Runs `f` on the sans-IO book (for the participant's management-plane rules).
    pub fn with_book<R>(&self, f: impl FnOnce(&mut SessionBook) -> R) -> R {
        f(&mut self.inner.lock().unwrap().book)
    }

    /// Number of sessions with open, kept or frozen state.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().book.len()
    }

    /// True when the worker holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ids of the sessions held now.
    pub fn ids(&self) -> Vec<u64> {
        self.inner.lock().unwrap().book.ids()
    }

    /// State Capture: freezes every open streaming call of the session at an item boundary and
    /// returns the session's calls: the ones frozen now plus any kept from an earlier capture of
    /// it (a repeated capture gets the whole state). The session must already be fenced
    /// ([`rpcnet_session::Participant::on_capture`]). Frozen calls stay in the book so that an
    /// abort re-attaches them here and nothing is lost.
    ///
    /// Errors: `INTERNAL` if a call's writer does not answer within `timeout`.
    pub async fn capture(
        &self,
        session_id: u64,
        timeout: Duration,
    ) -> Result<SessionSnapshot, RpcError> {
        let waiters = self.freeze_writers(|s, _| s == session_id);
        let (frozen, late) = collect(waiters, timeout).await;
        let calls: Vec<CallSnapshot> = frozen.into_iter().map(|(_, c)| c).collect();
        let mut inner = self.inner.lock().unwrap();
        inner.book.keep(session_id, &calls);
        if let Some(call_id) = late {
            return Err(RpcError::internal(format!(
                "call {call_id} did not freeze in time for state capture"
            )));
        }
        Ok(SessionSnapshot {
            session_id,
            connection_id: inner.book.connection_id(session_id),
            captured_at_ms: 0,
            route_epoch: 0,
            app_state: Default::default(),
            calls: inner.book.kept_calls(session_id),
        })
    }

    /// A director claims the session for a resume with the credential's `generation`
    /// (PROTOCOL.md section 15.6): `participant` ends the session's open migrations here
    /// ([`rpcnet_session::Participant::on_claim`]) and the book moves it to the next
    /// generation, then every open
    /// call of it is frozen at an item boundary and kept, with its unacknowledged items, for the
    /// claiming director to re-attach. Returns what this worker holds and the highest route
    /// epoch it served the session under.
    ///
    /// Errors: `RESUME_UNKNOWN` (nothing held here), `RESUME_REPLAYED` (a later generation).
    pub async fn claim(
        &self,
        participant: &std::sync::Mutex<rpcnet_session::Participant>,
        session_id: u64,
        generation: u32,
        timeout: Duration,
    ) -> Result<(ClaimStatus, u64), ResumeError> {
        let claimed = self.with_book(|b| {
            participant
                .lock()
                .unwrap()
                .on_claim(b, session_id, generation, now_ms())
        })?;
        self.detach_writers(|s, _| s == session_id, timeout).await;
        Ok(claimed)
    }

    /// Freezes the writers `which` selects and keeps their calls detached (waiting
    /// [`rpcnet_session::session_book::RESUME_WINDOW_MS`] for a resume).
    async fn detach_writers(&self, which: impl Fn(u64, u64) -> bool, timeout: Duration) {
        let waiters = self.freeze_writers(which);
        let (frozen, _) = collect(waiters, timeout).await;
        let now = now_ms();
        let mut inner = self.inner.lock().unwrap();
        for (session, c) in frozen {
            inner.book.detach(session, &[c], now);
        }
    }

    /// A resumable call's director link was lost (its stream or connection): keeps the frozen
    /// call for a resume.
    pub(crate) fn detach(&self, session_id: u64, call: CallSnapshot) {
        let now = now_ms();
        self.inner
            .lock()
            .unwrap()
            .book
            .detach(session_id, &[call], now);
    }

    /// Freezes the open calls `calls` (`(session, call)` pairs, as
    /// [`SessionBook::lease_lapsed`] returns them for director `via`) at an item boundary and keeps
    /// their state in the book for when `via`'s lease holds again. Waits at most `timeout` for
    /// the writers; a call that ends on its own meanwhile is not kept.
    pub async fn freeze_calls(&self, via: DirectorKey, calls: Vec<(u64, u64)>, timeout: Duration) {
        let calls: std::collections::HashSet<(u64, u64)> = calls.into_iter().collect();
        let waiters = self.freeze_writers(|session, call| calls.contains(&(session, call)));
        let mut by_session: HashMap<u64, Vec<CallSnapshot>> = HashMap::new();
        let (frozen, _) = collect(waiters, timeout).await;
        for (session, c) in frozen {
            by_session.entry(session).or_default().push(c);
        }
        let mut inner = self.inner.lock().unwrap();
        for (session, calls) in by_session {
            inner.book.keep_relayed(session, &calls, via);
        }
    }

    /// Sends a freeze request to every open writer of the `(session, call)` pairs `which`
    /// selects.
    fn freeze_writers(
        &self,
        which: impl Fn(u64, u64) -> bool,
    ) -> Vec<(u64, u64, oneshot::Receiver<CallSnapshot>)> {
        let inner = self.inner.lock().unwrap();
        let mut waiters = Vec::new();
        for (&(session, call), tx) in &inner.writers {
            if which(session, call) {
                let (ftx, frx) = oneshot::channel();
                if tx.send(ftx).is_ok() {
                    waiters.push((session, call, frx));
                }
            }
        }
        waiters
    }
}

/// Waits for frozen calls until `timeout`; returns them, each with its session (call ids are
/// unique only within a session: a resumable session's client numbers its own), and the id of
/// one that was late.
async fn collect(
    waiters: Vec<(u64, u64, oneshot::Receiver<CallSnapshot>)>,
    timeout: Duration,
) -> (Vec<(u64, CallSnapshot)>, Option<u64>) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut calls = Vec::new();
    let mut late = None;
    for (session, call_id, w) in waiters {
        match tokio::time::timeout_at(deadline, w).await {
            Ok(Ok(call)) => calls.push((session, call)),
            Ok(Err(_)) => {} // the call ended on its own meanwhile
            Err(_) => late = Some(call_id),
        }
    }
    (calls, late)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// Two sessions whose clients both numbered their call 0 (resumable sessions number their
    /// own calls): each frozen call is kept under its own session.
    #[tokio::test]
    async fn frozen_calls_are_kept_under_their_own_session_when_call_ids_repeat() {
        let sessions = Sessions::default();
        let mut writers = [(1u64, b"one"), (2u64, b"two")].map(|(session, state)| {
            let rx = sessions.open_call(session, 0);
            (rx, Bytes::from_static(state))
        });
        let answer = async {
            for (rx, state) in &mut writers {
                let freeze = rx.recv().await.expect("a freeze request");
                let _ = freeze.send(CallSnapshot {
                    call_id: 0,
                    checkpoint: Some(rpcnet_protocol::Checkpoint {
                        seq: 5,
                        read: 0,
                        state: state.clone(),
                    }),
                    ..CallSnapshot::default()
                });
            }
        };
        let freeze = sessions.freeze_calls(7, vec![(1, 0), (2, 0)], Duration::from_secs(5));
        tokio::join!(freeze, answer);
        let kept = |session| {
            sessions.with_book(|b| b.kept_calls(session))[0]
                .checkpoint
                .clone()
                .unwrap()
                .state
        };
        assert_eq!(kept(1), Bytes::from_static(b"one"));
        assert_eq!(kept(2), Bytes::from_static(b"two"));
    }
}

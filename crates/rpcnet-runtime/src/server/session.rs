//! The sessions a worker holds (DESIGN.md: a session is the server side of one client
//! connection), as far as migration needs them. What is decided lives in the sans-IO
//! [`SessionBook`] (the epoch fence, the freeze, the calls kept from a capture or restored from a
//! snapshot, whether an ATTACH is served or suspended); this module adds the channels through
//! which State Capture (RFC-001 phase 4) reaches each open call's writer task.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::error::RpcError;
use crate::mgmt::now_ms;
use rpcnet_protocol::migration::{CallSnapshot, SessionSnapshot};
use rpcnet_protocol::Attach;
use rpcnet_session::participant::{AttachDecision, SessionBook};

/// A request to a call's writer task to stop at the next item boundary and report its state.
pub(crate) type FreezeRequest = oneshot::Sender<CallSnapshot>;

#[derive(Default)]
struct State {
    book: SessionBook,
    /// Open streaming calls: (session, call id) -> channel to freeze its writer.
    writers: HashMap<(u64, u64), mpsc::UnboundedSender<FreezeRequest>>,
}

/// Registry of a worker's sessions.
#[derive(Default)]
pub struct Sessions {
    inner: Mutex<State>,
}

impl Sessions {
    /// Decides an ATTACH (PROTOCOL.md section 13.5): serve it (with the state kept or restored
    /// for the call, if any) or answer SUSPENDED.
    pub(crate) fn attach(&self, a: &Attach) -> AttachDecision {
        self.inner.lock().unwrap().book.attach(a)
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

    /// Forgets a call that ended (finished, cancelled or frozen).
    pub(crate) fn close_call(&self, session_id: u64, call_id: u64) {
        let mut inner = self.inner.lock().unwrap();
        inner.writers.remove(&(session_id, call_id));
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
        let waiters = self.freeze_writers(|s| s == session_id);
        let (calls, late) = collect(waiters, timeout).await;
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
            app_state: Default::default(),
            calls: inner.book.kept_calls(session_id),
        })
    }

    /// The worker's heartbeat lease lapsed: fences the worker (every ATTACH is suspended) and
    /// freezes every open call, keeping its state for when the lease holds again.
    pub async fn fence_self(&self, timeout: Duration) {
        self.inner.lock().unwrap().book.fence_self();
        let waiters = self.freeze_writers(|_| true);
        let mut by_session: HashMap<u64, Vec<CallSnapshot>> = HashMap::new();
        let sessions: HashMap<u64, u64> = waiters.iter().map(|(s, c, _)| (*c, *s)).collect();
        let (calls, _) = collect(waiters, timeout).await;
        for c in calls {
            by_session.entry(sessions[&c.call_id]).or_default().push(c);
        }
        let mut inner = self.inner.lock().unwrap();
        for (session, calls) in by_session {
            inner.book.keep(session, &calls);
        }
    }

    /// Sends a freeze request to every open writer of the sessions `which` selects.
    fn freeze_writers(
        &self,
        which: impl Fn(u64) -> bool,
    ) -> Vec<(u64, u64, oneshot::Receiver<CallSnapshot>)> {
        let inner = self.inner.lock().unwrap();
        let mut waiters = Vec::new();
        for (&(session, call), tx) in &inner.writers {
            if which(session) {
                let (ftx, frx) = oneshot::channel();
                if tx.send(ftx).is_ok() {
                    waiters.push((session, call, frx));
                }
            }
        }
        waiters
    }
}

/// Waits for frozen calls until `timeout`; returns them and the id of one that was late.
async fn collect(
    waiters: Vec<(u64, u64, oneshot::Receiver<CallSnapshot>)>,
    timeout: Duration,
) -> (Vec<CallSnapshot>, Option<u64>) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut calls = Vec::new();
    let mut late = None;
    for (_, call_id, w) in waiters {
        match tokio::time::timeout_at(deadline, w).await {
            Ok(Ok(call)) => calls.push(call),
            Ok(Err(_)) => {} // the call ended on its own meanwhile
            Err(_) => late = Some(call_id),
        }
    }
    (calls, late)
}

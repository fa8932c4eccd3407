//! The sessions a worker holds (DESIGN.md: a session is the server side of one client connection),
//! as far as migration needs them: which streaming calls are open, how to freeze each at an item
//! boundary for State Capture (RFC-001 phase 4), and the calls restored from a snapshot that wait
//! for the director to re-attach them (phase 6).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::error::RpcError;
use rpcnet_protocol::migration::{CallSnapshot, SessionSnapshot};

/// A request to a call's writer task to stop at the next item boundary and report its state.
pub(crate) type FreezeRequest = oneshot::Sender<CallSnapshot>;

#[derive(Default)]
struct Session {
    connection_id: String,
    /// Open streaming calls: call id -> channel to freeze its writer.
    calls: HashMap<u64, mpsc::UnboundedSender<FreezeRequest>>,
    /// Calls restored from a snapshot (or kept after a capture, for an abort), by call id.
    restored: HashMap<u64, CallSnapshot>,
    frozen: bool,
}

/// Registry of a worker's sessions.
#[derive(Default)]
pub struct Sessions {
    inner: Mutex<HashMap<u64, Session>>,
}

impl Sessions {
    /// Registers an open streaming call; the returned receiver delivers freeze requests.
    pub(crate) fn open_call(
        &self,
        session_id: u64,
        connection_id: &str,
        call_id: u64,
    ) -> mpsc::UnboundedReceiver<FreezeRequest> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.inner.lock().unwrap();
        let s = inner.entry(session_id).or_default();
        if s.connection_id.is_empty() {
            s.connection_id = connection_id.to_string();
        }
        s.calls.insert(call_id, tx);
        rx
    }

    /// Forgets a call that ended.
    pub(crate) fn close_call(&self, session_id: u64, call_id: u64) {
        let mut inner = self.inner.lock().unwrap();
        if let Some(s) = inner.get_mut(&session_id) {
            s.calls.remove(&call_id);
            if s.calls.is_empty() && s.restored.is_empty() && !s.frozen {
                inner.remove(&session_id);
            }
        }
    }

    /// Takes the restored state of a call the director re-attaches, if this worker has one.
    pub(crate) fn take_restored(&self, session_id: u64, call_id: u64) -> Option<CallSnapshot> {
        let mut inner = self.inner.lock().unwrap();
        inner.get_mut(&session_id)?.restored.remove(&call_id)
    }

    /// True between State Capture and MigrationComplete or MigrationAbort: calls that arrive
    /// for the session then (and have no captured state here) belong to the next owner.
    pub(crate) fn is_frozen(&self, session_id: u64) -> bool {
        self.inner
            .lock()
            .unwrap()
            .get(&session_id)
            .is_some_and(|s| s.frozen)
    }

    /// MigrationAbort on the source: the session is served here again (its captured calls
    /// re-attach from their kept state).
    pub fn unfreeze(&self, session_id: u64) {
        if let Some(s) = self.inner.lock().unwrap().get_mut(&session_id) {
            s.frozen = false;
        }
    }

    /// Number of sessions with open or restored calls.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().len()
    }

    /// True when the worker holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ids of the sessions held now.
    pub fn ids(&self) -> Vec<u64> {
        self.inner.lock().unwrap().keys().copied().collect()
    }

    /// State Capture: freezes every open streaming call of the session at an item boundary and
    /// collects their state. The captured calls are also kept here, so that if the migration
    /// aborts the director can re-attach them to this worker and nothing is lost.
    ///
    /// Errors: `INTERNAL` if a call's writer does not answer within `timeout`.
    pub async fn capture(
        &self,
        session_id: u64,
        timeout: Duration,
    ) -> Result<SessionSnapshot, RpcError> {
        let (connection_id, waiters) = {
            let mut inner = self.inner.lock().unwrap();
            let s = inner.entry(session_id).or_default();
            s.frozen = true;
            let mut waiters = Vec::new();
            for (call_id, tx) in &s.calls {
                let (ftx, frx) = oneshot::channel();
                if tx.send(ftx).is_ok() {
                    waiters.push((*call_id, tx.clone(), frx));
                }
            }
            (s.connection_id.clone(), waiters)
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut calls = Vec::new();
        let mut late = None;
        for (call_id, tx, w) in waiters {
            match tokio::time::timeout_at(deadline, w).await {
                Ok(Ok(call)) => calls.push((tx, call)),
                Ok(Err(_)) => {} // the call ended on its own meanwhile
                Err(_) => late = Some(call_id),
            }
        }
        // Keep every call that did freeze, even if another did not: an abort re-attaches them here
        // from their captured state, so their pending items are not lost.
        let mut inner = self.inner.lock().unwrap();
        let s = inner.entry(session_id).or_default();
        for (tx, c) in &calls {
            if s.calls
                .get(&c.call_id)
                .is_some_and(|cur| cur.same_channel(tx))
            {
                s.calls.remove(&c.call_id);
            }
            s.restored.insert(c.call_id, c.clone());
        }
        if let Some(call_id) = late {
            return Err(RpcError::internal(format!(
                "call {call_id} did not freeze in time for state capture"
            )));
        }
        let mut calls: Vec<CallSnapshot> = calls.into_iter().map(|(_, c)| c).collect();
        calls.sort_by_key(|c| c.call_id);
        Ok(SessionSnapshot {
            session_id,
            connection_id,
            captured_at_ms: 0,
            app_state: Default::default(),
            calls,
        })
    }

    /// Installs a restored session (State Transfer on the target, RFC-001 phase 5).
    pub fn restore(&self, snapshot: &SessionSnapshot) {
        let mut inner = self.inner.lock().unwrap();
        let s = inner.entry(snapshot.session_id).or_default();
        s.connection_id = snapshot.connection_id.clone();
        for c in &snapshot.calls {
            s.restored.insert(c.call_id, c.clone());
        }
    }

    /// Drops a session that now lives elsewhere (MigrationComplete on the source, or an abort on
    /// the target).
    pub fn drop_session(&self, session_id: u64) {
        self.inner.lock().unwrap().remove(&session_id);
    }
}

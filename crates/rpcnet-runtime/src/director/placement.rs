//! Where a session goes: the default policy (fewest sessions, then lowest id) and the embedder's
//! `selectTarget` hook, asked for a new session, a migration target and a failover target.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

use super::Inner;

/// A placement question for the embedder's `selectTarget` policy hook, answered with
/// [`super::Director::answer_select`]. Asked for a new session (`exclude` = none), a migration
/// target (`exclude` = the owner) and a failover (`exclude` = the dead owner).
#[derive(Debug, Clone)]
pub struct SelectTarget {
    /// Hook id.
    pub id: u64,
    /// The session to place.
    pub session_id: u64,
    /// The worker that must not be chosen, if any.
    pub exclude: Option<String>,
    /// Live, non-draining candidates with their session counts.
    pub workers: Vec<(String, usize)>,
}

/// How long the director waits for `selectTarget` before using the default policy, ms.
pub const SELECT_HOOK_TIMEOUT_MS: u64 = 1_000;

/// Sessions owned by each worker, kept up to date as routes change (so that placing a session
/// does not walk every session: a drain of n sessions places n of them).
#[derive(Default)]
pub(crate) struct Load(Mutex<HashMap<String, usize>>);

impl Load {
    /// One session moved from `from` to `to` (`""` for none: opened or closed).
    pub(crate) fn moved(&self, from: &str, to: &str) {
        let mut load = self.0.lock().unwrap();
        if let Some(n) = load.get_mut(from) {
            *n -= 1;
            if *n == 0 {
                load.remove(from);
            }
        }
        if !to.is_empty() {
            *load.entry(to.to_string()).or_insert(0) += 1;
        }
    }

    /// Sessions per worker now.
    pub(crate) fn snapshot(&self) -> HashMap<String, usize> {
        self.0.lock().unwrap().clone()
    }
}

impl Inner {
    /// Sessions owned by each worker now.
    pub(crate) fn load(&self) -> HashMap<String, usize> {
        self.placement.snapshot()
    }

    /// Live, non-draining workers other than `exclude`, with their session counts, ordered by the
    /// default policy: fewest sessions first (ties: lowest id).
    fn candidates(&self, exclude: Option<&str>) -> Vec<(String, usize)> {
        let load = self.load();
        let workers = self.workers.lock().unwrap();
        let mut candidates: Vec<(String, usize)> = workers
            .values()
            .filter(|w| w.alive() && !w.is_draining() && Some(w.id.as_str()) != exclude)
            .map(|w| (w.id.clone(), load.get(&w.id).copied().unwrap_or(0)))
            .collect();
        candidates.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        candidates
    }

    /// Chooses a worker for `session_id`: the embedder's `selectTarget` hook when set (its answer
    /// must be one of the candidates), else, or if it does not answer within
    /// [`SELECT_HOOK_TIMEOUT_MS`], the default policy. `None` when no worker is a candidate.
    pub(crate) async fn select_worker(
        &self,
        session_id: u64,
        exclude: Option<&str>,
    ) -> Option<String> {
        let candidates = self.candidates(exclude);
        let default = candidates.first().map(|c| c.0.clone());
        if candidates.is_empty() || !self.select_hook.load(Ordering::SeqCst) {
            return default;
        }
        let id = self.next_hook.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.select_waiters.lock().unwrap().insert(id, tx);
        self.select_questions.push(SelectTarget {
            id,
            session_id,
            exclude: exclude.map(str::to_string),
            workers: candidates.clone(),
        });
        let answer = tokio::time::timeout(Duration::from_millis(SELECT_HOOK_TIMEOUT_MS), rx).await;
        self.select_waiters.lock().unwrap().remove(&id);
        match answer {
            Ok(Ok(Some(choice))) if candidates.iter().any(|c| c.0 == choice) => Some(choice),
            Ok(Ok(Some(choice))) => {
                tracing::warn!(%choice, "selectTarget chose a worker that is not a candidate; using the default");
                default
            }
            _ => default,
        }
    }
}

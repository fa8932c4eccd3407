//! [`EventQueue`]: the one way the runtime hands events (calls, hooks, director events) to an
//! embedder. Producers push from any task; the embedder takes them in batches, so a JavaScript
//! embedder crosses the N-API boundary once per batch (DESIGN.md: cross into JS once per batch).

use tokio::sync::{mpsc, Mutex};

use crate::cancel::Canceller;

/// An unbounded multi-producer queue drained in batches by one consumer at a time.
pub struct EventQueue<T> {
    tx: mpsc::UnboundedSender<T>,
    rx: Mutex<mpsc::UnboundedReceiver<T>>,
}

impl<T> Default for EventQueue<T> {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Mutex::new(rx),
        }
    }
}

impl<T> EventQueue<T> {
    /// Appends an event (never blocks; dropped only if the queue itself is gone).
    pub fn push(&self, event: T) {
        let _ = self.tx.send(event);
    }

    /// Waits for at least one event and returns up to `max` (at least 1) of them, or an empty
    /// batch once `closed` has fired.
    pub async fn next_batch(&self, max: usize, closed: &Canceller) -> Vec<T> {
        let mut out = Vec::new();
        let mut rx = self.rx.lock().await;
        tokio::select! {
            _ = rx.recv_many(&mut out, max.max(1)) => {}
            _ = closed.cancelled() => {}
        }
        out
    }

    /// Drops the queued events, and every event pushed from now on. A [`EventQueue::next_batch`]
    /// in progress must end first (its `closed` fired), since it holds the receiver.
    pub async fn close(&self) {
        let mut rx = self.rx.lock().await;
        rx.close();
        while rx.try_recv().is_ok() {}
    }
}

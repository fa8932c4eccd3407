//! The bounded hand-off between a streaming handler (which produces items and checkpoints) and
//! the task that writes them to the call's QUIC stream. It is what keeps a slow reader from making the server
//! buffer without limit: once `high_water_items` or `high_water_bytes` is reached, [`ItemQueue::push`]
//! answers [`PushStatus::Full`] and the producer waits in [`ItemQueue::writable`] until the writer
//! has drained the queue below half of both marks.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;
use rpcnet_protocol::Metadata;
use tokio::sync::Notify;

use crate::error::RpcError;

/// Answer of [`ItemQueue::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushStatus {
    /// Accepted; the producer may push more now.
    Ready,
    /// Accepted, but the queue is at its high-water mark: wait for `writable()` before pushing more.
    Full,
    /// Not accepted: the call has ended (cancelled, deadline, connection lost or already ended).
    Closed,
}

/// How the producer ended the stream, and the trailers to send before the final frame
/// (PROTOCOL.md section 5.6; empty for none).
#[derive(Debug, Clone)]
pub enum Ending {
    /// Normal end: an END frame follows the last item.
    End(Metadata),
    /// Failure: an ERROR frame follows the last item.
    Error(RpcError, Metadata),
}

/// One queued entry, in production order: the session core's [`Produced`](rpcnet_session::Produced) (an item, or a
/// checkpoint placed between the items queued before and after it).
pub use rpcnet_session::Produced as Entry;

/// What the writer takes out of the queue.
#[derive(Debug)]
pub enum Taken {
    /// Entries in production order (one or more).
    Items(Vec<Entry>),
    /// All items were taken and the producer ended the stream.
    Ended(Ending),
}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Entry>,
    bytes: usize,
    ending: Option<Ending>,
    closed: bool,
}

/// Bounded multi-item queue with producer-side backpressure (see module docs).
#[derive(Debug)]
pub struct ItemQueue {
    state: Mutex<State>,
    high_water_items: usize,
    high_water_bytes: usize,
    readable: Notify,
    writable: Notify,
}

impl ItemQueue {
    /// A queue that reports `Full` at `high_water_items` items or `high_water_bytes` bytes
    /// (both at least 1).
    pub fn new(high_water_items: usize, high_water_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            high_water_items: high_water_items.max(1),
            high_water_bytes: high_water_bytes.max(1),
            readable: Notify::new(),
            writable: Notify::new(),
        }
    }

    fn full(&self, s: &State) -> bool {
        s.items.len() >= self.high_water_items || s.bytes >= self.high_water_bytes
    }

    /// Appends one item. Never drops an accepted item; see [`PushStatus`].
    pub fn push(&self, item: Bytes) -> PushStatus {
        self.push_entry(Entry::Item(item))
    }

    /// Appends the response headers (sent before the items queued after them).
    pub fn headers(&self, metadata: Metadata) -> PushStatus {
        self.push_entry(Entry::Headers(metadata))
    }

    /// Appends a checkpoint (placed between the items queued before and after it), taken
    /// after the handler read `read` client items (0 for a call without them).
    pub fn checkpoint(&self, state: Bytes, read: u64) -> PushStatus {
        self.push_entry(Entry::Checkpoint { state, read })
    }

    fn push_entry(&self, item: Entry) -> PushStatus {
        let mut s = self.state.lock().unwrap();
        if s.closed || s.ending.is_some() {
            return PushStatus::Closed;
        }
        s.bytes += item.len();
        s.items.push_back(item);
        let full = self.full(&s);
        drop(s);
        self.readable.notify_one();
        if full {
            PushStatus::Full
        } else {
            PushStatus::Ready
        }
    }

    /// Records the producer's end of the stream. Returns false if the call was already closed or
    /// ended.
    pub fn finish(&self, ending: Ending) -> bool {
        let mut s = self.state.lock().unwrap();
        if s.closed || s.ending.is_some() {
            return false;
        }
        s.ending = Some(ending);
        drop(s);
        self.readable.notify_one();
        true
    }

    /// Closes the queue from the writer's side (cancelled, deadline, connection lost): further
    /// pushes answer `Closed` and a waiting producer is woken.
    pub fn close(&self) {
        self.state.lock().unwrap().closed = true;
        self.writable.notify_waiters();
        self.writable.notify_one();
    }

    /// Closes the queue and takes every entry not yet written (for a migration's state capture).
    /// The producer's ending, if any, is returned too.
    pub fn close_and_drain(&self) -> (Vec<Entry>, Option<Ending>) {
        let mut s = self.state.lock().unwrap();
        s.closed = true;
        let items: Vec<Entry> = s.items.drain(..).collect();
        s.bytes = 0;
        let ending = s.ending.take();
        drop(s);
        self.writable.notify_waiters();
        self.writable.notify_one();
        (items, ending)
    }

    /// True once [`ItemQueue::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.state.lock().unwrap().closed
    }

    /// Number of items waiting to be written.
    pub fn len(&self) -> usize {
        self.state.lock().unwrap().items.len()
    }

    /// True when no item is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until the producer may push again: the queue is below half of both high-water marks,
    /// or closed. Returns false when closed.
    pub async fn writable(&self) -> bool {
        loop {
            let notified = self.writable.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let s = self.state.lock().unwrap();
                if s.closed {
                    return false;
                }
                if s.items.len() <= self.high_water_items / 2
                    && s.bytes <= self.high_water_bytes / 2
                {
                    return true;
                }
            }
            notified.await;
        }
    }

    /// Waits for items (takes all of them, up to `max_items`) or the producer's ending.
    pub async fn take(&self, max_items: usize) -> Taken {
        loop {
            let notified = self.readable.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.state.lock().unwrap();
                if !s.items.is_empty() {
                    let n = s.items.len().min(max_items.max(1));
                    let items: Vec<Entry> = s.items.drain(..n).collect();
                    s.bytes -= items.iter().map(Entry::len).sum::<usize>();
                    let wake = s.items.len() <= self.high_water_items / 2
                        && s.bytes <= self.high_water_bytes / 2;
                    drop(s);
                    if wake {
                        self.writable.notify_waiters();
                    }
                    return Taken::Items(items);
                }
                if let Some(ending) = s.ending.take() {
                    return Taken::Ended(ending);
                }
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_at_high_water_and_writable_after_drain() {
        let q = ItemQueue::new(4, 1 << 20);
        for _ in 0..3 {
            assert_eq!(q.push(Bytes::from_static(b"x")), PushStatus::Ready);
        }
        assert_eq!(q.push(Bytes::from_static(b"x")), PushStatus::Full);
        match q.take(2).await {
            Taken::Items(v) => assert_eq!(v.len(), 2),
            other => panic!("unexpected {other:?}"),
        }
        assert!(q.writable().await);
        assert_eq!(q.len(), 2);
    }

    #[tokio::test]
    async fn byte_mark_counts_bytes() {
        let q = ItemQueue::new(1000, 10);
        assert_eq!(q.push(Bytes::from(vec![0u8; 6])), PushStatus::Ready);
        assert_eq!(q.push(Bytes::from(vec![0u8; 6])), PushStatus::Full);
    }

    #[tokio::test]
    async fn ending_comes_after_items_and_close_rejects_pushes() {
        let q = ItemQueue::new(8, 1 << 20);
        q.push(Bytes::from_static(b"a"));
        assert!(q.finish(Ending::End(Metadata::new())));
        assert_eq!(q.push(Bytes::from_static(b"b")), PushStatus::Closed);
        assert!(matches!(q.take(8).await, Taken::Items(v) if v.len() == 1));
        assert!(matches!(q.take(8).await, Taken::Ended(Ending::End(_))));
        let q2 = ItemQueue::new(1, 1);
        q2.close();
        assert_eq!(q2.push(Bytes::from_static(b"a")), PushStatus::Closed);
        assert!(!q2.writable().await);
    }
}

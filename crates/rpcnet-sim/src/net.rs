//! The simulated clock and network: a priority queue of timed deliveries. Ties are broken by
//! insertion order, so a schedule is a pure function of its seed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A queue of `(time, event)`, popped in time order (insertion order among equal times).
pub struct Queue<E> {
    heap: BinaryHeap<Reverse<(u64, u64, Slot<E>)>>,
    next: u64,
}

/// Wraps an event so the heap never compares events themselves.
struct Slot<E>(E);

impl<E> PartialEq for Slot<E> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<E> Eq for Slot<E> {}
impl<E> PartialOrd for Slot<E> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Slot<E> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<E> Queue<E> {
    /// An empty queue.
    pub fn new() -> Self {
        Queue {
            heap: BinaryHeap::new(),
            next: 0,
        }
    }

    /// Schedules `event` at `at`.
    pub fn push(&mut self, at: u64, event: E) {
        self.heap.push(Reverse((at, self.next, Slot(event))));
        self.next += 1;
    }

    /// Drops every scheduled event `keep` returns false for (what dies with a process).
    pub fn retain(&mut self, mut keep: impl FnMut(&E) -> bool) {
        self.heap.retain(|Reverse((_, _, Slot(e)))| keep(e));
    }

    /// The earliest event and its time.
    pub fn pop(&mut self) -> Option<(u64, E)> {
        self.heap.pop().map(|Reverse((at, _, Slot(e)))| (at, e))
    }
}

/// A deterministic random source (PCG, seeded from the schedule's seed).
pub struct Dice(rand_pcg::Pcg64);

impl Dice {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        use rand_core::SeedableRng;
        Dice(rand_pcg::Pcg64::seed_from_u64(seed))
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        use rand_core::Rng;
        if hi <= lo {
            return lo;
        }
        lo + self.0.next_u64() % (hi - lo + 1)
    }

    /// True with probability `permille` / 1000.
    pub fn chance(&mut self, permille: u32) -> bool {
        self.range(0, 999) < u64::from(permille)
    }

    /// Random bytes.
    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        use rand_core::Rng;
        let mut b = [0u8; N];
        self.0.fill_bytes(&mut b);
        b
    }
}

//! [`Backoff`]: jittered exponential backoff between attempts to reach a peer, shared by a
//! worker reconnecting to its directors and a client resuming its session, so that the processes
//! that lost the same peer do not all come back at once.

use ring::rand::{SecureRandom, SystemRandom};

/// The n-th delay (from 0) is drawn uniformly from `[d/2, 3d/2]` with
/// `d = min(min_ms * 2^n, max_ms)` (±50% jitter). [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min_ms: u64,
    max_ms: u64,
    base_ms: u64,
}

impl Backoff {
    /// A backoff whose delays grow from around `min_ms` to around `max_ms`.
    pub(crate) fn new(min_ms: u64, max_ms: u64) -> Self {
        Backoff {
            min_ms,
            max_ms,
            base_ms: min_ms,
        }
    }

    /// The next delay, ms, jittered by `random` (any value; the caller draws it, e.g. with
    /// [`random_u32`]).
    pub(crate) fn next_delay(&mut self, random: u32) -> u64 {
        let d = self.base_ms;
        self.base_ms = (d * 2).min(self.max_ms);
        d / 2 + u64::from(random) % (d + 1)
    }

    /// Back to the first delay.
    pub(crate) fn reset(&mut self) {
        self.base_ms = self.min_ms;
    }
}

/// A random `u32` for jitter (the time's nanoseconds if the system has no randomness).
pub(crate) fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    match SystemRandom::new().fill(&mut b) {
        Ok(()) => u32::from_le_bytes(b),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_half_jitter() {
        let (min, max) = (50, 2_000);
        let mut b = Backoff::new(min, max);
        let mut base = min;
        for _ in 0..10 {
            // The lowest and the highest draw of each step.
            let mut lo = b.clone();
            let mut hi = b.clone();
            assert_eq!(lo.next_delay(0), base / 2);
            assert_eq!(hi.next_delay(base as u32), base / 2 + base);
            let d = b.next_delay(random_u32());
            assert!((base / 2..=base * 3 / 2).contains(&d), "{d} for {base}");
            base = (base * 2).min(max);
        }
        assert_eq!(base, max);
        b.reset();
        assert!(b.next_delay(random_u32()) <= min * 3 / 2);
    }
}

//! [`Canceller`]: a one-shot flag that async work can wait on and any thread can trip. Used for
//! client-side call cancellation (AbortSignal) and server shutdown.

/// A cancellation flag a caller can trip from any thread while a call is pending.
#[derive(Debug, Default)]
pub struct Canceller {
    flag: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl Canceller {
    /// A canceller that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires: pending and later [`Canceller::cancelled`] futures complete. Idempotent.
    pub fn cancel(&self) {
        self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// True once fired.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Completes when [`Canceller::cancel`] has been called.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

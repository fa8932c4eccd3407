//! [`StreamHandle`]: an [`ItemStream`] that one thread pulls while another may cancel it (the
//! binding cancels from JavaScript's thread while a pull is pending on the runtime).

use bytes::Bytes;

use super::{ItemStream, ResponseMetadata};
use crate::error::RpcError;

/// A shareable, cancellable [`ItemStream`]: `next_batch` and `cancel` may be called from
/// different threads (the binding calls `cancel` from JavaScript's thread while a `next_batch` is
/// pending on the runtime). Cancellation is sent to the server at once, whether or not a
/// `next_batch` is running.
pub struct StreamHandle {
    stream: tokio::sync::Mutex<ItemStream>,
    cancelled: std::sync::atomic::AtomicBool,
    wake: tokio::sync::Notify,
    /// The response metadata as of the last `next_batch`, readable while another pull runs.
    metadata: std::sync::Mutex<ResponseMetadata>,
}

impl StreamHandle {
    /// Wraps a stream.
    pub fn new(stream: ItemStream) -> Self {
        Self {
            stream: tokio::sync::Mutex::new(stream),
            cancelled: Default::default(),
            wake: tokio::sync::Notify::new(),
            metadata: Default::default(),
        }
    }

    /// The response headers and trailers received by the last [`StreamHandle::next_batch`]
    /// (headers before the first item, trailers just before the end or the error).
    pub fn response_metadata(&self) -> ResponseMetadata {
        self.metadata.lock().unwrap().clone()
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// As [`ItemStream::next_batch`]; after [`StreamHandle::cancel`] it fails with `CANCELLED`.
    pub async fn next_batch(&self, max_items: usize) -> Result<Option<Vec<Bytes>>, RpcError> {
        let mut stream = self.stream.lock().await;
        if self.is_cancelled() {
            return Err(stream.cancelled());
        }
        let result = tokio::select! {
            r = stream.next_batch(max_items) => r,
            _ = self.wake.notified() => Err(stream.cancelled()),
        };
        let latest = stream.response_metadata();
        let mut kept = self.metadata.lock().unwrap();
        if *kept != latest {
            *kept = latest;
        }
        drop(kept);
        if self.is_cancelled() {
            return Err(stream.cancelled());
        }
        result
    }

    /// The response of a client-streaming call (see [`ItemStream::response`]); after
    /// [`StreamHandle::cancel`] it fails with `CANCELLED`.
    pub async fn response(&self) -> Result<Bytes, RpcError> {
        let mut stream = self.stream.lock().await;
        if self.is_cancelled() {
            return Err(stream.cancelled());
        }
        let result = tokio::select! {
            r = stream.response() => r,
            _ = self.wake.notified() => Err(stream.cancelled()),
        };
        *self.metadata.lock().unwrap() = stream.response_metadata();
        result
    }

    /// Cancels the call (STOP_SENDING + RESET_STREAM with code CANCELLED). Idempotent.
    pub fn cancel(&self) {
        self.cancelled
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_one();
        match self.stream.try_lock() {
            Ok(mut stream) => stream.cancel(),
            Err(_) => {
                tracing::debug!("cancel while a batch is pending: the pending next_batch sends it")
            }
        }
    }
}

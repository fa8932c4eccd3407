//! `setLogHandler`: forwards the runtime's log records (rpcnet_runtime::log::set_sink) to a
//! JavaScript function, in batches, on a thread of its own so that logging never waits for
//! JavaScript. The thread-safe function is weak: a handler does not keep the process alive.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TrySendError};
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use rpcnet_runtime::log::{set_sink, LogRecord};

/// Records queued for JavaScript at most; more are dropped (and counted) rather than block the
/// threads that log.
const QUEUE: usize = 4096;
/// Records per call into JavaScript at most.
const BATCH: usize = 256;

/// Batches waiting in napi's queue at most: the forwarding thread then waits, the channel fills
/// and further records are dropped (counted) instead of growing memory.
const PENDING_BATCHES: usize = 4;

/// Counts handler changes, so that a forwarding thread whose JavaScript side went away clears
/// the sink only if it is still the current one.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// One log record (see `LogRecord` in src/log.ts).
#[napi(object)]
pub struct NativeLogRecord {
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: String,
    /// The Rust module that logged it.
    pub target: String,
    /// The message.
    pub message: String,
    /// The other fields as `[name, value]` pairs.
    pub fields: Vec<Vec<String>>,
    /// When, ms since the Unix epoch.
    pub timestamp_ms: f64,
}

type Handler = ThreadsafeFunction<
    Vec<NativeLogRecord>,
    (),
    Vec<NativeLogRecord>,
    Status,
    false,
    true,
    PENDING_BATCHES,
>;

/// Sends the runtime's log records (those `RPCNET_LOG` lets through) to `handler` in batches
/// instead of stderr, or back to stderr with `null`. Replaces an earlier handler.
#[napi(ts_args_type = "handler: ((records: Array<NativeLogRecord>) => void) | null")]
pub fn set_log_handler(handler: Option<Function<Vec<NativeLogRecord>, ()>>) -> Result<()> {
    let generation = GENERATION.fetch_add(1, Ordering::SeqCst) + 1;
    let Some(handler) = handler else {
        set_sink(None);
        return Ok(());
    };
    let tsfn: Handler = handler
        .build_threadsafe_function::<Vec<NativeLogRecord>>()
        .callee_handled::<false>()
        .weak::<true>()
        .max_queue_size::<PENDING_BATCHES>()
        .build()?;
    let (tx, rx) = sync_channel::<LogRecord>(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let counted = dropped.clone();
    std::thread::Builder::new()
        .name("rpcnet-log".into())
        .spawn(move || forward(rx, tsfn, counted, generation))
        .map_err(|e| Error::from_reason(format!("cannot start the log thread: {e}")))?;
    set_sink(Some(Arc::new(move |record| {
        if let Err(TrySendError::Full(_)) = tx.try_send(record) {
            dropped.fetch_add(1, Ordering::Relaxed);
        }
    })));
    Ok(())
}

/// Until the sink is replaced (the channel closes): batches of records to JavaScript, with a
/// record saying how many were dropped when the queue was full. If the JavaScript side goes away
/// (its environment closes), logs go back to stderr, unless another handler was set since.
fn forward(rx: Receiver<LogRecord>, tsfn: Handler, dropped: Arc<AtomicU64>, generation: u64) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![native(first)];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(native(r)),
                Err(_) => break,
            }
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            batch.push(NativeLogRecord {
                level: "WARN".into(),
                target: "rpcnet_napi::log".into(),
                message: format!("{lost} log records were dropped: the handler did not keep up"),
                fields: Vec::new(),
                timestamp_ms: batch.last().map_or(0.0, |r| r.timestamp_ms),
            });
        }
        if tsfn.call(batch, ThreadsafeFunctionCallMode::Blocking) == Status::Closing {
            if GENERATION.load(Ordering::SeqCst) == generation {
                set_sink(None);
            }
            return;
        }
    }
}

fn native(r: LogRecord) -> NativeLogRecord {
    NativeLogRecord {
        level: r.level.to_owned(),
        target: r.target,
        message: r.message,
        fields: r.fields.into_iter().map(|(k, v)| vec![k, v]).collect(),
        timestamp_ms: r.timestamp_ms as f64,
    }
}

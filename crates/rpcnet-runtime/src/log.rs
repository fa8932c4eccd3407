//! Logging: `tracing` events of the runtime written to stderr, filtered by the `RPCNET_LOG`
//! environment variable (tracing-subscriber's `EnvFilter` syntax, e.g. `RPCNET_LOG=rpcnet=debug`).
//! Unset means warnings and errors only. `RPCNET_LOG_FORMAT=json` writes one JSON object per
//! line (tracing-subscriber's JSON format) instead of text; text has ANSI colours only when
//! stderr is a terminal. An embedding application can take the records instead
//! ([`set_sink`]): the same filter applies, and nothing is written to stderr while a sink is set.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Environment variable that holds the log filter (tracing-subscriber `EnvFilter` directives).
pub const LOG_ENV: &str = "RPCNET_LOG";

/// Environment variable that chooses the log format: `text` (the default) or `json`.
pub const LOG_FORMAT_ENV: &str = "RPCNET_LOG_FORMAT";

/// One log event, as a sink receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: &'static str,
    /// The module that logged it, e.g. `rpcnet_runtime::server`.
    pub target: String,
    /// The message.
    pub message: String,
    /// The other fields, in order, values formatted with `Debug` (strings unquoted).
    pub fields: Vec<(String, String)>,
    /// When it was logged, ms since the Unix epoch.
    pub timestamp_ms: u64,
}

/// Where log records go instead of stderr. It is called on the thread that logged, so it must
/// be quick and must not block (hand the record to a queue).
pub type LogSink = Arc<dyn Fn(LogRecord) + Send + Sync>;

static SINK: RwLock<Option<LogSink>> = RwLock::new(None);
static HAS_SINK: AtomicBool = AtomicBool::new(false);

/// Sends the records that pass the filter to `sink` instead of stderr, or back to stderr with
/// `None`. Replaces any earlier sink.
pub fn set_sink(sink: Option<LogSink>) {
    init();
    let mut current = SINK.write().unwrap_or_else(|e| e.into_inner());
    HAS_SINK.store(sink.is_some(), Ordering::SeqCst);
    *current = sink;
}

/// Hands events to the sink, when one is set.
struct SinkLayer;

impl<S: tracing::Subscriber> Layer<S> for SinkLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if !HAS_SINK.load(Ordering::Relaxed) {
            return;
        }
        let Some(sink) = SINK.read().ok().and_then(|s| s.clone()) else {
            return;
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let timestamp_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        sink(LogRecord {
            level: meta.level().as_str(),
            target: meta.target().to_owned(),
            message: fields.message,
            fields: fields.rest,
            timestamp_ms,
        });
    }
}

/// The fields of one event: the message apart, the others in order.
#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.rest.push((field.name().to_owned(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.rest.push((field.name().to_owned(), text));
        }
    }
}

/// Installs the global subscriber once; later calls are no-ops. Never fails: if another subscriber
/// is already installed (an embedding application's), that one is kept. An unknown
/// [`LOG_FORMAT_ENV`] value logs a warning and falls back to text.
pub fn init() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env(LOG_ENV)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let format = std::env::var(LOG_FORMAT_ENV).unwrap_or_default();
        let stderr = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal());
        let stderr = if format == "json" {
            stderr.json().boxed()
        } else {
            stderr.boxed()
        };
        // While a sink is set, nothing goes to stderr.
        let stderr = stderr.with_filter(tracing_subscriber::filter::filter_fn(|_| {
            !HAS_SINK.load(Ordering::Relaxed)
        }));
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(stderr)
            .with(SinkLayer)
            .try_init();
        if !format.is_empty() && format != "text" && format != "json" {
            tracing::warn!("{LOG_FORMAT_ENV} must be text or json, got {format:?}: writing text");
        }
    });
}

//! Logging: `tracing` events of the runtime written to stderr, filtered by the `RPCNET_LOG`
//! environment variable (tracing-subscriber's `EnvFilter` syntax, e.g. `RPCNET_LOG=rpcnet=debug`).
//! Unset means warnings and errors only. `RPCNET_LOG_FORMAT=json` writes one JSON object per
//! line (tracing-subscriber's JSON format) instead of text; text has ANSI colours only when
//! stderr is a terminal.

use std::io::IsTerminal;
use std::sync::OnceLock;

/// Environment variable that holds the log filter (tracing-subscriber `EnvFilter` directives).
pub const LOG_ENV: &str = "RPCNET_LOG";

/// Environment variable that chooses the log format: `text` (the default) or `json`.
pub const LOG_FORMAT_ENV: &str = "RPCNET_LOG_FORMAT";

/// Installs the global subscriber once; later calls are no-ops. Never fails: if another subscriber
/// is already installed (an embedding application's), that one is kept. An unknown
/// [`LOG_FORMAT_ENV`] value logs a warning and falls back to text.
pub fn init() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env(LOG_ENV)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let format = std::env::var(LOG_FORMAT_ENV).unwrap_or_default();
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal());
        if format == "json" {
            let _ = builder.json().try_init();
        } else {
            let _ = builder.try_init();
            if !format.is_empty() && format != "text" {
                tracing::warn!(
                    "{LOG_FORMAT_ENV} must be text or json, got {format:?}: writing text"
                );
            }
        }
    });
}

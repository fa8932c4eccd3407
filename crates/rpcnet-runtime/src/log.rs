//! Logging: `tracing` events of the runtime written to stderr, filtered by the `RPCNET_LOG`
//! environment variable (tracing-subscriber's `EnvFilter` syntax, e.g. `RPCNET_LOG=rpcnet=debug`).
//! Unset means warnings and errors only.

use std::sync::OnceLock;

/// Environment variable that holds the log filter (tracing-subscriber `EnvFilter` directives).
pub const LOG_ENV: &str = "RPCNET_LOG";

/// Installs the global subscriber once; later calls are no-ops. Never fails: if another subscriber
/// is already installed (an embedding application's), that one is kept.
pub fn init() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env(LOG_ENV)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    });
}

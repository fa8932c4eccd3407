//! QUIC transport settings (RFC 9000 section 18 transport parameters, via quinn's
//! `TransportConfig`) shared by servers and clients, so both sides agree on idle timeouts,
//! keep-alives and stream limits.

use std::sync::Arc;
use std::time::Duration;

/// Idle timeout in ms after which a silent connection is closed (RFC 9000 section 10.1).
pub const IDLE_TIMEOUT_MS: u64 = 30_000;
/// Interval in ms between keep-alive PINGs, well under [`IDLE_TIMEOUT_MS`].
pub const KEEP_ALIVE_MS: u64 = 5_000;
/// Concurrent calls (bidirectional streams) a peer may open on one connection.
pub const MAX_CONCURRENT_CALLS: u32 = 1024;

/// Concurrent calls on one cluster connection (director to worker link, management): every
/// client session routed to a worker shares one link, so it allows far more than a client.
pub const MAX_CONCURRENT_LINK_CALLS: u32 = 1 << 16;

/// The transport configuration used by client-facing rpcnet endpoints.
pub fn transport_config() -> Arc<quinn::TransportConfig> {
    Arc::new(base(MAX_CONCURRENT_CALLS))
}

/// The transport configuration of cluster connections ([`MAX_CONCURRENT_LINK_CALLS`] streams).
pub fn cluster_transport_config() -> Arc<quinn::TransportConfig> {
    Arc::new(base(MAX_CONCURRENT_LINK_CALLS))
}

fn base(max_calls: u32) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(
        Duration::from_millis(IDLE_TIMEOUT_MS)
            .try_into()
            .expect("idle timeout fits a VarInt"),
    ));
    t.keep_alive_interval(Some(Duration::from_millis(KEEP_ALIVE_MS)));
    t.max_concurrent_bidi_streams(max_calls.into());
    t.max_concurrent_uni_streams(0u32.into());
    t
}

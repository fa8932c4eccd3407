//! QUIC transport settings (RFC 9000 section 18 transport parameters, via quinn's
//! `TransportConfig`) shared by servers and clients, so both sides agree on idle timeouts,
//! keep-alives and stream limits, and [`CallWindow`], the stream credit a serving connection
//! grants, grown with the calls it actually carries.
//!
//! Why the credit is grown rather than granted in full: quinn-proto keeps receive-stream state
//! for every stream the peer may open. It allocates a slot per stream of credit when the
//! connection starts, and when a peer-opened stream is freed it recycles the stream's receive
//! state (a `Recv` of a few hundred bytes, plus the capacity of its reassembly heap) into the
//! slot of the stream id that the freed credit allows next, which will not be opened before all
//! the credit ahead of it has been used. So every call a connection serves leaves one recycled
//! state behind until the whole window is filled with them: memory grows by a few hundred bytes
//! per call, up to the window times that. With a fixed window of 65,536 streams (a cluster link)
//! that is tens of MB per connection, reached only after 65,536 calls, which looks like a leak of
//! ~3 KB per migration (issue 6, section 5). A window that starts at [`INITIAL_CALL_WINDOW`]
//! and doubles when the calls open on the connection reach half of it bounds that memory by the
//! connection's peak concurrency instead (at least [`INITIAL_CALL_WINDOW`] slots), and still lets
//! it reach its maximum.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::RpcError;

/// Idle timeout in ms after which a silent connection is closed (RFC 9000 section 10.1), as
/// offered by servers and cluster peers. A connection uses the smaller of its two ends' offers,
/// so a client that offers less (its `loss_detection_ms`, see [`client_transport_config`])
/// decides for its own connections.
pub const IDLE_TIMEOUT_MS: u64 = 30_000;
/// Interval in ms between keep-alive PINGs of servers and cluster peers, well under
/// [`IDLE_TIMEOUT_MS`].
pub const KEEP_ALIVE_MS: u64 = 5_000;
/// Most concurrent calls (bidirectional streams) a peer may open on one connection to a
/// client-facing server, the director's user port or a management port.
pub const MAX_CONCURRENT_CALLS: u32 = 1024;

/// Most concurrent calls on one cluster link (the director's connection to a worker's user port):
/// every client session routed to a worker shares one link, so it allows far more than a client.
pub const MAX_CONCURRENT_LINK_CALLS: u32 = 1 << 16;

/// Stream credit (concurrent calls) a serving connection grants at first, before
/// [`CallWindow`] grows it (never above the server's maximum). quinn keeps one slot, and after
/// the first calls one recycled receive state of a few hundred bytes, per stream of credit: 256
/// slots cost ~100 KB per connection at most.
pub const INITIAL_CALL_WINDOW: u32 = 256;

/// The transport configuration of a serving endpoint (server, director user port, worker ports):
/// [`INITIAL_CALL_WINDOW`] concurrent calls at first; [`CallWindow`] raises it per connection;
/// idle timeout [`IDLE_TIMEOUT_MS`], keep-alive [`KEEP_ALIVE_MS`].
pub fn transport_config() -> Arc<quinn::TransportConfig> {
    Arc::new(base(INITIAL_CALL_WINDOW, IDLE_TIMEOUT_MS, KEEP_ALIVE_MS))
}

/// [`transport_config`] with the idle timeout and keep-alive a server was configured with
/// (`ServerConfig` / `DirectorConfig` `idle_timeout_ms` and `keep_alive_ms`), ms. The idle
/// timeout is what the server offers (RFC 9000 section 10.1: a connection uses the smaller of its
/// two ends' offers); the keep-alive is how often the server PINGs a quiet connection, 0 for
/// never.
///
/// Errors: `INVALID_ARGUMENT` for an idle timeout of 0 or above QUIC's limit (2^62 - 1 ms), or
/// a keep-alive that is not below the idle timeout (it could not keep the connection open).
pub fn serving_transport_config(
    idle_timeout_ms: u64,
    keep_alive_ms: u64,
) -> Result<Arc<quinn::TransportConfig>, RpcError> {
    check_idle_timeout("idle_timeout_ms", idle_timeout_ms)?;
    if keep_alive_ms >= idle_timeout_ms {
        return Err(RpcError::invalid_argument(format!(
            "keep_alive_ms must be below idle_timeout_ms ({idle_timeout_ms} ms), got \
             {keep_alive_ms}: a PING that rare cannot keep the connection open"
        )));
    }
    let mut t = base(INITIAL_CALL_WINDOW, idle_timeout_ms, keep_alive_ms);
    if keep_alive_ms == 0 {
        t.keep_alive_interval(None);
    }
    Ok(Arc::new(t))
}

/// The transport configuration of a client endpoint: no stream credit for the server (PROTOCOL.md
/// section 2: servers never open streams), so quinn keeps no stream slots for it; idle timeout
/// `idle_timeout_ms` (RFC 9000 section 10.1: the connection is declared lost after that long
/// without a packet from the server) and a keep-alive PING every quarter of it (at least 1 ms),
/// so a live server, which acknowledges each PING, keeps the connection open, and the idle
/// timeout passes only when four PINGs in a row got no answer. The connection uses the smaller of the
/// two ends' idle timeouts; servers offer [`IDLE_TIMEOUT_MS`].
///
/// Errors: `INVALID_ARGUMENT` for 0 or a value above QUIC's limit (2^62 - 1 ms).
pub fn client_transport_config(
    idle_timeout_ms: u64,
) -> Result<Arc<quinn::TransportConfig>, RpcError> {
    check_idle_timeout("loss_detection_ms", idle_timeout_ms)?;
    Ok(Arc::new(base(
        0,
        idle_timeout_ms,
        (idle_timeout_ms / 4).max(1),
    )))
}

/// The transport configuration of cluster connections, serving side (a worker's user and
/// management ports, the director's management port). Same as [`transport_config`]: the credit
/// starts at [`INITIAL_CALL_WINDOW`] and grows up to the server's maximum
/// ([`MAX_CONCURRENT_LINK_CALLS`] on a worker's user port).
pub fn cluster_transport_config() -> Arc<quinn::TransportConfig> {
    transport_config()
}

/// Checks an idle timeout option `name` (ms): positive and below QUIC's limit (2^62 - 1 ms).
///
/// Errors: `INVALID_ARGUMENT` naming `name` and the value.
fn check_idle_timeout(name: &str, ms: u64) -> Result<(), RpcError> {
    if ms == 0 || quinn::VarInt::from_u64(ms).is_err() {
        return Err(RpcError::invalid_argument(format!(
            "{name} must be a positive integer (ms) below 2^62, got {ms}"
        )));
    }
    Ok(())
}

/// `calls` concurrent calls for the peer, idle timeout and keep-alive interval in ms (the
/// idle timeout must fit a VarInt: callers check it).
fn base(calls: u32, idle_timeout_ms: u64, keep_alive_ms: u64) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(quinn::IdleTimeout::from(
        quinn::VarInt::from_u64(idle_timeout_ms).expect("idle timeout fits a VarInt"),
    )));
    t.keep_alive_interval(Some(Duration::from_millis(keep_alive_ms)));
    t.max_concurrent_bidi_streams(calls.into());
    t.max_concurrent_uni_streams(0u32.into());
    t
}

/// The stream credit one serving connection grants (see the module docs): it starts at
/// [`INITIAL_CALL_WINDOW`] and doubles (up to `max`) whenever the calls
/// open on the connection reach half of it, so a peer that keeps opening calls is granted more
/// credit before it runs out. Credit is never taken back. Cheap to share: one per connection.
#[derive(Debug)]
pub struct CallWindow {
    connection: quinn::Connection,
    open: AtomicU32,
    granted: AtomicU32,
    max: u32,
}

impl CallWindow {
    /// The window of `connection`, which must have been accepted with [`transport_config`] or
    /// [`cluster_transport_config`] (so it granted [`INITIAL_CALL_WINDOW`] already); `max` is the
    /// most concurrent calls it may ever grant (a `max` below [`INITIAL_CALL_WINDOW`] counts as
    /// [`INITIAL_CALL_WINDOW`]: credit cannot be taken back).
    pub fn new(connection: quinn::Connection, max: u32) -> Arc<Self> {
        Arc::new(Self {
            connection,
            open: AtomicU32::new(0),
            granted: AtomicU32::new(INITIAL_CALL_WINDOW),
            max: max.max(INITIAL_CALL_WINDOW),
        })
    }

    /// Records a call the peer opened; the returned guard records its end when dropped. Grows
    /// the credit if the open calls reached half of it.
    pub fn opened(self: &Arc<Self>) -> OpenCall {
        let open = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        let granted = self.granted.load(Ordering::SeqCst);
        if granted < self.max && open.saturating_mul(2) >= granted {
            let grown = granted.saturating_mul(2).min(self.max);
            if self
                .granted
                .compare_exchange(granted, grown, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                self.connection.set_max_concurrent_bi_streams(grown.into());
            }
        }
        OpenCall(self.clone())
    }

    /// Concurrent calls the connection grants now.
    pub fn granted(&self) -> u32 {
        self.granted.load(Ordering::SeqCst)
    }

    /// Calls open now (as recorded by [`CallWindow::opened`]).
    pub fn open(&self) -> u32 {
        self.open.load(Ordering::SeqCst)
    }
}

/// One open call of a [`CallWindow`]; dropping it records the call's end.
#[derive(Debug)]
pub struct OpenCall(Arc<CallWindow>);

impl Drop for OpenCall {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

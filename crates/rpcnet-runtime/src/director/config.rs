//! The director's settings and their defaults, in one place so that the embedder (the napi
//! binding, the CLI) and the modules that read them agree on names, units and defaults.

use std::net::SocketAddr;
use std::sync::Arc;

use rpcnet_protocol::migration::MigrationConfig;
use rpcnet_protocol::DEFAULT_MAX_FRAME_SIZE;

use crate::cluster::ClusterCredentials;
use crate::tls::{ServerIdentity, DEFAULT_SERVER_NAME};

/// Default time without a heartbeat after which a worker is declared dead, ms.
pub const DEFAULT_FAILOVER_AFTER_MS: u64 = 500;

/// Default number of migrations the director runs at once (RFC-001 Appendix B,
/// `max_concurrent = 100`). A drain of more sessions queues the rest.
pub const DEFAULT_MAX_CONCURRENT_MIGRATIONS: usize = 100;

/// Director settings.
#[derive(Clone)]
pub struct DirectorConfig {
    /// User port: where clients connect.
    pub bind: SocketAddr,
    /// Certificate shown to clients. Default [`ServerIdentity::ClusterIssued`]: issued at start
    /// by the cluster CA for [`DirectorConfig::certificate_names`], so a client that trusts the
    /// cluster CA (`ca.pem`) accepts every director of the cluster. [`ServerIdentity::PemFiles`]
    /// for an identity of one's own (one that a client can pin across restarts).
    pub identity: ServerIdentity,
    /// Names, besides `localhost`, `127.0.0.1`, `::1` and the bound (or, for a wildcard bind,
    /// the host's advertised) IP, that a cluster-issued identity is valid for: DNS names or IP address literals (what clients use as their TLS
    /// server name). Default none. Ignored for other identities.
    pub server_names: Vec<String>,
    /// Management port: where workers register and heartbeat (mutual TLS under the cluster CA).
    /// `0.0.0.0` / `[::]` bind every interface; see [`advertise_mgmt`](Self::advertise_mgmt).
    pub mgmt_bind: SocketAddr,
    /// The management address to give workers (their `director` option), reported by
    /// [`crate::director::Director::advertised_mgmt_addr`]: `host:port` or a host alone (the
    /// bound port), an IP address or a DNS name. `None`: the bound address, or for a wildcard
    /// bind the host's first non-loopback interface address
    /// ([`crate::addr::default_advertised`]). Workers are configured with it by hand; the
    /// director sends it to no one.
    pub advertise_mgmt: Option<String>,
    /// Cluster CA, leaf and secret.
    pub cluster: Arc<ClusterCredentials>,
    /// A worker silent for this long (ms) is declared dead and its sessions fail over.
    pub failover_after_ms: u64,
    /// Migration settings (RFC-001 Appendix B): auto-confirm, phase and total timeouts.
    pub migration: MigrationConfig,
    /// Migrations running at once, at most (default
    /// [`DEFAULT_MAX_CONCURRENT_MIGRATIONS`]); further ones wait for a slot.
    pub max_concurrent_migrations: usize,
    /// Largest accepted frame body from clients, bytes.
    pub max_frame_size: u32,
    /// QUIC idle timeout the user port offers clients, ms (RFC 9000 section 10.1; a connection
    /// uses the smaller of the two ends' offers, so a client's `loss_detection_ms` below this
    /// decides). Default [`crate::transport::IDLE_TIMEOUT_MS`] (30 000).
    pub idle_timeout_ms: u64,
    /// Interval between the user port's keep-alive PINGs on a quiet client connection, ms; 0 for
    /// none. Must be below `idle_timeout_ms`. Default [`crate::transport::KEEP_ALIVE_MS`]
    /// (5 000).
    pub keep_alive_ms: u64,
}

impl DirectorConfig {
    /// The names a cluster-issued identity is valid for, in order and without repeats:
    /// `localhost`, `127.0.0.1`, `::1`, the bound IP (for a wildcard bind, `0.0.0.0` or `::`,
    /// the host's address that [`crate::addr::default_advertised`] picks), then
    /// [`server_names`](Self::server_names).
    pub fn certificate_names(&self) -> Vec<String> {
        let mut names: Vec<String> =
            vec![DEFAULT_SERVER_NAME.into(), "127.0.0.1".into(), "::1".into()];
        names.push(crate::addr::default_advertised(self.bind).ip().to_string());
        names.extend(self.server_names.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.clone()));
        names
    }

    /// Loopback defaults with any free ports.
    pub fn new(cluster: Arc<ClusterCredentials>) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            identity: ServerIdentity::ClusterIssued,
            server_names: Vec::new(),
            mgmt_bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise_mgmt: None,
            cluster,
            failover_after_ms: DEFAULT_FAILOVER_AFTER_MS,
            migration: MigrationConfig::default(),
            max_concurrent_migrations: DEFAULT_MAX_CONCURRENT_MIGRATIONS,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            idle_timeout_ms: crate::transport::IDLE_TIMEOUT_MS,
            keep_alive_ms: crate::transport::KEEP_ALIVE_MS,
        }
    }
}

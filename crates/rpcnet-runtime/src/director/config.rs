//! The director's settings and their defaults, in one place so that the embedder (the napi
//! binding, the CLI) and the modules that read them agree on names, units and defaults.

use std::net::SocketAddr;
use std::sync::Arc;

use rpcnet_protocol::migration::MigrationConfig;
use rpcnet_protocol::DEFAULT_MAX_FRAME_SIZE;

use crate::cluster::ClusterCredentials;
use crate::tls::ServerIdentity;

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
    /// Certificate shown to clients (default: self-signed; clients pin its fingerprint).
    pub identity: ServerIdentity,
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
}

impl DirectorConfig {
    /// Loopback defaults with any free ports.
    pub fn new(cluster: Arc<ClusterCredentials>) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            identity: ServerIdentity::SelfSigned,
            mgmt_bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise_mgmt: None,
            cluster,
            failover_after_ms: DEFAULT_FAILOVER_AFTER_MS,
            migration: MigrationConfig::default(),
            max_concurrent_migrations: DEFAULT_MAX_CONCURRENT_MIGRATIONS,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        }
    }
}

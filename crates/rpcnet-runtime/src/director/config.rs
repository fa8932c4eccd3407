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
    pub mgmt_bind: SocketAddr,
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
            cluster,
            failover_after_ms: DEFAULT_FAILOVER_AFTER_MS,
            migration: MigrationConfig::default(),
            max_concurrent_migrations: DEFAULT_MAX_CONCURRENT_MIGRATIONS,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        }
    }
}

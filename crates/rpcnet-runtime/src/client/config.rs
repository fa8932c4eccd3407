//! [`ClientConfig`]: how a client trusts its server, names it, and bounds frames and connecting.

use crate::tls::{ClientTrust, DEFAULT_SERVER_NAME};
use rpcnet_protocol::DEFAULT_MAX_FRAME_SIZE;

/// Default connect timeout, ms.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How the server's certificate is verified. Required: there is no insecure default.
    pub trust: ClientTrust,
    /// TLS server name (SNI, and the name checked against a CA-issued certificate).
    pub server_name: String,
    /// Largest accepted frame body, bytes.
    pub max_frame_size: u32,
    /// Time allowed for the QUIC + TLS handshake, ms.
    pub connect_timeout_ms: u64,
    /// Cluster mode: present the cluster certificate and verify the peer against the cluster
    /// CA (mutual TLS, [`crate::cluster`]); `trust` and `server_name` are then ignored.
    pub cluster: Option<std::sync::Arc<crate::cluster::ClusterCredentials>>,
}

impl ClientConfig {
    /// Settings with the given trust and defaults for the rest.
    pub fn new(trust: ClientTrust) -> Self {
        Self {
            trust,
            server_name: DEFAULT_SERVER_NAME.to_string(),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            cluster: None,
        }
    }

    /// Settings for a cluster peer (mutual TLS under the cluster CA).
    pub fn cluster(creds: std::sync::Arc<crate::cluster::ClusterCredentials>) -> Self {
        let mut c = Self::new(ClientTrust::SystemRoots);
        c.server_name = crate::cluster::CLUSTER_SERVER_NAME.to_string();
        c.cluster = Some(creds);
        c
    }
}

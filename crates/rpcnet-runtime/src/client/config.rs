//! [`ClientConfig`]: how a client trusts its server, names it, and bounds frames and connecting.

use crate::tls::{ClientTrust, DEFAULT_SERVER_NAME};
use rpcnet_protocol::DEFAULT_MAX_FRAME_SIZE;

/// Default connect timeout, ms.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;

/// Default [`ClientConfig::loss_detection_ms`] of a client connection without a resumable
/// session, ms: a server that died without closing the connection is noticed 750 to 940 ms after
/// its last packet, with a keep-alive PING every 187 ms. A false alarm (a live server silent
/// that long, on a congested link or a stalled host) fails the calls with `UNAVAILABLE`.
pub const DEFAULT_LOSS_DETECTION_MS: u64 = 750;

/// Default [`ClientConfig::loss_detection_ms`] of a client with a resumable session
/// ([`ClientConfig::resume`]), ms: a director that died without closing the connection is
/// noticed 400 to 500 ms after its last packet, with a keep-alive PING every 100 ms, and the
/// session resumes on another director (PROTOCOL.md section 15). Lower than
/// [`DEFAULT_LOSS_DETECTION_MS`] because a false alarm only costs a resume (a few ms), not the
/// calls.
pub const DEFAULT_RESUME_LOSS_DETECTION_MS: u64 = 400;

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
    /// Time without a packet from the server after which the connection is declared lost, ms,
    /// at least 1: the QUIC idle timeout the client offers (RFC 9000 section 10.1), with a
    /// keep-alive PING every quarter of it ([`crate::transport::client_transport_config`]).
    /// Then its calls fail with `UNAVAILABLE`, or, for a resumable session, the session resumes
    /// on another address. The idle timer restarts when the client sends its first PING after
    /// the last packet it received, so a dead server is noticed between this and 5/4 of it after
    /// its last packet. A connection uses the smaller of its two ends' offers and rpcnet servers
    /// offer 30 s ([`crate::transport::IDLE_TIMEOUT_MS`]), so this value decides, for both ends:
    /// the server also drops the connection after that long without a packet from the client.
    /// `None` (the default) is [`DEFAULT_RESUME_LOSS_DETECTION_MS`] (400) with
    /// [`ClientConfig::resume`] and [`DEFAULT_LOSS_DETECTION_MS`] (750) without (see
    /// [`ClientConfig::loss_detection`]); [`ClientConfig::cluster`] sets
    /// [`crate::transport::IDLE_TIMEOUT_MS`] for a cluster peer. Lower notices a dead server sooner; on a lossy or
    /// congested link, or with a process that can stall, raise it, since four PINGs in a row
    /// without an answer (or that long without CPU for either end's QUIC thread) end a healthy
    /// connection. A server that restarted on the same address with the cluster's reset key ends
    /// the connection sooner still, with a stateless reset
    /// ([`crate::cluster::ClusterCredentials::endpoint_config`]).
    pub loss_detection_ms: Option<u64>,
    /// Cluster mode: present the cluster certificate and verify the peer against the cluster
    /// CA (mutual TLS, [`crate::cluster`]); `trust` and `server_name` are then ignored.
    pub cluster: Option<std::sync::Arc<crate::cluster::ClusterCredentials>>,
    /// Open a resumable session (PROTOCOL.md section 15) when connecting to a director: the
    /// session survives the loss of its connection and the director's MOVE, resumed on any
    /// address given to [`crate::client::Client::connect_any`]. A server that does not resume
    /// sessions fails the connect with `UNAVAILABLE`. Default false.
    pub resume: bool,
}

impl ClientConfig {
    /// Settings with the given trust and defaults for the rest.
    pub fn new(trust: ClientTrust) -> Self {
        Self {
            trust,
            server_name: DEFAULT_SERVER_NAME.to_string(),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            loss_detection_ms: None,
            resume: false,
            cluster: None,
        }
    }

    /// Settings for a cluster peer (mutual TLS under the cluster CA; loss detection after the
    /// cluster's idle timeout, [`crate::transport::IDLE_TIMEOUT_MS`]).
    pub fn cluster(creds: std::sync::Arc<crate::cluster::ClusterCredentials>) -> Self {
        let mut c = Self::new(ClientTrust::SystemRoots);
        c.server_name = crate::cluster::CLUSTER_SERVER_NAME.to_string();
        c.loss_detection_ms = Some(crate::transport::IDLE_TIMEOUT_MS);
        c.cluster = Some(creds);
        c
    }

    /// The loss detection bound in effect, ms: [`ClientConfig::loss_detection_ms`], or its
    /// default for this configuration ([`DEFAULT_RESUME_LOSS_DETECTION_MS`] with
    /// [`ClientConfig::resume`], else [`DEFAULT_LOSS_DETECTION_MS`]).
    pub fn loss_detection(&self) -> u64 {
        self.loss_detection_ms.unwrap_or(if self.resume {
            DEFAULT_RESUME_LOSS_DETECTION_MS
        } else {
            DEFAULT_LOSS_DETECTION_MS
        })
    }
}

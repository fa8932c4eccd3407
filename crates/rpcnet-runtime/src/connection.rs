//! Connection identity and statistics.
//!
//! `connectionId` must name the same connection on both ends, so it is derived from the TLS
//! exporter (RFC 8446 section 7.5, RFC 9001 section 4): both peers compute the same 8 bytes, and
//! no other connection shares them. Statistics are quinn's own (`quinn::ConnectionStats`).

use std::net::SocketAddr;

use rpcnet_protocol::Version;

/// Label of the TLS exporter used to derive `connectionId`.
pub const CONNECTION_ID_LABEL: &[u8] = b"EXPORTER-rpcnet-connection-id";

/// A snapshot of quinn's statistics for one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ConnectionStats {
    /// Smoothed round-trip time, ms.
    pub rtt_ms: f64,
    /// Congestion window, bytes.
    pub cwnd: u64,
    /// UDP payload bytes sent.
    pub bytes_sent: u64,
    /// UDP payload bytes received.
    pub bytes_received: u64,
    /// QUIC packets sent.
    pub packets_sent: u64,
    /// Packets declared lost (RFC 9002 section 6).
    pub lost_packets: u64,
    /// Current path MTU, bytes.
    pub mtu: u16,
}

/// Identity and handle of one QUIC connection.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// 16 lowercase hex digits, identical on client and server (see module docs).
    pub id: String,
    /// The protocol version the connection negotiated by ALPN (PROTOCOL.md section 2).
    pub version: Version,
    connection: quinn::Connection,
}

impl ConnectionInfo {
    /// Wraps an established connection and derives its `connectionId`.
    pub fn new(connection: quinn::Connection) -> Self {
        let mut out = [0u8; 8];
        let id = match connection.export_keying_material(&mut out, CONNECTION_ID_LABEL, b"") {
            Ok(()) => hex::encode(out),
            // Only fails before the handshake completes, which cannot be the case here.
            Err(_) => format!("{:016x}", connection.stable_id()),
        };
        let version = connection
            .handshake_data()
            .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
            .and_then(|d| d.protocol.as_deref().and_then(Version::from_alpn))
            .unwrap_or(Version::V1);
        Self {
            id,
            version,
            connection,
        }
    }

    /// The peer's current UDP address (it changes if the client migrates its path, RFC 9000 section 9).
    pub fn remote_address(&self) -> SocketAddr {
        self.connection.remote_address()
    }

    /// quinn's statistics, converted.
    pub fn stats(&self) -> ConnectionStats {
        let s = self.connection.stats();
        ConnectionStats {
            rtt_ms: s.path.rtt.as_secs_f64() * 1000.0,
            cwnd: s.path.cwnd,
            bytes_sent: s.udp_tx.bytes,
            bytes_received: s.udp_rx.bytes,
            packets_sent: s.path.sent_packets,
            lost_packets: s.path.lost_packets,
            mtu: s.path.current_mtu,
        }
    }

    /// The underlying quinn connection.
    pub fn quinn(&self) -> &quinn::Connection {
        &self.connection
    }
}

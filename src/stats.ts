/**
 * Connection statistics as the public API reports them: quinn's own counters
 * (`quinn::ConnectionStats`), converted by the runtime crate.
 * @module
 */

/** One reading of a connection's statistics. */
export interface ConnectionStats {
  /** Smoothed round-trip time, ms (RFC 9002 section 5.3). */
  rttMs: number;
  /** Congestion window, bytes. */
  cwnd: number;
  /** UDP payload bytes sent. */
  bytesSent: number;
  /** UDP payload bytes received. */
  bytesReceived: number;
  /** QUIC packets sent. */
  packetsSent: number;
  /** Packets declared lost (RFC 9002 section 6). */
  lostPackets: number;
  /** Current path MTU, bytes. */
  mtu: number;
}

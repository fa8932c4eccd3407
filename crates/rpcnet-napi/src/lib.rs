//! Node.js binding of rpcnet-runtime (napi-rs v3). It converts JavaScript values to runtime types
//! and back and forwards every call; all logic lives in `rpcnet-runtime` and in the TypeScript
//! package (`src/`), which is the public API. Nothing depends on this crate.
//!
//! Errors cross as `Error` objects whose message is `[CODE] message` (CODE is an
//! `rpcnet_protocol::ErrorCode` name); the TypeScript layer turns them into `RpcError`s.

#![warn(missing_docs)]
#![deny(clippy::all)]

mod client;
mod director;
mod server;
mod worker;

use bytes::Bytes;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use rpcnet_runtime::{ConnectionStats, ErrorCode, RpcError};

pub(crate) fn to_napi(e: RpcError) -> napi::Error {
    napi::Error::new(
        Status::GenericFailure,
        format!("[{}] {}", e.code, e.message),
    )
}

pub(crate) fn code_from_name(name: &str) -> ErrorCode {
    ErrorCode::from_name(name).unwrap_or(ErrorCode::Unknown)
}

pub(crate) fn bytes(buf: &Buffer) -> Bytes {
    Bytes::copy_from_slice(buf.as_ref())
}

/// quinn connection statistics.
#[napi(object)]
pub struct NativeStats {
    /// Smoothed RTT, ms.
    pub rtt_ms: f64,
    /// Congestion window, bytes.
    pub cwnd: f64,
    /// UDP payload bytes sent.
    pub bytes_sent: f64,
    /// UDP payload bytes received.
    pub bytes_received: f64,
    /// QUIC packets sent.
    pub packets_sent: f64,
    /// Packets declared lost.
    pub lost_packets: f64,
    /// Path MTU, bytes.
    pub mtu: u32,
}

pub(crate) fn stats(s: ConnectionStats) -> NativeStats {
    NativeStats {
        rtt_ms: s.rtt_ms,
        cwnd: s.cwnd as f64,
        bytes_sent: s.bytes_sent as f64,
        bytes_received: s.bytes_received as f64,
        packets_sent: s.packets_sent as f64,
        lost_packets: s.lost_packets as f64,
        mtu: s.mtu.into(),
    }
}

//! # rpcnet-runtime
//!
//! The I/O half of rpcnet, in the manner of `quinn` around `quinn-proto`: it drives the sans-IO
//! [`rpcnet_protocol`] codec over real QUIC (quinn 0.11, rustls 0.23 with the ring provider) on a
//! tokio runtime. It has no knowledge of Node.js: the napi binding and the Rust-only benchmark
//! drive the same [`Server`] and [`Client`].
//!
//! - [`tls`]: server identities (self-signed via rcgen, or PEM files) and client trust (CA file,
//!   SHA-256 pin, system roots). There is no insecure mode.
//! - [`transport`]: the QUIC transport settings shared by both sides.
//! - [`server`]: the endpoint that accepts connections and turns each call stream into events that
//!   an embedder (TypeScript handlers, a Rust loop) answers.
//! - [`addr`]: bind and peer addresses as embedders give them.
//! - [`cancel`]: a cancellation flag shared between threads.
//! - [`client`]: connect, unary calls and pull-based streaming calls.
//! - [`connection`]: per-connection identity (`connectionId`) and quinn's statistics.
//! - [`error`]: [`RpcError`], the coded error every API returns.
//! - [`events`]: the batched event queue every embedder drains.
//! - [`worker`] and [`director`]: the cluster roles of live session migration; [`mgmt`] names
//!   their management-plane calls; [`cluster`] holds the cluster CA and mutual TLS.
//! - [`log`]: `tracing` output filtered by `RPCNET_LOG`.

#![warn(missing_docs)]

pub mod addr;
pub mod admin;
mod backoff;
pub mod cancel;
pub mod client;
pub mod cluster;
pub mod connection;
pub mod director;
mod endpoint;
pub mod error;
pub mod events;
pub mod log;
pub mod mgmt;
mod recv;
mod request_tail;
pub mod server;
pub mod ticketer;
pub mod tls;
pub mod transport;
pub mod worker;

pub use client::{
    CallOptions, Canceller, Client, ClientConfig, ItemStream, ResponseMetadata, StreamHandle,
    UnaryOutcome,
};
pub use connection::{ConnectionInfo, ConnectionStats};
pub use error::RpcError;
pub use rpcnet_protocol::{ErrorCode, Metadata};
pub use server::{MethodKind, PushStatus, Server, ServerConfig, ServerEvent};
pub use tls::{ClientTrust, ServerIdentity};

//! The rpcnet client: one QUIC connection to a server, unary calls and pull-based streaming calls
//! (PROTOCOL.md "Call lifecycle").
//!
//! What a caller receives is decided by the sans-IO [`rpcnet_session::ClientStream`]: the checks
//! of a REQUEST, frame decoding under the maximum frame size, seq order and the END count, the
//! outcome held behind the items before it, the deadline's and a cancellation's errors, and when
//! the client resets a call's stream. These modules connect, move bytes between quinn and that
//! machine, run its deadline timer and send the resets it asks for:
//!
//! - `config`: [`ClientConfig`];
//! - `call`: one call's QUIC stream driving the machine, shared by both kinds of call;
//! - `unary`: [`Client::unary`] and [`Client::unary_cancellable`];
//! - `stream`: [`Client::streaming`] and the [`ItemStream`] it returns;
//! - `handle`: [`StreamHandle`], an [`ItemStream`] that several threads may pull and cancel.
//!
//! Streaming calls read from the QUIC stream only when the caller asks for the next batch, so a
//! slow reader leaves data in QUIC's flow-control window (RFC 9000 section 4) and the server's
//! bounded item queue fills up and pauses the handler: memory stays bounded at both ends.

mod call;
mod config;
mod handle;
mod stream;
mod unary;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use crate::cancel::Canceller;
use crate::connection::{ConnectionInfo, ConnectionStats};
use crate::error::RpcError;
use crate::tls::client_crypto;
use crate::transport::client_transport_config;
use bytes::Bytes;
pub use config::{ClientConfig, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_LOSS_DETECTION_MS};
pub use handle::StreamHandle;
use rpcnet_protocol::{ErrorCode, Frame, Request};
use rpcnet_session::ClientStream;
pub use stream::ItemStream;

/// A connected client. Cheap to share behind an `Arc`; calls run concurrently on one connection.
pub struct Client {
    endpoint: quinn::Endpoint,
    info: ConnectionInfo,
    max_frame_size: u32,
}

impl Client {
    /// Connects to `addr`. Must run inside a tokio runtime.
    ///
    /// Errors: `INVALID_ARGUMENT` for unusable trust settings, server name or
    /// `loss_detection_ms` (0 or at least 2^62); `UNAVAILABLE` when
    /// the server cannot be reached or its certificate is refused (the message says which);
    /// `DEADLINE_EXCEEDED` after `connect_timeout_ms`.
    pub async fn connect(addr: SocketAddr, config: ClientConfig) -> Result<Client, RpcError> {
        crate::log::init();
        let mut client_config = match &config.cluster {
            Some(creds) => creds.quinn_client_config(rpcnet_protocol::ALPN)?,
            None => {
                let crypto = client_crypto(&config.trust)?;
                let quic =
                    quinn::crypto::rustls::QuicClientConfig::try_from(crypto).map_err(|e| {
                        RpcError::internal(format!("TLS config unusable for QUIC: {e}"))
                    })?;
                quinn::ClientConfig::new(Arc::new(quic))
            }
        };
        client_config.transport_config(client_transport_config(config.loss_detection_ms)?);
        let bind: SocketAddr = if addr.is_ipv6() {
            "[::]:0".parse().unwrap()
        } else {
            "0.0.0.0:0".parse().unwrap()
        };
        let mut endpoint = quinn::Endpoint::client(bind)
            .map_err(|e| RpcError::unavailable(format!("cannot bind a client UDP socket: {e}")))?;
        endpoint.set_default_client_config(client_config);
        let connecting = endpoint.connect(addr, &config.server_name)?;
        let connection = match tokio::time::timeout(
            Duration::from_millis(config.connect_timeout_ms),
            connecting,
        )
        .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(RpcError::unavailable(format!(
                    "cannot connect to {addr}: {e}"
                )))
            }
            Err(_) => {
                return Err(RpcError::new(
                    ErrorCode::DeadlineExceeded,
                    format!(
                        "connecting to {addr} took longer than {} ms",
                        config.connect_timeout_ms
                    ),
                ))
            }
        };
        let info = ConnectionInfo::new(connection);
        tracing::debug!(connection_id = %info.id, %addr, "connected");
        Ok(Client {
            endpoint,
            info,
            max_frame_size: config.max_frame_size,
        })
    }

    /// The connection's `connectionId` (same value the server sees).
    pub fn connection_id(&self) -> &str {
        &self.info.id
    }

    /// The server's address.
    pub fn remote_address(&self) -> SocketAddr {
        self.info.remote_address()
    }

    /// quinn's statistics for the connection.
    pub fn stats(&self) -> ConnectionStats {
        self.info.stats()
    }

    /// Connection identity and handle.
    pub fn connection(&self) -> &ConnectionInfo {
        &self.info
    }

    /// The machine of a new call and its checked REQUEST (see [`ClientStream::start`]).
    fn start_call(
        &self,
        method: &str,
        payload: Bytes,
        deadline_ms: u32,
        streaming: bool,
    ) -> Result<(ClientStream, Frame), RpcError> {
        let request = Request {
            method: method.to_string(),
            deadline_ms,
            streaming,
            payload,
        };
        Ok(ClientStream::start(request, self.max_frame_size)?)
    }

    /// Opens a bidirectional stream and sends `request` and FIN on it (PROTOCOL.md 3.1, 3.2).
    async fn open_stream(
        &self,
        request: Frame,
    ) -> Result<(quinn::SendStream, quinn::RecvStream), RpcError> {
        let (mut send, recv) = self.info.quinn().open_bi().await?;
        send.write_all(&request.to_bytes()).await?;
        send.finish()?;
        Ok((send, recv))
    }

    /// Closes the connection (application code 0) and waits briefly for the close to be sent.
    pub async fn close(&self) {
        self.info.quinn().close(0u32.into(), b"client closed");
        let _ = tokio::time::timeout(Duration::from_millis(500), self.endpoint.wait_idle()).await;
    }
}

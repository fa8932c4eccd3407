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
//! - `handle`: [`StreamHandle`], an [`ItemStream`] that several threads may pull and cancel;
//! - `options`: [`CallOptions`] and the [`ResponseMetadata`] a call returns;
//! - `requests`: [`RequestSender`], the requests of client-streaming and bidi calls.
//!
//! Streaming calls read from the QUIC stream only when the caller asks for the next batch, so a
//! slow reader leaves data in QUIC's flow-control window (RFC 9000 section 4) and the server's
//! bounded item queue fills up and pauses the handler: memory stays bounded at both ends.

mod call;
mod config;
mod handle;
mod options;
mod requests;
mod resume;
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
pub use config::{
    ClientConfig, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_LOSS_DETECTION_MS,
    DEFAULT_RESUME_LOSS_DETECTION_MS,
};
pub use handle::StreamHandle;
pub use options::{CallOptions, ResponseMetadata, UnaryOutcome};
pub use requests::RequestSender;
use resume::{Directors, Resumable};
pub use resume::{
    SessionEvent, ACK_EVERY_BYTES, ACK_EVERY_ITEMS, FIRST_BACKOFF_MS, MAX_BACKOFF_MS, MOVED_CODE,
    RESUME_TIMEOUT_MS,
};
use rpcnet_protocol::{ErrorCode, Frame, Metadata, Request, Version};
use rpcnet_session::ClientStream;
pub use stream::ItemStream;

/// Which sides of a call stream (PROTOCOL.md sections 3.1 to 3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kind {
    /// The server answers with ITEMs and END.
    pub(crate) server_streaming: bool,
    /// The client sends ITEMs and END after the REQUEST.
    pub(crate) client_streaming: bool,
}

impl Kind {
    pub(crate) const UNARY: Kind = Kind {
        server_streaming: false,
        client_streaming: false,
    };
    pub(crate) const SERVER_STREAMING: Kind = Kind {
        server_streaming: true,
        client_streaming: false,
    };
}

/// A connected client. Cheap to share behind an `Arc`; calls run concurrently on one connection.
pub struct Client {
    endpoint: quinn::Endpoint,
    info: ConnectionInfo,
    max_frame_size: u32,
    /// The resumable session, when [`ClientConfig::resume`] is set.
    session: Option<Arc<Resumable>>,
}

/// Connects `endpoint` to `addr` within `timeout_ms`.
///
/// Errors: `UNAVAILABLE` when the server cannot be reached or refuses the handshake;
/// `DEADLINE_EXCEEDED` after `timeout_ms`.
pub(crate) async fn dial(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    server_name: &str,
    timeout_ms: u64,
) -> Result<quinn::Connection, RpcError> {
    let connecting = endpoint.connect(addr, server_name)?;
    match tokio::time::timeout(Duration::from_millis(timeout_ms), connecting).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(RpcError::unavailable(format!(
            "cannot connect to {addr}: {e}"
        ))),
        Err(_) => Err(RpcError::new(
            ErrorCode::DeadlineExceeded,
            format!("connecting to {addr} took longer than {timeout_ms} ms"),
        )),
    }
}

impl Client {
    /// Connects to `addr`. Must run inside a tokio runtime.
    ///
    /// Errors: `INVALID_ARGUMENT` for unusable trust settings, server name or
    /// `loss_detection_ms` (0 or at least 2^62); `UNAVAILABLE` when
    /// the server cannot be reached or its certificate is refused (the message says which);
    /// `DEADLINE_EXCEEDED` after `connect_timeout_ms`.
    pub async fn connect(addr: SocketAddr, config: ClientConfig) -> Result<Client, RpcError> {
        Self::connect_any(&[addr], config).await
    }

    /// Connects to the first of `addrs` that answers (directors of one cluster, or one server).
    /// With [`ClientConfig::resume`], opens a resumable session, which later reconnects to any
    /// of `addrs` (PROTOCOL.md section 15). Must run inside a tokio runtime.
    ///
    /// Errors: as [`Client::connect`], for the last address tried; `INVALID_ARGUMENT` for an
    /// empty `addrs`; with `resume`, `UNAVAILABLE` when the server does not resume sessions.
    pub async fn connect_any(
        addrs: &[SocketAddr],
        config: ClientConfig,
    ) -> Result<Client, RpcError> {
        crate::log::init();
        let Some(first) = addrs.first() else {
            return Err(RpcError::invalid_argument(
                "no server address to connect to",
            ));
        };
        let mut client_config = match &config.cluster {
            // A cluster link (PROTOCOL.md section 13) speaks only rpcnet/2.
            Some(creds) => creds.quinn_client_config(&[rpcnet_protocol::ALPN])?,
            None => {
                let crypto = client_crypto(&config.trust)?;
                let quic =
                    quinn::crypto::rustls::QuicClientConfig::try_from(crypto).map_err(|e| {
                        RpcError::internal(format!("TLS config unusable for QUIC: {e}"))
                    })?;
                quinn::ClientConfig::new(Arc::new(quic))
            }
        };
        client_config.transport_config(client_transport_config(config.loss_detection())?);
        let bind: SocketAddr = if first.is_ipv6() {
            "[::]:0".parse().unwrap()
        } else {
            "0.0.0.0:0".parse().unwrap()
        };
        let mut endpoint = quinn::Endpoint::client(bind)
            .map_err(|e| RpcError::unavailable(format!("cannot bind a client UDP socket: {e}")))?;
        endpoint.set_default_client_config(client_config);
        let mut last = None;
        for (at, &addr) in addrs.iter().enumerate() {
            let timeout = config.connect_timeout_ms;
            match dial(&endpoint, addr, &config.server_name, timeout).await {
                Ok(connection) => {
                    let info = ConnectionInfo::new(connection);
                    tracing::debug!(connection_id = %info.id, %addr, "connected");
                    let session = match config.resume {
                        false => None,
                        true => {
                            let directors = Directors {
                                endpoint: endpoint.clone(),
                                addrs: addrs.to_vec(),
                                server_name: config.server_name.clone(),
                                connect_timeout_ms: config.connect_timeout_ms,
                                max_frame_size: config.max_frame_size,
                            };
                            Some(Resumable::open(directors, info.clone(), at).await?)
                        }
                    };
                    return Ok(Client {
                        endpoint,
                        info,
                        max_frame_size: config.max_frame_size,
                        session,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one address was tried"))
    }

    /// The connection's `connectionId` (same value the server sees). It changes when a
    /// resumable session moves to a new connection.
    pub fn connection_id(&self) -> String {
        self.connection().id
    }

    /// The server's address (of the connection now).
    pub fn remote_address(&self) -> SocketAddr {
        self.connection().remote_address()
    }

    /// quinn's statistics for the connection now.
    pub fn stats(&self) -> ConnectionStats {
        self.connection().stats()
    }

    /// Connection identity and handle: the connection now (a resumable session moves to new
    /// ones).
    pub fn connection(&self) -> ConnectionInfo {
        match &self.session {
            Some(s) => s.connection(),
            None => self.info.clone(),
        }
    }

    /// The resumable session's id (16 hex digits, PROTOCOL.md section 2.1), the same across
    /// resumes; `None` without [`ClientConfig::resume`].
    pub fn session_id(&self) -> Option<String> {
        self.session
            .as_ref()
            .map(|s| format!("{:016x}", s.session_id()))
    }

    /// Waits for up to `max` events of the resumable session (reconnecting, resumed, lost);
    /// empty without [`ClientConfig::resume`] or once the client is closed.
    pub async fn next_session_events(&self, max: usize) -> Vec<SessionEvent> {
        match &self.session {
            Some(s) => s.next_events(max).await,
            None => Vec::new(),
        }
    }

    /// The machine of a new call and the frames that open it (see [`ClientStream::start`];
    /// CALL + REQUEST in a resumable session, [`ClientStream::start_resumable`]).
    fn start_call(
        &self,
        method: &str,
        payload: Bytes,
        deadline_ms: u32,
        kind: Kind,
        idempotent: bool,
        metadata: &Metadata,
    ) -> Result<(ClientStream, Vec<Frame>), RpcError> {
        let v1 = self.connection().version == Version::V1;
        if !metadata.is_empty() && v1 {
            return Err(RpcError::new(
                ErrorCode::Unimplemented,
                "the server speaks rpcnet/1, which carries no metadata: the call was not sent",
            ));
        }
        if kind.client_streaming && v1 {
            return Err(RpcError::new(
                ErrorCode::Unimplemented,
                "the server speaks rpcnet/1, which has no client-streaming calls: the call was not sent",
            ));
        }
        let request = Request {
            method: method.to_string(),
            deadline_ms,
            streaming: kind.server_streaming,
            payload,
            metadata: metadata.clone(),
            client_streaming: kind.client_streaming,
        };
        Ok(match &self.session {
            None => {
                let (mut machine, frame) = ClientStream::start(request, self.max_frame_size)?;
                machine.set_version(self.info.version);
                (machine, vec![frame])
            }
            Some(s) => {
                let id = s.call_id();
                let (machine, frames) =
                    ClientStream::start_resumable(request, self.max_frame_size, id, idempotent)?;
                (machine, frames.to_vec())
            }
        })
    }

    /// Opens a call's stream and sends `frames` on it; outside a resumable session also FIN
    /// (PROTOCOL.md 3.1, 3.2), in one the send side stays open for ACKs (section 15.3).
    async fn open_stream(&self, frames: Vec<Frame>) -> Result<call::Opened, RpcError> {
        match &self.session {
            None => {
                let (send, recv) = call::open_on(&self.info, &frames, true).await?;
                Ok(call::Opened::plain(send, recv))
            }
            Some(s) => {
                let (connection, epoch) = s.current()?;
                let (send, recv) = call::open_on(&connection, &frames, false).await?;
                Ok(call::Opened::resumable(send, recv, s.clone(), epoch))
            }
        }
    }

    /// Closes the connection (application code 0; a resumable session ends) and waits briefly
    /// for the close to be sent.
    pub async fn close(&self) {
        match &self.session {
            Some(s) => s.close(),
            None => self.info.quinn().close(0u32.into(), b"client closed"),
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), self.endpoint.wait_idle()).await;
    }
}

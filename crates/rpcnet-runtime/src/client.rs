//! The rpcnet client: one QUIC connection to a server, unary calls and pull-based streaming calls
//! (PROTOCOL.md "Call lifecycle").
//!
//! Streaming calls read from the QUIC stream only when the caller asks for the next batch, so a
//! slow reader leaves data in QUIC's flow-control window (RFC 9000 section 4) and the server's
//! bounded item queue fills up and pauses the handler: memory stays bounded at both ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

pub use crate::cancel::Canceller;
use crate::connection::{ConnectionInfo, ConnectionStats};
use crate::error::{app_code, RpcError};
use crate::tls::{client_crypto, ClientTrust, DEFAULT_SERVER_NAME};
use crate::transport::client_transport_config;
use rpcnet_protocol::{Decoder, ErrorCode, Frame, Request, DEFAULT_MAX_FRAME_SIZE};

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

/// A connected client. Cheap to share behind an `Arc`; calls run concurrently on one connection.
pub struct Client {
    endpoint: quinn::Endpoint,
    info: ConnectionInfo,
    max_frame_size: u32,
}

impl Client {
    /// Connects to `addr`. Must run inside a tokio runtime.
    ///
    /// Errors: `INVALID_ARGUMENT` for unusable trust settings or server name; `UNAVAILABLE` when
    /// the server cannot be reached or its certificate is refused (the message says which);
    /// `DEADLINE_EXCEEDED` after `connect_timeout_ms`.
    pub async fn connect(addr: SocketAddr, config: ClientConfig) -> Result<Client, RpcError> {
        crate::log::init();
        let client_config = match &config.cluster {
            Some(creds) => creds.quinn_client_config(rpcnet_protocol::ALPN)?,
            None => {
                let crypto = client_crypto(&config.trust)?;
                let quic =
                    quinn::crypto::rustls::QuicClientConfig::try_from(crypto).map_err(|e| {
                        RpcError::internal(format!("TLS config unusable for QUIC: {e}"))
                    })?;
                let mut client_config = quinn::ClientConfig::new(Arc::new(quic));
                client_config.transport_config(client_transport_config());
                client_config
            }
        };
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

    async fn open(
        &self,
        method: &str,
        payload: Bytes,
        deadline_ms: u32,
        streaming: bool,
    ) -> Result<(quinn::SendStream, quinn::RecvStream), RpcError> {
        if method.is_empty() || method.len() > u16::MAX as usize {
            return Err(RpcError::invalid_argument(format!(
                "method name must be 1..=65535 bytes, got {}",
                method.len()
            )));
        }
        let frame = Frame::Request(Request {
            method: method.to_string(),
            deadline_ms,
            streaming,
            payload,
        });
        if frame.encoded_len() - rpcnet_protocol::HEADER_LEN > self.max_frame_size as usize {
            return Err(RpcError::new(
                ErrorCode::ResourceExhausted,
                format!(
                    "request of {} bytes exceeds the maximum frame size of {} bytes",
                    frame.encoded_len(),
                    self.max_frame_size
                ),
            ));
        }
        let (mut send, recv) = self.info.quinn().open_bi().await?;
        send.write_all(&frame.to_bytes()).await?;
        send.finish()?;
        Ok((send, recv))
    }

    /// Makes a unary call. `deadline_ms` = 0 means none; otherwise both sides enforce it.
    ///
    /// Errors: the server's ERROR (code and message as sent, e.g. `NOT_FOUND`), `DEADLINE_EXCEEDED`,
    /// `UNAVAILABLE` on connection loss, `PROTOCOL` if the server breaks PROTOCOL.md.
    pub async fn unary(
        &self,
        method: &str,
        payload: Bytes,
        deadline_ms: u32,
    ) -> Result<Bytes, RpcError> {
        self.unary_cancellable(method, payload, deadline_ms, None)
            .await
    }

    /// As [`Client::unary`], and [`Canceller::cancel`] ends the call with `CANCELLED`, telling the
    /// server (STOP_SENDING + RESET_STREAM with code CANCELLED) so its handler's signal aborts.
    pub async fn unary_cancellable(
        &self,
        method: &str,
        payload: Bytes,
        deadline_ms: u32,
        canceller: Option<&Canceller>,
    ) -> Result<Bytes, RpcError> {
        let deadline =
            (deadline_ms > 0).then(|| Instant::now() + Duration::from_millis(deadline_ms.into()));
        let sleep = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        let cancelled = async move {
            match canceller {
                Some(c) => c.cancelled().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(cancelled);
        let (mut send, mut recv) = tokio::select! {
            r = self.open(method, payload, deadline_ms, false) => r?,
            _ = &mut sleep => return Err(RpcError::deadline_exceeded(deadline_ms)),
            _ = &mut cancelled => return Err(RpcError::cancelled("call cancelled by the client")),
        };
        let mut decoder = Decoder::new(self.max_frame_size);
        let mut buf = BytesMut::new();
        let frame = tokio::select! {
            f = read_frame(&mut recv, &mut decoder, &mut buf) => f,
            _ = &mut sleep => {
                let _ = recv.stop(app_code(ErrorCode::DeadlineExceeded));
                let _ = send.reset(app_code(ErrorCode::DeadlineExceeded));
                return Err(RpcError::deadline_exceeded(deadline_ms));
            }
            _ = &mut cancelled => {
                let _ = recv.stop(app_code(ErrorCode::Cancelled));
                let _ = send.reset(app_code(ErrorCode::Cancelled));
                return Err(RpcError::cancelled("call cancelled by the client"));
            }
        };
        match frame {
            Err(e) => {
                if matches!(e.code, ErrorCode::Protocol | ErrorCode::ResourceExhausted) {
                    let _ = recv.stop(app_code(e.code));
                }
                Err(e)
            }
            Ok(Some(Frame::Response { payload })) => Ok(payload),
            Ok(Some(Frame::Error { code, message })) => Err(RpcError::new(code, message)),
            Ok(Some(other)) => {
                let _ = recv.stop(app_code(ErrorCode::Protocol));
                Err(RpcError::protocol(format!(
                    "unexpected {:?} frame in a unary call",
                    other.frame_type()
                )))
            }
            Ok(None) => Err(RpcError::protocol(
                "stream ended without a RESPONSE or ERROR frame",
            )),
        }
    }

    /// Starts a server-streaming call; items are pulled with [`ItemStream::next_batch`].
    ///
    /// Errors: as [`Client::unary`] for opening the stream; later errors come from `next_batch`.
    pub async fn streaming(
        &self,
        method: &str,
        payload: Bytes,
        deadline_ms: u32,
    ) -> Result<ItemStream, RpcError> {
        let deadline =
            (deadline_ms > 0).then(|| Instant::now() + Duration::from_millis(deadline_ms.into()));
        let (send, recv) = self.open(method, payload, deadline_ms, true).await?;
        Ok(ItemStream {
            send,
            recv,
            decoder: Decoder::new(self.max_frame_size),
            buf: BytesMut::new(),
            next_seq: 0,
            done: false,
            pending_error: None,
            eof: false,
            deadline,
            deadline_ms,
        })
    }

    /// Closes the connection (application code 0) and waits briefly for the close to be sent.
    pub async fn close(&self) {
        self.info.quinn().close(0u32.into(), b"client closed");
        let _ = tokio::time::timeout(Duration::from_millis(500), self.endpoint.wait_idle()).await;
    }
}

async fn read_frame(
    recv: &mut quinn::RecvStream,
    decoder: &mut Decoder,
    buf: &mut BytesMut,
) -> Result<Option<Frame>, RpcError> {
    loop {
        if let Some(frame) = decoder.decode(buf)? {
            return Ok(Some(frame));
        }
        match recv.read_chunk(256 * 1024, true).await? {
            Some(chunk) => buf.extend_from_slice(&chunk.bytes),
            None => return Ok(decoder.decode_eof(buf)?),
        }
    }
}

/// The receiving side of a server-streaming call. Items arrive in seq order; a gap, a repeat or a
/// wrong END count is a `PROTOCOL` error.
pub struct ItemStream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    decoder: Decoder,
    buf: BytesMut,
    next_seq: u64,
    done: bool,
    pending_error: Option<RpcError>,
    /// The server finished its side (FIN seen); only buffered bytes remain.
    eof: bool,
    deadline: Option<Instant>,
    deadline_ms: u32,
}

impl ItemStream {
    /// The seq the next item will carry (= items received so far).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Waits for at least one item and returns every item already received, up to `max_items`.
    /// `Ok(None)` after the END frame.
    ///
    /// Errors: the server's ERROR; `DEADLINE_EXCEEDED`; `CANCELLED` after [`ItemStream::cancel`];
    /// `UNAVAILABLE` on connection loss; `PROTOCOL` on a malformed frame or a seq gap.
    pub async fn next_batch(&mut self, max_items: usize) -> Result<Option<Vec<Bytes>>, RpcError> {
        if self.done {
            return Ok(None);
        }
        let max_items = max_items.max(1);
        let result = match self.deadline {
            None => self.fill(max_items).await,
            Some(d) => match tokio::time::timeout_at(d, self.fill(max_items)).await {
                Ok(r) => r,
                Err(_) => {
                    let e = RpcError::deadline_exceeded(self.deadline_ms);
                    self.abort(e.code);
                    Err(e)
                }
            },
        };
        if let Err(e) = &result {
            self.done = true;
            if matches!(e.code, ErrorCode::Protocol | ErrorCode::ResourceExhausted) {
                self.abort(e.code);
            }
        }
        result
    }

    async fn fill(&mut self, max_items: usize) -> Result<Option<Vec<Bytes>>, RpcError> {
        if let Some(e) = self.pending_error.take() {
            return Err(e);
        }
        let mut items = Vec::new();
        loop {
            while items.len() < max_items {
                let decoded = if self.eof {
                    self.decoder.decode_eof(&mut self.buf)
                } else {
                    self.decoder.decode(&mut self.buf)
                };
                let frame = match decoded {
                    Ok(f) => f,
                    // Deliver what arrived intact first; report the error on the next call.
                    Err(e) if !items.is_empty() => {
                        self.pending_error = Some(e.into());
                        return Ok(Some(items));
                    }
                    Err(e) => return Err(e.into()),
                };
                let Some(frame) = frame else { break };
                match frame {
                    Frame::Item { seq, payload } => {
                        if seq != self.next_seq {
                            return Err(RpcError::protocol(format!(
                                "item seq {seq} received where {} was expected",
                                self.next_seq
                            )));
                        }
                        self.next_seq += 1;
                        items.push(payload);
                    }
                    Frame::End { items: count } => {
                        if count != self.next_seq {
                            return Err(RpcError::protocol(format!(
                                "END says {count} items but {} arrived",
                                self.next_seq
                            )));
                        }
                        self.done = true;
                        return Ok(if items.is_empty() { None } else { Some(items) });
                    }
                    Frame::Error { code, message } => {
                        let e = RpcError::new(code, message);
                        if items.is_empty() {
                            return Err(e);
                        }
                        // Deliver what arrived first; report the error on the next call.
                        self.pending_error = Some(e);
                        return Ok(Some(items));
                    }
                    other => {
                        return Err(RpcError::protocol(format!(
                            "unexpected {:?} frame in a streaming call",
                            other.frame_type()
                        )))
                    }
                }
            }
            if !items.is_empty() {
                // Batch: before returning, take whatever quinn already holds for this stream
                // without waiting (a zero timeout still polls the read once; quinn reads are
                // cancel-safe), so one crossing into JavaScript carries many items.
                if items.len() < max_items && !self.eof {
                    if let Ok(chunk) =
                        tokio::time::timeout(Duration::ZERO, self.recv.read_chunk(256 * 1024, true))
                            .await
                    {
                        match chunk {
                            Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk.bytes),
                            Ok(None) => self.eof = true,
                            Err(e) => {
                                self.pending_error = Some(e.into());
                                return Ok(Some(items));
                            }
                        }
                        continue;
                    }
                }
                return Ok(Some(items));
            }
            if self.eof {
                return Err(RpcError::protocol(
                    "stream ended without an END or ERROR frame",
                ));
            }
            match self.recv.read_chunk(256 * 1024, true).await? {
                Some(chunk) => self.buf.extend_from_slice(&chunk.bytes),
                None => self.eof = true,
            }
        }
    }

    fn abort(&mut self, code: ErrorCode) {
        tracing::debug!(%code, stream = %self.recv.id(), "aborting streaming call");
        let _ = self.recv.stop(app_code(code));
        let _ = self.send.reset(app_code(code));
        self.done = true;
    }

    /// Cancels the call: STOP_SENDING and RESET_STREAM with code CANCELLED (PROTOCOL.md
    /// "Cancellation"); the server's handler sees its signal abort.
    pub fn cancel(&mut self) {
        if !self.done {
            self.abort(ErrorCode::Cancelled);
        }
    }
}

/// A shareable, cancellable [`ItemStream`]: `next_batch` and `cancel` may be called from
/// different threads (the binding calls `cancel` from JavaScript's thread while a `next_batch` is
/// pending on the runtime). Cancellation is sent to the server at once, whether or not a
/// `next_batch` is running.
pub struct StreamHandle {
    stream: tokio::sync::Mutex<ItemStream>,
    cancelled: std::sync::atomic::AtomicBool,
    wake: tokio::sync::Notify,
}

impl StreamHandle {
    /// Wraps a stream.
    pub fn new(stream: ItemStream) -> Self {
        Self {
            stream: tokio::sync::Mutex::new(stream),
            cancelled: Default::default(),
            wake: tokio::sync::Notify::new(),
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// As [`ItemStream::next_batch`]; after [`StreamHandle::cancel`] it fails with `CANCELLED`.
    pub async fn next_batch(&self, max_items: usize) -> Result<Option<Vec<Bytes>>, RpcError> {
        let mut stream = self.stream.lock().await;
        if self.is_cancelled() {
            stream.cancel();
            return Err(RpcError::cancelled("call cancelled by the client"));
        }
        let result = tokio::select! {
            r = stream.next_batch(max_items) => r,
            _ = self.wake.notified() => Err(RpcError::cancelled("call cancelled by the client")),
        };
        if self.is_cancelled() {
            stream.cancel();
            return Err(RpcError::cancelled("call cancelled by the client"));
        }
        result
    }

    /// Cancels the call (STOP_SENDING + RESET_STREAM with code CANCELLED). Idempotent.
    pub fn cancel(&self) {
        self.cancelled
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_one();
        match self.stream.try_lock() {
            Ok(mut stream) => stream.cancel(),
            Err(_) => {
                tracing::debug!("cancel while a batch is pending: the pending next_batch sends it")
            }
        }
    }
}

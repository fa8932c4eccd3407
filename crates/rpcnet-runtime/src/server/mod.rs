//! The rpcnet server: a quinn endpoint that accepts connections, reads each call's REQUEST frame
//! (PROTOCOL.md) and hands the call to an embedder as a [`ServerEvent`]. The embedder answers by
//! call id ([`Server::respond`], [`Server::push`], [`Server::end`]); framing, stream writes,
//! deadlines, cancellation and backpressure stay here, in Rust.
//!
//! Events are drained in batches ([`Server::next_events`]) so that a JavaScript embedder crosses
//! the N-API boundary once per batch, not once per call.

mod call;
mod inbound;
mod item_queue;
mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use tokio::sync::oneshot;

pub use item_queue::{Ending, Entry, ItemQueue, PushStatus, Taken};
pub use session::Sessions;

use crate::cancel::Canceller;
use crate::client::ResponseMetadata;
use crate::cluster::ClusterCredentials;
use crate::connection::ConnectionInfo;
use crate::endpoint::BoundEndpoint;
use crate::error::RpcError;
use crate::events::EventQueue;
use crate::tls::{server_crypto, ServerIdentity};
use crate::transport::{serving_transport_config, CallWindow, MAX_CONCURRENT_CALLS};
use inbound::Inbound;
use rpcnet_protocol::{ErrorCode, Metadata, DEFAULT_MAX_FRAME_SIZE};

/// Default number of items a streaming call may have queued before `push` answers `Full`.
pub const DEFAULT_STREAM_WINDOW_ITEMS: usize = 256;
/// Default number of queued bytes per streaming call before `push` answers `Full` (1 MiB).
pub const DEFAULT_STREAM_WINDOW_BYTES: usize = 1024 * 1024;

/// The kind of a registered method (PROTOCOL.md section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodKind {
    /// One request, one RESPONSE.
    Unary,
    /// One request, ITEM frames then END.
    ServerStreaming,
    /// The client's ITEM frames then its END, one RESPONSE (version 2, section 3.4).
    ClientStreaming,
    /// ITEM frames both ways, each side ending with END (version 2, section 3.4).
    Bidi,
}

impl MethodKind {
    /// The kind whose REQUEST flags are STREAMING = `server_streaming` and CLIENT_STREAMING =
    /// `client_streaming`.
    pub fn of(server_streaming: bool, client_streaming: bool) -> MethodKind {
        match (server_streaming, client_streaming) {
            (false, false) => MethodKind::Unary,
            (true, false) => MethodKind::ServerStreaming,
            (false, true) => MethodKind::ClientStreaming,
            (true, true) => MethodKind::Bidi,
        }
    }

    /// The server answers with ITEMs and END.
    pub fn server_streaming(self) -> bool {
        matches!(self, MethodKind::ServerStreaming | MethodKind::Bidi)
    }

    /// The client sends ITEMs and END after its REQUEST.
    pub fn client_streaming(self) -> bool {
        matches!(self, MethodKind::ClientStreaming | MethodKind::Bidi)
    }

    /// The name used in messages, e.g. `client-streaming`.
    pub fn name(self) -> &'static str {
        match self {
            MethodKind::Unary => "unary",
            MethodKind::ServerStreaming => "server-streaming",
            MethodKind::ClientStreaming => "client-streaming",
            MethodKind::Bidi => "bidi",
        }
    }
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// UDP address to bind; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Certificate source; defaults to a generated self-signed certificate.
    pub identity: ServerIdentity,
    /// Largest accepted frame body in bytes (PROTOCOL.md "Maximum frame size").
    pub max_frame_size: u32,
    /// Items a streaming call may queue before the producer must wait.
    pub stream_window_items: usize,
    /// Bytes a streaming call may queue before the producer must wait.
    pub stream_window_bytes: usize,
    /// Most concurrent calls one connection may have open (QUIC stream credit, RFC 9000 section
    /// 4.6). A connection is granted [`crate::transport::INITIAL_CALL_WINDOW`] at first and more,
    /// up to this, as its calls need it ([`crate::transport::CallWindow`]); values below the
    /// initial window count as the initial window. Default
    /// [`crate::transport::MAX_CONCURRENT_CALLS`].
    pub max_concurrent_calls: u32,
    /// Cluster mode (a worker's user port): mutual TLS under the cluster CA instead of
    /// `identity`, and calls may start with an ATTACH frame (PROTOCOL.md "Cluster link frames").
    pub cluster: Option<Arc<ClusterCredentials>>,
    /// QUIC idle timeout the server offers, ms (RFC 9000 section 10.1): a connection silent that
    /// long is closed and its calls fail with `UNAVAILABLE`. A connection uses the smaller of the
    /// two ends' offers, so a client's `loss_detection_ms` below this decides. Default
    /// [`crate::transport::IDLE_TIMEOUT_MS`] (30 000). Ignored in cluster mode.
    pub idle_timeout_ms: u64,
    /// Interval between the server's keep-alive PINGs on a quiet connection, ms; 0 for none.
    /// Must be below `idle_timeout_ms`. Default [`crate::transport::KEEP_ALIVE_MS`] (5 000).
    /// Ignored in cluster mode.
    pub keep_alive_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            identity: ServerIdentity::SelfSigned,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            stream_window_items: DEFAULT_STREAM_WINDOW_ITEMS,
            stream_window_bytes: DEFAULT_STREAM_WINDOW_BYTES,
            max_concurrent_calls: MAX_CONCURRENT_CALLS,
            cluster: None,
            idle_timeout_ms: crate::transport::IDLE_TIMEOUT_MS,
            keep_alive_ms: crate::transport::KEEP_ALIVE_MS,
        }
    }
}

/// Something the embedder must react to.
#[derive(Debug, Clone)]
pub enum ServerEvent {
    /// A new call for a registered method. Answer it by `id`.
    Call {
        /// Server-unique call id.
        id: u64,
        /// The method name from the REQUEST frame.
        method: String,
        /// The request payload.
        payload: Bytes,
        /// The request headers (PROTOCOL.md section 5.6); through a director they include
        /// `rpcnet-session-id`.
        metadata: Metadata,
        /// Whether the method is server-streaming.
        kind: MethodKind,
        /// Deadline in ms from reception (0 = none).
        deadline_ms: u32,
        /// The connection the call arrived on (on a worker: the director's link).
        connection: ConnectionInfo,
        /// The client connection's `connectionId` (from ATTACH on a worker; else `connection.id`).
        client_connection_id: String,
        /// For a resumed call (migration or failover): the handler's last checkpoint; the
        /// handler continues from item `seq` and reads the client's items from `read` (a bidi
        /// call). `None` = start from item 0.
        resume: Option<rpcnet_protocol::Checkpoint>,
    },
    /// A call ended before the embedder answered: the client cancelled (`CANCELLED`), the deadline
    /// passed (`DEADLINE_EXCEEDED`) or the connection was lost (`UNAVAILABLE`). The embedder should
    /// stop working on it; answers for it are ignored.
    Cancelled {
        /// The call id.
        id: u64,
        /// Why it ended.
        code: ErrorCode,
        /// What happened, for humans.
        message: String,
        /// The call goes on elsewhere: its session migrated (State Capture), or its director link
        /// was lost and the call is kept for a resume (PROTOCOL.md section 15.6). The handler
        /// stops here all the same; another run of it (from its checkpoint) continues the call.
        moved: bool,
    },
}

/// A unary call's answer: the result, and the response headers and trailers.
type UnaryReply = (Result<Bytes, RpcError>, ResponseMetadata);

enum CallSlot {
    Unary(oneshot::Sender<UnaryReply>),
    Streaming(Arc<ItemQueue>),
}

pub(crate) struct Shared {
    methods: RwLock<HashMap<String, MethodKind>>,
    calls: Mutex<HashMap<u64, CallSlot>>,
    /// The client items of client-streaming and bidi calls, by call id.
    inbound: Mutex<HashMap<u64, Arc<Inbound>>>,
    next_id: AtomicU64,
    connections: Mutex<HashMap<String, ConnectionInfo>>,
    shutdown: Canceller,
    sessions: Arc<Sessions>,
    events: EventQueue<ServerEvent>,
    config: ServerConfig,
}

impl Shared {
    fn emit(&self, event: ServerEvent) {
        self.events.push(event);
    }
}

/// A running rpcnet server (see module docs).
pub struct Server {
    endpoint: BoundEndpoint,
    shared: Arc<Shared>,
    fingerprint: String,
}

impl Server {
    /// Binds the UDP socket and starts accepting connections. Must run inside a tokio runtime.
    ///
    /// Errors: `INVALID_ARGUMENT` for an unusable identity; `UNAVAILABLE` when the address cannot
    /// be bound (in use, not local).
    pub async fn bind(config: ServerConfig) -> Result<Server, RpcError> {
        crate::log::init();
        let (server_config, fingerprint) = match &config.cluster {
            Some(creds) => (
                // Cluster links speak only rpcnet/2 (PROTOCOL.md section 2): a peer of an
                // older build fails the handshake instead of every relayed call.
                creds.quinn_server_config(&[rpcnet_protocol::ALPN])?,
                crate::tls::fingerprint(&creds.chain[0]),
            ),
            None => {
                let identity = config.identity.load()?;
                let fingerprint = identity.fingerprint.clone();
                let crypto = server_crypto(identity)?;
                let quic =
                    quinn::crypto::rustls::QuicServerConfig::try_from(crypto).map_err(|e| {
                        RpcError::internal(format!("TLS config unusable for QUIC: {e}"))
                    })?;
                let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(quic));
                server_config.transport_config(serving_transport_config(
                    config.idle_timeout_ms,
                    config.keep_alive_ms,
                )?);
                (server_config, fingerprint)
            }
        };
        // A cluster port shares the cluster's stateless reset key; a plain server keeps a
        // random one.
        let endpoint_config = config
            .cluster
            .as_ref()
            .map_or_else(quinn::EndpointConfig::default, |c| c.endpoint_config());
        let endpoint = BoundEndpoint::server(server_config, endpoint_config, config.bind)
            .map_err(|e| RpcError::unavailable(format!("cannot bind UDP {}: {e}", config.bind)))?;
        let shared = Arc::new(Shared {
            methods: RwLock::new(HashMap::new()),
            calls: Mutex::new(HashMap::new()),
            inbound: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            connections: Mutex::new(HashMap::new()),
            shutdown: Canceller::new(),
            sessions: Arc::new(Sessions::default()),
            events: EventQueue::default(),
            config,
        });
        if let Some(accepting) = endpoint.endpoint() {
            tokio::spawn(accept_loop(accepting, shared.clone()));
        }
        tracing::info!(addr = %endpoint.local_addr(), "rpcnet server listening");
        Ok(Server {
            endpoint,
            shared,
            fingerprint,
        })
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint.local_addr()
    }

    /// SHA-256 fingerprint (64 lowercase hex digits) of the server's end-entity certificate.
    pub fn cert_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Registers (or replaces) a method. Calls to unregistered methods get `UNIMPLEMENTED` without
    /// reaching the embedder; calls whose STREAMING flag does not match `kind` get `INVALID_ARGUMENT`.
    pub fn register(&self, method: &str, kind: MethodKind) {
        self.shared
            .methods
            .write()
            .unwrap()
            .insert(method.to_string(), kind);
    }

    /// Waits for at least one event and returns up to `max` of them. Returns an empty batch once
    /// the server is closed.
    pub async fn next_events(&self, max: usize) -> Vec<ServerEvent> {
        self.shared
            .events
            .next_batch(max, &self.shared.shutdown)
            .await
    }

    /// Completes a unary call. Returns false if the call is unknown or already over (cancelled,
    /// deadline passed); the answer is then dropped.
    pub fn respond(&self, id: u64, result: Result<Bytes, RpcError>) -> bool {
        self.respond_with(id, result, ResponseMetadata::default())
    }

    /// [`Server::respond`] with response headers and trailers (PROTOCOL.md section 5.6): HEADERS
    /// and TRAILERS go out before the RESPONSE or ERROR, each only if not empty and only on a
    /// connection that negotiated `rpcnet/2`.
    pub fn respond_with(
        &self,
        id: u64,
        result: Result<Bytes, RpcError>,
        metadata: ResponseMetadata,
    ) -> bool {
        let (result, metadata) = match check_response_metadata(&metadata) {
            Ok(()) => (result, metadata),
            Err(e) => (Err(e), ResponseMetadata::default()),
        };
        let mut calls = self.shared.calls.lock().unwrap();
        if !matches!(calls.get(&id), Some(CallSlot::Unary(_))) {
            return false;
        }
        match calls.remove(&id) {
            Some(CallSlot::Unary(tx)) => {
                drop(calls);
                tx.send((result, metadata)).is_ok()
            }
            _ => false,
        }
    }

    fn queue(&self, id: u64) -> Option<Arc<ItemQueue>> {
        match self.shared.calls.lock().unwrap().get(&id) {
            Some(CallSlot::Streaming(q)) => Some(q.clone()),
            _ => None,
        }
    }

    /// Queues one item of a streaming call (its seq is assigned in order). See [`PushStatus`].
    pub fn push(&self, id: u64, item: Bytes) -> PushStatus {
        self.queue(id).map_or(PushStatus::Closed, |q| q.push(item))
    }

    /// As [`Server::push`], after recording `checkpoint` (`ctx.checkpoint` since the previous
    /// item: its state and the client items the handler had read), so a handler that
    /// checkpoints after every item still crosses from JavaScript once per item.
    pub fn push_checkpointed(
        &self,
        id: u64,
        checkpoint: Option<(Bytes, u64)>,
        item: Bytes,
    ) -> PushStatus {
        let Some(q) = self.queue(id) else {
            return PushStatus::Closed;
        };
        if let Some((state, read)) = checkpoint {
            if q.checkpoint(state, read) == PushStatus::Closed {
                return PushStatus::Closed;
            }
        }
        q.push(item)
    }

    /// Up to `max` of the client's items of a client-streaming or bidi call, waiting for one;
    /// `Ok(None)` once the client's END came and every item was taken (PROTOCOL.md section 3.4).
    ///
    /// Errors: `PROTOCOL` when the client broke the rules (a seq gap, a wrong END count, no
    /// END), the code of its reset, `UNAVAILABLE` once the call is over or when `id` is not a
    /// client-streaming call.
    pub async fn next_client_items(
        &self,
        id: u64,
        max: usize,
    ) -> Result<Option<Vec<Bytes>>, RpcError> {
        let inbound = self.shared.inbound.lock().unwrap().get(&id).cloned();
        match inbound {
            Some(q) => q.take(max).await,
            None => Err(RpcError::unavailable(format!(
                "call {id} is over or is not a client-streaming call"
            ))),
        }
    }

    /// Queues the response headers of a streaming call, sent before the items pushed after them
    /// (PROTOCOL.md section 5.6; not sent on an `rpcnet/1` connection). A director forwards only
    /// the first HEADERS of a call, before any item. See [`PushStatus`].
    pub fn push_headers(&self, id: u64, metadata: Metadata) -> PushStatus {
        if let Err(e) = check_metadata_size("response headers", &metadata) {
            self.end(id, Err(e));
            return PushStatus::Closed;
        }
        self.queue(id)
            .map_or(PushStatus::Closed, |q| q.headers(metadata))
    }

    /// Records `ctx.checkpoint(state)` of a streaming call, in order with its items, taken
    /// after the handler read `read` of the client's items (a bidi call; 0 otherwise). A
    /// resumed handler reads the client's items from there (PROTOCOL.md section 13.6). See
    /// [`PushStatus`].
    pub fn checkpoint(&self, id: u64, state: Bytes, read: u64) -> PushStatus {
        self.queue(id)
            .map_or(PushStatus::Closed, |q| q.checkpoint(state, read))
    }

    /// The sessions this server holds (meaningful in cluster mode).
    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.shared.sessions
    }

    /// Waits until a streaming call can take more items. Returns false if the call is over.
    pub async fn writable(&self, id: u64) -> bool {
        match self.queue(id) {
            Some(q) => q.writable().await,
            None => false,
        }
    }

    /// Ends a streaming call: `Ok(())` sends END after the queued items, `Err` sends ERROR.
    /// Returns false if the call is unknown or already over.
    pub fn end(&self, id: u64, result: Result<(), RpcError>) -> bool {
        self.end_with(id, result, Metadata::new())
    }

    /// Ends a streaming call with `result` after its response `metadata`: the headers (if the
    /// handler pushed none before; a later HEADERS is dropped, PROTOCOL.md section 5.6), then the
    /// trailers and END or ERROR. Returns false if the call is unknown or already over.
    pub fn finish(
        &self,
        id: u64,
        result: Result<(), RpcError>,
        metadata: ResponseMetadata,
    ) -> bool {
        if !metadata.headers.is_empty() {
            self.push_headers(id, metadata.headers);
        }
        self.end_with(id, result, metadata.trailers)
    }

    /// Fails a call of any kind with `e` after its response `metadata`: a unary call as
    /// [`Server::respond_with`], a streaming one as [`Server::finish`]. Returns false if the call
    /// is unknown or already over.
    pub fn fail(&self, id: u64, e: RpcError, metadata: ResponseMetadata) -> bool {
        self.respond_with(id, Err(e.clone()), metadata.clone()) || self.finish(id, Err(e), metadata)
    }

    /// [`Server::end`] with trailers, sent just before the END or ERROR (PROTOCOL.md section
    /// 5.6; if not empty and on an `rpcnet/2` connection).
    pub fn end_with(&self, id: u64, result: Result<(), RpcError>, trailers: Metadata) -> bool {
        let (result, trailers) = match check_metadata_size("response trailers", &trailers) {
            Ok(()) => (result, trailers),
            Err(e) => (Err(e), Metadata::new()),
        };
        let ending = match result {
            Ok(()) => Ending::End(trailers),
            Err(e) => Ending::Error(e, trailers),
        };
        self.queue(id).is_some_and(|q| q.finish(ending))
    }

    /// The open connections (`connectionId` to connection).
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.shared
            .connections
            .lock()
            .unwrap()
            .values()
            .cloned()
            .collect()
    }

    /// The open connection with this `connectionId`, if any.
    pub fn connection(&self, connection_id: &str) -> Option<ConnectionInfo> {
        self.shared
            .connections
            .lock()
            .unwrap()
            .get(connection_id)
            .cloned()
    }

    /// Number of calls in progress.
    pub fn open_calls(&self) -> usize {
        self.shared.calls.lock().unwrap().len()
    }

    /// Closes the endpoint: open connections are closed with application code 0, pending and
    /// later [`Server::next_events`] return an empty batch, and events not yet taken are dropped.
    /// Returns once the UDP port is released, so it can be bound again at once (waits at most
    /// 5 s, for connections to drain and their calls to end). Idempotent.
    pub async fn close(&self) {
        self.shared.shutdown.cancel();
        // Queued calls hold their connections, and so the socket.
        self.shared.events.close().await;
        self.endpoint.close(0, b"server closed").await;
    }
}

impl Drop for Server {
    /// Starts closing as [`Server::close`] does, without waiting for the port's release.
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
        self.endpoint.begin_close(0, b"server closed");
    }
}

async fn accept_loop(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let connection = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "handshake failed");
                    return;
                }
            };
            let info = ConnectionInfo::new(connection.clone());
            // On a cluster link, the director's leaf fingerprint: computed once per connection.
            let director: Option<Arc<str>> = shared
                .config
                .cluster
                .as_ref()
                .and_then(|_| ClusterCredentials::peer_fingerprint(&connection))
                .map(Arc::from);
            tracing::debug!(connection_id = %info.id, remote = %info.remote_address(), "connection accepted");
            shared
                .connections
                .lock()
                .unwrap()
                .insert(info.id.clone(), info.clone());
            let window = CallWindow::new(connection.clone(), shared.config.max_concurrent_calls);
            loop {
                match connection.accept_bi().await {
                    Ok((send, recv)) => {
                        let open = window.opened();
                        let call = call::serve_call(
                            shared.clone(),
                            info.clone(),
                            director.clone(),
                            send,
                            recv,
                        );
                        tokio::spawn(async move {
                            call.await;
                            drop(open);
                        });
                    }
                    Err(e) => {
                        tracing::debug!(connection_id = %info.id, error = %e, "connection ended");
                        shared.connections.lock().unwrap().remove(&info.id);
                        break;
                    }
                }
            }
        });
    }
}

/// Checks a handler's response metadata against the metadata limit every receiver enforces
/// (PROTOCOL.md section 5.6), so that an oversized block fails the call here, with a message
/// that names it, instead of at the client's decoder.
///
/// Errors: `INTERNAL` (the handler's fault) naming the block and its size.
fn check_response_metadata(m: &ResponseMetadata) -> Result<(), RpcError> {
    check_metadata_size("response headers", &m.headers)?;
    check_metadata_size("response trailers", &m.trailers)
}

fn check_metadata_size(what: &str, m: &Metadata) -> Result<(), RpcError> {
    let len = m.encoded_len();
    let max = rpcnet_protocol::metadata::DEFAULT_MAX_METADATA_SIZE as usize;
    if len > max {
        return Err(RpcError::internal(format!(
            "the handler's {what} are {len} bytes, more than the maximum metadata size of {max} bytes"
        )));
    }
    Ok(())
}

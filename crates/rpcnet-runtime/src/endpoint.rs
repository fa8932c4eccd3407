//! [`BoundEndpoint`]: a listening quinn endpoint whose `close` returns once its UDP port is free.
//!
//! quinn closes an endpoint's UDP socket only when nothing refers to it any more: every
//! `quinn::Endpoint` clone, the endpoint driver, and every connection (each keeps the socket to
//! send on) with its streams. A server that merely calls `Endpoint::close` and keeps its handle
//! holds the port until that handle is dropped (for a JavaScript embedder: until the garbage
//! collector runs), so binding the same port again fails meanwhile. Here the handle lives in a
//! slot that [`BoundEndpoint::close`] empties, and the socket is wrapped so that its release can
//! be awaited: `close().await` returns once the port can be bound again.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::sync::watch;

/// Longest [`BoundEndpoint::close`] waits for the socket's release, ms. Closed connections drain
/// for three probe timeouts (RFC 9000 section 10.2), tens of ms on a LAN; only a connection
/// handle held elsewhere (a task still using it) can make the wait reach this bound.
pub(crate) const CLOSE_TIMEOUT_MS: u64 = 5_000;

/// A bound, listening endpoint (see module docs).
pub(crate) struct BoundEndpoint {
    endpoint: Mutex<Option<quinn::Endpoint>>,
    local_addr: SocketAddr,
    /// Its sender lives in the socket and is dropped right after the socket is closed.
    released: watch::Receiver<()>,
}

impl BoundEndpoint {
    /// Binds `addr` (port 0 = any free port) and accepts connections with `config`, as
    /// `quinn::Endpoint::server` does, with `endpoint` as the endpoint configuration (stateless
    /// reset key and connection IDs: a cluster's shared one,
    /// [`crate::cluster::ClusterCredentials::endpoint_config`], or quinn's default with a
    /// random key). Must run inside tokio.
    ///
    /// Errors: the bind error (address in use, not local).
    pub(crate) fn server(
        config: quinn::ServerConfig,
        endpoint: quinn::EndpointConfig,
        addr: SocketAddr,
    ) -> io::Result<Self> {
        let runtime =
            quinn::default_runtime().ok_or_else(|| io::Error::other("no tokio runtime"))?;
        let socket = runtime.wrap_udp_socket(std::net::UdpSocket::bind(addr)?)?;
        let local_addr = socket.local_addr()?;
        let (tx, released) = watch::channel(());
        let socket = Arc::new(TrackedSocket {
            inner: socket,
            _released: tx,
        });
        let endpoint =
            quinn::Endpoint::new_with_abstract_socket(endpoint, Some(config), socket, runtime)?;
        Ok(Self {
            endpoint: Mutex::new(Some(endpoint)),
            local_addr,
            released,
        })
    }

    /// A handle for an accept loop, or `None` once closed. The loop ends (`accept` yields `None`)
    /// when the endpoint closes, which drops the handle.
    pub(crate) fn endpoint(&self) -> Option<quinn::Endpoint> {
        self.endpoint.lock().unwrap().clone()
    }

    /// The bound address (stays available after closing).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts closing without waiting: every connection is closed with application error
    /// `code` and `reason` (RFC 9000 CONNECTION_CLOSE), and no connection is accepted any more.
    /// Idempotent. The port is released once every handle is gone (see [`BoundEndpoint::close`]).
    pub(crate) fn begin_close(&self, code: u32, reason: &[u8]) {
        if let Some(endpoint) = self.endpoint.lock().unwrap().as_ref() {
            endpoint.close(code.into(), reason);
        }
    }

    /// Closes as [`BoundEndpoint::begin_close`] does, waits for the connections to drain, drops
    /// this handle and waits until the UDP socket is closed, so the port can be bound again at
    /// once. Waits at most [`CLOSE_TIMEOUT_MS`] (then logs a warning and returns). Idempotent;
    /// concurrent calls all wait for the release.
    pub(crate) async fn close(&self, code: u32, reason: &[u8]) {
        let endpoint = self.endpoint.lock().unwrap().take();
        let mut released = self.released.clone();
        let release = async move {
            if let Some(endpoint) = endpoint {
                endpoint.close(code.into(), reason);
                endpoint.wait_idle().await;
            }
            // Resolves with an error once the sender, dropped with the socket, is gone.
            while released.changed().await.is_ok() {}
        };
        if tokio::time::timeout(Duration::from_millis(CLOSE_TIMEOUT_MS), release)
            .await
            .is_err()
        {
            tracing::warn!(addr = %self.local_addr, "UDP socket still in use {CLOSE_TIMEOUT_MS} ms after close");
        }
    }
}

/// The endpoint's socket, delegating to quinn's. Fields drop in order: the socket is closed
/// first, then `_released` signals [`BoundEndpoint::close`].
struct TrackedSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    _released: watch::Sender<()>,
}

impl fmt::Debug for TrackedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl AsyncUdpSocket for TrackedSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        // The poller keeps this wrapper, and so the release signal, alive as long as it needs
        // the socket.
        Box::pin(TrackedPoller {
            inner: self.inner.clone().create_io_poller(),
            _socket: self,
        })
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

/// quinn's poller for the socket, holding the [`TrackedSocket`] (dropped after the poller).
#[derive(Debug)]
struct TrackedPoller {
    inner: Pin<Box<dyn UdpPoller>>,
    _socket: Arc<TrackedSocket>,
}

impl UdpPoller for TrackedPoller {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context) -> Poll<io::Result<()>> {
        self.get_mut().inner.as_mut().poll_writable(cx)
    }
}

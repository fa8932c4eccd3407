//! PROTOCOL.md is a contract: a client written from the document alone must work. These tests
//! check, over real QUIC sockets and with a raw quinn client, what the document says a client can
//! rely on: which STOP_SENDING codes a server sends (sections 3.3 and 7).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rpcnet_protocol::{Decoder, ErrorCode, Frame, Request};
use rpcnet_runtime::director::Director;
use rpcnet_runtime::worker::Worker;
use rpcnet_runtime::{Server, ServerConfig};

fn request(method: &str, streaming: bool) -> Bytes {
    Frame::Request(Request {
        method: method.into(),
        deadline_ms: 0,
        streaming,
        // `count` on the echo server: 3 items; the cluster's `count` ignores it.
        payload: Bytes::copy_from_slice(&3u32.to_be_bytes()),
    })
    .to_bytes()
}

/// One call the way PROTOCOL.md section 3 describes it: REQUEST + FIN, then every frame until the
/// server's FIN. Returns the frames.
async fn raw_call(conn: &quinn::Connection, bytes: &[u8]) -> Vec<Frame> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    send.finish().unwrap();
    let data = recv.read_to_end(1 << 20).await.unwrap();
    let mut buf = BytesMut::from(&data[..]);
    let mut frames = Vec::new();
    while let Some(f) = Decoder::default().decode_eof(&mut buf).unwrap() {
        frames.push(f);
    }
    frames
}

/// A plain server and a director with worker-a, both serving `count` (3 items).
struct Both {
    server: Arc<Server>,
    server_max: u32,
    director: Director,
    _workers: Vec<Arc<Worker>>,
    dir: std::path::PathBuf,
}

impl Both {
    async fn start(tag: &str, server: ServerConfig) -> Both {
        let dir =
            std::env::temp_dir().join(format!("rpcnet-contract-{tag}-{}", std::process::id()));
        let (director, workers) = common::cluster(&dir, &["worker-a"], 3, 8, Duration::ZERO).await;
        Both {
            server_max: server.max_frame_size,
            server: common::echo_server(server).await,
            director,
            _workers: workers,
            dir,
        }
    }

    /// `(name, address, certificate fingerprint, max frame size)` of the server and the director.
    fn targets(&self) -> [(&'static str, SocketAddr, &str, u32); 2] {
        [
            (
                "server",
                self.server.local_addr(),
                self.server.cert_fingerprint(),
                self.server_max,
            ),
            (
                "director",
                self.director.local_addr(),
                self.director.cert_fingerprint(),
                rpcnet_protocol::DEFAULT_MAX_FRAME_SIZE,
            ),
        ]
    }
}

impl Drop for Both {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---- Sections 3.3 and 7: STOP_SENDING ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_calls_end_without_stop_sending() {
    let both = Both::start("stop", ServerConfig::default()).await;
    for (name, addr, fingerprint, _) in both.targets() {
        let conn = common::raw_connection(addr, fingerprint, None).await;
        for _ in 0..50 {
            let f = raw_call(&conn, &request("count", true)).await;
            assert!(
                matches!(f.last(), Some(Frame::End { items: 3 })),
                "{name}: {f:?}"
            );
            // An ERROR (unknown method) is an ordinary end too.
            let f = raw_call(&conn, &request("missing", false)).await;
            assert!(
                matches!(
                    f[..],
                    [Frame::Error {
                        code: ErrorCode::NotFound,
                        ..
                    }]
                ),
                "{name}: {f:?}"
            );
        }
        if name == "server" {
            let f = raw_call(&conn, &request("echo", false)).await;
            assert!(matches!(f[..], [Frame::Response { .. }]), "{f:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            conn.stats().frame_rx.stop_sending,
            0,
            "{name} sent STOP_SENDING on ordinary calls"
        );

        // Bytes after the REQUEST, even once the call is over, get STOP_SENDING(PROTOCOL). (No
        // FIN: a finished stream whose bytes were all acknowledged no longer reports STOP_SENDING.)
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&request("count", true)).await.unwrap();
        let data = recv.read_to_end(1 << 16).await.unwrap();
        assert!(!data.is_empty(), "{name} answered");
        let _ = send.write_all(b"late").await;
        let stopped = tokio::time::timeout(Duration::from_secs(5), send.stopped())
            .await
            .expect("stopped in time");
        assert_eq!(
            stopped,
            Ok(Some(quinn::VarInt::from_u32(256))),
            "{name}: bytes after the REQUEST"
        );
        assert_eq!(conn.stats().frame_rx.stop_sending, 1, "{name}");
    }
}

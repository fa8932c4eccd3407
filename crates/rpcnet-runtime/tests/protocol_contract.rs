//! PROTOCOL.md is a contract: a client written from the document alone must work. These tests
//! check, over real QUIC sockets and with a raw quinn client, what the document says a client can
//! rely on: how `connectionId` and the director's session id are derived (section 2.1), that no
//! unidirectional stream can be opened (section 2), which STOP_SENDING codes a server sends
//! (section 7) and which check refuses an over-long frame of the wrong direction (section 11).

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ring::{digest, hkdf};
use rpcnet_protocol::{Decoder, ErrorCode, Frame, Request};
use rpcnet_runtime::connection::CONNECTION_ID_LABEL;
use rpcnet_runtime::director::Director;
use rpcnet_runtime::worker::Worker;
use rpcnet_runtime::{ConnectionInfo, Server, ServerConfig};

const PROTOCOL_MD: &str = include_str!("../../../PROTOCOL.md");

/// Every secret rustls logs for a connection (`SSLKEYLOGFILE` labels).
#[derive(Debug, Default)]
struct Secrets(Mutex<Vec<(String, Vec<u8>)>>);

impl rustls::KeyLog for Secrets {
    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .push((label.to_string(), secret.to_vec()));
    }

    fn will_log(&self, _label: &str) -> bool {
        true
    }
}

impl Secrets {
    /// A raw connection to `addr` (certificate `fingerprint`) and the secrets it logs.
    async fn connect(addr: SocketAddr, fingerprint: &str) -> (quinn::Connection, Arc<Secrets>) {
        let secrets = Arc::new(Secrets::default());
        let conn = common::raw_connection(addr, fingerprint, Some(secrets.clone())).await;
        (conn, secrets)
    }

    fn exporter(&self) -> Vec<u8> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(label, _)| label == "EXPORTER_SECRET")
            .map(|(_, s)| s.clone())
            .expect("rustls logged the exporter secret")
    }
}

fn request(method: &str, streaming: bool) -> Bytes {
    Frame::Request(Request {
        method: method.into(),
        deadline_ms: 0,
        streaming,
        // `count` on the echo server: 3 items; the cluster's `count` ignores it.
        payload: Bytes::copy_from_slice(&3u32.to_be_bytes()),
        ..Request::default()
    })
    .to_bytes()
}

/// One call the way PROTOCOL.md section 3 describes it: REQUEST + FIN, then every frame until the
/// server's FIN. Returns the frames.
async fn raw_call(conn: &quinn::Connection, bytes: &[u8]) -> Vec<Frame> {
    common::raw_frames(conn, bytes).await
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

// ---- Section 2.1: connectionId and the session id --------------------------------------------

/// RFC 8446 section 7.1 HKDF-Expand-Label (the label gets the `tls13 ` prefix).
fn hkdf_expand_label(
    alg: hkdf::Algorithm,
    secret: &[u8],
    label: &[u8],
    context: &[u8],
    len: usize,
) -> Vec<u8> {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let full_label = [b"tls13 ".as_slice(), label].concat();
    let info = [
        &(len as u16).to_be_bytes()[..],
        &[full_label.len() as u8],
        &full_label,
        &[context.len() as u8],
        context,
    ]
    .concat();
    let mut out = vec![0u8; len];
    hkdf::Prk::new_less_safe(alg, secret)
        .expand(&[&info], Len(len))
        .unwrap()
        .fill(&mut out)
        .unwrap();
    out
}

/// PROTOCOL.md section 2.1: the 8 exporter bytes of a connection whose TLS exporter secret
/// (`exporter_master_secret`) is `secret`, for the cipher suite hash `hash`.
fn connection_id_bytes(hash: &str, secret: &[u8]) -> [u8; 8] {
    let (alg, digest_alg) = match hash {
        "sha256" => (hkdf::HKDF_SHA256, &digest::SHA256),
        "sha384" => (hkdf::HKDF_SHA384, &digest::SHA384),
        other => panic!("unknown hash {other}"),
    };
    let empty = digest::digest(digest_alg, b"");
    let derived = hkdf_expand_label(
        alg,
        secret,
        CONNECTION_ID_LABEL,
        empty.as_ref(),
        digest_alg.output_len(),
    );
    hkdf_expand_label(alg, &derived, b"exporter", empty.as_ref(), 8)
        .try_into()
        .unwrap()
}

/// The hash of a TLS 1.3 cipher suite, told by the length of its secrets.
fn hash_of(secret: &[u8]) -> &'static str {
    match secret.len() {
        32 => "sha256",
        48 => "sha384",
        n => panic!("a {n}-byte TLS 1.3 secret"),
    }
}

#[test]
fn connection_id_vectors_of_protocol_md() {
    let block = PROTOCOL_MD
        .split("```connection-id-vectors\n")
        .nth(1)
        .expect("PROTOCOL.md has a ```connection-id-vectors block")
        .split("```")
        .next()
        .unwrap();
    let mut seen = Vec::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let [hash, secret, id, session_id] = line.split_whitespace().collect::<Vec<_>>()[..] else {
            panic!("bad vector line (want `hash secret connectionId sessionId`): {line:?}");
        };
        let bytes = connection_id_bytes(hash, &hex::decode(secret).unwrap());
        assert_eq!(hex::encode(bytes), id, "connectionId of vector {hash}");
        assert_eq!(
            u64::from_be_bytes(bytes).to_string(),
            session_id,
            "session id of vector {hash}"
        );
        seen.push(hash);
    }
    assert_eq!(seen, ["sha256", "sha384"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_id_and_session_id_follow_the_documented_derivation() {
    let both = Both::start("ids", ServerConfig::default()).await;
    for (name, addr, fingerprint, _) in both.targets() {
        let (conn, secrets) = Secrets::connect(addr, fingerprint).await;
        let secret = secrets.exporter();
        let bytes = connection_id_bytes(hash_of(&secret), &secret);
        let expected = hex::encode(bytes);
        assert_eq!(ConnectionInfo::new(conn.clone()).id, expected, "{name}");
        // A director opens a connection's session at its first stream (PROTOCOL.md section
        // 15.2: a HELLO there opens a resumable one): make a call.
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        let request = Frame::Request(rpcnet_protocol::Request {
            method: "count".into(),
            deadline_ms: 0,
            streaming: true,
            payload: bytes::Bytes::new(),
            ..rpcnet_protocol::Request::default()
        });
        send.write_all(&request.to_bytes()).await.unwrap();
        send.finish().unwrap();
        // What the serving end reports: the server's connection, the director's session.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let seen = if name == "server" {
                both.server.connection(&expected).is_some()
            } else {
                both.director.sessions().iter().any(|(session_id, id, _)| {
                    *id == expected && *session_id == u64::from_be_bytes(bytes)
                })
            };
            if seen {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} reports no connection {expected} (session {})",
                u64::from_be_bytes(bytes)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

// ---- Section 2: no unidirectional streams -----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_unidirectional_stream_can_be_opened() {
    let both = Both::start("uni", ServerConfig::default()).await;
    for (name, addr, fingerprint, _) in both.targets() {
        let conn = common::raw_connection(addr, fingerprint, None).await;
        // initial_max_streams_uni = 0 and never raised: quinn waits for credit that never comes.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), conn.open_uni())
                .await
                .is_err(),
            "{name} granted a unidirectional stream"
        );
        let f = raw_call(&conn, &request("count", true)).await;
        assert!(
            matches!(f.last(), Some(Frame::End { items: 3 })),
            "{name}: {f:?}"
        );
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
                        code: ErrorCode::Unimplemented,
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

// ---- Section 11: order of the checks ----------------------------------------------------------

/// The first frame the peer answers on `send` / `recv` (read to the peer's FIN).
async fn first_frame(recv: &mut quinn::RecvStream) -> Option<Frame> {
    let data = tokio::time::timeout(Duration::from_secs(5), recv.read_to_end(1 << 16))
        .await
        .expect("answered without waiting for a body or a FIN")
        .unwrap();
    Decoder::default()
        .decode(&mut BytesMut::from(&data[..]))
        .unwrap()
}

fn header(ty: u8, flags: u8, length: u32) -> Vec<u8> {
    let mut h = vec![ty, flags];
    h.extend_from_slice(&length.to_be_bytes());
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_frame_of_the_wrong_direction_is_refused_by_its_length() {
    let server = ServerConfig {
        max_frame_size: 1000,
        ..ServerConfig::default()
    };
    let both = Both::start("order", server).await;
    for (name, addr, fingerprint, max) in both.targets() {
        let conn = common::raw_connection(addr, fingerprint, None).await;

        // An ITEM header (servers only send ITEM) declaring max + 1 bytes, no body, no FIN: the
        // length is checked from the header, before the direction, which needs the whole frame.
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&header(0x03, 0, max + 1)).await.unwrap();
        match first_frame(&mut recv).await {
            Some(Frame::Error { code, message }) => {
                assert_eq!(code, ErrorCode::ResourceExhausted, "{name}: {message}");
                assert!(
                    message.contains(&(max + 1).to_string()),
                    "{name}: {message}"
                );
            }
            other => panic!("{name}: expected ERROR, got {other:?}"),
        }
        assert_eq!(
            send.stopped().await,
            Ok(Some(quinn::VarInt::from_u32(8))),
            "{name}: STOP_SENDING(RESOURCE_EXHAUSTED)"
        );

        // The same ITEM within the limit: the direction check refuses it.
        let item = Frame::Item {
            seq: 0,
            payload: Bytes::from_static(b"x"),
        };
        let f = raw_call(&conn, &item.to_bytes()).await;
        assert!(
            matches!(
                f[..],
                [Frame::Error {
                    code: ErrorCode::Protocol,
                    ..
                }]
            ),
            "{name}: {f:?}"
        );

        // Type and flags come before the length: over-long but of an undefined type, or with an
        // undefined flag, is PROTOCOL.
        for bad in [header(0x7f, 0, max + 1), header(0x03, 0x01, max + 1)] {
            let (mut send, mut recv) = conn.open_bi().await.unwrap();
            send.write_all(&bad).await.unwrap();
            let frame = first_frame(&mut recv).await;
            assert!(
                matches!(
                    frame,
                    Some(Frame::Error {
                        code: ErrorCode::Protocol,
                        ..
                    })
                ),
                "{name} {bad:02x?}: {frame:?}"
            );
        }
    }
}

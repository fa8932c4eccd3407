//! Server and client over real QUIC on loopback, driven from Rust: malformed input from a raw quinn
//! peer must end only that call with the right code, and the server must keep serving.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use rpcnet_protocol::{Decoder, ErrorCode, Frame, Metadata, Request};
use rpcnet_runtime::tls::parse_fingerprint;
use rpcnet_runtime::{
    Client, ClientConfig, ClientTrust, MethodKind, Server, ServerConfig, ServerEvent,
};

use common::echo_server;

async fn raw_connection(server: &Server) -> quinn::Connection {
    common::raw_connection(server.local_addr(), server.cert_fingerprint(), None).await
}

/// Sends raw bytes as a call and returns the first frame the server answers with.
async fn raw_call(conn: &quinn::Connection, bytes: &[u8]) -> Option<Frame> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    send.finish().unwrap();
    let data = recv.read_to_end(1 << 20).await.unwrap_or_default();
    let mut buf = BytesMut::from(&data[..]);
    Decoder::default().decode(&mut buf).unwrap()
}

fn expect_error(frame: Option<Frame>, code: ErrorCode) -> String {
    match frame {
        Some(Frame::Error { code: c, message }) => {
            assert_eq!(c, code, "unexpected code, message: {message}");
            message
        }
        other => panic!("expected ERROR {code}, got {other:?}"),
    }
}

fn pinned(server: &Server) -> ClientConfig {
    ClientConfig::new(ClientTrust::Pin(
        parse_fingerprint(server.cert_fingerprint()).unwrap(),
    ))
}

#[tokio::test]
async fn malformed_frames_end_the_call_not_the_server() {
    let server = echo_server(ServerConfig::default()).await;
    let conn = raw_connection(&server).await;

    // Unknown frame type.
    let msg = expect_error(
        raw_call(&conn, &[0x7f, 0, 0, 0, 0, 0]).await,
        ErrorCode::Protocol,
    );
    assert!(msg.contains("0x7f"), "{msg}");
    // Truncated: a header announcing 10 bytes, then FIN after 2.
    let msg = expect_error(
        raw_call(&conn, &[0x01, 0, 0, 0, 0, 10, 0, 0]).await,
        ErrorCode::Protocol,
    );
    assert!(msg.contains("ended") || msg.contains("truncat"), "{msg}");
    // A RESPONSE where a REQUEST must come first.
    expect_error(
        raw_call(
            &conn,
            &Frame::Response {
                payload: Bytes::from_static(b"x"),
            }
            .to_bytes(),
        )
        .await,
        ErrorCode::Protocol,
    );
    // Empty method.
    let mut bad = BytesMut::new();
    bad.put_slice(&[0x01, 0, 0, 0, 0, 6]);
    bad.put_u32(0);
    bad.put_u16(0);
    expect_error(raw_call(&conn, &bad).await, ErrorCode::Protocol);
    // Bytes after the REQUEST (the REQUEST must be the client's last frame).
    let mut two = Frame::Request(Request {
        method: "echo".into(),
        deadline_ms: 0,
        streaming: false,
        payload: Bytes::new(),
        ..Default::default()
    })
    .to_bytes()
    .to_vec();
    two.extend_from_slice(
        &Frame::Response {
            payload: Bytes::new(),
        }
        .to_bytes(),
    );
    let msg = expect_error(raw_call(&conn, &two).await, ErrorCode::Protocol);
    assert!(msg.contains("follow the REQUEST"), "{msg}");
    // A stream finished with nothing on it.
    expect_error(raw_call(&conn, &[]).await, ErrorCode::Protocol);

    // The same connection still serves valid calls, and a fresh client works too.
    let ok = Frame::Request(Request {
        method: "echo".into(),
        deadline_ms: 0,
        streaming: false,
        payload: Bytes::from_static(b"alive"),
        ..Default::default()
    });
    match raw_call(&conn, &ok.to_bytes()).await {
        Some(Frame::Response { payload }) => assert_eq!(&payload[..], b"alive"),
        other => panic!("expected RESPONSE, got {other:?}"),
    }
    let client = Client::connect(server.local_addr(), pinned(&server))
        .await
        .unwrap();
    assert_eq!(
        &client
            .unary("echo", Bytes::from_static(b"hi"), 1000)
            .await
            .unwrap()[..],
        b"hi"
    );
}

#[tokio::test]
async fn oversized_frame_is_refused_from_its_header() {
    let server = echo_server(ServerConfig {
        max_frame_size: 1000,
        ..ServerConfig::default()
    })
    .await;
    let conn = raw_connection(&server).await;
    // Header announcing 1 GiB: must be refused without waiting for the body.
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&[0x01, 0, 0x40, 0, 0, 0]).await.unwrap();
    let data = tokio::time::timeout(std::time::Duration::from_secs(5), recv.read_to_end(1 << 16))
        .await
        .unwrap()
        .unwrap();
    let frame = Decoder::default()
        .decode(&mut BytesMut::from(&data[..]))
        .unwrap();
    let msg = expect_error(frame, ErrorCode::ResourceExhausted);
    assert!(msg.contains("1000"), "{msg}");
}

#[tokio::test]
async fn unknown_method_and_kind_mismatch() {
    let server = echo_server(ServerConfig::default()).await;
    let client = Client::connect(server.local_addr(), pinned(&server))
        .await
        .unwrap();
    let e = client.unary("missing", Bytes::new(), 0).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Unimplemented);
    let e = client.unary("count", Bytes::new(), 0).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
}

#[tokio::test]
async fn rust_stream_arrives_in_order() {
    let server = echo_server(ServerConfig::default()).await;
    // Server and client share this test's one thread: the server's bursts overflow the client's
    // socket buffer, and recovery waits for a probe timeout inflated by the queueing (both
    // directions silent for up to ~0.6 s in release, longer in debug). The default loss
    // detection (750 ms) would end the connection there; this test is about order.
    let mut config = pinned(&server);
    config.loss_detection_ms = Some(rpcnet_runtime::transport::IDLE_TIMEOUT_MS);
    let client = Client::connect(server.local_addr(), config).await.unwrap();
    let mut stream = client
        .streaming("count", Bytes::copy_from_slice(&50_000u32.to_be_bytes()), 0)
        .await
        .unwrap();
    let mut next = 0u32;
    while let Some(batch) = stream.next_batch(512).await.unwrap() {
        for item in batch {
            assert_eq!(u32::from_be_bytes(item[..].try_into().unwrap()), next);
            next += 1;
        }
    }
    assert_eq!(next, 50_000);
    assert_eq!(stream.next_seq(), 50_000);
}

#[tokio::test]
async fn ca_file_trust_verifies_chain_and_name() {
    let dir = std::env::temp_dir().join(format!("rpcnet-ca-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["rpc.test".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();

    let identity = rpcnet_runtime::ServerIdentity::PemFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    let server = echo_server(ServerConfig {
        identity,
        ..ServerConfig::default()
    })
    .await;
    let mut config = ClientConfig::new(ClientTrust::CaFile(dir.join("ca.pem")));
    config.server_name = "rpc.test".into();
    let client = Client::connect(server.local_addr(), config.clone())
        .await
        .unwrap();
    assert_eq!(
        &client
            .unary("echo", Bytes::from_static(b"ca"), 1000)
            .await
            .unwrap()[..],
        b"ca"
    );

    // Wrong name: refused.
    config.server_name = "other.test".into();
    let e = Client::connect(server.local_addr(), config)
        .await
        .err()
        .expect("wrong name must be refused");
    assert_eq!(e.code, ErrorCode::Unavailable);

    // A CA that did not sign the server: refused.
    let other_key = rcgen::KeyPair::generate().unwrap();
    let mut other_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    other_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(
        dir.join("other.pem"),
        other_params.self_signed(&other_key).unwrap().pem(),
    )
    .unwrap();
    let mut config = ClientConfig::new(ClientTrust::CaFile(dir.join("other.pem")));
    config.server_name = "rpc.test".into();
    assert!(Client::connect(server.local_addr(), config).await.is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn cancelling_a_stream_handle_reaches_the_server() {
    let server = Arc::new(Server::bind(ServerConfig::default()).await.unwrap());
    server.register("forever", MethodKind::ServerStreaming);
    let client = Client::connect(server.local_addr(), pinned(&server))
        .await
        .unwrap();
    let handle = rpcnet_runtime::StreamHandle::new(
        client.streaming("forever", Bytes::new(), 0).await.unwrap(),
    );
    let id = match server.next_events(1).await.pop() {
        Some(ServerEvent::Call { id, .. }) => id,
        other => panic!("expected a call, got {other:?}"),
    };
    assert_eq!(
        server.push(id, Bytes::from_static(b"a")),
        rpcnet_runtime::PushStatus::Ready
    );
    assert_eq!(handle.next_batch(16).await.unwrap().unwrap().len(), 1);
    handle.cancel();
    let event = tokio::time::timeout(std::time::Duration::from_secs(3), server.next_events(1))
        .await
        .expect("no cancel event");
    match event.first() {
        Some(ServerEvent::Cancelled { id: got, code, .. }) => {
            assert_eq!(*got, id);
            assert_eq!(*code, ErrorCode::Cancelled);
        }
        other => panic!("expected Cancelled, got {other:?}"),
    }
    assert_eq!(
        handle.next_batch(16).await.unwrap_err().code,
        ErrorCode::Cancelled
    );
}

/// `ServerConfig::idle_timeout_ms` is what the server offers (RFC 9000 section 10.1): with no
/// keep-alive on either side, a connection quiet for longer is closed, and a later call fails
/// with `UNAVAILABLE`; at the defaults it stays open.
#[tokio::test]
async fn the_server_idle_timeout_is_an_option() {
    let quiet = |idle_timeout_ms, keep_alive_ms| ServerConfig {
        idle_timeout_ms,
        keep_alive_ms,
        ..ServerConfig::default()
    };
    let short = echo_server(quiet(300, 0)).await;
    let mut config = pinned(&short);
    config.loss_detection_ms = Some(rpcnet_runtime::transport::IDLE_TIMEOUT_MS);
    let client = Client::connect(short.local_addr(), config).await.unwrap();
    assert_eq!(
        client
            .unary("echo", Bytes::from_static(b"a"), 0)
            .await
            .unwrap(),
        "a"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let e = client
        .unary("echo", Bytes::from_static(b"b"), 0)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable, "{e}");

    let default = echo_server(ServerConfig::default()).await;
    let client = Client::connect(default.local_addr(), pinned(&default))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        client
            .unary("echo", Bytes::from_static(b"c"), 0)
            .await
            .unwrap(),
        "c"
    );

    let Err(bad) = Server::bind(quiet(300, 300)).await else {
        panic!("a keep-alive as long as the idle timeout was accepted");
    };
    assert_eq!(bad.code, ErrorCode::InvalidArgument);
    assert!(
        bad.message
            .contains("keep_alive_ms must be below idle_timeout_ms"),
        "{bad}"
    );
}

fn metadata(entries: &[(&str, &str)]) -> Metadata {
    let mut m = Metadata::new();
    for (k, v) in entries {
        m.append(k, v.to_string()).unwrap();
    }
    m
}

/// PROTOCOL.md section 2: a server accepts `rpcnet/2` and `rpcnet/1` and prefers 2; a peer
/// that offers only `rpcnet/1` gets exactly version 1: version 2's flag and frames are refused
/// as in version 1, and no HEADERS or TRAILERS reach it.
#[tokio::test]
async fn a_version_1_peer_gets_version_1() {
    let server = echo_server(ServerConfig::default()).await;
    let (addr, pin) = (server.local_addr(), server.cert_fingerprint().to_owned());
    let v2 = common::raw_connection(addr, &pin, None).await;
    let v1 = common::raw_connection_offering(addr, &pin, None, &[rpcnet_protocol::ALPN_V1]).await;
    let alpn = |c: &quinn::Connection| {
        c.handshake_data()
            .unwrap()
            .downcast::<quinn::crypto::rustls::HandshakeData>()
            .unwrap()
            .protocol
            .unwrap()
    };
    assert_eq!(alpn(&v2), b"rpcnet/2");
    assert_eq!(alpn(&v1), b"rpcnet/1");

    let with_headers = Frame::Request(Request {
        method: "echo".into(),
        payload: Bytes::from_static(b"hi"),
        metadata: metadata(&[("authorization", "t")]),
        ..Request::default()
    })
    .to_bytes();
    // Version 2: the echo server answers the request headers as response headers.
    let frames = common::raw_frames(&v2, &with_headers).await;
    assert_eq!(
        frames,
        [
            Frame::Headers {
                metadata: metadata(&[("authorization", "t")])
            },
            Frame::Response {
                payload: Bytes::from_static(b"hi")
            }
        ]
    );
    // Version 1: flag 0x02 is reserved, type 0x06 unknown.
    let msg = expect_error(raw_call(&v1, &with_headers).await, ErrorCode::Protocol);
    assert!(msg.contains("reserved flag"), "{msg}");
    let headers = Frame::Headers {
        metadata: metadata(&[("k", "v")]),
    }
    .to_bytes();
    let msg = expect_error(raw_call(&v1, &headers).await, ErrorCode::Protocol);
    assert!(msg.contains("unknown frame type 0x06"), "{msg}");
    // A version-1 call of the same method: a plain RESPONSE.
    let plain = Frame::Request(Request {
        method: "echo".into(),
        payload: Bytes::from_static(b"hi"),
        ..Request::default()
    })
    .to_bytes();
    let frames = common::raw_frames(&v1, &plain).await;
    assert_eq!(
        frames,
        [Frame::Response {
            payload: Bytes::from_static(b"hi")
        }]
    );
}

/// PROTOCOL.md section 5.6: the server enforces the metadata limit while decoding the REQUEST
/// (RESOURCE_EXHAUSTED), and the connection goes on.
#[tokio::test]
async fn request_metadata_over_the_limit_is_refused_by_the_server() {
    let server = echo_server(ServerConfig::default()).await;
    let conn = raw_connection(&server).await;
    let big = "v".repeat(9_000);
    let request = Frame::Request(Request {
        method: "echo".into(),
        metadata: metadata(&[("x-big", &big)]),
        ..Request::default()
    })
    .to_bytes();
    let msg = expect_error(
        raw_call(&conn, &request).await,
        ErrorCode::ResourceExhausted,
    );
    assert!(
        msg.contains("exceeds the maximum metadata size of 8192 bytes"),
        "{msg}"
    );
    // The Rust client checks before sending, with the same words.
    let client = Client::connect(server.local_addr(), pinned(&server))
        .await
        .unwrap();
    let m = metadata(&[("x-big", &big)]);
    let options = rpcnet_runtime::CallOptions {
        metadata: &m,
        ..Default::default()
    };
    let out = client.unary_with("echo", Bytes::new(), options).await;
    let e = out.result.unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceExhausted);
    let m = metadata(&[("authorization", "t")]);
    let options = rpcnet_runtime::CallOptions {
        metadata: &m,
        ..Default::default()
    };
    let out = client
        .unary_with("echo", Bytes::from_static(b"ok"), options)
        .await;
    assert_eq!(out.result.unwrap(), Bytes::from_static(b"ok"));
    assert_eq!(out.metadata.headers, m, "the echo server sent them back");
}

/// PROTOCOL.md section 3.4: the client's items after a CLIENT_STREAMING REQUEST carry their own
/// seq from 0 and end with END (the count); a gap, a wrong count or a stream without END fails
/// the call with PROTOCOL, and the connection goes on.
#[tokio::test]
async fn client_items_are_checked_like_server_items() {
    let server = echo_server(ServerConfig::default()).await;
    let conn = raw_connection(&server).await;
    let head = Frame::Request(Request {
        method: "collect".into(),
        client_streaming: true,
        ..Request::default()
    })
    .to_bytes();
    let item = |seq: u64, p: &'static [u8]| {
        Frame::Item {
            seq,
            payload: Bytes::from_static(p),
        }
        .to_bytes()
    };
    let end = |items: u64| Frame::End { items }.to_bytes();
    let call = |frames: &[Bytes]| frames.concat();
    let ok = common::raw_frames(
        &conn,
        &call(&[head.clone(), item(0, b"ab"), item(1, b"c"), end(2)]),
    )
    .await;
    assert_eq!(
        ok,
        [Frame::Response {
            payload: Bytes::from_static(b"abc")
        }]
    );
    let gap = raw_call(
        &conn,
        &call(&[head.clone(), item(0, b"a"), item(2, b"c"), end(3)]),
    )
    .await;
    let msg = expect_error(gap, ErrorCode::Protocol);
    assert!(
        msg.contains("client ITEM seq 2 where seq 1 was expected"),
        "{msg}"
    );
    let count = raw_call(&conn, &call(&[head.clone(), item(0, b"a"), end(5)])).await;
    let msg = expect_error(count, ErrorCode::Protocol);
    assert!(msg.contains("END says 5 items, but 1 were sent"), "{msg}");
    let no_end = raw_call(&conn, &call(&[head.clone(), item(0, b"a")])).await;
    let msg = expect_error(no_end, ErrorCode::Protocol);
    assert!(msg.contains("ended without an END"), "{msg}");
    let with_payload = Frame::Request(Request {
        method: "collect".into(),
        client_streaming: true,
        payload: Bytes::from_static(b"x"),
        ..Request::default()
    })
    .to_bytes();
    let msg = expect_error(raw_call(&conn, &with_payload).await, ErrorCode::Protocol);
    assert!(msg.contains("payload must be empty"), "{msg}");
    // The connection is fine afterwards.
    let ok = common::raw_frames(&conn, &call(&[head, end(0)])).await;
    assert_eq!(
        ok,
        [Frame::Response {
            payload: Bytes::new()
        }]
    );
}

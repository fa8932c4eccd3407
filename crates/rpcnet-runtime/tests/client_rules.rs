//! What the client does when a server breaks PROTOCOL.md (sections 3, 9, 10 and 11), over real
//! QUIC against a raw quinn server that answers with scripted bytes: the error the caller gets,
//! the items it still gets before it, and the STOP_SENDING code the server sees. The rules are
//! those of the sans-IO `rpcnet_session::ClientStream` (unit-tested there); these tests check that
//! the runtime's driver carries them out on real streams.

use std::sync::Arc;

use bytes::Bytes;
use rpcnet_protocol::{ErrorCode, Frame, DEFAULT_MAX_FRAME_SIZE};
use rpcnet_runtime::tls::{parse_fingerprint, server_crypto, ServerIdentity};
use rpcnet_runtime::transport::transport_config;
use rpcnet_runtime::{Client, ClientConfig, ClientTrust};
use tokio::sync::mpsc;

/// A client of a server that answers every call with `script`, then FIN when `fin`, and reports
/// the STOP_SENDING code it sees afterwards (`None`: its data was acknowledged, no STOP_SENDING).
async fn scripted(script: Vec<u8>, fin: bool) -> (Client, mpsc::UnboundedReceiver<Option<u64>>) {
    let identity = ServerIdentity::SelfSigned.load().unwrap();
    let pin = parse_fingerprint(&identity.fingerprint).unwrap();
    let crypto = server_crypto(identity).unwrap();
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(crypto).unwrap();
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport_config());
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let conn = endpoint.accept().await.unwrap().await.unwrap();
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            let _ = recv.read_to_end(1 << 16).await;
            send.write_all(&script).await.unwrap();
            if fin {
                send.finish().unwrap();
            }
            let stopped = send.stopped().await;
            let _ = tx.send(stopped.ok().flatten().map(|code| code.into_inner()));
        }
    });
    let config = ClientConfig::new(ClientTrust::Pin(pin));
    (Client::connect(addr, config).await.unwrap(), rx)
}

fn item(seq: u64) -> Vec<u8> {
    let payload = Bytes::copy_from_slice(&seq.to_be_bytes());
    Frame::Item { seq, payload }.to_bytes().to_vec()
}

/// Every item of `stream` until it fails; returns the items' seqs and the error.
async fn drain(stream: &mut rpcnet_runtime::ItemStream) -> (Vec<u64>, rpcnet_runtime::RpcError) {
    let mut seqs = Vec::new();
    loop {
        match stream.next_batch(64).await {
            Ok(Some(items)) => seqs.extend(
                items
                    .iter()
                    .map(|i| u64::from_be_bytes(i[..].try_into().unwrap())),
            ),
            Ok(None) => panic!("the stream ended normally after {seqs:?}"),
            Err(e) => return (seqs, e),
        }
    }
}

#[tokio::test]
async fn a_seq_gap_fails_after_the_items_before_it_and_stops_the_server() {
    let (client, mut stopped) = scripted([item(0), item(1), item(3)].concat(), false).await;
    let mut stream = client.streaming("count", Bytes::new(), 0).await.unwrap();
    let (seqs, e) = drain(&mut stream).await;
    assert_eq!(seqs, [0, 1], "items before the gap are delivered");
    assert_eq!(e.code, ErrorCode::Protocol);
    assert_eq!(e.message, "item seq 3 received where 2 was expected");
    assert_eq!(stopped.recv().await.unwrap(), Some(256));
    assert_eq!(
        stream.next_batch(64).await.unwrap_err(),
        e,
        "the failure stays"
    );
}

#[tokio::test]
async fn a_frame_of_the_wrong_kind_fails_a_unary_call_with_protocol() {
    let (client, mut stopped) = scripted(item(0), false).await;
    let e = client.unary("echo", Bytes::new(), 0).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Protocol);
    assert_eq!(e.message, "unexpected Item frame in a unary call");
    assert_eq!(stopped.recv().await.unwrap(), Some(256));
}

#[tokio::test]
async fn an_oversized_frame_fails_with_resource_exhausted() {
    let mut header = vec![0x03, 0]; // an ITEM one byte longer than the client accepts
    header.extend_from_slice(&(DEFAULT_MAX_FRAME_SIZE + 1).to_be_bytes());
    let (client, mut stopped) = scripted(header, false).await;
    let mut stream = client.streaming("count", Bytes::new(), 0).await.unwrap();
    let (seqs, e) = drain(&mut stream).await;
    assert!(seqs.is_empty());
    assert_eq!(e.code, ErrorCode::ResourceExhausted);
    assert_eq!(stopped.recv().await.unwrap(), Some(8));
}

#[tokio::test]
async fn a_stream_ending_without_end_fails_with_protocol() {
    let (client, _stopped) = scripted(item(0), true).await;
    let mut stream = client.streaming("count", Bytes::new(), 0).await.unwrap();
    let (seqs, e) = drain(&mut stream).await;
    assert_eq!(seqs, [0]);
    assert_eq!(e.code, ErrorCode::Protocol);
    assert_eq!(e.message, "stream ended without an END or ERROR frame");
}

#[tokio::test]
async fn the_servers_error_follows_its_items_and_is_not_answered_with_stop_sending() {
    let error = Frame::Error {
        code: ErrorCode::Internal,
        message: "disk gone".into(),
    };
    let (client, mut stopped) = scripted([item(0), error.to_bytes().to_vec()].concat(), true).await;
    let mut stream = client.streaming("count", Bytes::new(), 0).await.unwrap();
    let (seqs, e) = drain(&mut stream).await;
    assert_eq!(seqs, [0]);
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::Internal, "disk gone")
    );
    assert_eq!(stopped.recv().await.unwrap(), None);
}

#[tokio::test]
async fn the_deadline_resets_the_stream_with_deadline_exceeded() {
    let (client, mut stopped) = scripted(item(0), false).await;
    let mut stream = client.streaming("count", Bytes::new(), 200).await.unwrap();
    let (seqs, e) = drain(&mut stream).await;
    assert_eq!(seqs, [0]);
    assert_eq!(e.code, ErrorCode::DeadlineExceeded);
    assert_eq!(e.message, "deadline of 200 ms exceeded");
    assert_eq!(stopped.recv().await.unwrap(), Some(4));
}

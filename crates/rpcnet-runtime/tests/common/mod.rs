//! Shared set-up of the in-process tests: a director and workers over real QUIC on loopback, a
//! Rust handler that resumes from checkpoints, a plain echo server and a raw quinn client.

#![allow(dead_code)]

pub mod child;
pub mod lossy_proxy;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rpcnet_runtime::cluster::{ClusterCredentials, Role};
use rpcnet_runtime::director::{Director, DirectorConfig};
use rpcnet_runtime::tls::{client_crypto, parse_fingerprint};
use rpcnet_runtime::transport::transport_config;
use rpcnet_runtime::worker::{Worker, WorkerConfig};
use rpcnet_runtime::{
    Client, ClientConfig, ClientTrust, MethodKind, PushStatus, ResponseMetadata, Server,
    ServerConfig, ServerEvent,
};

/// Loads (creating on first use) the credentials of `name` in the cluster directory `dir`: a
/// director's for a name starting with `director`, else a worker's.
pub fn creds(dir: &std::path::Path, name: &str) -> Arc<ClusterCredentials> {
    let role = if name.starts_with("director") {
        Role::Director
    } else {
        Role::Worker
    };
    creds_as(dir, role, name)
}

/// Loads (creating on first use) the credentials of `name` as `role` in `dir`.
pub fn creds_as(dir: &std::path::Path, role: Role, name: &str) -> Arc<ClusterCredentials> {
    Arc::new(ClusterCredentials::load_or_create(dir, role, Some(name)).unwrap())
}

/// Serves `count`: `items` items of `item_bytes` bytes (the first 8 bytes are the seq), `every`
/// apart, resuming at the checkpoint seq and checkpointing after each item.
pub async fn serve(worker: Arc<Worker>, items: u64, item_bytes: usize, every: Duration) {
    serve_observed(worker, items, item_bytes, every, Arc::new(|_| {})).await
}

/// Called with each seq a handler pushed and the server accepted.
pub type OnPush = Arc<dyn Fn(u64) + Send + Sync>;

/// [`serve`], calling `on_push` after every accepted item.
pub async fn serve_observed(
    worker: Arc<Worker>,
    items: u64,
    item_bytes: usize,
    every: Duration,
    on_push: OnPush,
) {
    serve_with(worker, items, item_bytes, every, on_push, Arc::new(|_| {})).await
}

/// Called with each call a handler starts: the seq it resumes at (re-attached after a
/// migration, a failover, a suspension or a resume), `None` for a fresh call.
pub type OnCall = Arc<dyn Fn(Option<u64>) + Send + Sync>;

/// [`serve_observed`], also calling `on_call` for every call the worker starts.
pub async fn serve_with(
    worker: Arc<Worker>,
    items: u64,
    item_bytes: usize,
    every: Duration,
    on_push: OnPush,
    on_call: OnCall,
) {
    let server = worker.server().clone();
    server.register("count", MethodKind::ServerStreaming);
    loop {
        let events = server.next_events(16).await;
        if events.is_empty() {
            return;
        }
        for e in events {
            if let ServerEvent::Call { id, resume, .. } = e {
                on_call(resume.as_ref().map(|r| r.seq));
                let (server, on_push) = (server.clone(), on_push.clone());
                tokio::spawn(async move {
                    let mut seq = resume.map_or(0, |r| r.seq);
                    while seq < items {
                        if !every.is_zero() {
                            tokio::time::sleep(every).await;
                        }
                        let mut item = vec![0u8; item_bytes.max(8)];
                        item[..8].copy_from_slice(&seq.to_be_bytes());
                        match server.push(id, Bytes::from(item)) {
                            PushStatus::Closed => return,
                            PushStatus::Full => {
                                if !server.writable(id).await {
                                    return;
                                }
                            }
                            PushStatus::Ready => {}
                        }
                        on_push(seq);
                        seq += 1;
                        server.checkpoint(id, Bytes::new(), 0);
                    }
                    server.end(id, Ok(()));
                });
            }
        }
    }
}

/// A director and workers `ids`, each serving `count` as [`serve`] does.
pub async fn cluster(
    dir: &std::path::Path,
    ids: &[&str],
    items: u64,
    item_bytes: usize,
    every: Duration,
) -> (Director, Vec<Arc<Worker>>) {
    let director = Director::bind(DirectorConfig::new(creds(dir, "director")))
        .await
        .unwrap();
    let mut workers = Vec::new();
    for id in ids {
        let w = Arc::new(
            Worker::start(worker_config(dir, &director, id))
                .await
                .unwrap(),
        );
        tokio::spawn(serve(w.clone(), items, item_bytes, every));
        workers.push(w);
    }
    (director, workers)
}

/// A worker `id` of `director` on any free loopback ports, heartbeating every 50 ms.
pub fn worker_config(dir: &std::path::Path, director: &Director, id: &str) -> WorkerConfig {
    WorkerConfig {
        heartbeat_ms: 50,
        ..WorkerConfig::new(id, vec![director.mgmt_addr().to_string()], creds(dir, id))
    }
}

/// A client of the director, pinned to its certificate.
pub async fn client(director: &Director) -> Client {
    let pin = parse_fingerprint(director.cert_fingerprint()).unwrap();
    Client::connect(
        director.local_addr(),
        ClientConfig::new(ClientTrust::Pin(pin)),
    )
    .await
    .unwrap()
}

/// The seq carried in an item's first 8 bytes.
pub fn seq_of(item: &Bytes) -> u64 {
    u64::from_be_bytes(item[..8].try_into().unwrap())
}

/// A server with `echo` (unary) and `count` (streaming: n = u32 BE request, item i = i as u32 BE)
/// answered by a Rust loop.
pub async fn echo_server(config: ServerConfig) -> Arc<Server> {
    let server = Arc::new(Server::bind(config).await.unwrap());
    server.register("echo", MethodKind::Unary);
    server.register("count", MethodKind::ServerStreaming);
    server.register("collect", MethodKind::ClientStreaming);
    let s = server.clone();
    tokio::spawn(async move {
        loop {
            let events = s.next_events(64).await;
            if events.is_empty() {
                break;
            }
            for e in events {
                if let ServerEvent::Call {
                    id,
                    method,
                    payload,
                    metadata,
                    ..
                } = e
                {
                    if method == "collect" {
                        // The client's items, concatenated (PROTOCOL.md 3.4); a broken stream of
                        // items fails the call with its error.
                        let s = s.clone();
                        tokio::spawn(async move {
                            let mut all = Vec::new();
                            let result = loop {
                                match s.next_client_items(id, 64).await {
                                    Ok(Some(items)) => {
                                        items.iter().for_each(|i| all.extend_from_slice(i))
                                    }
                                    Ok(None) => break Ok(Bytes::from(all)),
                                    Err(e) => break Err(e),
                                }
                            };
                            s.respond(id, result);
                        });
                    } else if method == "echo" {
                        // The request headers come back as response headers (PROTOCOL.md 5.6).
                        let echoed = ResponseMetadata {
                            headers: metadata,
                            ..ResponseMetadata::default()
                        };
                        s.respond_with(id, Ok(payload), echoed);
                    } else {
                        let s = s.clone();
                        tokio::spawn(async move {
                            let n = u32::from_be_bytes(payload[..4].try_into().unwrap());
                            for i in 0..n {
                                if s.push(id, Bytes::copy_from_slice(&i.to_be_bytes()))
                                    == PushStatus::Full
                                    && !s.writable(id).await
                                {
                                    return;
                                }
                            }
                            s.end(id, Ok(()));
                        });
                    }
                }
            }
        }
    });
    server
}

/// A raw quinn connection to `addr`, pinned to the certificate `fingerprint` (64 hex digits), that
/// reports its TLS secrets to `key_log` if given.
pub async fn raw_connection(
    addr: std::net::SocketAddr,
    fingerprint: &str,
    key_log: Option<Arc<dyn rustls::KeyLog>>,
) -> quinn::Connection {
    raw_connection_offering(addr, fingerprint, key_log, &rpcnet_protocol::ALPNS).await
}

/// [`raw_connection`] offering the ALPN identifiers `alpns` (e.g. only `rpcnet/1`, as a
/// version-1 peer does).
pub async fn raw_connection_offering(
    addr: std::net::SocketAddr,
    fingerprint: &str,
    key_log: Option<Arc<dyn rustls::KeyLog>>,
    alpns: &[&[u8]],
) -> quinn::Connection {
    let pin = parse_fingerprint(fingerprint).unwrap();
    let mut crypto = client_crypto(&ClientTrust::Pin(pin)).unwrap();
    crypto.alpn_protocols = alpns.iter().map(|a| a.to_vec()).collect();
    if let Some(key_log) = key_log {
        crypto.key_log = key_log;
    }
    let mut cfg = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap(),
    ));
    cfg.transport_config(transport_config());
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(cfg);
    endpoint.connect(addr, "localhost").unwrap().await.unwrap()
}

/// One raw call: `bytes` then FIN, then every frame the server sends until its FIN.
pub async fn raw_frames(conn: &quinn::Connection, bytes: &[u8]) -> Vec<rpcnet_protocol::Frame> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    send.finish().unwrap();
    let data = recv.read_to_end(1 << 20).await.unwrap();
    let mut buf = bytes::BytesMut::from(&data[..]);
    let mut frames = Vec::new();
    while let Some(f) = rpcnet_protocol::Decoder::default()
        .decode_eof(&mut buf)
        .unwrap()
    {
        frames.push(f);
    }
    frames
}

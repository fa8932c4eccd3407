//! Shared set-up of the in-process cluster tests: a director and workers over real QUIC on
//! loopback, and a Rust handler that resumes from checkpoints.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rpcnet_runtime::cluster::ClusterCredentials;
use rpcnet_runtime::director::{Director, DirectorConfig};
use rpcnet_runtime::tls::parse_fingerprint;
use rpcnet_runtime::worker::{Worker, WorkerConfig};
use rpcnet_runtime::{Client, ClientConfig, ClientTrust, MethodKind, PushStatus, ServerEvent};

/// Loads (creating on first use) the credentials of `name` in the cluster directory `dir`.
pub fn creds(dir: &std::path::Path, name: &str) -> Arc<ClusterCredentials> {
    Arc::new(ClusterCredentials::load_or_create(dir, name).unwrap())
}

/// Serves `count`: `items` items of `item_bytes` bytes (the first 8 bytes are the seq), `every`
/// apart, resuming at the checkpoint seq and checkpointing after each item.
pub async fn serve(worker: Arc<Worker>, items: u64, item_bytes: usize, every: Duration) {
    let server = worker.server().clone();
    server.register("count", MethodKind::ServerStreaming);
    loop {
        let events = server.next_events(16).await;
        if events.is_empty() {
            return;
        }
        for e in events {
            if let ServerEvent::Call { id, resume, .. } = e {
                let server = server.clone();
                tokio::spawn(async move {
                    let mut seq = resume.map_or(0, |r| r.0);
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
                        seq += 1;
                        server.checkpoint(id, Bytes::new());
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
            Worker::start(WorkerConfig {
                id: (*id).into(),
                user: "127.0.0.1:0".parse().unwrap(),
                mgmt: "127.0.0.1:0".parse().unwrap(),
                director: director.mgmt_addr(),
                cluster: creds(dir, id),
                heartbeat_ms: 50,
            })
            .await
            .unwrap(),
        );
        tokio::spawn(serve(w.clone(), items, item_bytes, every));
        workers.push(w);
    }
    (director, workers)
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

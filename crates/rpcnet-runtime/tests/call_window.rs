//! The stream credit a serving connection grants grows with the calls it carries
//! (`rpcnet_runtime::transport::CallWindow`): a connection starts with
//! [`INITIAL_CALL_WINDOW`] concurrent calls and still reaches many more when a peer keeps that
//! many open at once, on a plain server, through the director, and on the cluster link to a
//! worker.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rpcnet_runtime::transport::INITIAL_CALL_WINDOW;
use rpcnet_runtime::worker::Worker;
use rpcnet_runtime::{
    Client, ClientConfig, ClientTrust, MethodKind, Server, ServerConfig, ServerEvent,
};

/// Concurrent calls, well above the initial window.
const CALLS: usize = 3 * INITIAL_CALL_WINDOW as usize;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_grants_more_calls_as_a_connection_opens_them() {
    let server = Arc::new(Server::bind(ServerConfig::default()).await.unwrap());
    server.register("hold", MethodKind::Unary);
    hold_until_all_open(server.clone());
    let pin = rpcnet_runtime::tls::parse_fingerprint(server.cert_fingerprint()).unwrap();
    let client = Arc::new(
        Client::connect(
            server.local_addr(),
            ClientConfig::new(ClientTrust::Pin(pin)),
        )
        .await
        .unwrap(),
    );
    let calls: Vec<_> = (0..CALLS as u32)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .unary("hold", Bytes::copy_from_slice(&i.to_be_bytes()), 0)
                    .await
            })
        })
        .collect();
    let all = async {
        for (i, call) in calls.into_iter().enumerate() {
            let reply = call.await.unwrap().unwrap();
            assert_eq!(reply.as_ref(), (i as u32).to_be_bytes());
        }
    };
    tokio::time::timeout(Duration::from_secs(20), all)
        .await
        .expect("every call was open at once and answered");
    client.close().await;
    server.close().await;
}

/// Holds every `hold` call of `server` until `CALLS` are open at once, then answers each with
/// its request: one item for a streaming call, the response for a unary one.
fn hold_until_all_open(server: Arc<Server>) {
    tokio::spawn(async move {
        let mut held = Vec::new();
        while held.len() < CALLS {
            let events = server.next_events(64).await;
            if events.is_empty() {
                return;
            }
            for e in events {
                if let ServerEvent::Call {
                    id, payload, kind, ..
                } = e
                {
                    held.push((id, payload, kind));
                }
            }
        }
        for (id, payload, kind) in held {
            if kind == MethodKind::Unary {
                server.respond(id, Ok(payload));
            } else {
                server.push(id, payload);
                server.end(id, Ok(()));
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_director_and_the_link_grant_more_calls_as_they_are_opened() {
    let dir = std::env::temp_dir().join(format!("rpcnet-window-{}", std::process::id()));
    let (director, _) = common::cluster(&dir, &[], 0, 0, Duration::ZERO).await;
    let worker = Worker::start(common::worker_config(&dir, &director, "worker-a"))
        .await
        .unwrap();
    worker
        .server()
        .register("hold", MethodKind::ServerStreaming);
    hold_until_all_open(worker.server().clone());
    let client = Arc::new(common::client(&director).await);
    let calls: Vec<_> = (0..CALLS as u32)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let request = Bytes::copy_from_slice(&i.to_be_bytes());
                let mut stream = client.streaming("hold", request, 0).await?;
                let mut items = Vec::new();
                while let Some(batch) = stream.next_batch(16).await? {
                    items.extend(batch);
                }
                Ok::<_, rpcnet_runtime::RpcError>(items)
            })
        })
        .collect();
    let all = async {
        for (i, call) in calls.into_iter().enumerate() {
            let items = call.await.unwrap().unwrap();
            assert_eq!(items.len(), 1);
            assert_eq!(items[0].as_ref(), (i as u32).to_be_bytes());
        }
    };
    tokio::time::timeout(Duration::from_secs(30), all)
        .await
        .expect("every relayed call was open at once and completed");
    client.close().await;
    worker.close().await;
    director.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

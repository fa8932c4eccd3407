//! `close()` on a server, a worker and a director releases their UDP ports before it returns:
//! binding the same ports again succeeds at once, while the closed object is still alive (not
//! dropped), with connections and calls open at the time of the close.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rpcnet_runtime::director::{Director, DirectorConfig};
use rpcnet_runtime::tls::parse_fingerprint;
use rpcnet_runtime::worker::{Worker, WorkerConfig};
use rpcnet_runtime::{Client, ClientConfig, ClientTrust, MethodKind, Server, ServerConfig};

/// A close that had to wait for its 5 s bound left something holding the socket.
const CLOSE_BOUND: Duration = Duration::from_secs(3);

async fn timed<F: std::future::Future<Output = ()>>(what: &str, close: F) {
    let start = Instant::now();
    close.await;
    let took = start.elapsed();
    assert!(took < CLOSE_BOUND, "{what} close took {took:?}");
}

fn assert_bindable(what: &str, addr: SocketAddr) {
    if let Err(e) = std::net::UdpSocket::bind(addr) {
        panic!("{what} port {addr} is still bound after close: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_close_releases_its_port() {
    let server = Arc::new(Server::bind(ServerConfig::default()).await.unwrap());
    server.register("echo", MethodKind::Unary);
    let addr = server.local_addr();
    let pin = parse_fingerprint(server.cert_fingerprint()).unwrap();
    let client = Client::connect(addr, ClientConfig::new(ClientTrust::Pin(pin)))
        .await
        .unwrap();
    // A call in progress (never answered) and its event, not taken, at the time of the close.
    let pending = tokio::spawn(async move { client.unary("echo", Bytes::new(), 0).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.open_calls(), 1);

    timed("server", server.close()).await;
    assert_bindable("server", addr);
    let again = Server::bind(ServerConfig {
        bind: addr,
        ..ServerConfig::default()
    })
    .await
    .expect("the same port binds again right after close");
    assert_eq!(again.local_addr(), addr);
    assert!(pending.await.unwrap().is_err(), "the open call failed");
    // Closing twice is harmless.
    timed("server (again)", server.close()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_and_director_close_release_their_ports() {
    let dir = std::env::temp_dir().join(format!("rpcnet-close-{}", std::process::id()));
    let (director, workers) =
        common::cluster(&dir, &["worker-a"], 1_000, 8, Duration::from_millis(5)).await;
    let client = common::client(&director).await;
    let mut stream = client.streaming("count", Bytes::new(), 0).await.unwrap();
    assert_eq!(stream.next_batch(1).await.unwrap().unwrap().len(), 1);

    // The worker, serving a stream.
    let worker = &workers[0];
    let (user, mgmt) = (worker.server().local_addr(), worker.mgmt_addr());
    timed("worker", worker.close()).await;
    assert_bindable("worker user", user);
    assert_bindable("worker management", mgmt);
    // The same worker restarted on the same ports registers again.
    let again = Worker::start(WorkerConfig {
        user,
        mgmt,
        ..common::worker_config(&dir, &director, "worker-a")
    })
    .await
    .expect("a worker binds the same ports right after close");
    assert_eq!(again.server().local_addr(), user);

    // The director, with a client connection and a call open.
    let (user, mgmt) = (director.local_addr(), director.mgmt_addr());
    timed("director", director.close()).await;
    assert_bindable("director user", user);
    assert_bindable("director management", mgmt);
    let mut config = DirectorConfig::new(common::creds(&dir, "director"));
    config.bind = user;
    config.mgmt_bind = mgmt;
    let again = Director::bind(config)
        .await
        .expect("a director binds the same ports right after close");
    assert_eq!(again.local_addr(), user);
    assert_eq!(again.mgmt_addr(), mgmt);
    drop(stream);
    let _ = std::fs::remove_dir_all(&dir);
}

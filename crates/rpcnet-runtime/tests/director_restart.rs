//! A director replaced on the same address (issue 7, no single point of failure), over real QUIC
//! on 127.0.0.1:
//!
//! - stateless reset: a director process is SIGKILLed (no CONNECTION_CLOSE reaches its client)
//!   and a new director of the same cluster binds its UDP port; the client's next packet gets a
//!   stateless reset (RFC 9000 section 10.3) and its calls fail at once, not at the idle
//!   timeout. A director of another cluster on that port cannot reset the connection.
//! - identity: every director of a cluster presents a certificate issued by the cluster CA, so a
//!   client that trusts only `ca.pem` connects to each of them; an explicit identity (PEM
//!   files) still works with a pin.
//!
//! The killed director runs in a child process: this test binary, re-run with
//! [`CHILD_ENV`] set, runs only the ignored test `child_director`.

mod common;

use common::child::TempDir;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rpcnet_runtime::cluster::CA_CERT_FILE;
use rpcnet_runtime::director::{Director, DirectorConfig};
use rpcnet_runtime::tls::parse_fingerprint;
use rpcnet_runtime::{Client, ClientConfig, ClientTrust, ErrorCode, RpcError, ServerIdentity};

/// Set in the child process: the cluster directory its director and worker use.
const CHILD_ENV: &str = "RPCNET_TEST_CHILD_CLUSTER_DIR";

/// Idle timeout of the test clients that must be ended by a stateless reset, ms: far above
/// every bound asserted, so that only a reset can end their calls in time.
const LONG_LOSS_DETECTION_MS: u64 = 30_000;

/// Not a test on its own: the child process of the reset tests. Runs a director and worker-a
/// (serving `count`: an item every 10 ms) in the cluster directory named by [`CHILD_ENV`],
/// prints `READY <address>` and serves until it is killed. Without [`CHILD_ENV`] it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of the director restart tests"]
async fn child_director() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let (director, _workers) = common::cluster(
        Path::new(&dir),
        &["worker-a"],
        u64::MAX,
        8,
        Duration::from_millis(10),
    )
    .await;
    println!("READY {}", director.local_addr());
    std::future::pending::<()>().await;
}

/// A director (and its worker) in a child process, killed with SIGKILL on drop.
struct ChildDirector {
    child: tokio::process::Child,
    addr: SocketAddr,
}

impl ChildDirector {
    /// Starts [`child_director`] for the cluster in `dir` and waits until it listens.
    async fn start(dir: &Path) -> Self {
        let (child, addrs) = common::child::spawn_ready("child_director", CHILD_ENV, dir).await;
        ChildDirector {
            child,
            addr: addrs[0],
        }
    }

    /// SIGKILL: the process ends without closing its connections. Returns once it is gone (its
    /// UDP port is free).
    async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }
}

/// A client of `addr` that trusts only the cluster CA of `dir`, with `loss_detection_ms`.
async fn ca_client(dir: &Path, addr: SocketAddr, loss_detection_ms: u64) -> Client {
    let mut config = ClientConfig::new(ClientTrust::CaFile(dir.join(CA_CERT_FILE)));
    config.loss_detection_ms = Some(loss_detection_ms);
    Client::connect(addr, config).await.unwrap()
}

/// A director of the cluster in `dir` on `addr`.
async fn director_on(dir: &Path, addr: SocketAddr) -> Director {
    let mut config = DirectorConfig::new(common::creds(dir, "director"));
    config.bind = addr;
    Director::bind(config).await.unwrap()
}

/// Streams `count` from a child director, SIGKILLs it, binds a director of the cluster in
/// `successor_dir` on its port and makes a new call. Returns the new call's outcome (`None`:
/// still pending after `wait`), how long it took, and the streaming call's outcome after that.
async fn call_after_restart(
    dir: &Path,
    successor_dir: &Path,
    wait: Duration,
) -> (
    Option<Result<Bytes, RpcError>>,
    Duration,
    Result<Option<Vec<Bytes>>, RpcError>,
) {
    let mut child = ChildDirector::start(dir).await;
    let client = ca_client(dir, child.addr, LONG_LOSS_DETECTION_MS).await;
    let mut stream = client
        .streaming("count", Bytes::new(), 0)
        .await
        .expect("the stream opens");
    let mut received = 0;
    while received < 5 {
        received += stream.next_batch(16).await.unwrap().unwrap().len();
    }

    child.kill().await;
    let successor = director_on(successor_dir, child.addr).await;
    let started = Instant::now();
    let call = tokio::time::timeout(wait, client.unary("count", Bytes::new(), 0))
        .await
        .ok();
    let elapsed = started.elapsed();
    let streamed = tokio::time::timeout(Duration::from_millis(100), async {
        loop {
            match stream.next_batch(1024).await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .unwrap_or(Ok(Some(Vec::new())));
    successor.close().await;
    (call, elapsed, streamed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_director_restarted_on_the_same_port_resets_its_predecessors_connections() {
    let tmp = TempDir::new("restart-reset");
    let (call, elapsed, streamed) =
        call_after_restart(&tmp.0, &tmp.0, Duration::from_secs(5)).await;
    let error = call
        .unwrap_or_else(|| panic!("the call was still pending after 5 s: no stateless reset"))
        .expect_err("the new director does not hold the connection");
    eprintln!("call failed after {elapsed:?}: {}", error.message);
    assert_eq!(error.code, ErrorCode::Unavailable, "{}", error.message);
    assert!(
        error.message.contains("reset"),
        "ended by a stateless reset, not by the idle timeout: {}",
        error.message
    );
    assert!(
        elapsed < Duration::from_millis(500),
        "the reset answers the client's next packet: {elapsed:?}"
    );
    let streamed = streamed.expect_err("the streaming call ends with its connection");
    assert_eq!(
        streamed.code,
        ErrorCode::Unavailable,
        "{}",
        streamed.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_director_of_another_cluster_cannot_reset_the_connection() {
    let tmp = TempDir::new("restart-foreign");
    let foreign = TempDir::new("restart-foreign-cluster");
    let (call, elapsed, _) =
        call_after_restart(&tmp.0, &foreign.0, Duration::from_millis(1500)).await;
    assert!(
        call.is_none(),
        "another cluster's director holds neither the reset key nor the connection ID key, so the call waits for the idle timeout; it ended after {elapsed:?} with {call:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_director_of_a_cluster_presents_an_identity_its_ca_vouches_for() {
    let tmp = TempDir::new("restart-identity");
    let dir = tmp.0.as_path();
    let first = director_on(dir, "127.0.0.1:0".parse().unwrap()).await;
    let addr = first.local_addr();
    let first_fingerprint = first.cert_fingerprint().to_string();
    let client = ca_client(dir, addr, LONG_LOSS_DETECTION_MS).await;
    client.close().await;
    first.close().await;

    let mut config = DirectorConfig::new(common::creds(dir, "director"));
    config.bind = addr;
    config.server_names = vec!["rpc.example.test".into(), "10.1.2.3".into()];
    let second = Director::bind(config).await.unwrap();
    assert_ne!(
        second.cert_fingerprint(),
        first_fingerprint,
        "each start issues a fresh leaf: a pin would not survive the restart, the CA does"
    );
    for name in ["localhost", "127.0.0.1", "rpc.example.test", "10.1.2.3"] {
        let mut config = ClientConfig::new(ClientTrust::CaFile(dir.join(CA_CERT_FILE)));
        config.server_name = name.into();
        let client = Client::connect(addr, config)
            .await
            .unwrap_or_else(|e| panic!("server name {name}: {}", e.message));
        client.close().await;
    }
    let mut config = ClientConfig::new(ClientTrust::CaFile(dir.join(CA_CERT_FILE)));
    config.server_name = "other.example.test".into();
    let refused = Client::connect(addr, config).await.err().unwrap();
    assert_eq!(refused.code, ErrorCode::Unavailable, "{}", refused.message);

    let other_cluster = TempDir::new("restart-identity-other");
    common::creds(&other_cluster.0, "x");
    let stranger = ClientConfig::new(ClientTrust::CaFile(other_cluster.0.join(CA_CERT_FILE)));
    let refused = Client::connect(addr, stranger).await.err().unwrap();
    assert_eq!(refused.code, ErrorCode::Unavailable, "{}", refused.message);
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_identity_still_works_with_a_pin() {
    let tmp = TempDir::new("restart-explicit");
    let dir = tmp.0.as_path();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    let cluster = dir.join("cluster");
    let mut config = DirectorConfig::new(common::creds(&cluster, "director"));
    config.identity = ServerIdentity::PemFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    let director = Director::bind(config).await.unwrap();
    assert_eq!(
        director.cert_fingerprint(),
        rpcnet_runtime::tls::fingerprint(cert.der())
    );
    let pin = parse_fingerprint(director.cert_fingerprint()).unwrap();
    let pinned = Client::connect(
        director.local_addr(),
        ClientConfig::new(ClientTrust::Pin(pin)),
    )
    .await
    .unwrap();
    pinned.close().await;
    let by_ca = Client::connect(
        director.local_addr(),
        ClientConfig::new(ClientTrust::CaFile(cluster.join(CA_CERT_FILE))),
    )
    .await
    .err()
    .expect("the cluster CA did not issue an explicit identity");
    assert_eq!(by_ca.code, ErrorCode::Unavailable, "{}", by_ca.message);
    director.close().await;
}

#[tokio::test]
async fn a_bad_server_name_is_refused_by_name() {
    let tmp = TempDir::new("restart-bad-name");
    let mut config = DirectorConfig::new(common::creds(&tmp.0, "director"));
    config.server_names = vec!["not a name!".into()];
    let e = Director::bind(config).await.err().unwrap();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("\"not a name!\""), "{}", e.message);
}

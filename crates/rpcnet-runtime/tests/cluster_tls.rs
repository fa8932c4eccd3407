//! Cluster mutual TLS over real QUIC on 127.0.0.1: credentials are created once and reused, creation
//! is race-safe, peers of the same cluster connect and see each other's leaf fingerprint, and peers
//! without a cluster certificate or from another cluster are refused.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpcnet_runtime::cluster::{default_cluster_dir, ClusterCredentials, Role, CLUSTER_SERVER_NAME};
use rpcnet_runtime::tls::fingerprint;
use rpcnet_runtime::transport::transport_config;
use rpcnet_runtime::ErrorCode;

const ALPN: &[u8] = b"rpcnet-cluster-test/1";

/// A fresh, unique path under the system temp dir (not created), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("rpcnet-cluster-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn load_or_create_reuses_ca_and_secret_and_protects_files() {
    let tmp = TempDir::new("reuse");
    let dir = tmp.path().join("nested").join("cluster");
    let a = ClusterCredentials::load_or_create(&dir, Role::Worker, Some("worker-a")).unwrap();
    let b = ClusterCredentials::load_or_create(&dir, Role::Worker, Some("worker-b")).unwrap();
    assert_eq!(a.ca_cert, b.ca_cert, "second call must reuse the stored CA");
    assert_eq!(
        a.secret, b.secret,
        "second call must reuse the stored secret"
    );
    assert_ne!(a.secret, [0u8; 32]);
    assert_eq!(a.name, "worker-a");
    assert_eq!(a.chain.len(), 2);
    assert_eq!(a.chain[1], a.ca_cert);
    assert_ne!(
        a.leaf_fingerprint(),
        b.leaf_fingerprint(),
        "each process gets a fresh leaf"
    );

    let loaded = ClusterCredentials::load(&dir, Role::Director, Some("director")).unwrap();
    assert_eq!(loaded.ca_cert, a.ca_cert);
    assert_eq!(loaded.secret, a.secret);

    for file in ["ca.pem", "ca.key", "secret.bin"] {
        assert!(dir.join(file).is_file(), "{file} must exist");
    }
    assert_eq!(std::fs::read(dir.join("secret.bin")).unwrap(), a.secret);
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir.join("ca.key")), 0o600);
        assert_eq!(mode(&dir.join("secret.bin")), 0o600);
        assert_eq!(mode(&dir), 0o700);
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files left behind: {leftovers:?}"
    );

    let cloned = a.clone();
    assert_eq!(cloned.leaf_fingerprint(), a.leaf_fingerprint());
    let debug = format!("{a:?}");
    assert!(
        !debug.contains(&hex::encode(a.secret)),
        "Debug must not print the secret"
    );
}

#[test]
fn concurrent_creation_agrees_on_one_ca() {
    for round in 0..3 {
        let tmp = TempDir::new("race");
        let dir = tmp.path().to_path_buf();
        let barrier = Arc::new(std::sync::Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let dir = dir.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    ClusterCredentials::load_or_create(
                        &dir,
                        Role::Worker,
                        Some(format!("worker-{i}").as_str()),
                    )
                    .unwrap()
                })
            })
            .collect();
        let creds: Vec<ClusterCredentials> =
            handles.into_iter().map(|h| h.join().unwrap()).collect();
        for c in &creds[1..] {
            assert_eq!(
                c.ca_cert, creds[0].ca_cert,
                "round {round}: all threads must end with the same CA"
            );
            assert_eq!(
                c.secret, creds[0].secret,
                "round {round}: all threads must end with the same secret"
            );
        }
        let stored = ClusterCredentials::load(&dir, Role::Worker, Some("check")).unwrap();
        assert_eq!(stored.ca_cert, creds[0].ca_cert);
        assert_eq!(stored.secret, creds[0].secret);
    }
}

fn server_endpoint(creds: &ClusterCredentials) -> quinn::Endpoint {
    quinn::Endpoint::server(
        creds.quinn_server_config(&[ALPN]).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap()
}

fn client_endpoint(config: quinn::ClientConfig) -> quinn::Endpoint {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(config);
    endpoint
}

/// Accepts connections and echoes the first bi stream of each with a "pong:" prefix. Sends the
/// peer fingerprint seen by the server (or the handshake error) for every incoming connection.
fn spawn_echo_server(
    endpoint: quinn::Endpoint,
) -> tokio::sync::mpsc::UnboundedReceiver<Result<Option<String>, String>> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let conn = match incoming.await {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = tx.send(Ok(ClusterCredentials::peer_fingerprint(&conn)));
                if let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    if let Ok(data) = recv.read_to_end(1024).await {
                        let mut reply = b"pong:".to_vec();
                        reply.extend_from_slice(&data);
                        let _ = send.write_all(&reply).await;
                        let _ = send.finish();
                        let _ = conn.closed().await;
                    }
                }
            });
        }
    });
    rx
}

/// Connects and does one echo exchange; `Err` with a description at whatever step fails.
async fn try_exchange(
    client: &quinn::Endpoint,
    addr: std::net::SocketAddr,
) -> Result<(quinn::Connection, Vec<u8>), String> {
    let conn = client
        .connect(addr, CLUSTER_SERVER_NAME)
        .map_err(|e| format!("connect: {e}"))?
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| format!("open_bi: {e}"))?;
    send.write_all(b"ping")
        .await
        .map_err(|e| format!("write: {e}"))?;
    send.finish().map_err(|e| format!("finish: {e}"))?;
    let reply = recv
        .read_to_end(1024)
        .await
        .map_err(|e| format!("read: {e}"))?;
    Ok((conn, reply))
}

async fn exchange(
    client: &quinn::Endpoint,
    addr: std::net::SocketAddr,
) -> Result<(quinn::Connection, Vec<u8>), String> {
    tokio::time::timeout(Duration::from_secs(10), try_exchange(client, addr))
        .await
        .map_err(|_| "timed out".to_string())?
}

#[tokio::test]
async fn cluster_peers_connect_and_see_each_others_fingerprint() {
    let tmp = TempDir::new("mtls");
    let server_creds =
        ClusterCredentials::load_or_create(tmp.path(), Role::Director, Some("director")).unwrap();
    let client_creds =
        ClusterCredentials::load_or_create(tmp.path(), Role::Worker, Some("worker-a")).unwrap();
    let server = server_endpoint(&server_creds);
    let addr = server.local_addr().unwrap();
    let mut seen = spawn_echo_server(server.clone());

    let client = client_endpoint(client_creds.quinn_client_config(&[ALPN]).unwrap());
    let (conn, reply) = exchange(&client, addr)
        .await
        .expect("cluster peers must connect");
    assert_eq!(reply, b"pong:ping");
    assert_eq!(
        ClusterCredentials::peer_fingerprint(&conn).as_deref(),
        Some(server_creds.leaf_fingerprint().as_str())
    );
    assert_eq!(
        server_creds.leaf_fingerprint(),
        fingerprint(&server_creds.chain[0])
    );
    let server_saw = seen.recv().await.unwrap().expect("server handshake");
    assert_eq!(
        server_saw.as_deref(),
        Some(client_creds.leaf_fingerprint().as_str())
    );
    assert_eq!(
        conn.handshake_data()
            .unwrap()
            .downcast::<quinn::crypto::rustls::HandshakeData>()
            .unwrap()
            .protocol
            .unwrap(),
        ALPN
    );

    conn.close(0u32.into(), b"done");
    client.wait_idle().await;
    server.close(0u32.into(), b"done");
}

#[tokio::test]
async fn client_without_certificate_gets_no_application_data() {
    let tmp = TempDir::new("nocert");
    let server_creds =
        ClusterCredentials::load_or_create(tmp.path(), Role::Director, Some("director")).unwrap();
    let server = server_endpoint(&server_creds);
    let addr = server.local_addr().unwrap();
    let mut seen = spawn_echo_server(server.clone());

    // Trusts the cluster CA (so the server is accepted) but presents no client certificate.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_creds.ca_cert.clone()).unwrap();
    let mut crypto = rustls::ClientConfig::builder_with_provider(rpcnet_runtime::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    let mut config = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap(),
    ));
    config.transport_config(transport_config());
    let client = client_endpoint(config);

    let result = exchange(&client, addr).await;
    assert!(
        result.is_err(),
        "a client without a cluster certificate must not get data: {:?}",
        result.map(|r| r.1)
    );
    let server_saw = seen.recv().await.unwrap();
    assert!(
        server_saw.is_err(),
        "the server must refuse the handshake, saw {server_saw:?}"
    );
    server.close(0u32.into(), b"done");
}

#[tokio::test]
async fn peers_of_another_cluster_are_refused_both_ways() {
    let tmp_a = TempDir::new("cluster-a");
    let tmp_b = TempDir::new("cluster-b");
    let a_server =
        ClusterCredentials::load_or_create(tmp_a.path(), Role::Director, Some("director")).unwrap();
    let b_client =
        ClusterCredentials::load_or_create(tmp_b.path(), Role::Worker, Some("intruder")).unwrap();
    assert_ne!(a_server.ca_cert, b_client.ca_cert);
    assert_ne!(a_server.secret, b_client.secret);

    // A client from cluster B against a server of cluster A: the client does not trust A's server.
    let server = server_endpoint(&a_server);
    let addr = server.local_addr().unwrap();
    let mut seen = spawn_echo_server(server.clone());
    let client = client_endpoint(b_client.quinn_client_config(&[ALPN]).unwrap());
    let result = exchange(&client, addr).await;
    assert!(
        result.is_err(),
        "client of another cluster must be refused: {:?}",
        result.map(|r| r.1)
    );
    assert!(seen.recv().await.unwrap().is_err());

    // A client that trusts cluster A but presents cluster B's certificate: the server refuses it.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(a_server.ca_cert.clone()).unwrap();
    let mut crypto = rustls::ClientConfig::builder_with_provider(rpcnet_runtime::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(b_client.chain.clone(), b_client.key.clone_key())
        .unwrap();
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    let mut config = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap(),
    ));
    config.transport_config(transport_config());
    let forged = client_endpoint(config);
    let result = exchange(&forged, addr).await;
    assert!(
        result.is_err(),
        "foreign client certificate must be refused: {:?}",
        result.map(|r| r.1)
    );
    let server_saw = seen.recv().await.unwrap();
    assert!(
        server_saw.is_err(),
        "server must refuse a foreign client certificate, saw {server_saw:?}"
    );
    server.close(0u32.into(), b"done");

    // A client of cluster A against a server of cluster B: the client refuses the server.
    let b_server =
        ClusterCredentials::load_or_create(tmp_b.path(), Role::Director, Some("other-director"))
            .unwrap();
    let a_client =
        ClusterCredentials::load_or_create(tmp_a.path(), Role::Worker, Some("worker-a")).unwrap();
    let server = server_endpoint(&b_server);
    let addr = server.local_addr().unwrap();
    let _seen = spawn_echo_server(server.clone());
    let client = client_endpoint(a_client.quinn_client_config(&[ALPN]).unwrap());
    let err = exchange(&client, addr)
        .await
        .map(|r| r.1)
        .expect_err("server of another cluster must be refused");
    assert!(
        err.starts_with("handshake"),
        "the client must refuse during the handshake: {err}"
    );
    server.close(0u32.into(), b"done");
}

#[test]
fn load_reports_missing_and_corrupt_files() {
    let tmp = TempDir::new("load");
    let dir = tmp.path();

    let e = ClusterCredentials::load(dir, Role::Worker, Some("worker-a")).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(
        e.message.contains(&dir.display().to_string()),
        "{}",
        e.message
    );

    std::fs::create_dir_all(dir).unwrap();
    let e = ClusterCredentials::load(dir, Role::Worker, Some("worker-a")).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(
        e.message.contains(&dir.display().to_string()),
        "{}",
        e.message
    );
    assert!(e.message.contains("ca.pem"), "{}", e.message);
    assert!(
        !dir.join("ca.pem").exists(),
        "load must not create anything"
    );

    // A valid directory, then break each file in turn.
    ClusterCredentials::load_or_create(dir, Role::Worker, Some("worker-a")).unwrap();
    let pem = std::fs::read(dir.join("ca.pem")).unwrap();
    std::fs::write(dir.join("ca.pem"), b"not a certificate\n").unwrap();
    let e = ClusterCredentials::load(dir, Role::Worker, Some("worker-a")).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("ca.pem"), "{}", e.message);
    // load_or_create does not overwrite a corrupt directory either.
    let e = ClusterCredentials::load_or_create(dir, Role::Worker, Some("worker-a")).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);

    // ca.pem from another cluster: valid PEM, wrong key.
    let other = TempDir::new("load-other");
    ClusterCredentials::load_or_create(other.path(), Role::Worker, Some("x")).unwrap();
    std::fs::copy(other.path().join("ca.pem"), dir.join("ca.pem")).unwrap();
    let e = ClusterCredentials::load(dir, Role::Worker, Some("worker-a")).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("ca.pem"), "{}", e.message);
    std::fs::write(dir.join("ca.pem"), &pem).unwrap();

    std::fs::write(dir.join("ca.key"), b"garbage").unwrap();
    let e = ClusterCredentials::load(dir, Role::Worker, Some("worker-a")).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("ca.key"), "{}", e.message);

    std::fs::remove_file(dir.join("ca.key")).unwrap();
    ClusterCredentials::load(dir, Role::Worker, Some("worker-a")).unwrap_err();

    let fresh = TempDir::new("load-secret");
    ClusterCredentials::load_or_create(fresh.path(), Role::Worker, Some("worker-a")).unwrap();
    std::fs::write(fresh.path().join("secret.bin"), [1u8; 31]).unwrap();
    let e = ClusterCredentials::load(fresh.path(), Role::Worker, Some("worker-a")).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(
        e.message.contains("secret.bin") && e.message.contains("32"),
        "{}",
        e.message
    );

    let e = ClusterCredentials::load_or_create(fresh.path(), Role::Worker, Some("bad name"))
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
}

#[test]
fn default_dir_is_relative_unless_overridden() {
    // Only checks the default shape; the env override is not touched to keep tests independent.
    if std::env::var_os("RPCNET_CLUSTER_DIR").is_none() {
        assert_eq!(default_cluster_dir(), PathBuf::from(".rpcnet/cluster"));
    }
}

//! Certificate enrollment (issue 9, section 5) over real QUIC on loopback:
//! - `init` makes a CA directory once; `issue` writes one host's credentials (no CA key), with
//!   the modes and names documented, and never overwrites;
//! - a process loads issued credentials only for its own role and name; a missing, foreign or
//!   mismatched file is refused with a message naming the file and the command that makes it;
//! - a cluster of a director and a worker runs on issued credentials alone;
//! - roles are enforced by the peers: a worker registers only under its certificate's name,
//!   only admin certificates reach the admin methods, only directors the workers' migration
//!   methods;
//! - a director restarted with the same issued certificate, silently, is found again.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::child::TempDir;
use common::lossy_proxy::LossyProxy;
use rpcnet_runtime::admin::{self, AdminClient, SessionsReply, WorkersReply};
use rpcnet_runtime::cluster::enroll::{self, CERT_FILE, KEY_FILE};
use rpcnet_runtime::cluster::{ClusterCredentials, PeerIdentity, Role, CA_KEY_FILE, SECRET_FILE};
use rpcnet_runtime::director::{Director, DirectorConfig};
use rpcnet_runtime::worker::{Worker, WorkerConfig};
use rpcnet_runtime::{Client, ClientConfig, ErrorCode};

/// A CA directory and the credentials of `hosts` (name, role) issued from it, each in its own
/// directory under the returned temp dir.
fn cluster(tag: &str, hosts: &[(&str, Role)]) -> (TempDir, PathBuf) {
    let tmp = TempDir::new(tag);
    let ca = tmp.0.join("ca");
    enroll::init(&ca).unwrap();
    for (name, role) in hosts {
        enroll::issue(&ca, name, *role, &[], &tmp.0.join(name)).unwrap();
    }
    (tmp, ca)
}

fn load(dir: &Path, role: Role, name: Option<&str>) -> Arc<ClusterCredentials> {
    Arc::new(ClusterCredentials::load(dir, role, name).unwrap())
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_and_issue_write_each_host_its_own_credentials() {
    let (tmp, ca) = cluster("enroll-init", &[]);
    let e = enroll::init(&ca).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("already exists"), "{}", e.message);

    let out = tmp.0.join("director-1");
    let issued = enroll::issue(
        &ca,
        "director-1",
        Role::Director,
        &["rpc.example.com".into(), "10.0.0.7".into()],
        &out,
    )
    .unwrap();
    for name in [
        "director-1",
        "rpcnet-cluster",
        "localhost",
        "127.0.0.1",
        "::1",
        "rpc.example.com",
        "10.0.0.7",
    ] {
        assert!(
            issued.names.iter().any(|n| n == name),
            "{name} in {:?}",
            issued.names
        );
    }
    assert!(
        !out.join(CA_KEY_FILE).exists(),
        "a host never gets the CA key"
    );
    #[cfg(unix)]
    {
        assert_eq!(mode(&out.join(KEY_FILE)), 0o600);
        assert_eq!(mode(&out.join(SECRET_FILE)), 0o600);
        assert_eq!(mode(&out), 0o700);
    }
    let creds = load(&out, Role::Director, None);
    assert_eq!(creds.name, "director-1");
    let id = PeerIdentity::of(&creds.chain[0]).unwrap();
    assert_eq!(
        (id.name.as_str(), id.role),
        ("director-1", Some(Role::Director))
    );
    // Issued credentials hold the same secret as the CA directory.
    let dev = ClusterCredentials::load(&ca, Role::Worker, Some("w")).unwrap();
    assert_eq!(creds.secret, dev.secret);

    // Never overwritten.
    let e = enroll::issue(&ca, "director-1", Role::Director, &[], &out).unwrap_err();
    assert!(
        e.message.contains("cert.pem already exists"),
        "{}",
        e.message
    );
    // An admin gets no cluster secret.
    let admin_dir = tmp.0.join("ops");
    enroll::issue(&ca, "ops", Role::Admin, &[], &admin_dir).unwrap();
    assert!(!admin_dir.join(SECRET_FILE).exists());
    assert_eq!(load(&admin_dir, Role::Admin, None).role, Role::Admin);
    // Bad input names itself.
    let e = enroll::issue(&ca, "bad name", Role::Worker, &[], &tmp.0.join("x")).unwrap_err();
    assert!(e.message.contains("bad name"), "{}", e.message);
    let e = Role::parse("superuser").unwrap_err();
    assert!(e.message.contains("superuser"), "{}", e.message);
}

#[test]
fn wrong_or_missing_credentials_name_the_file_and_the_command() {
    let (tmp, ca) = cluster(
        "enroll-wrong",
        &[("worker-a", Role::Worker), ("director-1", Role::Director)],
    );
    let a = tmp.0.join("worker-a");

    let e = ClusterCredentials::load(&a, Role::Director, None).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(
        e.message.contains("cert.pem") && e.message.contains("role worker"),
        "{}",
        e.message
    );
    assert!(
        e.message
            .contains("rpcnet cluster issue worker-a --role director"),
        "{}",
        e.message
    );

    let e = ClusterCredentials::load(&a, Role::Worker, Some("worker-b")).unwrap_err();
    assert!(
        e.message.contains("\"worker-b\"") && e.message.contains("\"worker-a\""),
        "{}",
        e.message
    );
    assert_eq!(load(&a, Role::Worker, Some("worker-a")).name, "worker-a");

    // A key that is not the certificate's.
    std::fs::copy(tmp.0.join("director-1").join(KEY_FILE), a.join(KEY_FILE)).unwrap();
    let e = ClusterCredentials::load(&a, Role::Worker, None).unwrap_err();
    assert!(
        e.message.contains("key.pem is not the key of"),
        "{}",
        e.message
    );

    // A missing key.
    std::fs::remove_file(a.join(KEY_FILE)).unwrap();
    let e = ClusterCredentials::load(&a, Role::Worker, None).unwrap_err();
    assert!(e.message.contains("key.pem is missing"), "{}", e.message);
    assert!(e.message.contains("rpcnet cluster issue"), "{}", e.message);

    // A certificate of another cluster: does not verify against this ca.pem.
    let other = TempDir::new("enroll-other");
    enroll::init(&other.0.join("ca")).unwrap();
    enroll::issue(
        &other.0.join("ca"),
        "worker-a",
        Role::Worker,
        &[],
        &other.0.join("w"),
    )
    .unwrap();
    let d = tmp.0.join("director-1");
    std::fs::copy(other.0.join("w").join(CERT_FILE), d.join(CERT_FILE)).unwrap();
    std::fs::copy(other.0.join("w").join(KEY_FILE), d.join(KEY_FILE)).unwrap();
    let e = ClusterCredentials::load(&d, Role::Worker, None).unwrap_err();
    assert!(
        e.message.contains("does not verify against"),
        "{}",
        e.message
    );

    // A directory with only the CA certificate (a host someone forgot to issue for).
    let bare = tmp.0.join("bare");
    std::fs::create_dir(&bare).unwrap();
    std::fs::copy(ca.join("ca.pem"), bare.join("ca.pem")).unwrap();
    let e = ClusterCredentials::load_or_create(&bare, Role::Worker, Some("w")).unwrap_err();
    assert!(e.message.contains("rpcnet cluster issue"), "{}", e.message);
    assert!(
        !bare.join(CA_KEY_FILE).exists(),
        "nothing is generated next to a foreign ca.pem"
    );
    // Nor next to a lone key.pem.
    let lone = tmp.0.join("lone");
    std::fs::create_dir(&lone).unwrap();
    std::fs::copy(
        tmp.0.join("worker-a").join(SECRET_FILE),
        lone.join(KEY_FILE),
    )
    .unwrap();
    let e = ClusterCredentials::load_or_create(&lone, Role::Worker, Some("w")).unwrap_err();
    assert!(e.message.contains("no cert.pem"), "{}", e.message);
    assert!(!lone.join(CA_KEY_FILE).exists());

    // A host's directory is no CA; only directors name hosts.
    let e = enroll::issue(
        &tmp.0.join("director-1"),
        "x",
        Role::Worker,
        &[],
        &tmp.0.join("x"),
    )
    .unwrap_err();
    assert!(e.message.contains("not the cluster CA"), "{}", e.message);
    let e = enroll::issue(
        &ca,
        "w",
        Role::Worker,
        &["rpc.example.com".into()],
        &tmp.0.join("w"),
    )
    .unwrap_err();
    assert!(
        e.message
            .contains("only a director's certificate names hosts"),
        "{}",
        e.message
    );
    assert!(!tmp.0.join("w").exists(), "nothing written");
}

async fn director(dir: &Path) -> Director {
    Director::bind(DirectorConfig::new(load(dir, Role::Director, None)))
        .await
        .unwrap()
}

async fn worker(
    dir: &Path,
    id: Option<&str>,
    directors: Vec<String>,
) -> Result<Worker, rpcnet_runtime::RpcError> {
    let creds = load(dir, Role::Worker, None);
    let mut config = WorkerConfig::new(id.unwrap_or(&creds.name.clone()), directors, creds);
    config.heartbeat_ms = 50;
    config.connect_timeout_ms = 3_000;
    Worker::start(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_names_are_enforced_by_the_peers() {
    let (tmp, _ca) = cluster(
        "enroll-roles",
        &[
            ("director-1", Role::Director),
            ("worker-a", Role::Worker),
            ("worker-b", Role::Worker),
            ("ops", Role::Admin),
        ],
    );
    let d = director(&tmp.0.join("director-1")).await;
    let mgmt = d.mgmt_addr().to_string();
    let a = Arc::new(
        worker(&tmp.0.join("worker-a"), None, vec![mgmt.clone()])
            .await
            .unwrap(),
    );
    tokio::spawn(common::serve(
        a.clone(),
        1_000_000,
        8,
        Duration::from_millis(5),
    ));
    assert!(d.wait_for_workers(1, 2_000).await);

    // worker-b's certificate cannot register as worker-a.
    let e = worker(
        &tmp.0.join("worker-b"),
        Some("worker-a"),
        vec![mgmt.clone()],
    )
    .await
    .err()
    .expect("registering under another name is refused");
    assert_eq!(e.code, ErrorCode::PermissionDenied, "{e}");
    assert!(
        e.message.contains("worker-a") && e.message.contains("worker-b"),
        "{e}"
    );

    // Nor can it name another process's ports as its own: here the director's own.
    let creds = load(&tmp.0.join("worker-b"), Role::Worker, None);
    let mut config = WorkerConfig::new("worker-b", vec![mgmt.clone()], creds);
    config.advertise_user = Some(d.mgmt_addr().to_string());
    config.connect_timeout_ms = 3_000;
    let e = Worker::start(config)
        .await
        .err()
        .expect("ports that are not the worker's are refused");
    assert_eq!(e.code, ErrorCode::PermissionDenied, "{e}");
    assert!(
        e.message.contains("user port") && e.message.contains("worker certificate"),
        "{e}"
    );

    // The admin methods: an admin certificate lists; a worker's is refused.
    let ops = AdminClient::connect(&mgmt, load(&tmp.0.join("ops"), Role::Admin, None), 2_000)
        .await
        .unwrap();
    let workers: WorkersReply = ops
        .request(admin::WORKERS, &serde_json::json!({}), 2_000)
        .await
        .unwrap();
    assert_eq!(workers.workers.len(), 1);
    assert_eq!(workers.workers[0].id, "worker-a");
    assert_eq!(workers.workers[0].mgmt_address, a.mgmt_addr().to_string());
    let as_worker = AdminClient::connect(
        &mgmt,
        load(&tmp.0.join("worker-b"), Role::Worker, None),
        2_000,
    )
    .await
    .unwrap();
    let e = as_worker
        .call(admin::SESSIONS, "{}", 2_000)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::PermissionDenied, "{e}");
    assert!(e.message.contains("admin certificate"), "{e}");
    // Malformed admin input is a clear error, and the director goes on.
    let e = ops
        .call(admin::MIGRATE, "{\"session\": 5}", 2_000)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument, "{e}");
    let e = ops
        .call(admin::MIGRATE, "{\"session\": \"zz\"}", 2_000)
        .await
        .unwrap_err();
    assert!(e.message.contains("16 hex digits"), "{e}");

    // A session, listed and moved by the admin tool... to nowhere: only one worker.
    let client = common::client(&d).await;
    let mut stream = client.streaming("count", Bytes::new(), 0).await.unwrap();
    stream.next_batch(1).await.unwrap();
    let sessions: SessionsReply = ops
        .request(admin::SESSIONS, &serde_json::json!({}), 2_000)
        .await
        .unwrap();
    assert_eq!(sessions.sessions.len(), 1);
    assert_eq!(sessions.sessions[0].worker, "worker-a");

    // Only directors may call a worker's migration methods.
    let at_worker = Client::connect(
        a.mgmt_addr(),
        ClientConfig::cluster(load(&tmp.0.join("worker-b"), Role::Worker, None)),
    )
    .await
    .unwrap();
    let e = at_worker
        .unary(
            rpcnet_runtime::mgmt::ABORT,
            Bytes::from_static(b"\x00"),
            2_000,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::PermissionDenied, "{e}");
    assert!(e.message.contains("director certificate"), "{e}");
    // The session is still served.
    stream.next_batch(1).await.unwrap();
    ops.close().await;
    as_worker.close().await;
    at_worker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_director_restarted_with_its_issued_certificate_is_found_again() {
    let (tmp, _ca) = cluster(
        "enroll-restart",
        &[("director-1", Role::Director), ("worker-a", Role::Worker)],
    );
    let dir = tmp.0.join("director-1");
    let first = director(&dir).await;
    let (user, mgmt) = (first.local_addr(), first.mgmt_addr());
    let proxy = LossyProxy::start(mgmt, 0, 7).await;
    let w = Arc::new(
        worker(&tmp.0.join("worker-a"), None, vec![proxy.addr.to_string()])
            .await
            .unwrap(),
    );
    tokio::spawn(common::serve(
        w.clone(),
        1_000_000,
        8,
        Duration::from_millis(5),
    ));
    assert!(first.wait_for_workers(1, 2_000).await);
    // Silently gone, and back on the same ports with the same certificate.
    proxy.set_loss(1_000);
    first.close().await;
    let mut config = DirectorConfig::new(load(&dir, Role::Director, None));
    config.bind = user;
    config.mgmt_bind = mgmt;
    let second = Director::bind(config).await.unwrap();
    proxy.set_loss(0);
    assert!(
        second.wait_for_workers(1, 4_000).await,
        "the worker registers again with the restarted director"
    );
    let client = common::client(&second).await;
    let mut stream = client.streaming("count", Bytes::new(), 0).await.unwrap();
    let first_batch = stream.next_batch(1).await.unwrap().unwrap();
    assert_eq!(common::seq_of(&first_batch[0]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_pattern_certificate_serves_interchangeable_workers() {
    let (tmp, ca) = cluster("enroll-pattern", &[("director-1", Role::Director)]);
    let pool = tmp.0.join("pool");
    let issued = enroll::issue(&ca, "pool-*", Role::Worker, &[], &pool).unwrap();
    assert_eq!(issued.names, vec!["rpcnet-cluster".to_string()]);
    let e = enroll::issue(&ca, "d-*", Role::Director, &[], &tmp.0.join("d")).unwrap_err();
    assert!(
        e.message.contains("only worker certificates"),
        "{}",
        e.message
    );

    // An id is required, and must match the pattern.
    let e = ClusterCredentials::load(&pool, Role::Worker, None).unwrap_err();
    assert!(e.message.contains("\"pool-*\""), "{}", e.message);
    let e = ClusterCredentials::load(&pool, Role::Worker, Some("other-1")).unwrap_err();
    assert!(e.message.contains("other-1"), "{}", e.message);
    assert!(ClusterCredentials::load(&pool, Role::Worker, Some("pool-")).is_err());

    let d = director(&tmp.0.join("director-1")).await;
    let mgmt = d.mgmt_addr().to_string();
    let mut workers = Vec::new();
    for id in ["pool-7f9c", "pool-b21d"] {
        let creds = load(&pool, Role::Worker, Some(id));
        assert_eq!(creds.name, id);
        let mut config = WorkerConfig::new(id, vec![mgmt.clone()], creds);
        config.heartbeat_ms = 50;
        workers.push(Worker::start(config).await.unwrap());
    }
    assert!(d.wait_for_workers(2, 2_000).await);
    assert_eq!(
        d.workers()
            .iter()
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>(),
        ["pool-7f9c", "pool-b21d"]
    );
    // The pattern's holder still cannot take a name outside it at the director.
    let mut config = WorkerConfig::new(
        "intruder",
        vec![mgmt],
        load(&pool, Role::Worker, Some("pool-x")),
    );
    config.connect_timeout_ms = 2_000;
    let e = Worker::start(config).await.err().expect("refused");
    assert_eq!(e.code, ErrorCode::PermissionDenied, "{e}");
}

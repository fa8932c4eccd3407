//! Cluster credentials and the admin client, for the `rpcnet cluster` and admin commands
//! (src/cli/): converts and forwards to `rpcnet_runtime::cluster::enroll` and
//! `rpcnet_runtime::admin`.

use std::path::Path;
use std::sync::Arc;

use napi_derive::napi;
use rpcnet_runtime::admin::AdminClient;
use rpcnet_runtime::cluster::{enroll, ClusterCredentials, Role};
use rpcnet_runtime::RpcError;

use crate::Fallible;

/// Loads the credentials of a `role` process from `dir` (blocking work off the event loop),
/// with logging set up first: loading warns about key files others can read.
pub(crate) async fn credentials(
    dir: String,
    role: Role,
    name: Option<String>,
) -> Result<Arc<ClusterCredentials>, RpcError> {
    rpcnet_runtime::log::init();
    let creds = tokio::task::spawn_blocking(move || {
        ClusterCredentials::load_or_create(Path::new(&dir), role, name.as_deref())
    })
    .await
    .map_err(|e| RpcError::internal(e.to_string()))??;
    Ok(Arc::new(creds))
}

/// Runs blocking file work off the event loop.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RpcError> + Send + 'static,
) -> Result<T, RpcError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RpcError::internal(e.to_string()))?
}

/// Creates a cluster CA directory (`ca.pem`, `ca.key`, `secret.bin`) in `dir`. Rejects with
/// `INVALID_ARGUMENT` when `dir` already holds one or cannot be written.
#[napi(ts_return_type = "Promise<void>")]
pub async fn cluster_init(dir: String) -> Fallible<()> {
    Fallible(blocking(move || enroll::init(Path::new(&dir))).await)
}

/// What `clusterIssue` wrote.
#[napi(object)]
pub struct NativeIssued {
    /// The host's cluster directory.
    pub dir: String,
    /// Certificate name.
    pub name: String,
    /// `worker`, `director` or `admin`.
    pub role: String,
    /// DNS and IP names the certificate is valid for.
    pub names: Vec<String>,
    /// SHA-256 of the certificate, lowercase hex.
    pub fingerprint: String,
    /// Files written.
    pub files: Vec<String>,
}

/// Issues credentials for host `name` as `role` with the CA directory `ca_dir` into `out`.
/// Rejects with `INVALID_ARGUMENT` (bad name, role or host, missing CA, existing files).
#[napi(ts_return_type = "Promise<NativeIssued>")]
pub async fn cluster_issue(
    ca_dir: String,
    name: String,
    role: String,
    hosts: Vec<String>,
    out: String,
) -> Fallible<NativeIssued> {
    Fallible(
        blocking(move || {
            let role = Role::parse(&role)?;
            enroll::issue(Path::new(&ca_dir), &name, role, &hosts, Path::new(&out))
        })
        .await
        .map(|i| NativeIssued {
            dir: i.dir.display().to_string(),
            name: i.name,
            role: i.role.as_str().to_string(),
            names: i.names,
            fingerprint: i.fingerprint,
            files: i.files.iter().map(|f| f.display().to_string()).collect(),
        }),
    )
}

/// One admin call (PROTOCOL.md section 14.2): connects to the director's management port at
/// `address` with the admin credentials in `cluster_dir`, sends `request` (JSON) to `method`,
/// resolves with the JSON reply, and closes. Rejects with the runtime's error (`UNAVAILABLE`,
/// `PERMISSION_DENIED`, `NOT_FOUND`, `INVALID_ARGUMENT`, `DEADLINE_EXCEEDED`, ...).
#[napi(ts_return_type = "Promise<string>")]
pub async fn admin_call(
    cluster_dir: String,
    address: String,
    method: String,
    request: String,
    timeout_ms: u32,
) -> Fallible<String> {
    Fallible(admin(cluster_dir, address, method, request, timeout_ms).await)
}

async fn admin(
    cluster_dir: String,
    address: String,
    method: String,
    request: String,
    timeout_ms: u32,
) -> Result<String, RpcError> {
    let creds = credentials(cluster_dir, Role::Admin, None).await?;
    let client = AdminClient::connect(&address, creds, timeout_ms.min(10_000)).await?;
    let reply = client.call(&method, &request, timeout_ms).await;
    client.close().await;
    reply
}

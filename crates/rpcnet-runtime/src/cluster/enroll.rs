//! Certificate enrollment: how a cluster gets a CA once and each host its own credentials, so
//! that only the person or process that ran `rpcnet cluster init` holds the CA's private key.
//!
//! - [`init`] (`rpcnet cluster init DIR`) creates a CA directory: `ca.pem`, `ca.key`,
//!   `secret.bin`. Keep it off the cluster's hosts.
//! - [`issue`] (`rpcnet cluster issue NAME --role worker|director|admin`) signs a certificate for
//!   one host with that CA and writes that host's directory: `ca.pem`, `cert.pem`, `key.pem`,
//!   and `secret.bin` for workers and directors. The host is configured with that directory as
//!   its cluster directory.
//! - [`load_issued`] is how a process reads such a directory.
//!
//! The name in a certificate is the holder's identity: a worker's id is its certificate's name
//! (a worker can register only under it), and a director's certificate also serves its user port
//! (with `localhost`, `127.0.0.1`, `::1` and the `--host` names). Issuing offline was chosen over
//! join tokens: nothing in the running cluster can mint certificates, so a compromised director
//! cannot enroll workers, and no enrollment service has to stay up.

use std::fs;
use std::path::{Path, PathBuf};

use rustls::pki_types::PrivateKeyDer;

use super::role::{certificate_names, name_allows, PeerIdentity, Role};
use super::{
    contains, create_ca, create_dir, create_secret, leaf_params, peer_names, publish, read_cert,
    read_key, read_secret, sync_dir, validate_name, write_temp, Ca, ClusterCredentials,
    CA_CERT_FILE, CA_KEY_FILE, CLUSTER_SERVER_NAME, SECRET_FILE, SECRET_LEN,
};
use crate::error::RpcError;

/// File name of a host's certificate (PEM) in its issued directory.
pub const CERT_FILE: &str = "cert.pem";
/// File name of a host's private key (PKCS#8 PEM, mode 0600) in its issued directory.
pub const KEY_FILE: &str = "key.pem";
/// Names every director certificate covers besides its own name, so that clients on the
/// director's host connect to its user port out of the box.
pub const DIRECTOR_LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Creates a new cluster: its CA (`ca.pem`, `ca.key`) and secret (`secret.bin`) in `dir`
/// (created with mode 0700 and missing parents). Blocking.
///
/// Errors: `INVALID_ARGUMENT` when `dir` already holds a CA, a secret or issued credentials (the
/// message names the file: a cluster is initialised once), or cannot be written; `INTERNAL` if
/// key generation fails.
pub fn init(dir: &Path) -> Result<(), RpcError> {
    for file in [CA_CERT_FILE, CA_KEY_FILE, SECRET_FILE, CERT_FILE] {
        let path = dir.join(file);
        if path.exists() {
            return Err(RpcError::invalid_argument(format!(
                "{} already exists: {} is already a cluster directory (initialise a new cluster in an empty directory)",
                path.display(),
                dir.display()
            )));
        }
    }
    create_dir(dir)?;
    create_secret(dir)?;
    create_ca(dir)
}

/// What [`issue`] wrote.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The host's cluster directory.
    pub dir: PathBuf,
    /// The name the certificate was issued for (its CN and first DNS SAN).
    pub name: String,
    /// Its role (its subject OU).
    pub role: Role,
    /// Every name it is valid for (DNS and IP SANs).
    pub names: Vec<String>,
    /// SHA-256 of the certificate DER, lowercase hex.
    pub fingerprint: String,
    /// The files written, in the order written.
    pub files: Vec<PathBuf>,
}

/// Issues credentials for one host with the CA directory `ca_dir` and writes them into `out`
/// (created with mode 0700): `ca.pem` (a copy), `cert.pem` (ECDSA P-256, CN `name`, OU `role`,
/// DNS SAN `"rpcnet-cluster"`, and for a director also `name`, `localhost`, `127.0.0.1`, `::1`
/// and `hosts` (DNS names or IP literals, for clients of its user port); extended key usage
/// server + client auth; valid for 1 year), `key.pem` (mode 0600) and, unless `role` is admin, `secret.bin` (a copy, mode
/// 0600). Blocking.
///
/// A worker's `name` may be a pattern `PREFIX*` (PROTOCOL.md section 14.2): the certificate then
/// lets its holders act as any longer name starting with `PREFIX`, for interchangeable workers
/// that share it.
///
/// Errors: `INVALID_ARGUMENT` for a bad `name` or host, `hosts` for a role other than director,
/// a CA directory that is missing or
/// incomplete (naming the file), or an `out` that already holds a `cert.pem` or `key.pem`, or a
/// `ca.pem` / `secret.bin` of another cluster (never overwritten); `INTERNAL` if generation
/// fails.
pub fn issue(
    ca_dir: &Path,
    name: &str,
    role: Role,
    hosts: &[String],
    out: &Path,
) -> Result<Issued, RpcError> {
    let pattern = name.strip_suffix('*');
    match pattern {
        Some(prefix) if role == Role::Worker => validate_name(prefix)?,
        Some(_) => {
            return Err(RpcError::invalid_argument(format!(
                "{name:?}: only worker certificates may name a pattern PREFIX* (each {role} needs its own name)"
            )))
        }
        None => validate_name(name)?,
    }
    if role != Role::Director && !hosts.is_empty() {
        return Err(RpcError::invalid_argument(format!(
            "--host {:?}: only a director's certificate names hosts (the names clients connect to); {} certificate is valid for rpcnet-cluster only",
            hosts,
            role.with_article()
        )));
    }
    let ca = Ca::load(ca_dir)?;
    // Only a director's certificate names hosts clients may connect to: a worker's or an
    // admin's could otherwise pose as a director to them. The name is the CN either way.
    let mut names: Vec<&str> = match role {
        Role::Director => peer_names(name),
        _ => vec![CLUSTER_SERVER_NAME],
    };
    if role == Role::Director {
        names.extend(DIRECTOR_LOCAL_NAMES);
    }
    for host in hosts {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(host)) {
            names.push(host.as_str());
        }
    }
    let (cert, key) = ca.issuer.issue_pem(
        leaf_params(name, &names, Some(role))?,
        &format!("{role} certificate for {name:?}"),
    )?;
    for file in [CERT_FILE, KEY_FILE] {
        let path = out.join(file);
        if path.exists() {
            return Err(RpcError::invalid_argument(format!(
                "{} already exists: remove it, or choose another --out directory",
                path.display()
            )));
        }
    }
    create_dir(out)?;
    let mut files = Vec::new();
    let ca_pem = fs::read(ca_dir.join(CA_CERT_FILE)).map_err(|e| {
        RpcError::invalid_argument(format!(
            "cannot read {}: {e}",
            ca_dir.join(CA_CERT_FILE).display()
        ))
    })?;
    files.push(write_copy(out, CA_CERT_FILE, &ca_pem, 0o644)?);
    if role != Role::Admin {
        files.push(write_copy(out, SECRET_FILE, &ca.secret, 0o600)?);
    }
    files.push(write_new(out, KEY_FILE, key.as_bytes(), 0o600)?);
    match write_new(out, CERT_FILE, cert.pem.as_bytes(), 0o644) {
        Ok(path) => files.push(path),
        Err(e) => {
            // Not half a pair: a later issue into `out` would refuse the lone key.
            let _ = fs::remove_file(out.join(KEY_FILE));
            return Err(e);
        }
    }
    sync_dir(out);
    Ok(Issued {
        dir: out.to_path_buf(),
        name: name.to_string(),
        role,
        names: certificate_names(&cert.der)?,
        fingerprint: crate::tls::fingerprint(&cert.der),
        files,
    })
}

/// The error for credentials issued for another role than the process's.
fn wrong_role(cert_path: &Path, id: &PeerIdentity, role: Role, how: &str) -> RpcError {
    let held = id
        .role
        .map_or("no rpcnet role".to_string(), |r| format!("role {r}"));
    RpcError::invalid_argument(format!(
        "{} was issued for {held} (name {:?}), and this process is {}: give it {} credentials directory, or make one with {how}",
        cert_path.display(),
        id.name,
        role.with_article(),
        role.with_article()
    ))
}

/// A certificate as [`issue`] makes it: DER and PEM.
pub(super) struct IssuedCert {
    pub der: rustls::pki_types::CertificateDer<'static>,
    pub pem: String,
}

/// Writes `bytes` as `out/file` unless it exists.
///
/// Errors: `INVALID_ARGUMENT` when it exists or cannot be written.
fn write_new(out: &Path, file: &str, bytes: &[u8], mode: u32) -> Result<PathBuf, RpcError> {
    let target = out.join(file);
    let tmp = write_temp(out, file, bytes, mode)?;
    let published = publish(&tmp, &target);
    let _ = fs::remove_file(&tmp);
    match published? {
        true => Ok(target),
        false => Err(RpcError::invalid_argument(format!(
            "{} already exists: remove it, or choose another --out directory",
            target.display()
        ))),
    }
}

/// Writes `bytes` as `out/file`, or accepts an existing file with exactly these bytes (a second
/// host issued into the same directory's parent, say).
///
/// Errors: `INVALID_ARGUMENT` when the existing file differs (another cluster's) or cannot be
/// written.
fn write_copy(out: &Path, file: &str, bytes: &[u8], mode: u32) -> Result<PathBuf, RpcError> {
    let target = out.join(file);
    match fs::read(&target) {
        Ok(existing) if existing == bytes => Ok(target),
        Ok(_) => Err(RpcError::invalid_argument(format!(
            "{} already exists and belongs to another cluster: choose another --out directory",
            target.display()
        ))),
        Err(_) => write_new(out, file, bytes, mode),
    }
}

/// Loads the issued credentials in `dir` (`ca.pem`, `cert.pem`, `key.pem`, and `secret.bin`
/// unless `role` is admin) for a process of `role`. Blocking.
///
/// `name`: the name the process was told to use (a worker's id), which the certificate must
/// allow (its name, or a longer name starting with the `PREFIX` of a `PREFIX*` certificate,
/// [`super::role::name_allows`]); `None` takes the certificate's name, and is refused for a
/// pattern.
///
/// An admin tool's credentials have no cluster secret: its [`ClusterCredentials::secret`] is
/// random, and keys derived from it match nothing in the cluster (an admin tool only connects).
///
/// Errors: `INVALID_ARGUMENT` naming the file and the command that makes it when a file is
/// missing or malformed, `key.pem` does not belong to `cert.pem`, the certificate does not
/// verify against `ca.pem` (another cluster's, or expired), it was issued for another role, or
/// its name does not allow `name` (or is a pattern and `name` is `None`).
pub fn load_issued(
    dir: &Path,
    role: Role,
    name: Option<&str>,
) -> Result<ClusterCredentials, RpcError> {
    let how = |name: &str| {
        format!(
            "`rpcnet cluster issue {name} --role {role} --out NEW_DIR` where the cluster CA is kept, and use NEW_DIR as this {role}'s cluster directory (it is {})",
            dir.display()
        )
    };
    // The certificate first, and its role: a directory issued for another role lacks files
    // this one needs, and the certificate's name makes the hints exact.
    let cert_path = dir.join(CERT_FILE);
    let leaf = read_cert(&cert_path, "certificate")?;
    let id = PeerIdentity::of(&leaf).map_err(|e| {
        RpcError::invalid_argument(format!("{}: {}", cert_path.display(), e.message))
    })?;
    if id.role != Some(role) {
        return Err(wrong_role(
            &cert_path,
            &id,
            role,
            &how(name.unwrap_or(&id.name)),
        ));
    }
    let key_path = dir.join(KEY_FILE);
    let ca_path = dir.join(CA_CERT_FILE);
    let secret_path = dir.join(SECRET_FILE);
    let mut required = vec![&ca_path, &key_path];
    if role != Role::Admin {
        required.push(&secret_path);
    }
    for path in required {
        if !path.is_file() {
            return Err(RpcError::invalid_argument(format!(
                "{} is missing: {}'s cluster directory holds ca.pem, cert.pem, key.pem{}; make them with {}",
                path.display(),
                role.with_article(),
                if role == Role::Admin { "" } else { " and secret.bin" },
                how(name.unwrap_or(&id.name))
            )));
        }
    }
    let ca_cert = read_cert(&ca_path, "cluster CA file")?;
    let key = read_key(&key_path, "private key")?;
    if !contains(leaf.as_ref(), key.public_key_raw()) {
        return Err(RpcError::invalid_argument(format!(
            "{} is not the key of {}: copy both from the same `rpcnet cluster issue` output",
            key_path.display(),
            cert_path.display()
        )));
    }
    if let (Some(prefix), None) = (id.name.strip_suffix('*'), name) {
        return Err(RpcError::invalid_argument(format!(
            "{} was issued for the pattern {:?}: give this {role} an id of its own that starts with {prefix:?} and is longer (--id, RPCNET_WORKER_ID or the id option; e.g. the pod's name)",
            cert_path.display(),
            id.name
        )));
    }
    if let Some(n) = name {
        validate_name(n)?;
    }
    if let Some(n) = name.filter(|n| !name_allows(&id.name, n)) {
        let (allowed, fix) = match id.name.strip_suffix('*') {
            Some(prefix) => (
                format!(
                    "a name that starts with {prefix:?} and is longer, as the pattern {:?} in",
                    id.name
                ),
                "give one that does",
            ),
            None => (format!("the name {:?} in", id.name), "leave the name out"),
        };
        return Err(RpcError::invalid_argument(format!(
            "{role} name {n:?} is not {allowed} {}: {} acts only under its certificate's name; {fix}, or make credentials for {n:?} with {}",
            cert_path.display(),
            role.with_article(),
            how(n)
        )));
    }
    let secret = if secret_path.is_file() {
        read_secret(&secret_path)?
    } else {
        let mut random = [0u8; SECRET_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
            .map_err(|_| RpcError::internal("system random generator failed"))?;
        random
    };
    let creds = ClusterCredentials {
        chain: vec![leaf, ca_cert.clone()],
        key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        ca_cert,
        secret,
        name: name.unwrap_or(&id.name).to_string(),
        role,
        issuer: None,
    };
    creds.check_chain().map_err(|e| {
        RpcError::invalid_argument(format!(
            "{} does not verify against {} ({}): it is expired or from another cluster; make new credentials with {}",
            cert_path.display(),
            ca_path.display(),
            e.message,
            how(&id.name)
        ))
    })?;
    Ok(creds)
}

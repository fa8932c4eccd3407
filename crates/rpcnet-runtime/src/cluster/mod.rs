//! Cluster credentials: mutual TLS under a cluster CA for the management plane (register,
//! heartbeat, migrate, admin) and the director -> worker data link.
//!
//! Every process of a cluster presents a certificate issued by the cluster CA, on both sides of
//! every connection, and accepts only peers whose certificate chains to the same CA: the server
//! requires a client certificate (TLS 1.3 CertificateRequest, RFC 8446 section 4.3.2) and the
//! client verifies the server, so a peer from another cluster, or without a certificate, fails
//! the handshake. Each certificate names its holder (subject CN) and its role (subject OU,
//! [`Role`]), which every request is checked against ([`role`]).
//!
//! A process finds its credentials in its cluster directory (see [`default_cluster_dir`],
//! `.rpcnet/cluster` unless `RPCNET_CLUSTER_DIR` says otherwise), in one of two layouts:
//!
//! - **Issued (production)**: `ca.pem`, `cert.pem`, `key.pem` and, for workers and directors,
//!   `secret.bin`, as written by `rpcnet cluster issue NAME --role ROLE` ([`enroll::issue`]).
//!   The process holds its own certificate and key, never the CA's key; its name is the one in
//!   its certificate.
//! - **CA directory (development)**: `ca.pem`, `ca.key`, `secret.bin`, as written by
//!   `rpcnet cluster init` ([`enroll::init`]), or generated on first start into a directory that
//!   holds none of these files (with a warning). The process issues itself a fresh leaf in
//!   memory for its name and role at every start, so it holds the CA's key: fine on one
//!   development machine, not across hosts.
//!
//! | file         | content                                                   | mode |
//! |--------------|-----------------------------------------------------------|------|
//! | `ca.pem`     | the CA certificate (PEM, ECDSA P-256, self-signed)        | 0644 |
//! | `ca.key`     | the CA private key (PKCS#8 PEM); CA directory only        | 0600 |
//! | `cert.pem`   | this host's certificate (PEM), issued directory only      | 0644 |
//! | `key.pem`    | its private key (PKCS#8 PEM), issued directory only       | 0600 |
//! | `secret.bin` | 32 random bytes: the cluster secret (raw, no encoding)    | 0600 |
//!
//! Directories are created with mode 0700. The secret is the input keying material for
//! migration-token HMAC keys, snapshot sealing keys, session-ticket keys and the stateless reset
//! key; it never leaves the process otherwise. Admin tools do not get it.
//!
//! Creation is race-safe between processes started at the same time: every file is written to a
//! temporary file in the directory and published with `hard_link` (which fails if the target
//! exists), so exactly one process wins and the others load what it published. To rotate the CA
//! and the secret, stop the cluster, run `rpcnet cluster init` in a new directory and issue every
//! host's credentials again.

pub mod enroll;
pub mod role;

pub use role::{PeerIdentity, Role};

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;

use crate::error::RpcError;
use crate::tls::{fingerprint, provider};
use crate::transport::{client_transport_config, cluster_transport_config, IDLE_TIMEOUT_MS};

/// Server name cluster peers use for each other: every cluster leaf carries it as a DNS SAN, and
/// clients built by [`ClusterCredentials::client_crypto`] check it. Pass it as the server name to
/// `quinn::Endpoint::connect`.
pub const CLUSTER_SERVER_NAME: &str = "rpcnet-cluster";

/// Environment variable that overrides [`default_cluster_dir`].
pub const CLUSTER_DIR_ENV: &str = "RPCNET_CLUSTER_DIR";

/// File name of the CA certificate inside the cluster directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key inside the cluster directory.
pub const CA_KEY_FILE: &str = "ca.key";
/// File name of the 32-byte cluster secret inside the cluster directory.
pub const SECRET_FILE: &str = "secret.bin";

/// Length in bytes of the cluster secret.
pub const SECRET_LEN: usize = 32;

/// Label of the stateless reset key, HMAC-SHA256(cluster secret, label) (see
/// [`ClusterCredentials::endpoint_config`]).
pub const RESET_KEY_LABEL: &[u8] = b"rpcnet/1 stateless reset key";
/// Label of the connection ID key, HMAC-SHA256(cluster secret, label), of which the first 8
/// bytes key quinn's connection ID generator (see [`ClusterCredentials::endpoint_config`]).
pub const CONNECTION_ID_KEY_LABEL: &[u8] = b"rpcnet/1 connection id key";

/// Validity of an issued leaf certificate: 365 days from issue (backdated by [`CLOCK_SKEW`]).
const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Validity of a generated cluster CA: 30 years from creation (backdated by [`CLOCK_SKEW`]).
const CA_VALIDITY: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
/// Tolerated clock difference between peers: certificates start this much before "now".
const CLOCK_SKEW: Duration = Duration::from_secs(3600);
/// How long a process that lost the creation race waits for the winner to publish `ca.pem`.
const PUBLISH_WAIT: Duration = Duration::from_secs(10);

/// `e`, a failed connection to a cluster peer, with what it most likely means added when the TLS
/// handshake failed over the certificates (rustls's `UnknownIssuer`, `UnknownCA`,
/// `BadCertificate`): the two sides' credentials come from different clusters.
pub fn explain_handshake(e: RpcError) -> RpcError {
    let m = &e.message;
    let foreign = ["UnknownIssuer", "UnknownCA", "BadCertificate"]
        .iter()
        .any(|s| m.contains(s));
    if !foreign {
        return e;
    }
    let message = format!(
        "{m} (the peer's certificate is not from this process's cluster CA, or this process's not from the peer's: use credentials issued from the same `rpcnet cluster init`, and check the cluster directory)"
    );
    RpcError::new(e.code, message)
}

/// Default cluster directory: `.rpcnet/cluster`, relative to the working directory, unless the
/// environment variable `RPCNET_CLUSTER_DIR` is set to a non-empty path, which is then used as is.
pub fn default_cluster_dir() -> PathBuf {
    match std::env::var_os(CLUSTER_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(".rpcnet").join("cluster"),
    }
}

/// The credentials of one cluster process: the cluster CA (trust anchor), a leaf certificate issued
/// by it for this process, and the cluster secret.
///
/// `Debug` prints the name and fingerprints only, never the key or the secret.
pub struct ClusterCredentials {
    /// CA certificate (DER, exactly as stored in `ca.pem`) every cluster peer is verified against.
    pub ca_cert: CertificateDer<'static>,
    /// This process's certificate chain `[leaf, ca]` (DER), the leaf issued by the cluster CA:
    /// ECDSA P-256, CN the name (or `PREFIX*` pattern) and OU the [`Role`], DNS SAN
    /// `"rpcnet-cluster"` (plus, issued in memory, the name; for a director, its name and the
    /// names given at issue, [`enroll::issue`]), extended key usage server + client auth, valid
    /// for 1 year.
    pub chain: Vec<CertificateDer<'static>>,
    /// Private key (PKCS#8) of the leaf in [`chain`](Self::chain).
    pub key: PrivateKeyDer<'static>,
    /// 32-byte cluster secret, identical in every process of the cluster.
    pub secret: [u8; SECRET_LEN],
    /// The name this process acts under, e.g. `"worker-a"`: the leaf's CN (and DNS SAN), or,
    /// with a worker certificate for a pattern `PREFIX*`, the id the process was given.
    pub name: String,
    /// Role the leaf was issued for (its subject OU).
    pub role: Role,
    /// The cluster CA as an issuer (its key from `ca.key`), for
    /// [`issue_server_identity`](Self::issue_server_identity); `None` with issued credentials,
    /// which hold no CA key.
    issuer: Option<Arc<Issuer>>,
}

/// The cluster CA rebuilt as an rcgen issuer: same subject DN and key as the stored certificate,
/// so what it signs chains to the stored DER (which stays the trust anchor; the rebuilt DER is
/// never used).
struct Issuer {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Issuer {
    /// Signs a fresh ECDSA P-256 key under `params`: the certificate DER and its key.
    ///
    /// Errors: `INTERNAL` if key generation or signing fails (`what` names the certificate).
    fn issue(
        &self,
        params: CertificateParams,
        what: &str,
    ) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), RpcError> {
        let (cert, key) = self.sign(params, what)?;
        Ok((
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        ))
    }

    /// [`issue`](Self::issue), for writing to files: the certificate (DER and PEM) and the key
    /// as PKCS#8 PEM.
    fn issue_pem(
        &self,
        params: CertificateParams,
        what: &str,
    ) -> Result<(enroll::IssuedCert, String), RpcError> {
        let (cert, key) = self.sign(params, what)?;
        let issued = enroll::IssuedCert {
            der: cert.der().clone(),
            pem: cert.pem(),
        };
        Ok((issued, key.serialize_pem()))
    }

    fn sign(
        &self,
        params: CertificateParams,
        what: &str,
    ) -> Result<(rcgen::Certificate, KeyPair), RpcError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| RpcError::internal(format!("key generation for {what} failed: {e}")))?;
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .map_err(|e| RpcError::internal(format!("{what} failed: {e}")))?;
        Ok((cert, key))
    }
}

impl Clone for ClusterCredentials {
    fn clone(&self) -> Self {
        Self {
            ca_cert: self.ca_cert.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            secret: self.secret,
            name: self.name.clone(),
            role: self.role,
            issuer: self.issuer.clone(),
        }
    }
}

impl std::fmt::Debug for ClusterCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCredentials")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("holds_ca_key", &self.issuer.is_some())
            .field("ca_fingerprint", &fingerprint(&self.ca_cert))
            .field("leaf_fingerprint", &self.leaf_fingerprint())
            .field("key", &"<redacted>")
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl ClusterCredentials {
    /// The credentials of this process in the cluster directory `dir`, as `role`:
    ///
    /// - a directory of issued credentials (`cert.pem` present): loads them
    ///   ([`enroll::load_issued`]); `name`, if given, must be the certificate's name;
    /// - a CA directory (`ca.key` present): issues a fresh leaf for `name` and `role` in memory
    ///   (ECDSA P-256, DNS SANs `[name, "rpcnet-cluster"]`, subject OU the role, extended key
    ///   usage server + client auth, valid for 1 year; nothing written);
    /// - a missing directory, or one with none of `ca.pem`, `ca.key`, `cert.pem`, for a worker or
    ///   a director (an admin tool only loads, as [`load`](Self::load)): generates a
    ///   development CA and secret there first (`dir` created with mode 0700 and missing
    ///   parents) and logs a warning saying so, then as for a CA directory.
    ///
    /// `name`: 1 to 253 characters of `A-Z a-z 0-9 . - _`; `None` takes the certificate's name
    /// (issued credentials) or the role's name (`director`, `admin`; a worker needs one).
    ///
    /// Race-safe between processes (and threads) calling it at the same time on the same `dir`:
    /// all end with the same CA and secret. A caller that loses the race waits up to 10 s for the
    /// winner to publish `ca.pem`. Blocking (file I/O, key generation): from async code call it
    /// through `tokio::task::spawn_blocking`.
    ///
    /// Errors: `INVALID_ARGUMENT` for a bad `name`, a directory or file that cannot be created or
    /// read, existing files that are malformed, do not belong together or are for another role
    /// or name (the message names the file and how to make a right one); `INTERNAL` if key or
    /// certificate generation fails.
    pub fn load_or_create(dir: &Path, role: Role, name: Option<&str>) -> Result<Self, RpcError> {
        if role == Role::Admin {
            return Self::load(dir, role, name);
        }
        if dir.join(enroll::CERT_FILE).exists() {
            return enroll::load_issued(dir, role, name);
        }
        let name = leaf_name(role, name)?;
        validate_name(name)?;
        if (dir.join(CA_CERT_FILE).exists() || dir.join(enroll::KEY_FILE).exists())
            && !dir.join(CA_KEY_FILE).exists()
        {
            // A host's directory with part of its credentials (the CA publishes `ca.key`
            // before `ca.pem`, so this is no creation race): never generate a CA next to it.
            return Self::load(dir, role, Some(name));
        }
        let fresh = !dir.join(CA_CERT_FILE).exists() && !dir.join(CA_KEY_FILE).exists();
        create_dir(dir)?;
        if !dir.join(SECRET_FILE).exists() {
            create_secret(dir)?;
        }
        if !dir.join(CA_KEY_FILE).exists() {
            create_ca(dir)?;
        }
        if fresh {
            tracing::warn!(dir = %dir.display(), "no cluster credentials found: using a development cluster CA in this directory (every process that uses it holds the CA key); across hosts, run `rpcnet cluster init` once and give each host its own credentials with `rpcnet cluster issue NAME --role worker|director|admin`");
        }
        wait_for_file(&dir.join(CA_CERT_FILE), PUBLISH_WAIT);
        Self::load(dir, role, Some(name))
    }

    /// Loads existing credentials only (nothing is created): issued credentials, or a CA
    /// directory from which a fresh leaf for `name` and `role` is issued in memory, as
    /// [`load_or_create`](Self::load_or_create) does.
    ///
    /// Errors: `INVALID_ARGUMENT`, with the path in the message and the command that makes the
    /// file, when `dir` or one of its files is missing or malformed (no PEM certificate,
    /// unparsable key, secret not exactly 32 bytes, key not matching the certificate), the
    /// credentials are for another role or name, or `name` is invalid; `INTERNAL` if leaf
    /// generation fails.
    pub fn load(dir: &Path, role: Role, name: Option<&str>) -> Result<Self, RpcError> {
        if dir.join(enroll::CERT_FILE).exists() {
            return enroll::load_issued(dir, role, name);
        }
        let name = leaf_name(role, name)?;
        validate_name(name)?;
        let ca = Ca::load(dir)?;
        let names = peer_names(name);
        let (leaf, key) = ca.issuer.issue(
            leaf_params(name, &names, Some(role))?,
            &format!("cluster leaf certificate for {name:?}"),
        )?;
        let creds = Self {
            chain: vec![leaf, ca.cert.clone()],
            key,
            ca_cert: ca.cert,
            secret: ca.secret,
            name: name.to_string(),
            role,
            issuer: Some(Arc::new(ca.issuer)),
        };
        creds.check_chain().map_err(|e| {
            RpcError::invalid_argument(format!(
                "cluster CA in {} cannot issue verifiable certificates: {}",
                dir.display(),
                e.message
            ))
        })?;
        Ok(creds)
    }

    /// A 32-byte key for one purpose, derived from the cluster secret: HMAC-SHA256(secret,
    /// `label`). Every process of the cluster derives the same key for a label, and distinct
    /// labels give independent keys (the migration token key, [`RESET_KEY_LABEL`],
    /// [`CONNECTION_ID_KEY_LABEL`]), so no key is the secret itself.
    pub fn derive_key(&self, label: &[u8]) -> [u8; 32] {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.secret);
        let mut out = [0u8; 32];
        out.copy_from_slice(ring::hmac::sign(&key, label).as_ref());
        out
    }

    /// The quinn endpoint configuration of the cluster's serving endpoints (the director's user
    /// and management ports, a worker's user and management ports), identical in every process
    /// of the cluster:
    ///
    /// - the stateless reset key (RFC 9000 section 10.3) is [`derive_key`](Self::derive_key)
    ///   ([`RESET_KEY_LABEL`]). A reset token is HMAC(reset key, connection ID), so a process
    ///   that gets a packet of a connection it does not hold, such as a director restarted on the
    ///   same address after a crash, answers with the stateless reset the peer was promised,
    ///   and the peer's connection ends at once (its calls fail with `UNAVAILABLE`) instead of
    ///   at its idle timeout. With quinn's default (a random key per process) the peer would
    ///   not recognise the reset.
    /// - connection IDs come from quinn's `HashedConnectionIdGenerator` keyed with the first 8
    ///   bytes of [`derive_key`](Self::derive_key) ([`CONNECTION_ID_KEY_LABEL`]). quinn drops
    ///   a short-header packet whose connection ID its generator does not recognise without
    ///   answering, so with a random generator key per process the new process would not even
    ///   send the reset.
    ///
    /// The other side of sharing the key (RFC 9000 section 10.3.2): any process of the cluster
    /// resets a connection whose packets reach it, so packets of a connection must keep
    /// reaching the process that holds it (route by address or connection ID, not at random).
    pub fn endpoint_config(&self) -> quinn::EndpointConfig {
        let reset =
            ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.derive_key(RESET_KEY_LABEL));
        let mut config = quinn::EndpointConfig::new(Arc::new(reset));
        let cid = self.derive_key(CONNECTION_ID_KEY_LABEL);
        let cid_key = u64::from_be_bytes(cid[..8].try_into().expect("8 of 32 bytes"));
        config.cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
        });
        config
    }

    /// A server identity issued now by the cluster CA, for the director's user port: chain
    /// `[leaf, ca]`, the leaf an ECDSA P-256 certificate for `server_names` (each an IP address
    /// literal, which becomes an IP SAN, or a DNS name, a DNS SAN; the first is also its CN),
    /// extended key usage server auth only, valid for 1 year, with a fresh key. Clients that
    /// trust the cluster CA (`ca.pem` in the cluster directory, [`crate::ClientTrust::CaFile`])
    /// accept it under any of those names, so every director of the cluster presents an
    /// identity they already trust, restart after restart. Its fingerprint changes with every
    /// issue: a client that pins needs an identity from files. With issued credentials (no CA
    /// key) it is this host's own certificate instead, the names those chosen at issue.
    ///
    /// Errors: `INVALID_ARGUMENT` when `server_names` is empty or one is neither an IP address
    /// nor a DNS name (the message names it); `INTERNAL` if generation fails.
    pub fn issue_server_identity(
        &self,
        server_names: &[String],
    ) -> Result<crate::tls::LoadedIdentity, RpcError> {
        let Some(issuer) = &self.issuer else {
            return self.issued_server_identity(server_names);
        };
        let first = server_names.first().ok_or_else(|| {
            RpcError::invalid_argument("a cluster-issued identity needs at least one server name")
        })?;
        let names: Vec<&str> = server_names.iter().map(String::as_str).collect();
        let (leaf, key) = issuer.issue(
            leaf_params(first, &names, None)?,
            &format!("cluster-issued server certificate for {names:?}"),
        )?;
        Ok(crate::tls::LoadedIdentity {
            fingerprint: fingerprint(&leaf),
            chain: vec![leaf, self.ca_cert.clone()],
            key,
        })
    }

    /// With issued credentials (no CA key), the user port presents this host's own certificate,
    /// whose names were chosen when it was issued (`rpcnet cluster issue NAME --role director
    /// --host H`). A warning names the `server_names` it does not cover: clients connecting
    /// under those fail the handshake.
    fn issued_server_identity(
        &self,
        server_names: &[String],
    ) -> Result<crate::tls::LoadedIdentity, RpcError> {
        let covered = role::certificate_names(&self.chain[0])?;
        let missing: Vec<&String> = server_names
            .iter()
            .filter(|n| !covered.iter().any(|c| c.eq_ignore_ascii_case(n)))
            .collect();
        if !missing.is_empty() {
            tracing::warn!(name = %self.name, ?missing, ?covered, "the director's issued certificate does not cover these server names: clients connecting under them fail the handshake; issue it again with --host for each");
        }
        Ok(crate::tls::LoadedIdentity {
            fingerprint: self.leaf_fingerprint(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        })
    }

    /// Whether these credentials hold the CA's key (a development CA directory), so that
    /// [`issue_server_identity`](Self::issue_server_identity) issues; `false` for issued
    /// credentials.
    pub fn holds_ca_key(&self) -> bool {
        self.issuer.is_some()
    }

    /// SHA-256 of this process's leaf certificate DER, lowercase hex (64 characters): what the
    /// other side sees from [`peer_fingerprint`](Self::peer_fingerprint).
    pub fn leaf_fingerprint(&self) -> String {
        fingerprint(&self.chain[0])
    }

    /// rustls server configuration: TLS 1.3 only, ALPN `alpns` (most preferred first), no 0-RTT, presents
    /// [`chain`](Self::chain), and REQUIRES a client certificate chaining to
    /// [`ca_cert`](Self::ca_cert) (rustls `WebPkiClientVerifier`, ring provider). Clients without
    /// one fail the handshake.
    ///
    /// Errors: `INTERNAL` if the verifier cannot be built; `INVALID_ARGUMENT` if rustls rejects the
    /// leaf certificate or key.
    pub fn server_crypto(&self, alpns: &[&[u8]]) -> Result<rustls::ServerConfig, RpcError> {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(self.roots()?), provider())
                .build()
                .map_err(|e| {
                    RpcError::internal(format!("cluster client-certificate verifier: {e}"))
                })?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| RpcError::internal(format!("TLS 1.3 unavailable: {e}")))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| {
                RpcError::invalid_argument(format!("cluster certificate/key rejected: {e}"))
            })?;
        config.alpn_protocols = alpns.iter().map(|a| a.to_vec()).collect();
        config.max_early_data_size = 0;
        Ok(config)
    }

    /// rustls client configuration: TLS 1.3 only, ALPN `alpns` (most preferred first), verifies that the server chains to
    /// [`ca_cert`](Self::ca_cert) and is valid for [`CLUSTER_SERVER_NAME`] (connect with that
    /// server name), and presents [`chain`](Self::chain) as the client certificate.
    ///
    /// Errors: `INVALID_ARGUMENT` if rustls rejects the leaf certificate or key or the CA;
    /// `INTERNAL` if TLS 1.3 is unavailable.
    pub fn client_crypto(&self, alpns: &[&[u8]]) -> Result<rustls::ClientConfig, RpcError> {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| RpcError::internal(format!("TLS 1.3 unavailable: {e}")))?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| {
                RpcError::invalid_argument(format!("cluster client certificate/key rejected: {e}"))
            })?;
        config.alpn_protocols = alpns.iter().map(|a| a.to_vec()).collect();
        Ok(config)
    }

    /// quinn server configuration from [`server_crypto`](Self::server_crypto) with
    /// [`crate::transport::cluster_transport_config`].
    ///
    /// Errors: those of `server_crypto`; `INTERNAL` if quinn rejects the rustls configuration.
    pub fn quinn_server_config(&self, alpns: &[&[u8]]) -> Result<quinn::ServerConfig, RpcError> {
        let quic = quinn::crypto::rustls::QuicServerConfig::try_from(self.server_crypto(alpns)?)
            .map_err(|e| {
                RpcError::internal(format!(
                    "QUIC cannot use the cluster TLS server config: {e}"
                ))
            })?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
        config.transport_config(cluster_transport_config());
        Ok(config)
    }

    /// quinn client configuration from [`client_crypto`](Self::client_crypto) with
    /// [`crate::transport::client_transport_config`] (no stream credit for the server) and the
    /// cluster's idle timeout, [`crate::transport::IDLE_TIMEOUT_MS`]. Connect with server name
    /// [`CLUSTER_SERVER_NAME`].
    ///
    /// Errors: those of `client_crypto`; `INTERNAL` if quinn rejects the rustls configuration.
    pub fn quinn_client_config(&self, alpns: &[&[u8]]) -> Result<quinn::ClientConfig, RpcError> {
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(self.client_crypto(alpns)?)
            .map_err(|e| {
                RpcError::internal(format!(
                    "QUIC cannot use the cluster TLS client config: {e}"
                ))
            })?;
        let mut config = quinn::ClientConfig::new(Arc::new(quic));
        config.transport_config(client_transport_config(IDLE_TIMEOUT_MS)?);
        Ok(config)
    }

    /// The peer's identity on an established connection: the SHA-256 fingerprint (lowercase hex,
    /// 64 characters, [`crate::tls::fingerprint`]) of the leaf certificate the peer presented, i.e.
    /// its [`leaf_fingerprint`](Self::leaf_fingerprint). With a development CA directory leaves
    /// are issued fresh per process, so it identifies one process run; with issued credentials it
    /// identifies the certificate, the same across restarts ([`PeerIdentity`] has its name and
    /// role).
    ///
    /// `None` if the peer presented no certificate or the handshake is not complete.
    pub fn peer_fingerprint(connection: &quinn::Connection) -> Option<String> {
        role::peer_leaf(connection).map(|leaf| fingerprint(&leaf))
    }

    /// The cluster CA as the only root.
    fn roots(&self) -> Result<rustls::RootCertStore, RpcError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_cert.clone()).map_err(|e| {
            RpcError::invalid_argument(format!("unusable cluster CA certificate: {e}"))
        })?;
        Ok(roots)
    }

    /// Verifies the own leaf against the CA as a peer would (WebPKI, name [`CLUSTER_SERVER_NAME`]),
    /// so a broken CA directory fails at load time rather than in every handshake.
    fn check_chain(&self) -> Result<(), RpcError> {
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(self.roots()?),
            provider(),
        )
        .build()
        .map_err(|e| RpcError::internal(format!("cluster server-certificate verifier: {e}")))?;
        let server_name =
            ServerName::try_from(CLUSTER_SERVER_NAME).expect("constant is a valid DNS name");
        verifier
            .verify_server_cert(
                &self.chain[0],
                &self.chain[1..],
                &server_name,
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
            .map_err(|e| RpcError::invalid_argument(format!("issued leaf does not verify: {e}")))
    }
}

/// The cluster CA and secret of a CA directory (`ca.pem`, `ca.key`, `secret.bin`).
struct Ca {
    /// `ca.pem` as stored: the trust anchor.
    cert: CertificateDer<'static>,
    issuer: Issuer,
    secret: [u8; SECRET_LEN],
}

impl Ca {
    /// Loads the CA directory `dir`.
    ///
    /// Errors: `INVALID_ARGUMENT` naming the file when `dir` or a file is missing or malformed,
    /// or when `ca.pem` and `ca.key` do not belong together; `INTERNAL` if the issuer cannot be
    /// rebuilt.
    fn load(dir: &Path) -> Result<Ca, RpcError> {
        if !dir.is_dir() {
            return Err(RpcError::invalid_argument(format!(
                "cluster directory {} does not exist: give the right one (--ca, --cluster-dir, cluster_dir or RPCNET_CLUSTER_DIR), or create a new cluster there with `rpcnet cluster init {}`",
                dir.display(),
                dir.display()
            )));
        }
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let secret_path = dir.join(SECRET_FILE);
        if dir.join(enroll::CERT_FILE).is_file() && !key_path.is_file() {
            return Err(RpcError::invalid_argument(format!(
                "{} holds a host's issued credentials, not the cluster CA: give the directory `rpcnet cluster init` made",
                dir.display()
            )));
        }
        if !key_path.is_file() && (cert_path.is_file() || dir.join(enroll::KEY_FILE).is_file()) {
            return Err(RpcError::invalid_argument(format!(
                "{} holds part of a host's credentials but no {} and no CA key ({}): \
                 issue them where the CA key is kept with `rpcnet cluster issue NAME --role worker|director|admin --out {}`",
                dir.display(),
                enroll::CERT_FILE,
                CA_KEY_FILE,
                dir.display()
            )));
        }
        for path in [&cert_path, &key_path, &secret_path] {
            if !path.is_file() {
                return Err(RpcError::invalid_argument(format!(
                    "cluster directory {} is incomplete: {} is missing (a CA directory is made by `rpcnet cluster init DIR`)",
                    dir.display(),
                    path.display()
                )));
            }
        }
        let cert = read_cert(&cert_path, "cluster CA file")?;
        let ca_key = read_key(&key_path, "cluster CA key")?;
        let secret = read_secret(&secret_path)?;
        // The CA as an issuer: same subject DN and key as the stored certificate, so leaves it signs
        // chain to the stored DER (which stays the trust anchor; the rebuilt DER is never used).
        let issuer_params = ca_params(&ca_key)?;
        let ca_cn = ca_common_name(&ca_key);
        if !contains(cert.as_ref(), ca_key.public_key_raw())
            || !contains(cert.as_ref(), ca_cn.as_bytes())
        {
            return Err(RpcError::invalid_argument(format!(
                "cluster CA certificate {} does not belong to the key {} (expected subject CN {ca_cn:?})",
                cert_path.display(),
                key_path.display()
            )));
        }
        let issuer = Issuer {
            cert: issuer_params.self_signed(&ca_key).map_err(|e| {
                RpcError::internal(format!(
                    "cannot rebuild the cluster CA from {}: {e}",
                    key_path.display()
                ))
            })?,
            key: ca_key,
        };
        Ok(Ca {
            cert,
            issuer,
            secret,
        })
    }
}

/// The first PEM certificate of `path`; `what` names the file's purpose in errors.
fn read_cert(path: &Path, what: &str) -> Result<CertificateDer<'static>, RpcError> {
    CertificateDer::from_pem_file(path).map_err(|e| {
        RpcError::invalid_argument(format!(
            "no usable PEM certificate in {what} {}: {e}",
            path.display()
        ))
    })
}

/// The PKCS#8 PEM key pair of `path` (warning when others may read it).
fn read_key(path: &Path, what: &str) -> Result<KeyPair, RpcError> {
    warn_if_exposed(path);
    let pem = fs::read_to_string(path).map_err(|e| {
        RpcError::invalid_argument(format!("cannot read {what} {}: {e}", path.display()))
    })?;
    KeyPair::from_pem(&pem).map_err(|e| {
        RpcError::invalid_argument(format!("malformed {what} {}: {e}", path.display()))
    })
}

/// The 32-byte cluster secret of `path`.
fn read_secret(path: &Path) -> Result<[u8; SECRET_LEN], RpcError> {
    warn_if_exposed(path);
    let bytes = fs::read(path).map_err(|e| {
        RpcError::invalid_argument(format!(
            "cannot read cluster secret {}: {e}",
            path.display()
        ))
    })?;
    <[u8; SECRET_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        RpcError::invalid_argument(format!(
            "cluster secret {} must be exactly {SECRET_LEN} bytes, has {}",
            path.display(),
            bytes.len()
        ))
    })
}

/// The name of a leaf issued in memory: `name`, or for a director or an admin tool its role's
/// name.
///
/// Errors: `INVALID_ARGUMENT` for a worker without a name.
fn leaf_name(role: Role, name: Option<&str>) -> Result<&str, RpcError> {
    match (name, role) {
        (Some(n), _) => Ok(n),
        (None, Role::Worker) => Err(RpcError::invalid_argument(
            "a worker needs an id: give one, or credentials issued for it (`rpcnet cluster issue NAME --role worker`), whose name is the id",
        )),
        (None, r) => Ok(r.as_str()),
    }
}

/// `name` must be usable as a DNS SAN and CN.
fn validate_name(name: &str) -> Result<(), RpcError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(RpcError::invalid_argument(format!(
            "cluster peer name {name:?} must be 1 to 253 characters of A-Z a-z 0-9 . - _"
        )))
    }
}

/// Time since the Unix epoch. rcgen's dates are `time::OffsetDateTime` (not a dependency here):
/// they are built as `rcgen::date_time_ymd(1970, 1, 1) + since_epoch`.
fn since_epoch() -> Result<Duration, RpcError> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| RpcError::internal(format!("system clock is before 1970: {e}")))
}

/// Subject CN of the cluster CA: derived from its public key, so every cluster's CA has a distinct
/// subject and the issuer can be rebuilt from `ca.key` alone.
fn ca_common_name(ca_key: &KeyPair) -> String {
    let id = digest::digest(&digest::SHA256, ca_key.public_key_raw());
    format!("rpcnet cluster CA {}", hex::encode(&id.as_ref()[..8]))
}

/// Parameters of the cluster CA. Only the subject DN, key usages and key-identifier method matter
/// when it is rebuilt as an issuer; validity and serial are those of the stored certificate.
fn ca_params(ca_key: &KeyPair) -> Result<CertificateParams, RpcError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "rpcnet");
    dn.push(DnType::CommonName, ca_common_name(ca_key));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = since_epoch()?;
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + now.saturating_sub(CLOCK_SKEW);
    params.not_after = rcgen::date_time_ymd(1970, 1, 1) + (now + CA_VALIDITY);
    Ok(params)
}

/// The DNS SANs of a cluster peer's leaf: `name` and [`CLUSTER_SERVER_NAME`].
fn peer_names(name: &str) -> Vec<&str> {
    let mut names = vec![name];
    if name != CLUSTER_SERVER_NAME {
        names.push(CLUSTER_SERVER_NAME);
    }
    names
}

/// Parameters of a leaf with subject CN `cn` for `names`, extended key usage server auth. A
/// cluster peer's leaf (`role` given) also has subject OU the role and client auth; its first
/// name (its CN) must be a DNS name, the others may be IP literals, which become IP SANs. A user
/// port's leaf (`role` `None`) takes IP literals anywhere.
///
/// Errors: `INVALID_ARGUMENT` for a name that is neither an IP address nor a DNS name.
fn leaf_params(
    cn: &str,
    names: &[&str],
    role: Option<Role>,
) -> Result<CertificateParams, RpcError> {
    let mut params = CertificateParams::default();
    params.subject_alt_names = names
        .iter()
        .enumerate()
        .map(|(i, &n)| san(n, role.is_some() && i == 0))
        .collect::<Result<_, _>>()?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "rpcnet");
    if let Some(role) = role {
        dn.push(DnType::OrganizationalUnitName, role.as_str());
    }
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    if role.is_some() {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    params.use_authority_key_identifier_extension = true;
    let now = since_epoch()?;
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + now.saturating_sub(CLOCK_SKEW);
    params.not_after = rcgen::date_time_ymd(1970, 1, 1) + (now + LEAF_VALIDITY);
    Ok(params)
}

/// The SAN for `name`: an IP SAN for an IP literal (unless `dns_only`, for a peer's own name),
/// else a DNS SAN, checked as a DNS name the way clients check it (rustls `ServerName`).
fn san(name: &str, dns_only: bool) -> Result<SanType, RpcError> {
    let (what, expected) = match name.parse::<std::net::IpAddr>() {
        Ok(ip) if !dns_only => return Ok(SanType::IpAddress(ip)),
        _ if dns_only => ("cluster peer name", "a DNS name"),
        _ => ("server name", "an IP address or a DNS name"),
    };
    let dns = ServerName::try_from(name)
        .map_err(|e| e.to_string())
        .and_then(|_| name.try_into().map_err(|e: rcgen::Error| e.to_string()));
    dns.map(SanType::DnsName)
        .map_err(|e| RpcError::invalid_argument(format!("{what} {name:?} is not {expected}: {e}")))
}

fn create_dir(dir: &Path) -> Result<(), RpcError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| {
        RpcError::invalid_argument(format!(
            "cannot create cluster directory {}: {e}",
            dir.display()
        ))
    })
}

/// Generates the secret and publishes it as `secret.bin` unless another process already did.
fn create_secret(dir: &Path) -> Result<(), RpcError> {
    let mut secret = [0u8; SECRET_LEN];
    SystemRandom::new().fill(&mut secret).map_err(|_| {
        RpcError::internal("system random generator failed while creating the cluster secret")
    })?;
    let tmp = write_temp(dir, SECRET_FILE, &secret, 0o600)?;
    let published = publish(&tmp, &dir.join(SECRET_FILE));
    let _ = fs::remove_file(&tmp);
    published.map(|_| ())
}

/// Generates the CA and publishes `ca.key` (the election: only the process whose link succeeds
/// goes on) and then `ca.pem`.
fn create_ca(dir: &Path) -> Result<(), RpcError> {
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| RpcError::internal(format!("cluster CA key generation failed: {e}")))?;
    let ca_cert = ca_params(&ca_key)?.self_signed(&ca_key).map_err(|e| {
        RpcError::internal(format!("cluster CA certificate generation failed: {e}"))
    })?;
    let key_tmp = write_temp(dir, CA_KEY_FILE, ca_key.serialize_pem().as_bytes(), 0o600)?;
    let cert_tmp = match write_temp(dir, CA_CERT_FILE, ca_cert.pem().as_bytes(), 0o644) {
        Ok(t) => t,
        Err(e) => {
            let _ = fs::remove_file(&key_tmp);
            return Err(e);
        }
    };
    let won = publish(&key_tmp, &dir.join(CA_KEY_FILE));
    let result = match won {
        Ok(true) => publish(&cert_tmp, &dir.join(CA_CERT_FILE)).and_then(|published| {
            if published {
                Ok(())
            } else {
                Err(RpcError::invalid_argument(format!(
                    "cluster directory {}: {} already existed without {}; remove the directory",
                    dir.display(),
                    CA_CERT_FILE,
                    CA_KEY_FILE
                )))
            }
        }),
        Ok(false) => Ok(()),
        Err(e) => Err(e),
    };
    let _ = fs::remove_file(&key_tmp);
    let _ = fs::remove_file(&cert_tmp);
    sync_dir(dir);
    result
}

/// Writes `bytes` to a new, uniquely named temporary file in `dir` (mode `mode` on Unix), synced.
fn write_temp(dir: &Path, file: &str, bytes: &[u8], mode: u32) -> Result<PathBuf, RpcError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut nonce = [0u8; 8];
    let _ = SystemRandom::new().fill(&mut nonce);
    let tmp = dir.join(format!(
        ".{file}.tmp-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        hex::encode(nonce)
    ));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let written = options.open(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        RpcError::invalid_argument(format!(
            "cannot write {} in cluster directory {}: {e}",
            file,
            dir.display()
        ))
    })?;
    Ok(tmp)
}

/// Publishes `tmp` as `target` with create-new semantics: `Ok(true)` if this call created it,
/// `Ok(false)` if it already existed (another process won).
fn publish(tmp: &Path, target: &Path) -> Result<bool, RpcError> {
    match fs::hard_link(tmp, target) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(RpcError::invalid_argument(format!(
            "cannot create {}: {e}",
            target.display()
        ))),
    }
}

/// Waits until `path` exists or `limit` elapses (the winner of the creation race publishes
/// `ca.pem` right after `ca.key`). On timeout, [`ClusterCredentials::load`] reports the file.
fn wait_for_file(path: &Path, limit: Duration) {
    let start = Instant::now();
    while !path.exists() && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Makes the new directory entries durable (best effort; Unix only).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Logs a warning when a secret file is readable or writable by group or others.
fn warn_if_exposed(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "cluster secret file is accessible to group or others; chmod 600 it");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

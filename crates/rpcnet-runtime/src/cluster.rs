//! Cluster credentials: mutual TLS under a cluster CA for the management plane (register,
//! heartbeat, migrate) and the director -> worker data link.
//!
//! Embedded default: the cluster CA and a 32-byte cluster secret are generated into a local
//! directory on first run and reused after. Every process of the cluster gets a fresh leaf
//! certificate issued in memory by that CA, presents it on both sides of a connection and accepts
//! only peers whose leaf chains to the same CA. A peer without a cluster certificate cannot
//! register, heartbeat or migrate: the server requires a client certificate (TLS 1.3
//! CertificateRequest, RFC 8446 section 4.3.2) and the client verifies the server, so either side
//! from another cluster, or without a certificate, fails the handshake.
//!
//! The cluster directory (see [`default_cluster_dir`], `.rpcnet/cluster` unless
//! `RPCNET_CLUSTER_DIR` says otherwise) holds:
//!
//! | file         | content                                                   | mode |
//! |--------------|-----------------------------------------------------------|------|
//! | `ca.pem`     | the CA certificate (PEM, ECDSA P-256, self-signed)        | 0644 |
//! | `ca.key`     | the CA private key (PKCS#8 PEM)                           | 0600 |
//! | `secret.bin` | 32 random bytes: the cluster secret (raw, no encoding)    | 0600 |
//!
//! The directory itself is created with mode 0700. All processes of a cluster must see the same
//! directory (same host, or a copy of it on every host). The secret is the input keying material
//! for migration-token HMAC keys and snapshot sealing keys; it never leaves the process otherwise.
//!
//! Creation is race-safe between processes started at the same time: every file is written to a
//! temporary file in the directory and published with `hard_link` (which fails if the target
//! exists), so exactly one process wins and the others load what it published. To rotate the CA
//! and the secret, stop the cluster and delete the directory.

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
    /// This process's certificate chain `[leaf, ca]` (DER), the leaf issued by the cluster CA for
    /// [`name`](Self::name): ECDSA P-256, DNS SANs `[name, "rpcnet-cluster"]`, CN `name`, extended
    /// key usage server + client auth, valid for 1 year.
    pub chain: Vec<CertificateDer<'static>>,
    /// Private key (PKCS#8) of the leaf in [`chain`](Self::chain).
    pub key: PrivateKeyDer<'static>,
    /// 32-byte cluster secret, identical in every process of the cluster.
    pub secret: [u8; SECRET_LEN],
    /// Name the leaf was issued for (also its DNS SAN and CN), e.g. `"worker-a"`.
    pub name: String,
    /// The cluster CA as an issuer (its key from `ca.key`), for
    /// [`issue_server_identity`](Self::issue_server_identity).
    issuer: Arc<Issuer>,
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
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| RpcError::internal(format!("key generation for {what} failed: {e}")))?;
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .map_err(|e| RpcError::internal(format!("{what} failed: {e}")))?;
        Ok((
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        ))
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
            issuer: self.issuer.clone(),
        }
    }
}

impl std::fmt::Debug for ClusterCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCredentials")
            .field("name", &self.name)
            .field("ca_fingerprint", &fingerprint(&self.ca_cert))
            .field("leaf_fingerprint", &self.leaf_fingerprint())
            .field("key", &"<redacted>")
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl ClusterCredentials {
    /// Loads the cluster CA (`ca.pem`, `ca.key`) and secret (`secret.bin`, 32 bytes, mode 0600)
    /// from `dir`, creating them (and `dir`, mode 0700, with missing parents) on first use; then
    /// issues a fresh leaf for `name` in memory (ECDSA P-256, DNS SANs `[name, "rpcnet-cluster"]`,
    /// extended key usage server + client auth, valid for 1 year). Nothing about the leaf is
    /// written to disk.
    ///
    /// Race-safe between processes (and threads) calling it at the same time on the same `dir`:
    /// all end with the same CA and secret. A caller that loses the race waits up to 10 s for the
    /// winner to publish `ca.pem`. Blocking (file I/O, key generation): from async code call it
    /// through `tokio::task::spawn_blocking`.
    ///
    /// `name`: 1 to 253 characters of `A-Z a-z 0-9 . - _`.
    ///
    /// Errors: `INVALID_ARGUMENT` for a bad `name`, a directory or file that cannot be created or
    /// read, or existing files that are malformed or do not belong together (the message names the
    /// file); `INTERNAL` if key or certificate generation fails.
    pub fn load_or_create(dir: &Path, name: &str) -> Result<Self, RpcError> {
        validate_name(name)?;
        create_dir(dir)?;
        if !dir.join(SECRET_FILE).exists() {
            create_secret(dir)?;
        }
        if !dir.join(CA_KEY_FILE).exists() {
            create_ca(dir)?;
        }
        wait_for_file(&dir.join(CA_CERT_FILE), PUBLISH_WAIT);
        Self::load(dir, name)
    }

    /// Loads an existing cluster directory only (nothing is created), then issues a fresh leaf for
    /// `name` in memory as [`load_or_create`](Self::load_or_create) does.
    ///
    /// Errors: `INVALID_ARGUMENT`, with the path in the message, when `dir` or one of `ca.pem`,
    /// `ca.key`, `secret.bin` is missing or malformed (no PEM certificate, unparsable key, secret
    /// not exactly 32 bytes, key not matching the certificate), or when `name` is invalid;
    /// `INTERNAL` if leaf generation fails.
    pub fn load(dir: &Path, name: &str) -> Result<Self, RpcError> {
        validate_name(name)?;
        if !dir.is_dir() {
            return Err(RpcError::invalid_argument(format!(
                "cluster directory {} does not exist (create it with load_or_create)",
                dir.display()
            )));
        }
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let secret_path = dir.join(SECRET_FILE);
        for path in [&cert_path, &key_path, &secret_path] {
            if !path.is_file() {
                return Err(RpcError::invalid_argument(format!(
                    "cluster directory {} is incomplete: {} is missing",
                    dir.display(),
                    path.display()
                )));
            }
        }

        let ca_cert = CertificateDer::from_pem_file(&cert_path).map_err(|e| {
            RpcError::invalid_argument(format!(
                "no usable PEM certificate in cluster CA file {}: {e}",
                cert_path.display()
            ))
        })?;
        warn_if_exposed(&key_path);
        let key_pem = fs::read_to_string(&key_path).map_err(|e| {
            RpcError::invalid_argument(format!(
                "cannot read cluster CA key {}: {e}",
                key_path.display()
            ))
        })?;
        let ca_key = KeyPair::from_pem(&key_pem).map_err(|e| {
            RpcError::invalid_argument(format!(
                "malformed cluster CA key {}: {e}",
                key_path.display()
            ))
        })?;
        warn_if_exposed(&secret_path);
        let secret_bytes = fs::read(&secret_path).map_err(|e| {
            RpcError::invalid_argument(format!(
                "cannot read cluster secret {}: {e}",
                secret_path.display()
            ))
        })?;
        let secret = <[u8; SECRET_LEN]>::try_from(secret_bytes.as_slice()).map_err(|_| {
            RpcError::invalid_argument(format!(
                "cluster secret {} must be exactly {SECRET_LEN} bytes, has {}",
                secret_path.display(),
                secret_bytes.len()
            ))
        })?;

        // The CA as an issuer: same subject DN and key as the stored certificate, so leaves it signs
        // chain to the stored DER (which stays the trust anchor; the rebuilt DER is never used).
        let issuer_params = ca_params(&ca_key)?;
        let ca_cn = ca_common_name(&ca_key);
        if !contains(ca_cert.as_ref(), ca_key.public_key_raw())
            || !contains(ca_cert.as_ref(), ca_cn.as_bytes())
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
        let names = peer_names(name);
        let (leaf, key) = issuer.issue(
            leaf_params(name, &names, true)?,
            &format!("cluster leaf certificate for {name:?}"),
        )?;
        let creds = Self {
            chain: vec![leaf, ca_cert.clone()],
            key,
            ca_cert,
            secret,
            name: name.to_string(),
            issuer: Arc::new(issuer),
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
    /// issue: a client that pins needs an identity from files.
    ///
    /// Errors: `INVALID_ARGUMENT` when `server_names` is empty or one is neither an IP address
    /// nor a DNS name (the message names it); `INTERNAL` if generation fails.
    pub fn issue_server_identity(
        &self,
        server_names: &[String],
    ) -> Result<crate::tls::LoadedIdentity, RpcError> {
        let first = server_names.first().ok_or_else(|| {
            RpcError::invalid_argument("a cluster-issued identity needs at least one server name")
        })?;
        let names: Vec<&str> = server_names.iter().map(String::as_str).collect();
        let (leaf, key) = self.issuer.issue(
            leaf_params(first, &names, false)?,
            &format!("cluster-issued server certificate for {names:?}"),
        )?;
        Ok(crate::tls::LoadedIdentity {
            fingerprint: fingerprint(&leaf),
            chain: vec![leaf, self.ca_cert.clone()],
            key,
        })
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
    /// its [`leaf_fingerprint`](Self::leaf_fingerprint). Leaves are issued fresh per process, so
    /// the fingerprint identifies one process run, not a name.
    ///
    /// `None` if the peer presented no certificate or the handshake is not complete.
    pub fn peer_fingerprint(connection: &quinn::Connection) -> Option<String> {
        let identity = connection.peer_identity()?;
        let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
        chain.first().map(fingerprint)
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

/// Parameters of a leaf with subject CN `cn` for `names` (IP literals become IP SANs, anything
/// else a DNS SAN), extended key usage server auth, plus client auth for a cluster `peer`.
///
/// Errors: `INVALID_ARGUMENT` for a name that is neither an IP address nor a DNS name.
fn leaf_params(cn: &str, names: &[&str], peer: bool) -> Result<CertificateParams, RpcError> {
    let mut params = CertificateParams::default();
    params.subject_alt_names = names
        .iter()
        .map(|&n| san(n, peer))
        .collect::<Result<_, _>>()?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "rpcnet");
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    if peer {
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

/// The SAN for `name`: an IP SAN for an IP literal (server names only), else a DNS SAN,
/// checked as a DNS name the way clients check it (rustls `ServerName`).
fn san(name: &str, peer: bool) -> Result<SanType, RpcError> {
    let (what, expected) = match name.parse::<std::net::IpAddr>() {
        Ok(ip) if !peer => return Ok(SanType::IpAddress(ip)),
        _ if peer => ("cluster peer name", "a DNS name"),
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

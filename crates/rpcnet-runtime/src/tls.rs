//! TLS 1.3 for rpcnet (RFC 9001 via quinn's rustls integration, ring provider).
//!
//! Servers present either certificates from PEM files or, by default, a self-signed certificate
//! generated with rcgen at start-up whose SHA-256 fingerprint clients can pin. Clients verify the
//! server by a CA file, by a pinned fingerprint, or by the system's roots: there is no mode that
//! skips verification.

use std::path::PathBuf;
use std::sync::Arc;

use ring::digest;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::error::RpcError;
use rpcnet_protocol::ALPNS;

/// The server name put in the default self-signed certificate and sent as SNI by default.
pub const DEFAULT_SERVER_NAME: &str = "localhost";

/// Where a server's certificate and key come from.
#[derive(Debug, Clone, Default)]
pub enum ServerIdentity {
    /// Generate a fresh self-signed certificate (rcgen, ECDSA P-256) for `localhost`, `127.0.0.1`
    /// and `::1`. Clients pin it by [`fingerprint`].
    #[default]
    SelfSigned,
    /// A certificate issued at start by the cluster CA
    /// ([`crate::cluster::ClusterCredentials::issue_server_identity`]) for `localhost`, the
    /// loopback and bound IPs and the configured server names: the default of a director's user
    /// port ([`crate::director::DirectorConfig::server_names`]). Clients trust the cluster CA
    /// (`ca.pem` in the cluster directory) by [`ClientTrust::CaFile`]. Only a director, which
    /// holds the cluster credentials, can present it: [`ServerIdentity::load`] refuses it.
    ClusterIssued,
    /// A PEM certificate chain file (end-entity first) and a PEM private key file (PKCS#8, SEC1
    /// or PKCS#1).
    PemFiles {
        /// Path of the certificate chain.
        cert: PathBuf,
        /// Path of the private key.
        key: PathBuf,
    },
}

/// How a client decides to trust a server.
#[derive(Debug, Clone)]
pub enum ClientTrust {
    /// Trust certificates that chain to the CA certificates in this PEM file (WebPKI rules,
    /// server name checked).
    CaFile(PathBuf),
    /// Trust exactly the end-entity certificate whose SHA-256 over its DER bytes equals this
    /// 32-byte value (see [`parse_fingerprint`]). Chain and name are not checked; the TLS 1.3
    /// handshake signature still is, so the server must hold the certificate's key.
    Pin([u8; 32]),
    /// Trust the operating system's root certificates (rustls-native-certs).
    SystemRoots,
}

impl ClientTrust {
    /// The trust mode for the three mutually exclusive options of the public API: a pin (see
    /// [`parse_fingerprint`]), a CA file, or the system roots.
    ///
    /// Errors: `INVALID_ARGUMENT` when none is given (there is no insecure mode), when more than
    /// one is given, or for a malformed pin.
    pub fn from_options(
        pin: Option<&str>,
        ca_file: Option<PathBuf>,
        system_roots: bool,
    ) -> Result<Self, RpcError> {
        match (pin, ca_file, system_roots) {
            (Some(pin), None, false) => Ok(ClientTrust::Pin(parse_fingerprint(pin)?)),
            (None, Some(ca), false) => Ok(ClientTrust::CaFile(ca)),
            (None, None, true) => Ok(ClientTrust::SystemRoots),
            (None, None, false) => Err(RpcError::invalid_argument(
                "no way to verify the server: give tls.pin, tls.caFile or tls.systemRoots (there is no insecure mode)",
            )),
            _ => Err(RpcError::invalid_argument("give exactly one of tls.pin, tls.caFile, tls.systemRoots")),
        }
    }
}

/// A loaded server identity: the DER chain and key, plus the end-entity fingerprint.
pub struct LoadedIdentity {
    /// Certificate chain, end-entity first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Private key of the end-entity certificate.
    pub key: PrivateKeyDer<'static>,
    /// SHA-256 of the end-entity DER, lowercase hex (64 characters).
    pub fingerprint: String,
}

/// The crypto provider every rpcnet endpoint uses: rustls's ring provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// SHA-256 of a DER certificate as lowercase hex (64 characters). This is the value clients pin.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    hex::encode(digest::digest(&digest::SHA256, cert.as_ref()).as_ref())
}

/// Parses a pinned fingerprint: 64 hex digits, upper or lower case, optionally separated by `:`
/// (the form `openssl x509 -fingerprint -sha256` prints).
///
/// Errors: `INVALID_ARGUMENT` naming the problem when it is not 32 bytes of hex.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], RpcError> {
    let cleaned: String = text.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(&cleaned)
        .map_err(|e| RpcError::invalid_argument(format!("certificate pin is not hex: {e}")))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        RpcError::invalid_argument(format!(
            "certificate pin must be a SHA-256 fingerprint of 32 bytes, got {} bytes",
            bytes.len()
        ))
    })
}

impl ServerIdentity {
    /// The identity for optional PEM paths: both = [`ServerIdentity::PemFiles`], neither =
    /// [`ServerIdentity::SelfSigned`].
    ///
    /// Errors: `INVALID_ARGUMENT` when only one of the two is given.
    pub fn from_pem_paths(cert: Option<PathBuf>, key: Option<PathBuf>) -> Result<Self, RpcError> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(ServerIdentity::PemFiles { cert, key }),
            (None, None) => Ok(ServerIdentity::SelfSigned),
            _ => Err(RpcError::invalid_argument(
                "tls.certPath and tls.keyPath must be given together",
            )),
        }
    }

    /// Loads or generates the identity.
    ///
    /// Errors: `INVALID_ARGUMENT` when a PEM file cannot be read or holds no certificate or key,
    /// or for [`ServerIdentity::ClusterIssued`] (the director issues that one itself);
    /// `INTERNAL` if certificate generation fails.
    pub fn load(&self) -> Result<LoadedIdentity, RpcError> {
        match self {
            ServerIdentity::ClusterIssued => Err(RpcError::invalid_argument(
                "a cluster-issued identity is for a director's user port only; give a server tls.certPath and tls.keyPath or none (self-signed)",
            )),
            ServerIdentity::SelfSigned => {
                let names = vec![
                    DEFAULT_SERVER_NAME.to_string(),
                    "127.0.0.1".to_string(),
                    "::1".to_string(),
                ];
                let certified = rcgen::generate_simple_self_signed(names).map_err(|e| {
                    RpcError::internal(format!("self-signed certificate generation failed: {e}"))
                })?;
                let cert = certified.cert.der().clone();
                let key = PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
                Ok(LoadedIdentity {
                    fingerprint: fingerprint(&cert),
                    chain: vec![cert],
                    key,
                })
            }
            ServerIdentity::PemFiles { cert, key } => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .map_err(|e| {
                        RpcError::invalid_argument(format!(
                            "cannot read certificate file {}: {e}",
                            cert.display()
                        ))
                    })?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| {
                        RpcError::invalid_argument(format!(
                            "bad PEM in certificate file {}: {e}",
                            cert.display()
                        ))
                    })?;
                if chain.is_empty() {
                    return Err(RpcError::invalid_argument(format!(
                        "no certificate in {}",
                        cert.display()
                    )));
                }
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    RpcError::invalid_argument(format!(
                        "cannot read private key file {}: {e}",
                        key.display()
                    ))
                })?;
                Ok(LoadedIdentity {
                    fingerprint: fingerprint(&chain[0]),
                    chain,
                    key,
                })
            }
        }
    }
}

/// Builds the rustls server configuration: TLS 1.3 only, ALPN `rpcnet/2` or `rpcnet/1`
/// (PROTOCOL.md section 2), no client auth.
///
/// Errors: `INVALID_ARGUMENT` if the key does not match the certificate or is unsupported.
pub fn server_crypto(identity: LoadedIdentity) -> Result<rustls::ServerConfig, RpcError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| RpcError::internal(format!("TLS 1.3 unavailable: {e}")))?
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)
        .map_err(|e| RpcError::invalid_argument(format!("certificate/key rejected: {e}")))?;
    config.alpn_protocols = ALPNS.iter().map(|a| a.to_vec()).collect();
    config.max_early_data_size = 0;
    Ok(config)
}

/// Builds the rustls client configuration for a trust mode: TLS 1.3 only, offering ALPN
/// `rpcnet/2` then `rpcnet/1`.
///
/// Errors: `INVALID_ARGUMENT` when the CA file cannot be read or holds no usable certificate;
/// `UNAVAILABLE` when system roots are requested and none can be loaded.
pub fn client_crypto(trust: &ClientTrust) -> Result<rustls::ClientConfig, RpcError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| RpcError::internal(format!("TLS 1.3 unavailable: {e}")))?;
    let mut config = match trust {
        ClientTrust::Pin(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinVerifier {
                pin: *pin,
                provider: provider(),
            }))
            .with_no_client_auth(),
        ClientTrust::CaFile(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
                RpcError::invalid_argument(format!("cannot read CA file {}: {e}", path.display()))
            })?;
            for cert in certs {
                let cert = cert.map_err(|e| {
                    RpcError::invalid_argument(format!(
                        "bad PEM in CA file {}: {e}",
                        path.display()
                    ))
                })?;
                roots.add(cert).map_err(|e| {
                    RpcError::invalid_argument(format!(
                        "unusable CA certificate in {}: {e}",
                        path.display()
                    ))
                })?;
            }
            if roots.is_empty() {
                return Err(RpcError::invalid_argument(format!(
                    "no CA certificate in {}",
                    path.display()
                )));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        ClientTrust::SystemRoots => {
            let mut roots = rustls::RootCertStore::empty();
            let loaded = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
            if added == 0 {
                return Err(RpcError::unavailable(
                    "no usable system root certificates found",
                ));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    config.alpn_protocols = ALPNS.iter().map(|a| a.to_vec()).collect();
    Ok(config)
}

/// Accepts exactly one end-entity certificate, identified by its SHA-256 fingerprint, and still
/// checks the handshake signature with it (rustls `verify_tls13_signature`), so a peer that only
/// copied the certificate cannot impersonate the server.
#[derive(Debug)]
struct PinVerifier {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = digest::digest(&digest::SHA256, end_entity.as_ref());
        // A fingerprint is public, so a plain comparison leaks nothing.
        if seen.as_ref() == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "server certificate fingerprint {} does not match the pinned {}",
                hex::encode(seen.as_ref()),
                hex::encode(self.pin)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_parsing_accepts_colons_and_case() {
        let hexed = "AB".repeat(32);
        let colon = (0..32).map(|_| "ab").collect::<Vec<_>>().join(":");
        assert_eq!(parse_fingerprint(&hexed).unwrap(), [0xab; 32]);
        assert_eq!(parse_fingerprint(&colon).unwrap(), [0xab; 32]);
    }

    #[test]
    fn fingerprint_parsing_rejects_wrong_length_and_garbage() {
        let e = parse_fingerprint("abcd").unwrap_err();
        assert_eq!(e.code, rpcnet_protocol::ErrorCode::InvalidArgument);
        assert!(e.message.contains("32 bytes"), "{}", e.message);
        assert!(parse_fingerprint("zz".repeat(32).as_str()).is_err());
    }

    #[test]
    fn self_signed_identity_has_stable_fingerprint_of_its_cert() {
        let id = ServerIdentity::SelfSigned.load().unwrap();
        assert_eq!(id.fingerprint.len(), 64);
        assert_eq!(id.fingerprint, fingerprint(&id.chain[0]));
        let other = ServerIdentity::SelfSigned.load().unwrap();
        assert_ne!(
            id.fingerprint, other.fingerprint,
            "each generated certificate is fresh"
        );
    }
}

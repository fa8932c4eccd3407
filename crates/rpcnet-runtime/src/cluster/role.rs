//! Who a cluster peer is: the name and the role its certificate was issued for, read from the
//! certificate it presented in the TLS handshake. The cluster CA vouches for both, so a peer can
//! act only as what it was issued for (PROTOCOL.md section 14.2): a worker registers under its
//! own name only, only directors drive migrations on a worker's management port, and only admin
//! tools use a director's admin methods.
//!
//! In a certificate the name is the subject CN (also a DNS SAN) and the role the subject OU,
//! one of `worker`, `director`, `admin` (see [`super::enroll`] for how they are issued). The
//! certificate is parsed with the x509-parser crate (rusticata); rcgen writes, it reads.

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

use crate::error::RpcError;
use crate::tls::fingerprint;
use rpcnet_protocol::ErrorCode;

/// What a cluster certificate allows its holder to do (subject OU of the certificate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Serves sessions; registers with directors under the certificate's name.
    Worker,
    /// Accepts clients, relays their calls and drives migrations on workers.
    Director,
    /// An operator's tool: lists and moves sessions, drains workers, through a director's
    /// management port (`rpcnet sessions`, `workers`, `migrate`, `drain`).
    Admin,
}

impl Role {
    /// Every role, in the order the CLI lists them.
    pub const ALL: [Role; 3] = [Role::Worker, Role::Director, Role::Admin];

    /// The role's name as written in certificates and on the command line: `worker`,
    /// `director` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::Director => "director",
            Role::Admin => "admin",
        }
    }

    /// The role's name with its indefinite article, for messages: `a worker`, `a director`,
    /// `an admin`.
    pub fn with_article(self) -> &'static str {
        match self {
            Role::Worker => "a worker",
            Role::Director => "a director",
            Role::Admin => "an admin",
        }
    }

    /// Parses a role name ([`as_str`](Self::as_str)).
    ///
    /// Errors: `INVALID_ARGUMENT` naming the value and the accepted names.
    pub fn parse(value: &str) -> Result<Role, RpcError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == value)
            .ok_or_else(|| {
                RpcError::invalid_argument(format!(
                    "role {value:?} is not one of worker, director, admin"
                ))
            })
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cluster peer as its certificate describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The name the certificate was issued for (subject CN), e.g. `"worker-a"`.
    pub name: String,
    /// The role it was issued for (subject OU); `None` for a certificate without one (not
    /// issued by rpcnet), which no role check accepts.
    pub role: Option<Role>,
    /// SHA-256 of the certificate DER, lowercase hex (64 characters).
    pub fingerprint: String,
}

impl PeerIdentity {
    /// Reads the name and role of a certificate.
    ///
    /// Errors: `INVALID_ARGUMENT` when the DER is not an X.509 certificate or has no subject CN.
    pub fn of(cert: &CertificateDer<'_>) -> Result<PeerIdentity, RpcError> {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
            .map_err(|e| RpcError::invalid_argument(format!("not an X.509 certificate: {e}")))?;
        let subject = parsed.subject();
        let name = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .ok_or_else(|| RpcError::invalid_argument("the certificate has no subject CN"))?;
        let role = subject
            .iter_organizational_unit()
            .next()
            .and_then(|ou| ou.as_str().ok())
            .and_then(|ou| Role::parse(ou).ok());
        Ok(PeerIdentity {
            name: name.to_string(),
            role,
            fingerprint: fingerprint(cert),
        })
    }

    /// The identity the peer of `connection` presented: `None` without a certificate or before
    /// the handshake completed, or when its certificate cannot be read.
    pub fn of_peer(connection: &quinn::Connection) -> Option<PeerIdentity> {
        PeerIdentity::of(&peer_leaf(connection)?).ok()
    }

    /// Checks that this peer holds a certificate for `role`; `doing` says what it tried, for the
    /// message.
    ///
    /// Errors: `PERMISSION_DENIED`, e.g. `"worker-a" holds a worker certificate; rpcnet.admin/drain
    /// needs an admin certificate (rpcnet cluster issue NAME --role admin)`.
    pub fn require(&self, role: Role, doing: &str) -> Result<(), RpcError> {
        if self.role == Some(role) {
            return Ok(());
        }
        let holds = self
            .role
            .map_or("a certificate without an rpcnet role".to_string(), |r| {
                format!("{} certificate", r.with_article())
            });
        Err(RpcError::new(
            ErrorCode::PermissionDenied,
            format!(
                "{:?} holds {holds}; {doing} needs {} certificate (rpcnet cluster issue NAME --role {role})",
                self.name,
                role.with_article()
            ),
        ))
    }

    /// [`require`](Self::require) on the peer of `connection`.
    ///
    /// Errors: `PERMISSION_DENIED` when the peer presented no readable certificate or one for
    /// another role.
    pub fn require_peer(
        connection: &quinn::Connection,
        role: Role,
        doing: &str,
    ) -> Result<PeerIdentity, RpcError> {
        let peer = PeerIdentity::of_peer(connection).ok_or_else(|| {
            RpcError::new(
                ErrorCode::PermissionDenied,
                format!(
                    "{doing} needs {} certificate; the peer presented none",
                    role.with_article()
                ),
            )
        })?;
        peer.require(role, doing)?;
        Ok(peer)
    }
}

/// The leaf certificate the peer of `connection` presented: `None` without one or before the
/// handshake completed.
pub(crate) fn peer_leaf(connection: &quinn::Connection) -> Option<CertificateDer<'static>> {
    let identity = connection.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    chain.into_iter().next()
}

/// Whether a certificate issued for `cert_name` lets its holder act as `name`: the same name,
/// or, for a worker certificate issued for a pattern `PREFIX*` (`rpcnet cluster issue
/// 'worker-*' --role worker`, for interchangeable workers such as a Kubernetes Deployment's
/// pods), any longer name that starts with `PREFIX`.
pub fn name_allows(cert_name: &str, name: &str) -> bool {
    match cert_name.strip_suffix('*') {
        Some(prefix) => name.len() > prefix.len() && name.starts_with(prefix),
        None => cert_name == name,
    }
}

/// The names a certificate is valid for: its DNS SANs and IP SANs (as text).
///
/// Errors: `INVALID_ARGUMENT` when the DER is not an X.509 certificate.
pub fn certificate_names(cert: &CertificateDer<'_>) -> Result<Vec<String>, RpcError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| RpcError::invalid_argument(format!("not an X.509 certificate: {e}")))?;
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return Ok(Vec::new());
    };
    Ok(san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            GeneralName::IPAddress(b) => ip_text(b),
            _ => None,
        })
        .collect())
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string()),
        _ => None,
    }
}

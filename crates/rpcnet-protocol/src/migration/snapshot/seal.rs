//! Sealing a frame for transfer (RFC-001 section 5.2): AES-256-GCM under a per-migration key
//! derived with HKDF-SHA256 from the cluster secret, behind a clear [`SealedHeader`] that is
//! authenticated as AAD.

use ring::{aead, hkdf};

use super::malformed;
use crate::migration::wire::{put_u64, ReadError, Reader};
use crate::migration::MigrationError;

/// HKDF-SHA256 salt (RFC 5869 section 2.2) for snapshot keys: the ASCII bytes
/// `rpcnet/1 snapshot`, fixed so every worker derives the same key.
pub const SEAL_SALT: &[u8] = b"rpcnet/1 snapshot";

/// Length of the clear prefix of a sealed snapshot: `migration_id u64 | session_id u64 |
/// timestamp_ms u64 | nonce 12 bytes`.
pub const SEALED_HEADER_LEN: usize = 36;

/// Length of the AES-256-GCM authentication tag (NIST SP 800-38D, 128-bit tag).
pub const TAG_LEN: usize = 16;

/// The clear prefix of a sealed snapshot. Authenticated (as AES-256-GCM AAD) only once
/// [`open`] succeeds; [`SealedHeader::parse`] alone proves nothing.
///
/// [`open`]: super::open
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedHeader {
    /// The migration this snapshot belongs to (also the HKDF `info`, so the key is per
    /// migration).
    pub migration_id: u64,
    /// The session inside.
    pub session_id: u64,
    /// When it was sealed, unix ms.
    pub timestamp_ms: u64,
    /// The AES-256-GCM nonce (96 bits).
    pub nonce: [u8; 12],
}

impl SealedHeader {
    /// Reads the clear prefix of a sealed snapshot without authenticating it (routing and
    /// logging only). Errors: `SNAPSHOT_TRUNCATED` when shorter than the prefix plus the tag.
    pub fn parse(sealed: &[u8]) -> Result<Self, MigrationError> {
        if sealed.len() < SEALED_HEADER_LEN + TAG_LEN {
            return Err(MigrationError::SnapshotTruncated {
                detail: format!(
                    "sealed snapshot is {} bytes, shorter than the {}-byte minimum ({SEALED_HEADER_LEN}-byte header + {TAG_LEN}-byte tag)",
                    sealed.len(),
                    SEALED_HEADER_LEN + TAG_LEN
                ),
            });
        }
        let mut r = Reader::new(sealed);
        let read = |r: &mut Reader<'_>| -> Result<SealedHeader, ReadError> {
            Ok(SealedHeader {
                migration_id: r.u64("migration_id")?,
                session_id: r.u64("session_id")?,
                timestamp_ms: r.u64("timestamp_ms")?,
                nonce: r.array("nonce")?,
            })
        };
        read(&mut r).map_err(|e| MigrationError::SnapshotTruncated {
            detail: e.to_string(),
        })
    }

    pub(super) fn write(&self, out: &mut Vec<u8>) {
        put_u64(out, self.migration_id);
        put_u64(out, self.session_id);
        put_u64(out, self.timestamp_ms);
        out.extend_from_slice(&self.nonce);
    }

    /// AAD = `session_id || migration_id || timestamp_ms`, each a big-endian u64
    /// (RFC-001 section 5.2: "AAD including connection ID and timestamps").
    pub(super) fn aad(&self) -> [u8; 24] {
        let mut aad = [0u8; 24];
        aad[..8].copy_from_slice(&self.session_id.to_be_bytes());
        aad[8..16].copy_from_slice(&self.migration_id.to_be_bytes());
        aad[16..].copy_from_slice(&self.timestamp_ms.to_be_bytes());
        aad
    }
}

/// Seals a frame (plain or compressed) for transfer: AES-256-GCM (NIST SP 800-38D) under the
/// per-migration key `HKDF-SHA256(salt = SEAL_SALT, ikm = cluster_secret, info = migration_id
/// as BE u64)` (RFC 5869), with AAD `session_id || migration_id || timestamp_ms` (BE u64 each).
///
/// Wire: `migration_id u64 | session_id u64 | timestamp_ms u64 | nonce 12 | ciphertext | tag 16`.
///
/// `nonce` must never repeat for the same `(cluster_secret, migration_id)`; draw it from a
/// `SecureRandom`. Errors: `SNAPSHOT_MALFORMED` if the frame is too large for AES-GCM.
pub fn seal_frame(
    framed: &[u8],
    cluster_secret: &[u8],
    migration_id: u64,
    session_id: u64,
    timestamp_ms: u64,
    nonce: [u8; 12],
) -> Result<Vec<u8>, MigrationError> {
    let header = SealedHeader {
        migration_id,
        session_id,
        timestamp_ms,
        nonce,
    };
    let mut out = Vec::with_capacity(SEALED_HEADER_LEN + framed.len() + TAG_LEN);
    header.write(&mut out);
    out.extend_from_slice(framed);
    encrypt_tail(&mut out, &header, cluster_secret)?;
    Ok(out)
}

/// Authenticates and decrypts a sealed snapshot, returning its clear header and the frame
/// inside (still compressed if it was). `expected_session_id`, when given, must match.
///
/// Errors: `SNAPSHOT_TRUNCATED` if shorter than header plus tag; `SNAPSHOT_TAMPERED` if
/// authentication fails (any altered or missing byte, or another cluster secret) or the
/// authentic snapshot is for another session.
pub fn open_frame(
    sealed: &[u8],
    cluster_secret: &[u8],
    expected_session_id: Option<u64>,
) -> Result<(SealedHeader, Vec<u8>), MigrationError> {
    let header = SealedHeader::parse(sealed)?;
    let body = &sealed[SEALED_HEADER_LEN..];
    let (ct, tag) = body.split_at(body.len() - TAG_LEN);
    let mut buf = ct.to_vec();
    let tag = aead::Tag::try_from(tag).map_err(|_| MigrationError::SnapshotTruncated {
        detail: "authentication tag is incomplete".into(),
    })?;
    snapshot_key(cluster_secret, header.migration_id)
        .open_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(header.nonce),
            aead::Aad::from(header.aad()),
            tag,
            &mut buf,
            0..,
        )
        .map_err(|_| MigrationError::SnapshotTampered {
            detail: "AES-256-GCM authentication failed: bytes were altered or cut, or it was sealed under a different cluster secret".into(),
        })?;
    if let Some(expected) = expected_session_id {
        if expected != header.session_id {
            return Err(MigrationError::SnapshotTampered {
                detail: format!(
                    "snapshot is for session {}, expected session {expected} (substituted or misrouted)",
                    header.session_id
                ),
            });
        }
    }
    Ok((header, buf))
}

fn snapshot_key(cluster_secret: &[u8], migration_id: u64) -> aead::LessSafeKey {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SEAL_SALT).extract(cluster_secret);
    let info = migration_id.to_be_bytes();
    let info = [&info[..]];
    // Expanding 32 bytes is far below HKDF-SHA256's 255 * 32-byte limit: this cannot fail.
    let okm = prk
        .expand(&info, &aead::AES_256_GCM)
        .expect("HKDF-SHA256 can always expand 32 bytes");
    aead::LessSafeKey::new(aead::UnboundKey::from(okm))
}

/// Encrypts `out[SEALED_HEADER_LEN..]` in place and appends the tag.
pub(super) fn encrypt_tail(
    out: &mut Vec<u8>,
    header: &SealedHeader,
    cluster_secret: &[u8],
) -> Result<(), MigrationError> {
    let tag = snapshot_key(cluster_secret, header.migration_id)
        .seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(header.nonce),
            aead::Aad::from(header.aad()),
            &mut out[SEALED_HEADER_LEN..],
        )
        .map_err(|_| malformed("snapshot too large for AES-256-GCM".into()))?;
    out.extend_from_slice(tag.as_ref());
    Ok(())
}

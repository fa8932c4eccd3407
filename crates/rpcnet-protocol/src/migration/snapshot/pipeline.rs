//! The fused pipeline: [`seal`] (encode, compress, seal) and [`open`] (open, decompress,
//! decode) in one pass each, without the intermediate copies and checksum passes of running the
//! public stages one after the other. Same bytes as the staged path.

use bytes::Bytes;

use super::compress::{bounded_decompress, check_plain_limit, compress_into, DEFAULT_ZSTD_LEVEL};
use super::encoding::{body_len_hint, decode_body, encode_body_into};
use super::frame::{finish_header, parse_header, FLAG_ZSTD, HEADER_LEN};
use super::seal::{encrypt_tail, open_frame, SealedHeader, SEALED_HEADER_LEN, TAG_LEN};
use super::types::SessionSnapshot;
use crate::migration::MigrationError;

/// Options for [`seal_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealOptions {
    /// zstd level for the body, or `None` to store it uncompressed (flag bit 0 clear).
    /// Default `Some(DEFAULT_ZSTD_LEVEL)`. Levels above 19 need a large decoder window and are
    /// not recommended.
    pub zstd_level: Option<i32>,
}

impl Default for SealOptions {
    fn default() -> Self {
        SealOptions {
            zstd_level: Some(DEFAULT_ZSTD_LEVEL),
        }
    }
}

/// Seals a snapshot with the default [`SealOptions`] (zstd level 1): encode, compress, seal
/// in one pass. See [`seal_with`].
pub fn seal(
    snapshot: &SessionSnapshot,
    cluster_secret: &[u8],
    migration_id: u64,
    timestamp_ms: u64,
    nonce: [u8; 12],
) -> Result<Vec<u8>, MigrationError> {
    seal_with(
        snapshot,
        cluster_secret,
        migration_id,
        timestamp_ms,
        nonce,
        &SealOptions::default(),
    )
}

/// Encodes (see [`encode`]), compresses (if `options.zstd_level` is set) and seals (see
/// [`seal_frame`]) a snapshot. The sealed header's `session_id` is `snapshot.session_id`.
///
/// Errors: `SNAPSHOT_MALFORMED` (see [`encode`]; also if zstd fails).
///
/// [`encode`]: super::encode
/// [`seal_frame`]: super::seal_frame
pub fn seal_with(
    snapshot: &SessionSnapshot,
    cluster_secret: &[u8],
    migration_id: u64,
    timestamp_ms: u64,
    nonce: [u8; 12],
    options: &SealOptions,
) -> Result<Vec<u8>, MigrationError> {
    let header = SealedHeader {
        migration_id,
        session_id: snapshot.session_id,
        timestamp_ms,
        nonce,
    };
    let mut out;
    match options.zstd_level {
        None => {
            out = Vec::with_capacity(
                SEALED_HEADER_LEN + HEADER_LEN + body_len_hint(snapshot) + TAG_LEN,
            );
            header.write(&mut out);
            out.extend_from_slice(&[0u8; HEADER_LEN]);
            encode_body_into(snapshot, &mut out)?;
            finish_header(&mut out, SEALED_HEADER_LEN, 0)?;
        }
        Some(level) => {
            let mut body = Vec::with_capacity(body_len_hint(snapshot));
            encode_body_into(snapshot, &mut body)?;
            out = Vec::with_capacity(SEALED_HEADER_LEN + HEADER_LEN + body.len() / 2 + 64);
            header.write(&mut out);
            out.extend_from_slice(&[0u8; HEADER_LEN]);
            compress_into(&body, level, &mut out)?;
            finish_header(&mut out, SEALED_HEADER_LEN, FLAG_ZSTD)?;
        }
    }
    encrypt_tail(&mut out, &header, cluster_secret)?;
    Ok(out)
}

/// Opens a sealed snapshot: authenticate and decrypt, check the header and checksum,
/// decompress without allocating more than `max_plain_bytes` for the body, decode. Byte
/// fields of the result share one buffer (no per-field copies).
///
/// The caller should also check that the sealed migration id is the migration it runs (use
/// [`open_with_header`]); `expected_session_id`, when given, must match.
///
/// Errors: `SNAPSHOT_TRUNCATED`, `SNAPSHOT_TAMPERED` (see [`open_frame`]; also if the inner
/// session id differs from the sealed one or the checksum fails), `SNAPSHOT_VERSION`,
/// `SNAPSHOT_MALFORMED` (bad layout, or more than `max_plain_bytes` once decompressed).
pub fn open(
    sealed: &[u8],
    cluster_secret: &[u8],
    expected_session_id: Option<u64>,
    max_plain_bytes: usize,
) -> Result<SessionSnapshot, MigrationError> {
    open_with_header(sealed, cluster_secret, expected_session_id, max_plain_bytes).map(|(_, s)| s)
}

/// [`open`], also returning the authenticated [`SealedHeader`] (migration id, timestamp).
pub fn open_with_header(
    sealed: &[u8],
    cluster_secret: &[u8],
    expected_session_id: Option<u64>,
    max_plain_bytes: usize,
) -> Result<(SealedHeader, SessionSnapshot), MigrationError> {
    let (header, frame) = open_frame(sealed, cluster_secret, expected_session_id)?;
    let (flags, body) = parse_header(&frame)?;
    let body = if flags & FLAG_ZSTD != 0 {
        Bytes::from(bounded_decompress(body, max_plain_bytes)?)
    } else {
        check_plain_limit(body.len(), max_plain_bytes)?;
        Bytes::from(frame).slice(HEADER_LEN..)
    };
    let snapshot = decode_body(&body)?;
    if snapshot.session_id != header.session_id {
        return Err(MigrationError::SnapshotTampered {
            detail: format!(
                "body holds session {} but the sealed header names session {}",
                snapshot.session_id, header.session_id
            ),
        });
    }
    Ok((header, snapshot))
}

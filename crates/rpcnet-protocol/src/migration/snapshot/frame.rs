//! The plain frame: the 16-byte header (version, flags, length, checksum; RFC-001 section 3.3)
//! in front of a snapshot body, compressed or not. Every stage that takes or returns a frame
//! checks or writes its header here, so the header rules exist once.

use ring::digest;

use super::malformed;
use crate::migration::MigrationError;

/// The snapshot format version this build writes and reads (header field `version`).
pub const SNAPSHOT_VERSION: u32 = 3;

/// Length of the plain snapshot header (RFC-001 section 3.3): version, flags, length,
/// checksum, each a big-endian `u32`.
pub const HEADER_LEN: usize = 16;

/// Header flag bit 0: the body is a zstd frame. No other bit is defined; set bits are rejected.
pub const FLAG_ZSTD: u32 = 1;

fn checksum(body: &[u8]) -> u32 {
    let d = digest::digest(&digest::SHA256, body);
    let b = d.as_ref();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Fills in the 16-byte header at `out[at..at + 16]` for the body that follows it to the end.
pub(super) fn finish_header(out: &mut [u8], at: usize, flags: u32) -> Result<(), MigrationError> {
    let body = &out[at + HEADER_LEN..];
    let len = u32::try_from(body.len()).map_err(|_| {
        malformed(format!(
            "body is {} bytes, above the 4 GiB format limit",
            body.len()
        ))
    })?;
    let sum = checksum(body);
    let h = &mut out[at..at + HEADER_LEN];
    h[..4].copy_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    h[4..8].copy_from_slice(&flags.to_be_bytes());
    h[8..12].copy_from_slice(&len.to_be_bytes());
    h[12..].copy_from_slice(&sum.to_be_bytes());
    Ok(())
}

/// Validates the header and checksum; returns the flags and the body.
pub(super) fn parse_header(framed: &[u8]) -> Result<(u32, &[u8]), MigrationError> {
    let word =
        |i: usize| u32::from_be_bytes([framed[i], framed[i + 1], framed[i + 2], framed[i + 3]]);
    if framed.len() >= 4 && word(0) != SNAPSHOT_VERSION {
        return Err(MigrationError::SnapshotVersion {
            found: word(0),
            supported: SNAPSHOT_VERSION,
        });
    }
    if framed.len() < HEADER_LEN {
        return Err(MigrationError::SnapshotTruncated {
            detail: format!(
                "{} bytes, shorter than the {HEADER_LEN}-byte header",
                framed.len()
            ),
        });
    }
    let (flags, len, sum) = (word(4), word(8) as usize, word(12));
    if flags & !FLAG_ZSTD != 0 {
        return Err(malformed(format!(
            "unknown flag bits {:#010x}",
            flags & !FLAG_ZSTD
        )));
    }
    let body = &framed[HEADER_LEN..];
    if body.len() < len {
        return Err(MigrationError::SnapshotTruncated {
            detail: format!(
                "header declares a {len}-byte body, only {} bytes present",
                body.len()
            ),
        });
    }
    if body.len() > len {
        return Err(malformed(format!(
            "{} trailing bytes after the {len}-byte body",
            body.len() - len
        )));
    }
    let actual = checksum(body);
    if actual != sum {
        return Err(MigrationError::SnapshotTampered {
            detail: format!("header checksum {sum:#010x} does not match the body ({actual:#010x})"),
        });
    }
    Ok((flags, body))
}

//! zstd compression of a frame's body (RFC-001 section 6.3), and decompression that never
//! allocates more than the caller's limit (zip-bomb safe: the size a zstd frame declares is
//! checked before anything is allocated).

use super::frame::{finish_header, parse_header, FLAG_ZSTD, HEADER_LEN};
use super::malformed;
use crate::migration::MigrationError;

/// Default zstd level for sealing: 1, the fastest standard level (a migration is latency
/// bound; RFC-001 section 6.3 expects ~60 % reduction from zstd).
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// Compresses the body of a plain frame with zstd at `level` and returns a frame with flag
/// bit 0 set, `length` and `checksum` recomputed over the compressed body. The input's
/// checksum is verified first.
///
/// Errors: those of [`decode`]'s header checks; `SNAPSHOT_MALFORMED` if the input is already
/// compressed or zstd fails.
///
/// [`decode`]: super::decode
pub fn compress(framed: &[u8], level: i32) -> Result<Vec<u8>, MigrationError> {
    let (flags, body) = parse_header(framed)?;
    if flags & FLAG_ZSTD != 0 {
        return Err(malformed("body is already zstd-compressed".into()));
    }
    let mut out = Vec::with_capacity(HEADER_LEN + body.len() / 2 + 64);
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    compress_into(body, level, &mut out)?;
    finish_header(&mut out, 0, FLAG_ZSTD)?;
    Ok(out)
}

/// Reverses [`compress`]: verifies the compressed frame's checksum, decompresses without ever
/// allocating more than `max_plain_bytes`, and returns a plain frame (flags 0). A plain frame
/// is returned as is (after the same checks and the size limit).
///
/// Errors: those of [`decode`]'s header checks; `SNAPSHOT_MALFORMED` if the zstd frame is
/// corrupt, does not declare its size, or declares more than `max_plain_bytes`.
///
/// [`decode`]: super::decode
pub fn decompress(framed: &[u8], max_plain_bytes: usize) -> Result<Vec<u8>, MigrationError> {
    let (flags, body) = parse_header(framed)?;
    if flags & FLAG_ZSTD == 0 {
        check_plain_limit(body.len(), max_plain_bytes)?;
        return Ok(framed.to_vec());
    }
    let plain = bounded_decompress(body, max_plain_bytes)?;
    let mut out = Vec::with_capacity(HEADER_LEN + plain.len());
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    out.extend_from_slice(&plain);
    finish_header(&mut out, 0, 0)?;
    Ok(out)
}

pub(super) fn check_plain_limit(len: usize, max: usize) -> Result<(), MigrationError> {
    if len > max {
        return Err(malformed(format!(
            "body is {len} bytes, above the {max}-byte limit"
        )));
    }
    Ok(())
}

pub(super) fn compress_into(
    body: &[u8],
    level: i32,
    out: &mut Vec<u8>,
) -> Result<(), MigrationError> {
    let compressed = zstd::bulk::compress(body, level)
        .map_err(|e| malformed(format!("zstd compression failed: {e}")))?;
    out.extend_from_slice(&compressed);
    Ok(())
}

/// Decompresses one zstd frame that declares its content size, allocating exactly that size
/// and refusing anything above `max` before allocating (decompression bombs).
pub(super) fn bounded_decompress(src: &[u8], max: usize) -> Result<Vec<u8>, MigrationError> {
    let declared = match zstd::zstd_safe::get_frame_content_size(src) {
        Ok(Some(n)) => n,
        Ok(None) => {
            return Err(malformed(
                "zstd frame does not declare its decompressed size".into(),
            ))
        }
        Err(_) => return Err(malformed("body is not a valid zstd frame".into())),
    };
    if declared > max as u64 {
        return Err(malformed(format!(
            "body would decompress to {declared} bytes, above the {max}-byte limit"
        )));
    }
    let n = declared as usize;
    let mut out = Vec::with_capacity(n);
    let got = zstd::bulk::Decompressor::new()
        .and_then(|mut d| d.decompress_to_buffer(src, &mut out))
        .map_err(|e| {
            malformed(format!(
                "zstd body does not decompress to its declared {n} bytes: {e}"
            ))
        })?;
    if got != n {
        return Err(malformed(format!(
            "zstd body decompressed to {got} bytes, its frame declares {n}"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_frame_without_size_or_garbage_is_malformed() {
        // A streaming-encoder frame does not declare its content size.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        std::io::Write::write_all(&mut enc, b"hello").unwrap();
        let z = enc.finish().unwrap();
        let mut v = vec![0u8; HEADER_LEN];
        v.extend_from_slice(&z);
        finish_header(&mut v, 0, FLAG_ZSTD).unwrap();
        if zstd::zstd_safe::get_frame_content_size(&z)
            .unwrap()
            .is_none()
        {
            assert!(decompress(&v, 100)
                .unwrap_err()
                .to_string()
                .contains("declare"));
        }
        let mut v = vec![0u8; HEADER_LEN];
        v.extend_from_slice(b"not zstd at all");
        finish_header(&mut v, 0, FLAG_ZSTD).unwrap();
        assert_eq!(
            decompress(&v, 100).unwrap_err().code(),
            "SNAPSHOT_MALFORMED"
        );
    }
}

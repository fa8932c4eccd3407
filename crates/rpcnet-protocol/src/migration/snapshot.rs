//! Session snapshots: what a migration or a failover moves, its versioned binary format
//! (RFC-001 section 3.3) and its sealing for transfer (RFC-001 section 5.2).
//!
//! A [`SessionSnapshot`] is the server side of one client connection frozen at an item
//! boundary: the application state (opaque bytes from the TypeScript hook) and, per open call,
//! its method, request, next sequence number and the items produced but not yet delivered.
//!
//! Pipeline, each stage public so it can be benchmarked on its own:
//!
//! ```text
//! seal:  encode -> compress (zstd) -> seal_frame (AES-256-GCM)
//! open:  open_frame -> decompress (bounded) -> decode
//! ```
//!
//! [`seal`] and [`open`] run the same stages fused, without the intermediate copies and
//! checksum passes. Decoding treats every byte as hostile: it never panics, never reads past
//! the input and never allocates more than the caller's `max_plain_bytes` (zip-bomb safe).

use std::collections::BTreeSet;

use bytes::Bytes;
use ring::{aead, digest, hkdf};

use super::wire::{put_bytes16, put_bytes32, put_u32, put_u64, ReadError, Reader};
use super::MigrationError;

/// The snapshot format version this build writes and reads (header field `version`).
pub const SNAPSHOT_VERSION: u32 = 1;

/// Length of the plain snapshot header (RFC-001 section 3.3): version, flags, length,
/// checksum, each a big-endian `u32`.
pub const HEADER_LEN: usize = 16;

/// Header flag bit 0: the body is a zstd frame. No other bit is defined; set bits are rejected.
pub const FLAG_ZSTD: u32 = 1;

/// HKDF-SHA256 salt (RFC 5869 section 2.2) for snapshot keys: the ASCII bytes
/// `rpcnet/1 snapshot`, fixed so every worker derives the same key.
pub const SEAL_SALT: &[u8] = b"rpcnet/1 snapshot";

/// Length of the clear prefix of a sealed snapshot: `migration_id u64 | session_id u64 |
/// timestamp_ms u64 | nonce 12 bytes`.
pub const SEALED_HEADER_LEN: usize = 36;

/// Length of the AES-256-GCM authentication tag (NIST SP 800-38D, 128-bit tag).
pub const TAG_LEN: usize = 16;

/// Default zstd level for sealing: 1, the fastest standard level (a migration is latency
/// bound; RFC-001 section 6.3 expects ~60 % reduction from zstd).
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// The server side of one client connection, frozen at an item boundary (RFC-001 section 3.2,
/// phase 4). What migrates between workers; also what failover rebuilds from checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionSnapshot {
    /// The session (one per client connection).
    pub session_id: u64,
    /// The stable id of the client connection as the framework names it (`connectionId`).
    /// At most 65 535 bytes of UTF-8.
    pub connection_id: String,
    /// When the source froze the session, unix ms.
    pub captured_at_ms: u64,
    /// Opaque application state from the TypeScript capture hook (may be empty).
    pub app_state: Bytes,
    /// Every open call; `call_id`s are unique.
    pub calls: Vec<CallSnapshot>,
}

/// One open call of a captured session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallSnapshot {
    /// The call's id within the session (unique in a snapshot).
    pub call_id: u64,
    /// The method name, at most 65 535 bytes of UTF-8.
    pub method: String,
    /// The original request payload, so the target can re-run the handler if it must.
    pub request: Bytes,
    /// True for a streaming call (items with sequence numbers), false for unary.
    pub streaming: bool,
    /// Milliseconds left before the call's deadline at `captured_at_ms`; 0 means no deadline.
    pub deadline_ms: u32,
    /// Sequence number of the first item the client has not been sent (items are numbered
    /// from 0 within a call). The target continues from here.
    pub next_seq: u64,
    /// Items produced but not yet delivered, as `(seq, payload)`, seq ascending and
    /// contiguous from `next_seq` (`next_seq`, `next_seq + 1`, ...).
    pub pending: Vec<(u64, Bytes)>,
    /// The handler's last checkpoint, if any: `(seq, state)` = after producing `seq` items the
    /// handler saved `state` with `ctx.checkpoint(state)`. A resumed handler restarts there.
    pub checkpoint: Option<(u64, Bytes)>,
}

impl CallSnapshot {
    /// A call rebuilt for failover (the owner died, nothing was captured): the original
    /// request, the handler's last checkpoint, and the client's last received seq (`None`
    /// when the client received no item, so the call resumes at seq 0). No pending items.
    pub fn for_failover(
        call_id: u64,
        method: String,
        request: Bytes,
        streaming: bool,
        deadline_ms: u32,
        checkpoint: Option<(u64, Bytes)>,
        last_received_seq: Option<u64>,
    ) -> Self {
        CallSnapshot {
            call_id,
            method,
            request,
            streaming,
            deadline_ms,
            next_seq: last_received_seq.map_or(0, |s| s.saturating_add(1)),
            pending: Vec::new(),
            checkpoint,
        }
    }
}

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

/// The clear prefix of a sealed snapshot. Authenticated (as AES-256-GCM AAD) only once
/// [`open`] succeeds; [`SealedHeader::parse`] alone proves nothing.
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

    fn write(&self, out: &mut Vec<u8>) {
        put_u64(out, self.migration_id);
        put_u64(out, self.session_id);
        put_u64(out, self.timestamp_ms);
        out.extend_from_slice(&self.nonce);
    }

    /// AAD = `session_id || migration_id || timestamp_ms`, each a big-endian u64
    /// (RFC-001 section 5.2: "AAD including connection ID and timestamps").
    fn aad(&self) -> [u8; 24] {
        let mut aad = [0u8; 24];
        aad[..8].copy_from_slice(&self.session_id.to_be_bytes());
        aad[8..16].copy_from_slice(&self.migration_id.to_be_bytes());
        aad[16..].copy_from_slice(&self.timestamp_ms.to_be_bytes());
        aad
    }
}

// ---------------------------------------------------------------------------------------------
// Plain format: header + body.

/// Encodes a snapshot in the plain format (RFC-001 section 3.3), body uncompressed:
///
/// ```text
/// header (16 bytes, big-endian u32 each):
///   version  = 1
///   flags    = 0           (bit 0 set = body is a zstd frame; other bits must be 0)
///   length   = body length in bytes
///   checksum = first 4 bytes of SHA-256(body), read as a big-endian u32 (detects accidental
///              corruption of stored snapshots; integrity in transit comes from AES-256-GCM)
/// body (big-endian; str16 = u16 length + UTF-8, bytes32 = u32 length + bytes):
///   session_id u64 | connection_id str16 | captured_at_ms u64 | app_state bytes32
///   call_count u32, then per call:
///     call_id u64 | method str16 | request bytes32 | streaming u8 (0/1) | deadline_ms u32
///     next_seq u64 | pending_count u32, then per item: seq u64 | payload bytes32
///     checkpoint: u8 0 (none) or 1 followed by seq u64 and bytes32
/// ```
///
/// Errors: `SNAPSHOT_MALFORMED` when the snapshot breaks an invariant the decoder checks
/// (over-long field, duplicate call id, pending seqs not contiguous from `next_seq`).
pub fn encode(snapshot: &SessionSnapshot) -> Result<Vec<u8>, MigrationError> {
    let mut out = Vec::with_capacity(HEADER_LEN + body_len_hint(snapshot));
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    encode_body_into(snapshot, &mut out)?;
    finish_header(&mut out, 0, 0)?;
    Ok(out)
}

/// Decodes the plain format produced by [`encode`] (flags must be 0; use [`decompress`] first
/// for a compressed frame). Never panics.
///
/// Errors: `SNAPSHOT_TRUNCATED` (shorter than the header or its declared length),
/// `SNAPSHOT_VERSION`, `SNAPSHOT_TAMPERED` (checksum mismatch), `SNAPSHOT_MALFORMED`
/// (unknown flags, compressed body, trailing bytes, or a body field that breaks the layout).
pub fn decode(framed: &[u8]) -> Result<SessionSnapshot, MigrationError> {
    let (flags, body) = parse_header(framed)?;
    if flags & FLAG_ZSTD != 0 {
        return Err(malformed(
            "body is zstd-compressed; call decompress() before decode()".into(),
        ));
    }
    decode_body(&Bytes::copy_from_slice(body))
}

/// Compresses the body of a plain frame with zstd at `level` and returns a frame with flag
/// bit 0 set, `length` and `checksum` recomputed over the compressed body. The input's
/// checksum is verified first.
///
/// Errors: those of [`decode`]'s header checks; `SNAPSHOT_MALFORMED` if the input is already
/// compressed or zstd fails.
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

// ---------------------------------------------------------------------------------------------
// Sealing.

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

// ---------------------------------------------------------------------------------------------
// Internals.

fn malformed(detail: String) -> MigrationError {
    MigrationError::SnapshotMalformed { detail }
}

fn check_plain_limit(len: usize, max: usize) -> Result<(), MigrationError> {
    if len > max {
        return Err(malformed(format!(
            "body is {len} bytes, above the {max}-byte limit"
        )));
    }
    Ok(())
}

fn checksum(body: &[u8]) -> u32 {
    let d = digest::digest(&digest::SHA256, body);
    let b = d.as_ref();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Fills in the 16-byte header at `out[at..at + 16]` for the body that follows it to the end.
fn finish_header(out: &mut [u8], at: usize, flags: u32) -> Result<(), MigrationError> {
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
fn parse_header(framed: &[u8]) -> Result<(u32, &[u8]), MigrationError> {
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

fn compress_into(body: &[u8], level: i32, out: &mut Vec<u8>) -> Result<(), MigrationError> {
    let compressed = zstd::bulk::compress(body, level)
        .map_err(|e| malformed(format!("zstd compression failed: {e}")))?;
    out.extend_from_slice(&compressed);
    Ok(())
}

/// Decompresses one zstd frame that declares its content size, allocating exactly that size
/// and refusing anything above `max` before allocating (decompression bombs).
fn bounded_decompress(src: &[u8], max: usize) -> Result<Vec<u8>, MigrationError> {
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
fn encrypt_tail(
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

fn body_len_hint(s: &SessionSnapshot) -> usize {
    let calls: usize = s
        .calls
        .iter()
        .map(|c| {
            40 + c.method.len()
                + c.request.len()
                + c.pending.iter().map(|(_, p)| 12 + p.len()).sum::<usize>()
                + c.checkpoint.as_ref().map_or(0, |(_, b)| 12 + b.len())
        })
        .sum();
    30 + s.connection_id.len() + s.app_state.len() + calls
}

fn encode_body_into(s: &SessionSnapshot, out: &mut Vec<u8>) -> Result<(), MigrationError> {
    let too_long = |e: super::wire::TooLong| malformed(e.to_string());
    put_u64(out, s.session_id);
    put_bytes16(out, s.connection_id.as_bytes(), "connection_id").map_err(too_long)?;
    put_u64(out, s.captured_at_ms);
    put_bytes32(out, &s.app_state, "app_state").map_err(too_long)?;
    let count = u32::try_from(s.calls.len()).map_err(|_| {
        malformed(format!(
            "{} calls, at most {} allowed",
            s.calls.len(),
            u32::MAX
        ))
    })?;
    put_u32(out, count);
    let mut ids = BTreeSet::new();
    for c in &s.calls {
        if !ids.insert(c.call_id) {
            return Err(malformed(format!("call id {} appears twice", c.call_id)));
        }
        put_u64(out, c.call_id);
        put_bytes16(out, c.method.as_bytes(), "method").map_err(too_long)?;
        put_bytes32(out, &c.request, "request").map_err(too_long)?;
        out.push(u8::from(c.streaming));
        put_u32(out, c.deadline_ms);
        put_u64(out, c.next_seq);
        let n = u32::try_from(c.pending.len()).map_err(|_| {
            malformed(format!(
                "call {}: {} pending items, too many",
                c.call_id,
                c.pending.len()
            ))
        })?;
        put_u32(out, n);
        for (i, (seq, payload)) in c.pending.iter().enumerate() {
            check_seq(c.call_id, c.next_seq, i, *seq)?;
            put_u64(out, *seq);
            put_bytes32(out, payload, "pending item").map_err(too_long)?;
        }
        match &c.checkpoint {
            None => out.push(0),
            Some((seq, cp)) => {
                out.push(1);
                put_u64(out, *seq);
                put_bytes32(out, cp, "checkpoint").map_err(too_long)?;
            }
        }
    }
    Ok(())
}

/// The i-th pending item of a call must carry `next_seq + i`.
fn check_seq(call_id: u64, next_seq: u64, i: usize, seq: u64) -> Result<(), MigrationError> {
    let expected = next_seq.checked_add(i as u64);
    if expected != Some(seq) {
        return Err(malformed(match expected {
            Some(e) => format!(
                "call {call_id}: pending item {i} has seq {seq}, expected {e} (items must be contiguous from next_seq {next_seq})"
            ),
            None => format!("call {call_id}: pending seqs overflow u64 after next_seq {next_seq}"),
        }));
    }
    Ok(())
}

/// Smallest encoded call (all variable fields empty) and pending item, used to bound counts
/// by the bytes actually present before allocating.
const MIN_CALL_LEN: usize = 8 + 2 + 4 + 1 + 4 + 8 + 4 + 1;
const MIN_ITEM_LEN: usize = 8 + 4;

fn decode_body(body: &Bytes) -> Result<SessionSnapshot, MigrationError> {
    let mut r = Reader::shared(body);
    let snap = read_body(&mut r).map_err(|e| match e {
        Ok(read) => malformed(format!("body {read}")),
        Err(e) => e,
    })?;
    r.finish().map_err(|e| malformed(format!("body has {e}")))?;
    Ok(snap)
}

fn read_body(r: &mut Reader<'_>) -> Result<SessionSnapshot, Result<ReadError, MigrationError>> {
    let session_id = r.u64("session_id").map_err(Ok)?;
    let connection_id = r.str16("connection_id").map_err(Ok)?;
    let captured_at_ms = r.u64("captured_at_ms").map_err(Ok)?;
    let app_state = r.bytes32("app_state").map_err(Ok)?;
    let count = r.u32("call_count").map_err(Ok)? as usize;
    if count > r.remaining() / MIN_CALL_LEN {
        return Err(Ok(ReadError::Invalid {
            field: "call_count",
            detail: format!(
                "{count} calls cannot fit in the {} bytes left",
                r.remaining()
            ),
        }));
    }
    let mut calls = Vec::with_capacity(count);
    let mut ids = BTreeSet::new();
    for _ in 0..count {
        let call = read_call(r)?;
        if !ids.insert(call.call_id) {
            return Err(Err(malformed(format!(
                "call id {} appears twice",
                call.call_id
            ))));
        }
        calls.push(call);
    }
    Ok(SessionSnapshot {
        session_id,
        connection_id,
        captured_at_ms,
        app_state,
        calls,
    })
}

fn read_call(r: &mut Reader<'_>) -> Result<CallSnapshot, Result<ReadError, MigrationError>> {
    let call_id = r.u64("call_id").map_err(Ok)?;
    let method = r.str16("method").map_err(Ok)?;
    let request = r.bytes32("request").map_err(Ok)?;
    let streaming = r.bool("streaming").map_err(Ok)?;
    let deadline_ms = r.u32("deadline_ms").map_err(Ok)?;
    let next_seq = r.u64("next_seq").map_err(Ok)?;
    let n = r.u32("pending_count").map_err(Ok)? as usize;
    if n > r.remaining() / MIN_ITEM_LEN {
        return Err(Ok(ReadError::Invalid {
            field: "pending_count",
            detail: format!(
                "call {call_id}: {n} items cannot fit in the {} bytes left",
                r.remaining()
            ),
        }));
    }
    let mut pending = Vec::with_capacity(n);
    for i in 0..n {
        let seq = r.u64("pending seq").map_err(Ok)?;
        check_seq(call_id, next_seq, i, seq).map_err(Err)?;
        pending.push((seq, r.bytes32("pending item").map_err(Ok)?));
    }
    let checkpoint = if r.bool("checkpoint present").map_err(Ok)? {
        let seq = r.u64("checkpoint seq").map_err(Ok)?;
        Some((seq, r.bytes32("checkpoint").map_err(Ok)?))
    } else {
        None
    };
    Ok(CallSnapshot {
        call_id,
        method,
        request,
        streaming,
        deadline_ms,
        next_seq,
        pending,
        checkpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"cluster secret for unit tests...";

    fn sample() -> SessionSnapshot {
        SessionSnapshot {
            session_id: 7,
            connection_id: "conn-7".into(),
            captured_at_ms: 1_700_000_000_000,
            app_state: Bytes::from_static(b"{\"user\":1}"),
            calls: vec![
                CallSnapshot {
                    call_id: 1,
                    method: "feed.subscribe".into(),
                    request: Bytes::from_static(b"req"),
                    streaming: true,
                    deadline_ms: 30_000,
                    next_seq: 10,
                    pending: vec![
                        (10, Bytes::from_static(b"a")),
                        (11, Bytes::from_static(b"b")),
                    ],
                    checkpoint: Some((3, Bytes::from_static(b"cp"))),
                },
                CallSnapshot {
                    call_id: 2,
                    method: "unary".into(),
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn header_layout_is_as_documented() {
        let enc = encode(&sample()).unwrap();
        assert_eq!(&enc[..4], &1u32.to_be_bytes());
        assert_eq!(&enc[4..8], &0u32.to_be_bytes());
        let len = u32::from_be_bytes(enc[8..12].try_into().unwrap()) as usize;
        assert_eq!(len, enc.len() - HEADER_LEN);
        let d = digest::digest(&digest::SHA256, &enc[HEADER_LEN..]);
        assert_eq!(&enc[12..16], &d.as_ref()[..4]);
        // Body starts with session_id then the str16 connection id.
        assert_eq!(&enc[16..24], &7u64.to_be_bytes());
        assert_eq!(&enc[24..32], b"\x00\x06conn-7");
    }

    #[test]
    fn plain_round_trip() {
        let s = sample();
        assert_eq!(decode(&encode(&s).unwrap()).unwrap(), s);
        let empty = SessionSnapshot::default();
        assert_eq!(decode(&encode(&empty).unwrap()).unwrap(), empty);
    }

    #[test]
    fn staged_pipeline_round_trip() {
        let s = sample();
        let plain = encode(&s).unwrap();
        let packed = compress(&plain, 3).unwrap();
        assert_eq!(&packed[4..8], &FLAG_ZSTD.to_be_bytes());
        assert_eq!(
            compress(&packed, 1).unwrap_err().code(),
            "SNAPSHOT_MALFORMED"
        );
        let sealed = seal_frame(&packed, SECRET, 99, s.session_id, 5, [1; 12]).unwrap();
        let (h, frame) = open_frame(&sealed, SECRET, Some(7)).unwrap();
        assert_eq!((h.migration_id, h.session_id, h.timestamp_ms), (99, 7, 5));
        assert_eq!(decode(&frame).unwrap_err().code(), "SNAPSHOT_MALFORMED");
        let unpacked = decompress(&frame, 1 << 20).unwrap();
        assert_eq!(unpacked, plain);
        assert_eq!(decompress(&plain, 1 << 20).unwrap(), plain);
        assert_eq!(decode(&unpacked).unwrap(), s);
        // The fused path opens what the staged path sealed.
        assert_eq!(open(&sealed, SECRET, None, 1 << 20).unwrap(), s);
    }

    #[test]
    fn sealed_layout_and_aad() {
        let s = sample();
        let sealed = seal(&s, SECRET, 0x0102, 0x0304, [9; 12]).unwrap();
        assert_eq!(&sealed[..8], &0x0102u64.to_be_bytes());
        assert_eq!(&sealed[8..16], &7u64.to_be_bytes());
        assert_eq!(&sealed[16..24], &0x0304u64.to_be_bytes());
        assert_eq!(&sealed[24..36], &[9; 12]);
        // Decrypt by hand with the documented key derivation and AAD.
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"rpcnet/1 snapshot").extract(SECRET);
        let info = 0x0102u64.to_be_bytes();
        let info = [&info[..]];
        let okm = prk.expand(&info, &aead::AES_256_GCM).unwrap();
        let key = aead::LessSafeKey::new(aead::UnboundKey::from(okm));
        let mut aad = Vec::new();
        aad.extend_from_slice(&7u64.to_be_bytes());
        aad.extend_from_slice(&0x0102u64.to_be_bytes());
        aad.extend_from_slice(&0x0304u64.to_be_bytes());
        let mut buf = sealed[36..].to_vec();
        let plain = key
            .open_in_place(
                aead::Nonce::assume_unique_for_key([9; 12]),
                aead::Aad::from(&aad),
                &mut buf,
            )
            .unwrap();
        let frame = decompress(plain, 1 << 20).unwrap();
        assert_eq!(decode(&frame).unwrap(), s);
    }

    #[test]
    fn uncompressed_sealing_option() {
        let s = sample();
        let opts = SealOptions { zstd_level: None };
        let sealed = seal_with(&s, SECRET, 1, 2, [0; 12], &opts).unwrap();
        assert_eq!(open(&sealed, SECRET, Some(7), 1 << 20).unwrap(), s);
        let body_len = sealed.len() - SEALED_HEADER_LEN - HEADER_LEN - TAG_LEN;
        assert_eq!(
            open(&sealed, SECRET, Some(7), body_len - 1)
                .unwrap_err()
                .code(),
            "SNAPSHOT_MALFORMED"
        );
    }

    #[test]
    fn header_errors() {
        let enc = encode(&sample()).unwrap();
        let mut v = enc.clone();
        v[3] = 2;
        assert_eq!(
            decode(&v).unwrap_err(),
            MigrationError::SnapshotVersion {
                found: 2,
                supported: 1
            }
        );
        let mut v = enc.clone();
        v[4] = 0x80;
        assert_eq!(decode(&v).unwrap_err().code(), "SNAPSHOT_MALFORMED");
        let mut v = enc.clone();
        v.push(0);
        assert_eq!(decode(&v).unwrap_err().code(), "SNAPSHOT_MALFORMED");
        let mut v = enc.clone();
        *v.last_mut().unwrap() ^= 1;
        assert_eq!(decode(&v).unwrap_err().code(), "SNAPSHOT_TAMPERED");
        for n in 0..enc.len() {
            assert_eq!(
                decode(&enc[..n]).unwrap_err().code(),
                "SNAPSHOT_TRUNCATED",
                "len {n}"
            );
        }
    }

    /// Re-frames a hand-written body with a valid header so body validation is reached.
    fn framed(body: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; HEADER_LEN];
        v.extend_from_slice(body);
        finish_header(&mut v, 0, 0).unwrap();
        v
    }

    fn body_of(s: &SessionSnapshot) -> Vec<u8> {
        let mut b = Vec::new();
        encode_body_into(s, &mut b).unwrap();
        b
    }

    #[test]
    fn body_validation() {
        // Non-contiguous pending seqs written by hand.
        let mut s = sample();
        s.calls[0].pending[1].0 = 13;
        let e = encode(&s).unwrap_err();
        assert!(e.to_string().contains("has seq 13, expected 11"), "{e}");
        let mut body = body_of(&sample());
        // Find "b" item seq 11 and change it to 13: session(8)+conn(8)+cap(8)+app(4+10)+count(4)
        // + call_id 8 + method 2+14 + request 4+3 + streaming 1 + deadline 4 + next_seq 8 + n 4
        // + item0 8+4+1 = offset of item1 seq.
        let off = 8 + 8 + 8 + 14 + 4 + 8 + 16 + 7 + 1 + 4 + 8 + 4 + 13;
        assert_eq!(&body[off..off + 8], &11u64.to_be_bytes());
        body[off + 7] = 13;
        let e = decode(&framed(&body)).unwrap_err();
        assert_eq!(e.code(), "SNAPSHOT_MALFORMED");
        assert!(e.to_string().contains("expected 11"), "{e}");

        // Duplicate call ids.
        let mut s = sample();
        s.calls[1].call_id = 1;
        assert!(encode(&s)
            .unwrap_err()
            .to_string()
            .contains("appears twice"));

        // Huge counts are refused before allocating.
        let mut body = body_of(&SessionSnapshot::default());
        let n = body.len();
        body[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
        let e = decode(&framed(&body)).unwrap_err();
        assert!(e.to_string().contains("call_count"), "{e}");

        // Bad boolean, trailing bytes inside the body.
        let mut s = SessionSnapshot::default();
        s.calls.push(CallSnapshot::default());
        let mut body = body_of(&s);
        let at = body.len() - 1 - 4 - 8 - 4 - 1; // streaming byte
        body[at] = 2;
        assert!(decode(&framed(&body))
            .unwrap_err()
            .to_string()
            .contains("streaming"));
        let mut body = body_of(&s);
        body.push(0);
        assert!(decode(&framed(&body))
            .unwrap_err()
            .to_string()
            .contains("trailing"));
    }

    #[test]
    fn failover_call_resumes_after_last_received() {
        let c = CallSnapshot::for_failover(3, "m".into(), Bytes::new(), true, 0, None, Some(41));
        assert_eq!(c.next_seq, 42);
        let c = CallSnapshot::for_failover(3, "m".into(), Bytes::new(), true, 0, None, None);
        assert_eq!(c.next_seq, 0);
    }

    #[test]
    fn bomb_is_refused_before_allocating() {
        let big = vec![0u8; 4 << 20];
        let s = SessionSnapshot {
            app_state: Bytes::from(big),
            ..Default::default()
        };
        let sealed = seal(&s, SECRET, 1, 1, [0; 12]).unwrap();
        assert!(sealed.len() < 4096, "zeros compress well: {}", sealed.len());
        let e = open(&sealed, SECRET, None, 1 << 20).unwrap_err();
        assert_eq!(e.code(), "SNAPSHOT_MALFORMED");
        assert!(
            e.to_string().contains("above the 1048576-byte limit"),
            "{e}"
        );
        assert_eq!(open(&sealed, SECRET, None, 5 << 20).unwrap(), s);
    }

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

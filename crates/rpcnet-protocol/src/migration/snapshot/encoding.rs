//! The binary encoding of a [`SessionSnapshot`] body (RFC-001 section 3.3) and the public
//! [`encode`] / [`decode`] of a plain frame. Decoding treats every byte as hostile: it never
//! panics, never reads past the input and bounds every count by the bytes actually present
//! before allocating.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::frame::{finish_header, parse_header, FLAG_ZSTD, HEADER_LEN};
use super::malformed;
use super::types::{CallSnapshot, SessionSnapshot};
use crate::frame::Checkpoint;
use crate::metadata::Metadata;
use crate::migration::wire::{put_bytes16, put_bytes32, put_u32, put_u64, ReadError, Reader};
use crate::migration::MigrationError;

/// Encodes a snapshot in the plain format (RFC-001 section 3.3), body uncompressed:
///
/// ```text
/// header (16 bytes, big-endian u32 each):
///   version  = 3 (2 added the call headers, 3 the checkpoint's read and the route epoch)
///   flags    = 0           (bit 0 set = body is a zstd frame; other bits must be 0)
///   length   = body length in bytes
///   checksum = first 4 bytes of SHA-256(body), read as a big-endian u32 (detects accidental
///              corruption of stored snapshots; integrity in transit comes from AES-256-GCM)
/// body (big-endian; str16 = u16 length + UTF-8, bytes32 = u32 length + bytes):
///   session_id u64 | connection_id str16 | captured_at_ms u64 | route_epoch u64
///   app_state bytes32
///   call_count u32, then per call:
///     call_id u64 | method str16 | request bytes32 | streaming u8 (0/1) | deadline_ms u32
///     next_seq u64 | pending_count u32, then per item: seq u64 | payload bytes32
///     checkpoint: u8 0 (none) or 1 followed by seq u64, read u64 and bytes32
///     headers bytes32 (a metadata block, PROTOCOL.md section 5.6; empty = none)
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
///
/// [`decompress`]: super::decompress
pub fn decode(framed: &[u8]) -> Result<SessionSnapshot, MigrationError> {
    let (flags, body) = parse_header(framed)?;
    if flags & FLAG_ZSTD != 0 {
        return Err(malformed(
            "body is zstd-compressed; call decompress() before decode()".into(),
        ));
    }
    decode_body(&Bytes::copy_from_slice(body))
}

pub(super) fn body_len_hint(s: &SessionSnapshot) -> usize {
    let calls: usize = s
        .calls
        .iter()
        .map(|c| {
            40 + c.method.len()
                + c.request.len()
                + c.pending.iter().map(|(_, p)| 12 + p.len()).sum::<usize>()
                + c.checkpoint.as_ref().map_or(0, |c| 20 + c.state.len())
        })
        .sum();
    38 + s.connection_id.len() + s.app_state.len() + calls
}

pub(super) fn encode_body_into(
    s: &SessionSnapshot,
    out: &mut Vec<u8>,
) -> Result<(), MigrationError> {
    let too_long = |e: crate::migration::wire::TooLong| malformed(e.to_string());
    put_u64(out, s.session_id);
    put_bytes16(out, s.connection_id.as_bytes(), "connection_id").map_err(too_long)?;
    put_u64(out, s.captured_at_ms);
    put_u64(out, s.route_epoch);
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
            Some(cp) => {
                out.push(1);
                put_u64(out, cp.seq);
                put_u64(out, cp.read);
                put_bytes32(out, &cp.state, "checkpoint").map_err(too_long)?;
            }
        }
        let mut headers = bytes::BytesMut::new();
        c.headers.encode(&mut headers);
        put_bytes32(out, &headers, "headers").map_err(too_long)?;
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
const MIN_CALL_LEN: usize = 8 + 2 + 4 + 1 + 4 + 8 + 4 + 1 + 4;
const MIN_ITEM_LEN: usize = 8 + 4;

pub(super) fn decode_body(body: &Bytes) -> Result<SessionSnapshot, MigrationError> {
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
    let route_epoch = r.u64("route_epoch").map_err(Ok)?;
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
        route_epoch,
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
        let read = r.u64("checkpoint read").map_err(Ok)?;
        let state = r.bytes32("checkpoint").map_err(Ok)?;
        Some(Checkpoint { seq, read, state })
    } else {
        None
    };
    let block = r.bytes32("headers").map_err(Ok)?;
    let headers = Metadata::decode(&block)
        .map_err(|e| Err(malformed(format!("call {call_id}: headers: {e}"))))?;
    Ok(CallSnapshot {
        call_id,
        method,
        request,
        streaming,
        deadline_ms,
        next_seq,
        pending,
        checkpoint,
        headers,
    })
}

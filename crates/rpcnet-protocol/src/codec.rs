//! Sans-IO decoding of rpcnet frames.
//!
//! This module exists so that all parsing and validation of untrusted bytes from a call's QUIC
//! stream happens in one deterministic place with no I/O: the runtime appends whatever it reads
//! to a [`BytesMut`] and calls [`Decoder::decode`] until it returns `Ok(None)`, then
//! [`Decoder::decode_eof`] once the peer has finished the stream (FIN). The rules enforced here
//! are PROTOCOL.md sections 4, 5, 10 and 11.
//!
//! Validation order for each frame: the header's `type`, then its `flags`, then its `length`
//! against the maximum frame size (all from the 6 header bytes alone, before any body is
//! buffered), then, once the whole body is present, the body layout.
//!
//! A decoding error ends the call (the receiver resets the stream with the error's
//! [`FrameError::code`], PROTOCOL.md section 11), never the connection or the process.

use bytes::{Bytes, BytesMut};

use crate::code::ErrorCode;
use crate::frame::{
    Attach, Checkpoint, Frame, FrameType, Request, Version, ATTACH_FIXED_LEN,
    DEFAULT_MAX_FRAME_SIZE, END_BODY_LEN, ERROR_FIXED_LEN, FLAG_CHECKPOINT_READ,
    FLAG_CLIENT_STREAMING, FLAG_HAS_CHECKPOINT, FLAG_METADATA, FLAG_READ, FLAG_RESUMABLE,
    FLAG_STREAMING, HEADER_LEN, ITEM_FIXED_LEN, REQUEST_FIXED_LEN,
};
use crate::metadata::{Metadata, DEFAULT_MAX_METADATA_SIZE};

/// Why a byte sequence is not a valid frame. See [`FrameError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameErrorKind {
    /// The stream ended (FIN) in the middle of a frame (PROTOCOL.md section 11). `have` is the
    /// number of bytes of the incomplete frame that were received; `need` is how many were
    /// required: [`HEADER_LEN`] while the header itself is incomplete, otherwise the full frame
    /// size (6 + body `length`). Maps to `PROTOCOL`.
    #[error("{}", truncated_message(*have, *need))]
    Truncated {
        /// Bytes of the incomplete frame received before the end of the stream.
        have: usize,
        /// Bytes the header (if `need == 6`) or the whole frame required.
        need: usize,
    },
    /// The header declares a body `length` (bytes) larger than the receiver's maximum frame size
    /// `max` (bytes) (PROTOCOL.md section 10). Detected from the header alone. Maps to
    /// `RESOURCE_EXHAUSTED`.
    #[error("frame body of {length} bytes exceeds the maximum frame size of {max} bytes")]
    TooLarge {
        /// The body length declared by the header, in bytes.
        length: u32,
        /// The decoder's maximum body length, in bytes.
        max: u32,
    },
    /// A metadata block (a REQUEST's `metadata_len`, a HEADERS or TRAILERS body) of `length`
    /// bytes is larger than the receiver's limit `max` (PROTOCOL.md section 5.6). HEADERS and
    /// TRAILERS are refused from the header alone. Maps to `RESOURCE_EXHAUSTED`.
    #[error("metadata of {length} bytes exceeds the maximum metadata size of {max} bytes")]
    MetadataTooLarge {
        /// The block's length in bytes.
        length: u32,
        /// The decoder's maximum metadata size, in bytes.
        max: u32,
    },
    /// The header's `type` byte is not a defined frame type (PROTOCOL.md section 5) of the
    /// connection's protocol version. Maps to `PROTOCOL`.
    #[error("unknown frame type {0:#04x}")]
    UnknownType(u8),
    /// The header's `flags` byte has a bit set that is not defined for the frame type
    /// (PROTOCOL.md section 4). Maps to `PROTOCOL`.
    #[error("reserved flag bits set on frame type {frame_type:#04x}: flags {flags:#04x}")]
    ReservedFlags {
        /// The header's `type` byte.
        frame_type: u8,
        /// The header's whole `flags` byte.
        flags: u8,
    },
    /// The body does not match the type's layout (PROTOCOL.md section 5): too short for its
    /// fixed fields, wrong exact length, empty method, invalid UTF-8. The message names the
    /// frame type and field. Maps to `PROTOCOL`.
    #[error("{0}")]
    Malformed(String),
}

fn truncated_message(have: usize, need: usize) -> String {
    if need == HEADER_LEN {
        format!("stream ended inside a frame: {have} of {need} header bytes")
    } else {
        format!("stream ended inside a frame: {have} of {need} frame bytes")
    }
}

/// A frame could not be decoded (PROTOCOL.md section 11). The call it belongs to must be
/// abandoned: the receiver sends ERROR (server side, if it still can) and resets the stream
/// with [`FrameError::code`] as the QUIC application error code (RFC 9000 section 19.4).
///
/// `Display` describes the problem, e.g. `unknown frame type 0x7f`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct FrameError {
    kind: FrameErrorKind,
}

impl FrameError {
    /// Wraps a [`FrameErrorKind`].
    #[must_use]
    pub fn new(kind: FrameErrorKind) -> Self {
        FrameError { kind }
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> &FrameErrorKind {
        &self.kind
    }

    /// Consumes the error, returning its kind.
    #[must_use]
    pub fn into_kind(self) -> FrameErrorKind {
        self.kind
    }

    /// The error code to report (PROTOCOL.md section 11): `RESOURCE_EXHAUSTED` for
    /// [`FrameErrorKind::TooLarge`], `PROTOCOL` for every other kind.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self.kind {
            FrameErrorKind::TooLarge { .. } | FrameErrorKind::MetadataTooLarge { .. } => {
                ErrorCode::ResourceExhausted
            }
            _ => ErrorCode::Protocol,
        }
    }

    fn malformed(msg: String) -> Self {
        FrameErrorKind::Malformed(msg).into()
    }
}

impl From<FrameErrorKind> for FrameError {
    fn from(kind: FrameErrorKind) -> Self {
        FrameError { kind }
    }
}

/// Parsing a header's `type` byte lives with the decoder (not in [`crate::frame`]), so that
/// `frame` (what the frames are) does not depend on `codec` (how bytes become frames).
impl TryFrom<u8> for FrameType {
    type Error = FrameError;

    /// Maps a header `type` byte to a [`FrameType`]; any undefined value gives a `PROTOCOL`
    /// [`FrameError`] of kind [`FrameErrorKind::UnknownType`].
    fn try_from(value: u8) -> Result<Self, FrameError> {
        Ok(match value {
            0x01 => FrameType::Request,
            0x02 => FrameType::Response,
            0x03 => FrameType::Item,
            0x04 => FrameType::End,
            0x05 => FrameType::Error,
            0x06 => FrameType::Headers,
            0x07 => FrameType::Trailers,
            0x10 => FrameType::Attach,
            0x11 => FrameType::Checkpoint,
            0x12 => FrameType::Suspended,
            0x13 => FrameType::Ack,
            0x14 => FrameType::Call,
            0x15 => FrameType::Superseded,
            0x20 => FrameType::Hello,
            0x21 => FrameType::Welcome,
            0x22 => FrameType::Move,
            other => return Err(FrameErrorKind::UnknownType(other).into()),
        })
    }
}

/// Reads a frame header without consuming anything: `Some((type_byte, flags, body_len))` once at
/// least [`HEADER_LEN`] (6) bytes are available, `None` before. `body_len` is the header's
/// big-endian `length` in bytes. Nothing is validated (PROTOCOL.md section 4).
#[must_use]
pub fn peek_header(src: &[u8]) -> Option<(u8, u8, u32)> {
    let h: &[u8; HEADER_LEN] = src.get(..HEADER_LEN)?.try_into().ok()?;
    Some((h[0], h[1], u32::from_be_bytes([h[2], h[3], h[4], h[5]])))
}

/// Incremental, sans-IO frame decoder for one call's stream (PROTOCOL.md sections 4, 5 and 10).
///
/// Holds only configuration (the maximum body size, the maximum metadata size and the
/// connection's protocol version), so one decoder per stream is cheap; the bytes themselves stay
/// in the caller's [`BytesMut`].
#[derive(Debug, Clone)]
pub struct Decoder {
    max_frame_size: u32,
    max_metadata_size: u32,
    version: Version,
}

impl Default for Decoder {
    /// A decoder with the [`DEFAULT_MAX_FRAME_SIZE`] of 16 MiB.
    fn default() -> Self {
        Decoder::new(DEFAULT_MAX_FRAME_SIZE)
    }
}

impl Decoder {
    /// A decoder that rejects frames whose body `length` exceeds `max_frame_size` bytes with
    /// `RESOURCE_EXHAUSTED` (PROTOCOL.md section 10). The 6 header bytes are not counted.
    /// It decodes version 2 (the current one) with the [`DEFAULT_MAX_METADATA_SIZE`] of 8 KiB.
    #[must_use]
    pub fn new(max_frame_size: u32) -> Self {
        Decoder {
            max_frame_size,
            max_metadata_size: DEFAULT_MAX_METADATA_SIZE,
            version: Version::V2,
        }
    }

    /// This decoder for a connection that negotiated `version` (PROTOCOL.md section 2): under
    /// [`Version::V1`] the frame types and flags of version 2 are refused with `PROTOCOL`.
    #[must_use]
    pub fn with_version(mut self, version: Version) -> Self {
        self.version = version;
        self
    }

    /// This decoder with a limit of `max` bytes on each metadata block (PROTOCOL.md 5.6).
    #[must_use]
    pub fn with_max_metadata_size(mut self, max: u32) -> Self {
        self.max_metadata_size = max;
        self
    }

    /// The maximum accepted body length, in bytes.
    #[must_use]
    pub fn max_frame_size(&self) -> u32 {
        self.max_frame_size
    }

    /// Decodes the next frame at the start of `src`.
    ///
    /// - `Ok(Some(frame))`: exactly that frame's bytes were removed from the front of `src`;
    ///   payloads share `src`'s allocation (zero-copy). Call again: more frames may follow.
    /// - `Ok(None)`: `src` does not yet hold a complete frame (and its header, if complete, is
    ///   valid); `src` is untouched. Read more and retry.
    ///
    /// # Errors
    ///
    /// [`FrameError`] if the input is invalid; `src` is then untouched and the call must be
    /// abandoned (PROTOCOL.md section 11): [`FrameErrorKind::UnknownType`],
    /// [`FrameErrorKind::ReservedFlags`] or [`FrameErrorKind::TooLarge`] as soon as the 6 header
    /// bytes are present (before the body is buffered), [`FrameErrorKind::MetadataTooLarge`] from
    /// a HEADERS or TRAILERS header or a REQUEST's `metadata_len`, [`FrameErrorKind::Malformed`]
    /// once the whole body is present. Never [`FrameErrorKind::Truncated`].
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        Ok(self.decode_raw(src)?.map(|(frame, _)| frame))
    }

    /// [`Decoder::decode`], also returning the frame's whole encoding (header and body, sharing
    /// `src`'s allocation), so that a relay can forward a frame it does not change without
    /// encoding it again (DESIGN.md: the director relays items in Rust).
    ///
    /// # Errors
    ///
    /// As [`Decoder::decode`].
    pub fn decode_raw(&mut self, src: &mut BytesMut) -> Result<Option<(Frame, Bytes)>, FrameError> {
        let Some((type_byte, flags, length)) = peek_header(src) else {
            return Ok(None);
        };
        let ty = FrameType::try_from(type_byte)?;
        if ty.since() > self.version {
            return Err(FrameErrorKind::UnknownType(type_byte).into());
        }
        if flags & !ty.allowed_flags(self.version) != 0 {
            return Err(FrameErrorKind::ReservedFlags {
                frame_type: type_byte,
                flags,
            }
            .into());
        }
        if length > self.max_frame_size {
            return Err(FrameErrorKind::TooLarge {
                length,
                max: self.max_frame_size,
            }
            .into());
        }
        if matches!(ty, FrameType::Headers | FrameType::Trailers) && length > self.max_metadata_size
        {
            return Err(FrameErrorKind::MetadataTooLarge {
                length,
                max: self.max_metadata_size,
            }
            .into());
        }
        // Only overflows on a 32-bit target with a maximum near u32::MAX; such a frame could
        // never be buffered anyway.
        let Some(total) = (length as usize).checked_add(HEADER_LEN) else {
            return Err(FrameErrorKind::TooLarge {
                length,
                max: self.max_frame_size,
            }
            .into());
        };
        if src.len() < total {
            return Ok(None);
        }
        let body = &src[HEADER_LEN..total];
        let (mut frame, payload_offset) = parse_body(ty, flags, body, self.max_metadata_size)?;
        // Valid: now consume the frame and attach the zero-copy payload slice.
        let raw: Bytes = src.split_to(total).freeze();
        if let Some(off) = payload_offset {
            let bytes = raw.slice(HEADER_LEN + off..);
            match &mut frame {
                Frame::Request(Request { payload, .. })
                | Frame::Response { payload }
                | Frame::Item { payload, .. } => *payload = bytes,
                Frame::Checkpoint(c) => c.state = bytes,
                Frame::Hello { credential } | Frame::Welcome { credential, .. } => {
                    *credential = bytes
                }
                Frame::Attach(Attach {
                    checkpoint: Some(c),
                    ..
                }) => c.state = bytes,
                _ => unreachable!("only frames with a payload get an offset"),
            }
        }
        Ok(Some((frame, raw)))
    }

    /// Like [`Decoder::decode`], for when the peer has finished the stream (FIN) and no more
    /// bytes will arrive. Returns `Ok(Some(frame))` like `decode`, and `Ok(None)` only if `src`
    /// is empty (the stream ended cleanly between frames).
    ///
    /// # Errors
    ///
    /// Everything [`Decoder::decode`] returns, and [`FrameErrorKind::Truncated`] (`PROTOCOL`) if
    /// `src` holds the beginning of a frame that will never complete (PROTOCOL.md section 11).
    /// Header errors (unknown type, reserved flags, too large) take precedence over truncation.
    /// `src` is untouched on `Err`.
    pub fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        Ok(self.decode_eof_raw(src)?.map(|(frame, _)| frame))
    }

    /// [`Decoder::decode_eof`], also returning the frame's whole encoding, as
    /// [`Decoder::decode_raw`].
    ///
    /// # Errors
    ///
    /// As [`Decoder::decode_eof`].
    pub fn decode_eof_raw(
        &mut self,
        src: &mut BytesMut,
    ) -> Result<Option<(Frame, Bytes)>, FrameError> {
        if let Some(decoded) = self.decode_raw(src)? {
            return Ok(Some(decoded));
        }
        if src.is_empty() {
            return Ok(None);
        }
        let need = match peek_header(src) {
            None => HEADER_LEN,
            Some((_, _, length)) => HEADER_LEN.saturating_add(length as usize),
        };
        Err(FrameErrorKind::Truncated {
            have: src.len(),
            need,
        }
        .into())
    }
}

/// A metadata block of `frame` (PROTOCOL.md section 5.6), copied out of the receive buffer (it
/// is small: at most the metadata limit).
fn metadata_block(frame: &str, block: &[u8]) -> Result<Metadata, FrameError> {
    Metadata::decode(&Bytes::copy_from_slice(block))
        .map_err(|e| FrameError::malformed(format!("{frame} {e}")))
}

/// A body that is exactly one `u64` (`frame`'s `field`).
fn exact_u64(frame: &str, field: &str, body: &[u8]) -> Result<u64, FrameError> {
    let b: [u8; 8] = body.try_into().map_err(|_| {
        FrameError::malformed(format!(
            "{frame} body must be exactly 8 bytes ({field}: u64), got {}",
            body.len()
        ))
    })?;
    Ok(u64::from_be_bytes(b))
}

/// Validates a complete body. Returns the frame (with an empty placeholder payload, if the type
/// has one) and the payload's offset within the body (`None` for types without a payload).
fn parse_body(
    ty: FrameType,
    flags: u8,
    body: &[u8],
    max_metadata: u32,
) -> Result<(Frame, Option<usize>), FrameError> {
    match ty {
        FrameType::Headers => Ok((
            Frame::Headers {
                metadata: metadata_block("HEADERS", body)?,
            },
            None,
        )),
        FrameType::Trailers => Ok((
            Frame::Trailers {
                metadata: metadata_block("TRAILERS", body)?,
            },
            None,
        )),
        FrameType::Attach => {
            if body.len() < ATTACH_FIXED_LEN {
                return Err(FrameError::malformed(format!(
                    "ATTACH body is {} bytes, shorter than its fixed fields ({ATTACH_FIXED_LEN} bytes)",
                    body.len()
                )));
            }
            let u64_at = |i: usize| u64::from_be_bytes(body[i..i + 8].try_into().expect("8 bytes"));
            let (session_id, call_id, next_seq, route_epoch) =
                (u64_at(0), u64_at(8), u64_at(16), u64_at(24));
            let id_len = body[32] as usize;
            let rest = &body[ATTACH_FIXED_LEN..];
            if rest.len() < id_len {
                return Err(FrameError::malformed(format!(
                    "ATTACH connection_id_len is {id_len} but only {} body bytes follow it",
                    rest.len()
                )));
            }
            let connection_id = std::str::from_utf8(&rest[..id_len])
                .map_err(|_| {
                    FrameError::malformed("ATTACH connection_id is not valid UTF-8".to_owned())
                })?
                .to_owned();
            let after = &rest[id_len..];
            if flags & FLAG_HAS_CHECKPOINT == 0 {
                if flags & FLAG_CHECKPOINT_READ != 0 {
                    return Err(FrameError::malformed(
                        "ATTACH has flag CHECKPOINT_READ (0x04) without HAS_CHECKPOINT (0x01)"
                            .to_owned(),
                    ));
                }
                if !after.is_empty() {
                    return Err(FrameError::malformed(format!(
                        "ATTACH without a checkpoint has {} trailing bytes",
                        after.len()
                    )));
                }
                let attach = Attach {
                    session_id,
                    call_id,
                    next_seq,
                    route_epoch,
                    connection_id,
                    checkpoint: None,
                    resumable: flags & FLAG_RESUMABLE != 0,
                };
                return Ok((Frame::Attach(attach), None));
            }
            let with_read = flags & FLAG_CHECKPOINT_READ != 0;
            let (seq, read, len) = checkpoint_fields("ATTACH", after, with_read)?;
            let attach = Attach {
                session_id,
                call_id,
                next_seq,
                route_epoch,
                connection_id,
                checkpoint: Some(Checkpoint {
                    seq,
                    read,
                    state: Bytes::new(),
                }),
                resumable: flags & FLAG_RESUMABLE != 0,
            };
            Ok((Frame::Attach(attach), Some(ATTACH_FIXED_LEN + id_len + len)))
        }
        FrameType::Checkpoint => {
            let (seq, read, len) = checkpoint_fields("CHECKPOINT", body, flags & FLAG_READ != 0)?;
            let checkpoint = Checkpoint {
                seq,
                read,
                state: Bytes::new(),
            };
            Ok((Frame::Checkpoint(checkpoint), Some(len)))
        }
        FrameType::Suspended => Ok((
            Frame::Suspended {
                next_seq: exact_u64("SUSPENDED", "next_seq", body)?,
            },
            None,
        )),
        FrameType::Ack => Ok((
            Frame::Ack {
                next_seq: exact_u64("ACK", "next_seq", body)?,
            },
            None,
        )),
        FrameType::Call => {
            let ids: [u8; 16] = body.try_into().map_err(|_| {
                FrameError::malformed(format!(
                    "CALL body must be exactly 16 bytes (call_id: u64, next_seq: u64), got {}",
                    body.len()
                ))
            })?;
            let (call_id, next_seq) = ids.split_at(8);
            Ok((
                Frame::Call {
                    call_id: u64::from_be_bytes(call_id.try_into().expect("8 bytes")),
                    next_seq: u64::from_be_bytes(next_seq.try_into().expect("8 bytes")),
                },
                None,
            ))
        }
        FrameType::Superseded => {
            let g: [u8; 4] = body.try_into().map_err(|_| {
                FrameError::malformed(format!(
                    "SUPERSEDED body must be exactly 4 bytes (generation: u32), got {}",
                    body.len()
                ))
            })?;
            Ok((
                Frame::Superseded {
                    generation: u32::from_be_bytes(g),
                },
                None,
            ))
        }
        FrameType::Hello => Ok((
            Frame::Hello {
                credential: Bytes::new(),
            },
            Some(0),
        )),
        FrameType::Welcome => {
            let Some(id) = body.get(..8) else {
                return Err(FrameError::malformed(format!(
                    "WELCOME body is {} bytes, shorter than its session_id field (u64, 8 bytes)",
                    body.len()
                )));
            };
            Ok((
                Frame::Welcome {
                    session_id: u64::from_be_bytes(id.try_into().expect("8 bytes")),
                    credential: Bytes::new(),
                },
                Some(8),
            ))
        }
        FrameType::Move => {
            let reason = std::str::from_utf8(body)
                .map_err(|_| FrameError::malformed("MOVE reason is not valid UTF-8".to_owned()))?
                .to_owned();
            Ok((Frame::Move { reason }, None))
        }
        FrameType::Request => {
            if body.len() < REQUEST_FIXED_LEN {
                return Err(FrameError::malformed(format!(
                    "REQUEST body is {} bytes, shorter than its fixed fields \
                     (deadline_ms: u32 + method_len: u16 = {REQUEST_FIXED_LEN} bytes)",
                    body.len()
                )));
            }
            let deadline_ms = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
            let method_len = u16::from_be_bytes([body[4], body[5]]) as usize;
            if method_len == 0 {
                return Err(FrameError::malformed(
                    "REQUEST method is empty (method_len is 0)".to_owned(),
                ));
            }
            let rest = &body[REQUEST_FIXED_LEN..];
            if rest.len() < method_len {
                return Err(FrameError::malformed(format!(
                    "REQUEST method_len is {method_len} but only {} body bytes follow it",
                    rest.len()
                )));
            }
            let method = std::str::from_utf8(&rest[..method_len])
                .map_err(|_| FrameError::malformed("REQUEST method is not valid UTF-8".to_owned()))?
                .to_owned();
            let mut offset = REQUEST_FIXED_LEN + method_len;
            let mut metadata = Metadata::new();
            if flags & FLAG_METADATA != 0 {
                let Some(len) = body.get(offset..offset + 4) else {
                    return Err(FrameError::malformed(
                        "REQUEST has the metadata flag but no metadata_len (u32) after the method"
                            .to_owned(),
                    ));
                };
                let len = u32::from_be_bytes(len.try_into().expect("4 bytes"));
                if len > max_metadata {
                    return Err(FrameErrorKind::MetadataTooLarge {
                        length: len,
                        max: max_metadata,
                    }
                    .into());
                }
                let start = offset + 4;
                let Some(block) = body.get(start..start + len as usize) else {
                    return Err(FrameError::malformed(format!(
                        "REQUEST metadata_len is {len} but only {} body bytes follow it",
                        body.len() - start
                    )));
                };
                metadata = metadata_block("REQUEST", block)?;
                offset = start + len as usize;
            }
            let client_streaming = flags & FLAG_CLIENT_STREAMING != 0;
            if client_streaming && offset < body.len() {
                return Err(FrameError::malformed(format!(
                    "REQUEST has the client-streaming flag and a {}-byte payload; its requests \
                     come as ITEM frames, so the payload must be empty",
                    body.len() - offset
                )));
            }
            let frame = Frame::Request(Request {
                method,
                deadline_ms,
                streaming: flags & FLAG_STREAMING != 0,
                payload: Bytes::new(),
                metadata,
                client_streaming,
            });
            Ok((frame, Some(offset)))
        }
        FrameType::Response => Ok((
            Frame::Response {
                payload: Bytes::new(),
            },
            Some(0),
        )),
        FrameType::Item => {
            let Some(seq) = body.get(..ITEM_FIXED_LEN) else {
                return Err(FrameError::malformed(format!(
                    "ITEM body is {} bytes, shorter than its seq field (u64, {ITEM_FIXED_LEN} bytes)",
                    body.len()
                )));
            };
            let seq = u64::from_be_bytes(seq.try_into().expect("8 bytes"));
            Ok((
                Frame::Item {
                    seq,
                    payload: Bytes::new(),
                },
                Some(ITEM_FIXED_LEN),
            ))
        }
        FrameType::End => {
            let items: [u8; END_BODY_LEN] = body.try_into().map_err(|_| {
                FrameError::malformed(format!(
                    "END body must be exactly {END_BODY_LEN} bytes (items: u64), got {}",
                    body.len()
                ))
            })?;
            Ok((
                Frame::End {
                    items: u64::from_be_bytes(items),
                },
                None,
            ))
        }
        FrameType::Error => {
            if body.len() < ERROR_FIXED_LEN {
                return Err(FrameError::malformed(format!(
                    "ERROR body is {} bytes, shorter than its code field (u16, {ERROR_FIXED_LEN} bytes)",
                    body.len()
                )));
            }
            let raw = u16::from_be_bytes([body[0], body[1]]);
            // Forward compatibility (PROTOCOL.md section 6): undefined codes read as UNKNOWN.
            let code = ErrorCode::from_u16(raw).unwrap_or(ErrorCode::Unknown);
            let message = std::str::from_utf8(&body[ERROR_FIXED_LEN..])
                .map_err(|_| FrameError::malformed("ERROR message is not valid UTF-8".to_owned()))?
                .to_owned();
            Ok((Frame::Error { code, message }, None))
        }
    }
}

/// The fixed fields of a checkpoint body (ATTACH's after `connection_id`, or CHECKPOINT's):
/// `seq: u64`, then `read: u64` when `with_read` (flag `READ` / `CHECKPOINT_READ`). Returns
/// `(seq, read, bytes used)`; the state is the rest.
fn checkpoint_fields(
    frame: &str,
    body: &[u8],
    with_read: bool,
) -> Result<(u64, u64, usize), FrameError> {
    let need = if with_read { 16 } else { 8 };
    if body.len() < need {
        let fields = if with_read {
            "seq and read (2 x u64)"
        } else {
            "seq (u64)"
        };
        return Err(FrameError::malformed(format!(
            "{frame} checkpoint is {} bytes, shorter than its {fields}",
            body.len()
        )));
    }
    let u64_at = |i: usize| u64::from_be_bytes(body[i..i + 8].try_into().expect("8 bytes"));
    let read = if with_read { u64_at(8) } else { 0 };
    Ok((u64_at(0), read, need))
}

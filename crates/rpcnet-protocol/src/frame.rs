//! The frames of an rpcnet call and their encoding.
//!
//! This module exists to give one typed, allocation-light description of everything that travels
//! on a call's QUIC stream (PROTOCOL.md sections 4 and 5), and the only code that writes it.
//! Decoding (including all validation of untrusted input) lives in [`crate::codec`].
//!
//! Every frame is a 6-byte header (`type: u8`, `flags: u8`, `length: u32` big-endian body length)
//! followed by `length` body bytes. All integers are big-endian and fixed width.
//!
//! Encoding never copies more than it must: [`Frame::encode`] appends to a caller-owned
//! [`BytesMut`], and [`encode_item_header`] / [`encode_response_header`] write just the fixed part
//! so that a large payload [`Bytes`] can be handed to the transport as a separate chunk.

use bytes::{BufMut, Bytes, BytesMut};

use crate::code::ErrorCode;
use crate::metadata::Metadata;

/// The QUIC ALPN protocol identifier of rpcnet version 2, this version (PROTOCOL.md section 2;
/// ALPN is RFC 7301, its use by QUIC is RFC 9001 section 8.1). Version 2 adds metadata
/// (REQUEST flag [`FLAG_METADATA`], HEADERS and TRAILERS) to version 1.
pub const ALPN: &[u8] = b"rpcnet/2";

/// The ALPN identifier of rpcnet version 1, which endpoints still accept (PROTOCOL.md section
/// 2): a peer that offers only it gets exactly version 1 on that connection.
pub const ALPN_V1: &[u8] = b"rpcnet/1";

/// What every endpoint offers and accepts, most preferred first: version 2, then version 1.
pub const ALPNS: [&[u8]; 2] = [ALPN, ALPN_V1];

/// The protocol version a connection negotiated by ALPN (PROTOCOL.md section 2). It decides which
/// frame types and flags a [`crate::Decoder`] accepts: under [`Version::V1`], HEADERS, TRAILERS
/// and REQUEST flag [`FLAG_METADATA`] are unknown (`PROTOCOL`), exactly as in version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Version {
    /// `rpcnet/1`: no metadata.
    V1,
    /// `rpcnet/2`: metadata.
    #[default]
    V2,
}

impl Version {
    /// The version of a negotiated ALPN value; `None` for anything else (or no ALPN).
    #[must_use]
    pub fn from_alpn(alpn: &[u8]) -> Option<Version> {
        match alpn {
            a if a == ALPN => Some(Version::V2),
            a if a == ALPN_V1 => Some(Version::V1),
            _ => None,
        }
    }
}

/// Length in bytes of every frame header: `type: u8`, `flags: u8`, `length: u32` (PROTOCOL.md
/// section 4).
pub const HEADER_LEN: usize = 6;

/// Default upper bound, in bytes, on a frame's body `length` (16 MiB = 16 777 216 bytes; the
/// 6 header bytes are not counted). A receiver rejects a larger frame from its header alone with
/// `RESOURCE_EXHAUSTED` (PROTOCOL.md section 10). Configurable per [`crate::Decoder`].
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16 * 1024 * 1024;

/// Maximum length in bytes of a REQUEST's UTF-8 method name (it is prefixed by a `u16`;
/// PROTOCOL.md section 5.1). The minimum is 1: an empty method is malformed.
pub const MAX_METHOD_LEN: usize = u16::MAX as usize;

/// Flag bit of a REQUEST frame: the client expects a server-streaming response (ITEM* then END),
/// rather than a unary one (RESPONSE) (PROTOCOL.md section 5.1). Every other flag bit of every
/// frame type is reserved and must be zero.
pub const FLAG_STREAMING: u8 = 0x01;

/// Flag bit 1 of a REQUEST frame, version 2 only: a metadata block (the request headers) follows
/// the method (PROTOCOL.md sections 5.1 and 5.6).
pub const FLAG_METADATA: u8 = 0x02;

/// Flag bit 2 of a REQUEST frame, version 2 only: the client streams (a client-streaming call,
/// or with [`FLAG_STREAMING`] a bidirectional one): ITEM frames and an END follow the REQUEST,
/// whose payload is empty (PROTOCOL.md section 3.4).
pub const FLAG_CLIENT_STREAMING: u8 = 0x04;

/// ATTACH flag bit 0: the body carries a checkpoint (`checkpoint_seq` and state). PROTOCOL.md
/// section "Cluster link frames".
pub const FLAG_HAS_CHECKPOINT: u8 = 0x01;

/// ATTACH flag bit 2, only with [`FLAG_HAS_CHECKPOINT`]: `checkpoint_read: u64` follows
/// `checkpoint_seq` (the client items the handler had consumed; PROTOCOL.md section 13.6).
/// Without it the checkpoint's `read` is 0.
pub const FLAG_CHECKPOINT_READ: u8 = 0x04;

/// CHECKPOINT flag bit 0: `read: u64` follows `seq` (the client items the handler had consumed
/// when it saved the state; PROTOCOL.md section 13.6). Without it `read` is 0.
pub const FLAG_READ: u8 = 0x01;

/// ATTACH flag bit 1: the call belongs to a resumable session (PROTOCOL.md section 15). The
/// director keeps its send side open after the REQUEST and forwards the client's ACK frames; the
/// worker keeps every item the client has not acknowledged, and when the stream is lost it keeps
/// the call (frozen, with its state) for a resume instead of cancelling it.
pub const FLAG_RESUMABLE: u8 = 0x02;

/// Fixed part of an ATTACH body: session_id u64, call_id u64, next_seq u64, route_epoch u64,
/// connection_id_len u8.
pub const ATTACH_FIXED_LEN: usize = 8 + 8 + 8 + 8 + 1;

/// Size in bytes of a REQUEST body's fixed part: `deadline_ms: u32` + `method_len: u16`.
pub(crate) const REQUEST_FIXED_LEN: usize = 4 + 2;
/// Size in bytes of the `seq: u64` at the start of an ITEM body.
pub(crate) const ITEM_FIXED_LEN: usize = 8;
/// Exact size in bytes of an END body (`items: u64`).
pub(crate) const END_BODY_LEN: usize = 8;
/// Size in bytes of the `code: u16` at the start of an ERROR body.
pub(crate) const ERROR_FIXED_LEN: usize = 2;

/// The `type` byte of a frame header (PROTOCOL.md section 5). Any other value is an unknown type,
/// which receivers reject with `PROTOCOL` ([`crate::FrameErrorKind::UnknownType`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// `0x01`, client to server: opens a call (method, deadline, payload). PROTOCOL.md 5.1.
    Request = 0x01,
    /// `0x02`, server to client: the result of a successful unary call. PROTOCOL.md 5.2.
    Response = 0x02,
    /// `0x03`, server to client: one item of a server-streaming call. PROTOCOL.md 5.3.
    Item = 0x03,
    /// `0x04`, server to client: a server-streaming call finished successfully. PROTOCOL.md 5.4.
    End = 0x04,
    /// `0x05`, server to client: the call failed. PROTOCOL.md 5.5.
    Error = 0x05,
    /// `0x06`, server to client, version 2: the response headers, before any other frame of the
    /// call. PROTOCOL.md 5.6.
    Headers = 0x06,
    /// `0x07`, server to client, version 2: the response trailers, just before the final frame.
    /// PROTOCOL.md 5.6.
    Trailers = 0x07,
    /// `0x10`, director to worker, cluster link only: which session and call the REQUEST that
    /// follows belongs to, and where to resume it. PROTOCOL.md "Cluster link frames".
    Attach = 0x10,
    /// `0x11`, worker to director, cluster link only: the handler's latest checkpoint.
    Checkpoint = 0x11,
    /// `0x12`, worker to director, cluster link only: the call stopped here for a migration.
    Suspended = 0x12,
    /// `0x13`, client to director and director to worker, resumable sessions only: every item
    /// below `next_seq` was received. PROTOCOL.md section 15.4.
    Ack = 0x13,
    /// `0x14`, client to director, resumable sessions only: names the call (an id the client
    /// chose) and the first item seq it lacks, just before the REQUEST. PROTOCOL.md section 15.3.
    Call = 0x14,
    /// `0x15`, worker to director, cluster link only: the ATTACH's director lost the session to
    /// a resume elsewhere. PROTOCOL.md section 15.6.
    Superseded = 0x15,
    /// `0x20`, client to director: opens (empty credential) or resumes a session, on the first
    /// stream of a connection. PROTOCOL.md section 15.2.
    Hello = 0x20,
    /// `0x21`, director to client: the session id and the resume credential. PROTOCOL.md 15.2.
    Welcome = 0x21,
    /// `0x22`, director to client: reconnect and resume elsewhere (the director is shutting
    /// down). PROTOCOL.md section 15.5.
    Move = 0x22,
}

impl FrameType {
    /// The wire value of this type (the first header byte).
    #[must_use]
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The flag bits defined for this type; any other bit set in a received header is a
    /// `PROTOCOL` error ([`crate::FrameErrorKind::ReservedFlags`], PROTOCOL.md section 4) under
    /// `version`. REQUEST defines [`FLAG_STREAMING`] (and [`FLAG_METADATA`] from version 2),
    /// ATTACH [`FLAG_HAS_CHECKPOINT`] and [`FLAG_RESUMABLE`].
    #[must_use]
    pub const fn allowed_flags(self, version: Version) -> u8 {
        match (self, version) {
            (FrameType::Request, Version::V1) => FLAG_STREAMING,
            (FrameType::Request, Version::V2) => {
                FLAG_STREAMING | FLAG_METADATA | FLAG_CLIENT_STREAMING
            }
            (FrameType::Attach, _) => FLAG_HAS_CHECKPOINT | FLAG_RESUMABLE | FLAG_CHECKPOINT_READ,
            (FrameType::Checkpoint, _) => FLAG_READ,
            _ => 0,
        }
    }

    /// The first protocol version that defines this type.
    #[must_use]
    pub const fn since(self) -> Version {
        match self {
            FrameType::Headers | FrameType::Trailers => Version::V2,
            _ => Version::V1,
        }
    }

    /// The upper-case name used in PROTOCOL.md and in error messages, e.g. `"REQUEST"`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            FrameType::Request => "REQUEST",
            FrameType::Response => "RESPONSE",
            FrameType::Item => "ITEM",
            FrameType::End => "END",
            FrameType::Error => "ERROR",
            FrameType::Headers => "HEADERS",
            FrameType::Trailers => "TRAILERS",
            FrameType::Attach => "ATTACH",
            FrameType::Checkpoint => "CHECKPOINT",
            FrameType::Suspended => "SUSPENDED",
            FrameType::Ack => "ACK",
            FrameType::Call => "CALL",
            FrameType::Superseded => "SUPERSEDED",
            FrameType::Hello => "HELLO",
            FrameType::Welcome => "WELCOME",
            FrameType::Move => "MOVE",
        }
    }
}

/// The body of an ATTACH frame (PROTOCOL.md "Cluster link frames"): `session_id: u64`,
/// `call_id: u64`, `next_seq: u64`, `route_epoch: u64`, `connection_id_len: u8`, `connection_id`
/// (UTF-8), then, when
/// flag [`FLAG_HAS_CHECKPOINT`] is set, `checkpoint_seq: u64` and the checkpoint state (rest).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attach {
    /// The session (client connection) the call belongs to.
    pub session_id: u64,
    /// The call's id within the director, stable across migrations.
    pub call_id: u64,
    /// The first item seq the client has not received yet; the worker sends no item below it.
    pub next_seq: u64,
    /// The epoch of the session's route the director attached under. A worker that captured the
    /// session at epoch `e` answers SUSPENDED to any ATTACH with `route_epoch <= e` (it is stale:
    /// sent before the freeze), and serves a later one (the migration ended without moving the
    /// session, even if its MigrationAbort was lost).
    pub route_epoch: u64,
    /// The client connection's `connectionId` (at most 255 bytes).
    pub connection_id: String,
    /// Where the handler resumes: its last checkpoint; `None` = from the start.
    pub checkpoint: Option<Checkpoint>,
    /// Flag [`FLAG_RESUMABLE`]: ACK frames follow the REQUEST, and the worker keeps the call
    /// for a resume when the stream is lost.
    pub resumable: bool,
}

/// A handler's checkpoint (`ctx.checkpoint`, PROTOCOL.md sections 13.2 and 13.6): the state it
/// saved after producing `seq` items and consuming `read` client items. A handler resumed from
/// it produces from item `seq` on and reads the client's items from `read` on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Items the handler had produced when it saved the state.
    pub seq: u64,
    /// Client items (of a client-streaming or bidi call) the handler had consumed; 0 otherwise.
    pub read: u64,
    /// Opaque handler state.
    pub state: Bytes,
}

/// The contents of a REQUEST frame (PROTOCOL.md section 5.1): the first and only frame a client
/// sends on a call's stream before finishing its send side.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// The method name, UTF-8, 1 to [`MAX_METHOD_LEN`] (65 535) bytes. Encoded after a `u16`
    /// length. Decoders reject an empty or non-UTF-8 method with `PROTOCOL`.
    pub method: String,
    /// The call's deadline in milliseconds, relative to when the server receives the REQUEST;
    /// `0` means no deadline (PROTOCOL.md section 8.2).
    pub deadline_ms: u32,
    /// `true` for a server-streaming call (header flag [`FLAG_STREAMING`]), `false` for unary.
    pub streaming: bool,
    /// The request payload: the rest of the body, opaque to rpcnet, possibly empty.
    pub payload: Bytes,
    /// The request headers (version 2; header flag [`FLAG_METADATA`] when not empty), encoded
    /// after the method as `metadata_len: u32` and a metadata block (PROTOCOL.md section 5.6).
    pub metadata: Metadata,
    /// `true` when the client streams its requests (header flag [`FLAG_CLIENT_STREAMING`],
    /// version 2): ITEM frames and an END follow; the payload is then empty.
    pub client_streaming: bool,
}

/// One frame of an rpcnet call (PROTOCOL.md section 5).
///
/// Decoded frames are zero-copy: their `payload` fields share the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// REQUEST (`0x01`), client to server. See [`Request`].
    Request(Request),
    /// RESPONSE (`0x02`), server to client: the unary result; the body is the payload (possibly
    /// empty). The server then finishes its send side.
    Response {
        /// The response payload, opaque to rpcnet.
        payload: Bytes,
    },
    /// ITEM (`0x03`), server to client: one streamed item. Body: `seq: u64` then the payload.
    Item {
        /// The item's sequence number: 0 for a call's first item, then +1 per item
        /// (PROTOCOL.md section 9).
        seq: u64,
        /// The item payload, opaque to rpcnet, possibly empty.
        payload: Bytes,
    },
    /// END (`0x04`), server to client: a streaming call finished successfully. Body: exactly
    /// `items: u64`. The server then finishes its send side.
    End {
        /// The number of ITEM frames sent on the call (last `seq` + 1, or 0 if none).
        items: u64,
    },
    /// ERROR (`0x05`), server to client: the call failed. Body: `code: u16` then a UTF-8 message.
    /// The server then finishes its send side.
    Error {
        /// The error code. An undefined number on the wire decodes as [`ErrorCode::Unknown`].
        code: ErrorCode,
        /// A human-readable description (UTF-8, possibly empty); not meant to be parsed.
        message: String,
    },
    /// HEADERS (`0x06`), server to client, version 2: the response headers. Body: a metadata
    /// block. At most one per call, before any other frame the server sends (PROTOCOL.md 5.6).
    Headers {
        /// The response headers.
        metadata: Metadata,
    },
    /// TRAILERS (`0x07`), server to client, version 2: the response trailers, just before the
    /// final frame (RESPONSE, END or ERROR). Body: a metadata block (PROTOCOL.md 5.6).
    Trailers {
        /// The response trailers.
        metadata: Metadata,
    },
    /// ATTACH (`0x10`), director to worker on the cluster link, sent just before the REQUEST. See
    /// [`Attach`].
    Attach(Attach),
    /// CHECKPOINT (`0x11`), worker to director on the cluster link: the handler saved a
    /// [`Checkpoint`] (`ctx.checkpoint`). Body: `seq: u64`, with flag [`FLAG_READ`] `read: u64`,
    /// then the state bytes.
    Checkpoint(Checkpoint),
    /// SUSPENDED (`0x12`), worker to director on the cluster link: the worker froze the call for a
    /// migration; it sent items up to `next_seq - 1` and the rest comes from the new owner. Body:
    /// exactly `next_seq: u64`.
    Suspended {
        /// The first seq this worker did not send.
        next_seq: u64,
    },
    /// ACK (`0x13`), resumable sessions: the receiver of a call's items has every item below
    /// `next_seq`, so its sender may forget them. Body: exactly `next_seq: u64`.
    Ack {
        /// The first item seq not received.
        next_seq: u64,
    },
    /// CALL (`0x14`), client to director, resumable sessions: sent just before the REQUEST.
    /// Body: exactly `call_id: u64`, `next_seq: u64`.
    Call {
        /// The call's id, chosen by the client, unique within its session.
        call_id: u64,
        /// 0 for a new call; for a call re-attached after a resume, the first seq it lacks.
        next_seq: u64,
    },
    /// SUPERSEDED (`0x15`), worker to director on the cluster link, in answer to an ATTACH whose
    /// route epoch belongs to an earlier resume generation than the session's here: the session
    /// was resumed through another director (PROTOCOL.md section 15.6), so the ATTACH's director
    /// must give it up rather than retry or fail it over. Body: exactly `generation: u32`.
    Superseded {
        /// The session's resume generation at the worker (the upper half of its fence).
        generation: u32,
    },
    /// HELLO (`0x20`), client to director, first frame of a connection's session stream. Body:
    /// the resume credential (empty to open a new session).
    Hello {
        /// The credential of the session to resume, as received in WELCOME; empty = new session.
        credential: Bytes,
    },
    /// WELCOME (`0x21`), director to client on the session stream. Body: `session_id: u64`
    /// then the resume credential (the rest).
    Welcome {
        /// The session's id (stable across resumes).
        session_id: u64,
        /// The credential to present in the next HELLO (opaque to the client).
        credential: Bytes,
    },
    /// MOVE (`0x22`), director to client on the session stream: reconnect to a director of the
    /// cluster and resume. Body: a UTF-8 reason (possibly empty).
    Move {
        /// Why (for logs), e.g. "director shutting down".
        reason: String,
    },
}

impl Frame {
    /// The header `type` of this frame.
    #[must_use]
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::Request(_) => FrameType::Request,
            Frame::Response { .. } => FrameType::Response,
            Frame::Item { .. } => FrameType::Item,
            Frame::End { .. } => FrameType::End,
            Frame::Error { .. } => FrameType::Error,
            Frame::Headers { .. } => FrameType::Headers,
            Frame::Trailers { .. } => FrameType::Trailers,
            Frame::Attach(_) => FrameType::Attach,
            Frame::Checkpoint(_) => FrameType::Checkpoint,
            Frame::Suspended { .. } => FrameType::Suspended,
            Frame::Ack { .. } => FrameType::Ack,
            Frame::Call { .. } => FrameType::Call,
            Frame::Superseded { .. } => FrameType::Superseded,
            Frame::Hello { .. } => FrameType::Hello,
            Frame::Welcome { .. } => FrameType::Welcome,
            Frame::Move { .. } => FrameType::Move,
        }
    }

    /// The header `flags` of this frame (REQUEST: [`FLAG_STREAMING`], [`FLAG_METADATA`];
    /// ATTACH: [`FLAG_HAS_CHECKPOINT`], [`FLAG_RESUMABLE`]).
    #[must_use]
    pub fn flags(&self) -> u8 {
        match self {
            Frame::Request(r) => {
                let mut f = 0;
                if r.streaming {
                    f |= FLAG_STREAMING;
                }
                if !r.metadata.is_empty() {
                    f |= FLAG_METADATA;
                }
                if r.client_streaming {
                    f |= FLAG_CLIENT_STREAMING;
                }
                f
            }
            Frame::Attach(a) => {
                let mut f = 0;
                if a.checkpoint.is_some() {
                    f |= FLAG_HAS_CHECKPOINT;
                }
                if a.resumable {
                    f |= FLAG_RESUMABLE;
                }
                if a.checkpoint.as_ref().is_some_and(|c| c.read > 0) {
                    f |= FLAG_CHECKPOINT_READ;
                }
                f
            }
            Frame::Checkpoint(c) if c.read > 0 => FLAG_READ,
            _ => 0,
        }
    }

    /// The body length in bytes (the header's `length` field; excludes the 6 header bytes).
    #[must_use]
    pub fn body_len(&self) -> usize {
        match self {
            Frame::Request(r) => {
                let metadata = if r.metadata.is_empty() {
                    0
                } else {
                    4 + r.metadata.encoded_len()
                };
                REQUEST_FIXED_LEN + r.method.len() + metadata + r.payload.len()
            }
            Frame::Headers { metadata } | Frame::Trailers { metadata } => metadata.encoded_len(),
            Frame::Response { payload } => payload.len(),
            Frame::Item { payload, .. } => ITEM_FIXED_LEN + payload.len(),
            Frame::End { .. } => END_BODY_LEN,
            Frame::Error { message, .. } => ERROR_FIXED_LEN + message.len(),
            Frame::Attach(a) => {
                ATTACH_FIXED_LEN
                    + a.connection_id.len()
                    + a.checkpoint.as_ref().map_or(0, checkpoint_len)
            }
            Frame::Checkpoint(c) => checkpoint_len(c),
            Frame::Suspended { .. } | Frame::Ack { .. } => 8,
            Frame::Call { .. } => 16,
            Frame::Superseded { .. } => 4,
            Frame::Hello { credential } => credential.len(),
            Frame::Welcome { credential, .. } => 8 + credential.len(),
            Frame::Move { reason } => reason.len(),
        }
    }

    /// The total encoded size in bytes: [`HEADER_LEN`] + [`Frame::body_len`]. Exactly the number
    /// of bytes [`Frame::encode`] appends.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.body_len()
    }

    /// Appends the frame's wire encoding (PROTOCOL.md sections 4 and 5) to `dst`, reserving the
    /// space first.
    ///
    /// Encoding does not enforce the receiver's maximum frame size (a sender that exceeds it gets
    /// `RESOURCE_EXHAUSTED` back), nor that a REQUEST method is non-empty (an empty method encodes
    /// but every decoder rejects it); callers validate those first.
    ///
    /// # Panics
    ///
    /// If the frame cannot be represented at all: a REQUEST method longer than
    /// [`MAX_METHOD_LEN`] bytes, or a body longer than `u32::MAX` bytes.
    pub fn encode(&self, dst: &mut BytesMut) {
        let body_len = self.body_len();
        dst.reserve(HEADER_LEN + body_len);
        put_header(self.frame_type(), self.flags(), body_len, dst);
        match self {
            Frame::Request(r) => {
                let method_len = u16::try_from(r.method.len()).unwrap_or_else(|_| {
                    panic!(
                        "REQUEST method is {} bytes, more than the maximum of {MAX_METHOD_LEN}",
                        r.method.len()
                    )
                });
                dst.put_u32(r.deadline_ms);
                dst.put_u16(method_len);
                dst.put_slice(r.method.as_bytes());
                if !r.metadata.is_empty() {
                    let len = u32::try_from(r.metadata.encoded_len())
                        .expect("REQUEST metadata block over 4 GiB");
                    dst.put_u32(len);
                    r.metadata.encode(dst);
                }
                dst.put_slice(&r.payload);
            }
            Frame::Response { payload } => dst.put_slice(payload),
            Frame::Headers { metadata } | Frame::Trailers { metadata } => metadata.encode(dst),
            Frame::Item { seq, payload } => {
                dst.put_u64(*seq);
                dst.put_slice(payload);
            }
            Frame::End { items } => dst.put_u64(*items),
            Frame::Attach(a) => {
                assert!(
                    a.connection_id.len() <= u8::MAX as usize,
                    "ATTACH connection_id over 255 bytes"
                );
                dst.put_u64(a.session_id);
                dst.put_u64(a.call_id);
                dst.put_u64(a.next_seq);
                dst.put_u64(a.route_epoch);
                dst.put_u8(a.connection_id.len() as u8);
                dst.put_slice(a.connection_id.as_bytes());
                if let Some(c) = &a.checkpoint {
                    put_checkpoint(dst, c);
                }
            }
            Frame::Checkpoint(c) => put_checkpoint(dst, c),
            Frame::Suspended { next_seq } | Frame::Ack { next_seq } => dst.put_u64(*next_seq),
            Frame::Call { call_id, next_seq } => {
                dst.put_u64(*call_id);
                dst.put_u64(*next_seq);
            }
            Frame::Superseded { generation } => dst.put_u32(*generation),
            Frame::Hello { credential } => dst.put_slice(credential),
            Frame::Welcome {
                session_id,
                credential,
            } => {
                dst.put_u64(*session_id);
                dst.put_slice(credential);
            }
            Frame::Move { reason } => dst.put_slice(reason.as_bytes()),
            Frame::Error { code, message } => {
                dst.put_u16(code.as_u16());
                dst.put_slice(message.as_bytes());
            }
        }
    }

    /// The frame's wire encoding as a new [`Bytes`] of exactly [`Frame::encoded_len`] bytes.
    ///
    /// # Panics
    ///
    /// Same as [`Frame::encode`].
    #[must_use]
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut buf);
        buf.freeze()
    }
}

impl From<Request> for Frame {
    fn from(r: Request) -> Self {
        Frame::Request(r)
    }
}

/// Writes a 6-byte header. Panics if `body_len` does not fit the `u32` length field.
fn put_header(ty: FrameType, flags: u8, body_len: usize, dst: &mut BytesMut) {
    let length = u32::try_from(body_len).unwrap_or_else(|_| {
        panic!(
            "{} body of {body_len} bytes does not fit the u32 length field",
            ty.name()
        )
    });
    dst.put_u8(ty.as_u8());
    dst.put_u8(flags);
    dst.put_u32(length);
}

/// Appends the first 14 bytes of an ITEM frame (PROTOCOL.md section 5.3): the 6-byte header
/// declaring a body of `8 + payload_len` bytes, then `seq: u64`. The caller then sends exactly
/// `payload_len` payload bytes (e.g. a [`Bytes`] handed to the transport without copying); the
/// result is byte-for-byte `Frame::Item { seq, payload }.encode(..)`.
///
/// # Panics
///
/// If `8 + payload_len` exceeds `u32::MAX`.
pub fn encode_item_header(seq: u64, payload_len: usize, dst: &mut BytesMut) {
    let body_len = payload_len
        .checked_add(ITEM_FIXED_LEN)
        .expect("ITEM payload length overflows usize");
    dst.reserve(HEADER_LEN + ITEM_FIXED_LEN);
    put_header(FrameType::Item, 0, body_len, dst);
    dst.put_u64(seq);
}

/// Appends the 6-byte header of a RESPONSE frame (PROTOCOL.md section 5.2) whose body is a
/// payload of `payload_len` bytes, which the caller then sends separately (zero-copy); the result
/// is byte-for-byte `Frame::Response { payload }.encode(..)`.
///
/// # Panics
///
/// If `payload_len` exceeds `u32::MAX`.
pub fn encode_response_header(payload_len: usize, dst: &mut BytesMut) {
    dst.reserve(HEADER_LEN);
    put_header(FrameType::Response, 0, payload_len, dst);
}

/// Body bytes of a checkpoint: `seq`, `read` when it is not 0 (flag [`FLAG_READ`] or
/// [`FLAG_CHECKPOINT_READ`]), the state.
fn checkpoint_len(c: &Checkpoint) -> usize {
    8 + if c.read > 0 { 8 } else { 0 } + c.state.len()
}

fn put_checkpoint(dst: &mut impl BufMut, c: &Checkpoint) {
    dst.put_u64(c.seq);
    if c.read > 0 {
        dst.put_u64(c.read);
    }
    dst.put_slice(&c.state);
}

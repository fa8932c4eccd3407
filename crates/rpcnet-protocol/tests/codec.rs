//! Conformance tests of the wire codec against PROTOCOL.md.
//!
//! The test vectors are read from PROTOCOL.md itself (section 12), so the document and the code
//! cannot drift apart silently. The other tests cover what vectors cannot: incremental input,
//! several frames per buffer, limits, zero-copy payloads and error reporting.

use bytes::{Bytes, BytesMut};
use rpcnet_protocol::codec::peek_header;
use rpcnet_protocol::frame::{encode_item_header, encode_response_header, MAX_METHOD_LEN};
use rpcnet_protocol::{
    Decoder, ErrorCode, Frame, FrameErrorKind, FrameType, Metadata, Request, Version, ALPN,
    ALPN_V1, DEFAULT_MAX_FRAME_SIZE, HEADER_LEN,
};

const PROTOCOL_MD: &str = include_str!("../../../PROTOCOL.md");

/// The non-empty lines of the fenced code block tagged `tag` (exactly one such block must exist).
fn fenced_block(tag: &str) -> Vec<&'static str> {
    let opening = format!("```{tag}");
    let mut blocks = Vec::new();
    let mut lines = PROTOCOL_MD.lines();
    while let Some(line) = lines.next() {
        if line.trim_end() == opening {
            let mut body = Vec::new();
            let mut closed = false;
            for l in lines.by_ref() {
                if l.trim_end() == "```" {
                    closed = true;
                    break;
                }
                if !l.trim().is_empty() {
                    body.push(l.trim());
                }
            }
            assert!(closed, "```{tag} block in PROTOCOL.md is not closed");
            blocks.push(body);
        }
    }
    assert_eq!(
        blocks.len(),
        1,
        "PROTOCOL.md must contain exactly one ```{tag} block"
    );
    let block = blocks.pop().unwrap();
    assert!(!block.is_empty(), "```{tag} block in PROTOCOL.md is empty");
    block
}

fn cp(seq: u64, read: u64, state: &'static [u8]) -> rpcnet_protocol::Checkpoint {
    rpcnet_protocol::Checkpoint {
        seq,
        read,
        state: Bytes::from_static(state),
    }
}

fn unhex(name: &str, hex: &str) -> Vec<u8> {
    assert_eq!(
        hex,
        hex.to_lowercase(),
        "vector {name}: hex must be lowercase"
    );
    hex::decode(hex).unwrap_or_else(|e| panic!("vector {name}: bad hex: {e}"))
}

fn request(method: &str, deadline_ms: u32, streaming: bool, payload: &'static [u8]) -> Frame {
    Frame::Request(Request {
        method: method.to_owned(),
        deadline_ms,
        streaming,
        payload: Bytes::from_static(payload),
        metadata: Metadata::new(),
        client_streaming: false,
    })
}

fn metadata(entries: &[(&str, &'static [u8])]) -> Metadata {
    let mut m = Metadata::new();
    for (k, v) in entries {
        m.append(k, Bytes::from_static(v)).unwrap();
    }
    m
}

/// The frame each valid vector of PROTOCOL.md section 12 must decode to.
fn expected_frame(name: &str) -> Frame {
    match name {
        "request_unary_echo" => request("echo", 1000, false, b"hi"),
        "request_streaming_count" => request("count", 0, true, b""),
        "request_unicode_method" => request("svc/héllo", 60_000, false, &[0x00, 0xff]),
        "response_hi" => Frame::Response {
            payload: Bytes::from_static(b"hi"),
        },
        "response_empty" => Frame::Response {
            payload: Bytes::new(),
        },
        "item_seq0_a" => Frame::Item {
            seq: 0,
            payload: Bytes::from_static(b"a"),
        },
        "item_seq258_empty" => Frame::Item {
            seq: 258,
            payload: Bytes::new(),
        },
        "end_items3" => Frame::End { items: 3 },
        "attach_fresh" => Frame::Attach(rpcnet_protocol::Attach {
            session_id: 1,
            call_id: 2,
            next_seq: 0,
            route_epoch: 3,
            connection_id: "ab".into(),
            checkpoint: None,
            resumable: false,
        }),
        "attach_resume" => Frame::Attach(rpcnet_protocol::Attach {
            session_id: 1,
            call_id: 2,
            next_seq: 40,
            route_epoch: 7,
            connection_id: "c8f6".into(),
            checkpoint: Some(cp(38, 0, b"s")),
            resumable: false,
        }),
        "attach_checkpoint_read" => Frame::Attach(rpcnet_protocol::Attach {
            session_id: 1,
            call_id: 2,
            next_seq: 40,
            route_epoch: 7,
            connection_id: "c8f6".into(),
            checkpoint: Some(cp(38, 12, b"s")),
            resumable: false,
        }),
        "checkpoint_seq5" => Frame::Checkpoint(cp(5, 0, b"st")),
        "checkpoint_read" => Frame::Checkpoint(cp(5, 3, b"st")),
        "suspended_57" => Frame::Suspended { next_seq: 57 },
        "attach_resumable" => Frame::Attach(rpcnet_protocol::Attach {
            session_id: 1,
            call_id: 2,
            next_seq: 5,
            route_epoch: (1 << 32) + 1,
            connection_id: "ab".into(),
            checkpoint: None,
            resumable: true,
        }),
        "ack_7" => Frame::Ack { next_seq: 7 },
        "call_3_next9" => Frame::Call {
            call_id: 3,
            next_seq: 9,
        },
        "superseded_2" => Frame::Superseded { generation: 2 },
        "hello_new" => Frame::Hello {
            credential: Bytes::new(),
        },
        "hello_resume" => Frame::Hello {
            credential: Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef]),
        },
        "welcome_1" => Frame::Welcome {
            session_id: 1,
            credential: Bytes::from_static(&[0xca, 0xfe]),
        },
        "move_upgrade" => Frame::Move {
            reason: "upgrade".into(),
        },
        "end_items0" => Frame::End { items: 0 },
        "request_metadata_auth" => Frame::Request(Request {
            method: "echo".into(),
            deadline_ms: 0,
            streaming: false,
            payload: Bytes::from_static(b"hi"),
            metadata: metadata(&[("authorization", b"t")]),
            client_streaming: false,
        }),
        "request_client_streaming_sum" => Frame::Request(Request {
            method: "sum".into(),
            client_streaming: true,
            ..Request::default()
        }),
        "request_bidi_chat" => Frame::Request(Request {
            method: "chat".into(),
            streaming: true,
            client_streaming: true,
            ..Request::default()
        }),
        "headers_bin" => Frame::Headers {
            metadata: metadata(&[("trace-bin", &[0x00, 0xff])]),
        },
        "trailers_empty" => Frame::Trailers {
            metadata: Metadata::new(),
        },
        "error_not_found" => Frame::Error {
            code: ErrorCode::NotFound,
            message: "no such method: foo".to_owned(),
        },
        "error_protocol_empty_message" => Frame::Error {
            code: ErrorCode::Protocol,
            message: String::new(),
        },
        other => panic!("PROTOCOL.md has a vector `{other}` that this test does not know"),
    }
}

/// Decodes everything in `bytes` (then end of stream) and returns the frames.
fn decode_all(decoder: &mut Decoder, bytes: &[u8]) -> Vec<Frame> {
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(f) = decoder.decode_eof(&mut buf).expect("valid input") {
        frames.push(f);
    }
    assert!(buf.is_empty());
    frames
}

/// One frame of every type, including empty and large payloads.
fn sample_frames() -> Vec<Frame> {
    let large: Bytes = (0..1_000_003u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    vec![
        request("echo", 1000, false, b"hi"),
        request("x", 0, true, b""),
        Frame::Request(Request {
            method: "m".repeat(MAX_METHOD_LEN),
            deadline_ms: u32::MAX,
            streaming: true,
            payload: large.clone(),
            metadata: Metadata::new(),
            client_streaming: false,
        }),
        Frame::Request(Request {
            method: "m".into(),
            deadline_ms: 5,
            streaming: true,
            payload: large.clone(),
            metadata: metadata(&[("a", b"1"), ("a", b"2"), ("x-bin", &[0, 1, 2])]),
            client_streaming: false,
        }),
        Frame::Headers {
            metadata: metadata(&[("content-type", b"application/json")]),
        },
        Frame::Trailers {
            metadata: Metadata::new(),
        },
        Frame::Response {
            payload: Bytes::new(),
        },
        Frame::Response {
            payload: large.clone(),
        },
        Frame::Item {
            seq: 0,
            payload: Bytes::new(),
        },
        Frame::Item {
            seq: u64::MAX,
            payload: large.clone(),
        },
        Frame::Item {
            seq: 1,
            payload: Bytes::from_static(b"\x00\x01\x02"),
        },
        Frame::End { items: 0 },
        Frame::End { items: u64::MAX },
        Frame::Error {
            code: ErrorCode::Internal,
            message: String::new(),
        },
        Frame::Error {
            code: ErrorCode::Unavailable,
            message: "ünïcödé ✓".repeat(1000),
        },
    ]
}

#[test]
fn valid_vectors_decode_and_encode_exactly() {
    let lines = fenced_block("vectors");
    let mut seen = Vec::new();
    for line in lines {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(hex), None) = (parts.next(), parts.next(), parts.next()) else {
            panic!("bad vectors line (want `name hex`): {line:?}");
        };
        assert!(!seen.contains(&name), "duplicate vector name {name}");
        seen.push(name);
        let bytes = unhex(name, hex);
        let expected = expected_frame(name);

        let mut buf = BytesMut::from(&bytes[..]);
        let decoded = Decoder::default().decode(&mut buf);
        assert_eq!(decoded, Ok(Some(expected.clone())), "vector {name}: decode");
        assert!(
            buf.is_empty(),
            "vector {name}: decode must consume the whole frame"
        );

        assert_eq!(
            hex::encode(expected.to_bytes()),
            hex,
            "vector {name}: encode"
        );
        assert_eq!(
            expected.encoded_len(),
            bytes.len(),
            "vector {name}: encoded_len"
        );
        assert_eq!(
            expected.frame_type().as_u8(),
            bytes[0],
            "vector {name}: type byte"
        );
    }
    for required in [
        "request_unary_echo",
        "request_streaming_count",
        "response_hi",
        "item_seq0_a",
        "item_seq258_empty",
        "end_items3",
        "error_not_found",
    ] {
        assert!(
            seen.contains(&required),
            "PROTOCOL.md lacks the required vector {required}"
        );
    }
}

#[test]
fn invalid_vectors_are_rejected_with_expected_code() {
    let lines = fenced_block("invalid-vectors");
    let mut seen = Vec::new();
    for line in lines {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(code), Some(hex), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            panic!("bad invalid-vectors line (want `name expected_code hex`): {line:?}");
        };
        seen.push(name);
        let expected_code = ErrorCode::from_name(code)
            .unwrap_or_else(|| panic!("vector {name}: unknown error code name {code}"));
        let bytes = unhex(name, hex);
        let mut buf = BytesMut::from(&bytes[..]);
        let mut decoder = Decoder::default();

        let err = if name.starts_with("truncated") {
            // Not an error until the stream ends, and nothing may be consumed meanwhile.
            assert_eq!(decoder.decode(&mut buf), Ok(None), "vector {name}: decode");
            assert_eq!(&buf[..], &bytes[..], "vector {name}: src must be untouched");
            let err = decoder.decode_eof(&mut buf).expect_err(name);
            assert!(
                matches!(err.kind(), FrameErrorKind::Truncated { have, .. } if *have == bytes.len()),
                "vector {name}: {err:?}"
            );
            err
        } else {
            let err = decoder.decode(&mut buf).expect_err(name);
            // decode_eof agrees with decode.
            assert_eq!(
                decoder.decode_eof(&mut buf),
                Err(err.clone()),
                "vector {name}: eof"
            );
            err
        };
        assert_eq!(err.code(), expected_code, "vector {name}: {err}");
        assert_eq!(
            &buf[..],
            &bytes[..],
            "vector {name}: src must be untouched on error"
        );
    }
    for required in [
        "unknown_type_0x7f",
        "response_reserved_flag",
        "truncated_header",
        "truncated_body",
        "end_body_4_bytes",
        "request_empty_method",
        "length_over_max",
        // Section 11 "Order of checks": type, then flags, then length, then direction.
        "item_over_max",
        "unknown_type_over_max",
        "item_reserved_flag_over_max",
    ] {
        assert!(
            seen.contains(&required),
            "PROTOCOL.md lacks the invalid vector {required}"
        );
    }
}

#[test]
fn length_over_max_is_rejected_from_header_alone() {
    let mut header = BytesMut::new();
    header.extend_from_slice(&[0x02, 0x00]);
    header.extend_from_slice(&(DEFAULT_MAX_FRAME_SIZE + 1).to_be_bytes());
    let err = Decoder::default().decode(&mut header).unwrap_err();
    assert_eq!(
        err.kind(),
        &FrameErrorKind::TooLarge {
            length: 16 * 1024 * 1024 + 1,
            max: 16 * 1024 * 1024
        }
    );
    assert_eq!(err.code(), ErrorCode::ResourceExhausted);
    assert_eq!(
        err.to_string(),
        "frame body of 16777217 bytes exceeds the maximum frame size of 16777216 bytes"
    );
}

#[test]
fn round_trip_every_frame_type() {
    let frames = sample_frames();
    let mut types: Vec<FrameType> = frames.iter().map(Frame::frame_type).collect();
    types.dedup();
    assert_eq!(
        types,
        [
            FrameType::Request,
            FrameType::Headers,
            FrameType::Trailers,
            FrameType::Response,
            FrameType::Item,
            FrameType::End,
            FrameType::Error
        ]
    );
    for frame in frames {
        let bytes = frame.to_bytes();
        assert_eq!(bytes.len(), frame.encoded_len());
        let (ty, flags, len) = peek_header(&bytes).unwrap();
        assert_eq!(ty, frame.frame_type().as_u8());
        assert_eq!(flags, frame.flags());
        assert_eq!(len as usize, bytes.len() - HEADER_LEN);
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(Decoder::default().decode(&mut buf), Ok(Some(frame.clone())));
        assert!(buf.is_empty());
    }
}

#[test]
fn body_of_exactly_max_frame_size_is_accepted() {
    let payload = Bytes::from(vec![0xabu8; DEFAULT_MAX_FRAME_SIZE as usize]);
    let frame = Frame::Response { payload };
    let mut buf = BytesMut::new();
    frame.encode(&mut buf);
    assert_eq!(buf.len(), HEADER_LEN + DEFAULT_MAX_FRAME_SIZE as usize);
    assert_eq!(Decoder::default().decode(&mut buf), Ok(Some(frame)));
}

#[test]
fn byte_by_byte_decoding_yields_the_same_frames() {
    let frames: Vec<Frame> = sample_frames()
        .into_iter()
        .filter(|f| f.encoded_len() < 50_000)
        .collect();
    assert!(frames.len() >= 8);
    let mut all = BytesMut::new();
    for f in &frames {
        f.encode(&mut all);
    }
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut frame_starts = Vec::new();
    for (i, byte) in all.iter().enumerate() {
        buf.extend_from_slice(&[*byte]);
        while let Some(f) = decoder.decode(&mut buf).unwrap() {
            frame_starts.push(i);
            out.push(f);
        }
    }
    assert_eq!(out, frames);
    assert!(buf.is_empty());
    // Each frame was produced exactly when its last byte arrived.
    let mut end = 0;
    for (f, at) in frames.iter().zip(&frame_starts) {
        end += f.encoded_len();
        assert_eq!(*at, end - 1);
    }
    assert_eq!(decoder.decode_eof(&mut buf), Ok(None));
}

#[test]
fn several_frames_in_one_buffer() {
    let frames = vec![
        Frame::Item {
            seq: 0,
            payload: Bytes::from_static(b"one"),
        },
        Frame::Item {
            seq: 1,
            payload: Bytes::new(),
        },
        Frame::Item {
            seq: 2,
            payload: Bytes::from_static(b"three"),
        },
        Frame::End { items: 3 },
    ];
    let mut buf = BytesMut::new();
    for f in &frames {
        f.encode(&mut buf);
    }
    // A partial next frame after the complete ones.
    let next = Frame::Error {
        code: ErrorCode::Cancelled,
        message: "late".into(),
    }
    .to_bytes();
    buf.extend_from_slice(&next[..5]);

    let mut decoder = Decoder::default();
    for f in &frames {
        assert_eq!(decoder.decode(&mut buf).unwrap().as_ref(), Some(f));
    }
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert_eq!(&buf[..], &next[..5]);
    let err = decoder.decode_eof(&mut buf).unwrap_err();
    assert_eq!(
        err.kind(),
        &FrameErrorKind::Truncated {
            have: 5,
            need: HEADER_LEN
        }
    );
    assert_eq!(err.code(), ErrorCode::Protocol);
    assert_eq!(
        err.to_string(),
        "stream ended inside a frame: 5 of 6 header bytes"
    );

    buf.extend_from_slice(&next[5..]);
    assert_eq!(
        decode_all(&mut decoder, &buf),
        vec![Frame::Error {
            code: ErrorCode::Cancelled,
            message: "late".into()
        }]
    );
}

#[test]
fn custom_max_frame_size() {
    let mut decoder = Decoder::new(10);
    assert_eq!(decoder.max_frame_size(), 10);
    assert_eq!(Decoder::default().max_frame_size(), DEFAULT_MAX_FRAME_SIZE);

    let ok = Frame::Response {
        payload: Bytes::from_static(b"0123456789"),
    };
    assert_eq!(decode_all(&mut decoder, &ok.to_bytes()), vec![ok]);

    let too_big = Frame::Item {
        seq: 1,
        payload: Bytes::from_static(b"abc"),
    }
    .to_bytes();
    // Rejected from the header alone, even with only the header buffered.
    let mut buf = BytesMut::from(&too_big[..HEADER_LEN]);
    let err = decoder.decode(&mut buf).unwrap_err();
    assert_eq!(
        err.kind(),
        &FrameErrorKind::TooLarge {
            length: 11,
            max: 10
        }
    );
    assert_eq!(err.code(), ErrorCode::ResourceExhausted);
    assert_eq!(buf.len(), HEADER_LEN);

    let mut zero = Decoder::new(0);
    assert_eq!(
        decode_all(
            &mut zero,
            &Frame::Response {
                payload: Bytes::new()
            }
            .to_bytes()
        )
        .len(),
        1
    );
    let mut buf = BytesMut::from(&Frame::End { items: 0 }.to_bytes()[..]);
    assert_eq!(
        zero.decode(&mut buf).unwrap_err().code(),
        ErrorCode::ResourceExhausted
    );
}

#[test]
fn partial_input_returns_none_without_consuming() {
    let frame = request("echo", 1000, false, b"hi");
    let bytes = frame.to_bytes();
    let mut decoder = Decoder::default();
    for cut in 0..bytes.len() {
        let mut buf = BytesMut::from(&bytes[..cut]);
        assert_eq!(decoder.decode(&mut buf), Ok(None), "cut at {cut}");
        assert_eq!(
            &buf[..],
            &bytes[..cut],
            "cut at {cut}: src must be untouched"
        );
        if cut > 0 {
            let err = decoder.decode_eof(&mut buf).unwrap_err();
            let need = if cut < HEADER_LEN {
                HEADER_LEN
            } else {
                bytes.len()
            };
            assert_eq!(err.kind(), &FrameErrorKind::Truncated { have: cut, need });
            assert_eq!(err.code(), ErrorCode::Protocol);
        } else {
            assert_eq!(decoder.decode_eof(&mut buf), Ok(None));
        }
    }
    let mut buf = BytesMut::from(&bytes[..]);
    assert_eq!(decoder.decode_eof(&mut buf), Ok(Some(frame)));
    assert!(buf.is_empty());
}

#[test]
fn truncated_body_message_counts_frame_bytes() {
    let bytes = Frame::Response {
        payload: Bytes::from_static(b"hello"),
    }
    .to_bytes();
    let mut buf = BytesMut::from(&bytes[..8]);
    let err = Decoder::default().decode_eof(&mut buf).unwrap_err();
    assert_eq!(
        err.to_string(),
        "stream ended inside a frame: 8 of 11 frame bytes"
    );
}

#[test]
fn peek_header_reads_without_consuming() {
    assert_eq!(peek_header(&[]), None);
    assert_eq!(peek_header(&[0x01, 0x01, 0x00, 0x00, 0x01]), None);
    assert_eq!(
        peek_header(&[0x03, 0x00, 0x00, 0x00, 0x01, 0x02]),
        Some((0x03, 0x00, 0x0102))
    );
    // Unvalidated: unknown types and reserved flags are reported as-is; trailing bytes ignored.
    assert_eq!(
        peek_header(&[0x7f, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xaa, 0xbb]),
        Some((0x7f, 0xff, 0xffff_fffe))
    );
    let frame = request("count", 0, true, b"");
    let bytes = frame.to_bytes();
    assert_eq!(peek_header(&bytes), Some((0x01, 0x01, 11)));
}

#[test]
fn decoded_payloads_are_zero_copy() {
    let mut buf = BytesMut::new();
    Frame::Item {
        seq: 9,
        payload: Bytes::from(vec![7u8; 4096]),
    }
    .encode(&mut buf);
    let start = buf.as_ptr() as usize;
    let Some(Frame::Item { seq: 9, payload }) = Decoder::default().decode(&mut buf).unwrap() else {
        panic!("expected ITEM 9");
    };
    assert_eq!(payload.len(), 4096);
    // The payload points into the original receive buffer, just after header + seq.
    assert_eq!(payload.as_ptr() as usize, start + HEADER_LEN + 8);
}

#[test]
fn raw_decoding_returns_each_frame_s_own_encoding_zero_copy() {
    let frames = [
        Frame::Item {
            seq: 9,
            payload: Bytes::from(vec![7u8; 300]),
        },
        Frame::Checkpoint(cp(10, 4, b"s")),
        Frame::End { items: 10 },
    ];
    let mut buf = BytesMut::new();
    for f in &frames {
        f.encode(&mut buf);
    }
    let start = buf.as_ptr() as usize;
    let mut decoder = Decoder::default();
    let mut offset = 0;
    for (i, f) in frames.iter().enumerate() {
        let decoded = if i + 1 == frames.len() {
            decoder.decode_eof_raw(&mut buf)
        } else {
            decoder.decode_raw(&mut buf)
        };
        let (frame, raw) = decoded.unwrap().expect("a whole frame");
        assert_eq!(&frame, f);
        assert_eq!(raw, f.to_bytes(), "the frame's own bytes");
        assert_eq!(raw.as_ptr() as usize, start + offset, "not copied");
        offset += raw.len();
    }
    assert!(decoder.decode_eof_raw(&mut buf).unwrap().is_none());
}

#[test]
fn split_headers_match_full_encoding() {
    let payload = Bytes::from_static(b"payload bytes");
    let mut split = BytesMut::new();
    encode_item_header(258, payload.len(), &mut split);
    assert_eq!(split.len(), HEADER_LEN + 8);
    split.extend_from_slice(&payload);
    assert_eq!(
        split.freeze(),
        Frame::Item {
            seq: 258,
            payload: payload.clone()
        }
        .to_bytes()
    );

    let mut split = BytesMut::new();
    encode_response_header(payload.len(), &mut split);
    assert_eq!(split.len(), HEADER_LEN);
    split.extend_from_slice(&payload);
    assert_eq!(split.freeze(), Frame::Response { payload }.to_bytes());
}

#[test]
fn encode_appends_to_existing_buffer() {
    let mut buf = BytesMut::from(&b"prefix"[..]);
    let frame = Frame::End { items: 3 };
    frame.encode(&mut buf);
    assert_eq!(&buf[..6], b"prefix");
    assert_eq!(hex::encode(&buf[6..]), "0400000000080000000000000003");
}

#[test]
fn unknown_error_code_decodes_as_unknown() {
    // The decode-only example of PROTOCOL.md section 12: code 999, message "oo".
    let hex = "05000000000403e76f6f";
    assert!(
        PROTOCOL_MD.contains(hex),
        "PROTOCOL.md no longer shows the unknown-code example"
    );
    let mut buf = BytesMut::from(&hex::decode(hex).unwrap()[..]);
    assert_eq!(
        Decoder::default().decode(&mut buf),
        Ok(Some(Frame::Error {
            code: ErrorCode::Unknown,
            message: "oo".into()
        }))
    );
    // Every defined code survives a round trip.
    for code in ErrorCode::ALL {
        let f = Frame::Error {
            code,
            message: code.to_string(),
        };
        assert_eq!(decode_all(&mut Decoder::default(), &f.to_bytes()), vec![f]);
    }
}

#[test]
fn error_messages_name_the_problem() {
    let cases: &[(&str, &str)] = &[
        ("7f0000000000", "unknown frame type 0x7f"),
        (
            "0201000000026869",
            "reserved flag bits set on frame type 0x02: flags 0x01",
        ),
        (
            "010000000008000000000002c328",
            "REQUEST method is not valid UTF-8",
        ),
        (
            "0100000000080000000000006869",
            "REQUEST method is empty (method_len is 0)",
        ),
        (
            "04000000000400000003",
            "END body must be exactly 8 bytes (items: u64), got 4",
        ),
        ("050000000003000dff", "ERROR message is not valid UTF-8"),
    ];
    for (hex, message) in cases {
        let mut buf = BytesMut::from(&hex::decode(hex).unwrap()[..]);
        let err = Decoder::default().decode(&mut buf).unwrap_err();
        assert_eq!(err.to_string(), *message, "{hex}");
        assert_eq!(err.code(), ErrorCode::Protocol);
    }
    for (hex, field) in [
        ("010000000003000000", "fixed fields"),
        ("01000000000a00000000000a6563686f", "method_len is 10"),
        ("03000000000400000000", "seq"),
        ("05000000000100", "code"),
    ] {
        let mut buf = BytesMut::from(&hex::decode(hex).unwrap()[..]);
        let err = Decoder::default().decode(&mut buf).unwrap_err();
        assert!(
            matches!(err.kind(), FrameErrorKind::Malformed(m) if m.contains(field)),
            "{err}"
        );
    }
}

#[test]
fn frame_type_byte_mapping() {
    let mut defined = Vec::new();
    for b in 0..=u8::MAX {
        match FrameType::try_from(b) {
            Ok(t) => {
                assert_eq!(t.as_u8(), b);
                defined.push(b);
            }
            Err(e) => {
                assert_eq!(e.kind(), &FrameErrorKind::UnknownType(b));
                assert_eq!(e.code(), ErrorCode::Protocol);
            }
        }
    }
    assert_eq!(
        defined,
        [
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x20,
            0x21, 0x22
        ]
    );
    assert_eq!(FrameType::Request.allowed_flags(Version::V1), 0x01);
    assert_eq!(FrameType::Request.allowed_flags(Version::V2), 0x07);
    for t in [
        FrameType::Response,
        FrameType::Item,
        FrameType::End,
        FrameType::Error,
        FrameType::Headers,
        FrameType::Trailers,
    ] {
        assert_eq!(t.allowed_flags(Version::V2), 0);
    }
}

/// PROTOCOL.md section 2: on a connection that negotiated `rpcnet/1`, version 2's frames and
/// flags are what they were in version 1: an unknown type and a reserved flag.
#[test]
fn a_version_1_decoder_refuses_version_2_frames() {
    let mut v1 = Decoder::default().with_version(Version::V1);
    for frame in [
        Frame::Headers {
            metadata: metadata(&[("k", b"v")]),
        },
        Frame::Trailers {
            metadata: Metadata::new(),
        },
    ] {
        let ty = frame.frame_type().as_u8();
        let err = v1
            .decode(&mut BytesMut::from(&frame.to_bytes()[..]))
            .unwrap_err();
        assert_eq!(err.kind(), &FrameErrorKind::UnknownType(ty));
    }
    let with_metadata = Frame::Request(Request {
        method: "m".into(),
        metadata: metadata(&[("k", b"v")]),
        client_streaming: false,
        ..Request::default()
    });
    let err = v1
        .decode(&mut BytesMut::from(&with_metadata.to_bytes()[..]))
        .unwrap_err();
    assert_eq!(
        err.kind(),
        &FrameErrorKind::ReservedFlags {
            frame_type: 0x01,
            flags: 0x02
        }
    );
    let plain = request("m", 0, true, b"x").to_bytes();
    assert!(v1
        .decode(&mut BytesMut::from(&plain[..]))
        .unwrap()
        .is_some());
}

/// PROTOCOL.md section 5.6: the metadata limit is enforced while decoding: HEADERS from its
/// header alone, a REQUEST's block from its `metadata_len`.
#[test]
fn metadata_over_the_limit_is_resource_exhausted() {
    let big = metadata(&[("k", &[b'v'; 100])]);
    let mut d = Decoder::default().with_max_metadata_size(50);
    let headers = Frame::Headers {
        metadata: big.clone(),
    }
    .to_bytes();
    let err = d.decode(&mut BytesMut::from(&headers[..6])).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ResourceExhausted);
    let req = Frame::Request(Request {
        method: "m".into(),
        metadata: big,
        client_streaming: false,
        ..Request::default()
    })
    .to_bytes();
    let err = d.decode(&mut BytesMut::from(&req[..])).unwrap_err();
    assert_eq!(
        err.kind(),
        &FrameErrorKind::MetadataTooLarge {
            length: 104,
            max: 50
        }
    );
}

#[test]
fn streaming_flag_and_reserved_request_flags() {
    let unary = request("m", 0, false, b"").to_bytes();
    let streaming = request("m", 0, true, b"").to_bytes();
    assert_eq!((unary[1], streaming[1]), (0x00, 0x01));
    for flags in (0x08..=0xffu8).filter(|f| f & !0x07 != 0) {
        let mut bytes = BytesMut::from(&streaming[..]);
        bytes[1] = flags;
        let err = Decoder::default().decode(&mut bytes).unwrap_err();
        assert_eq!(
            err.kind(),
            &FrameErrorKind::ReservedFlags {
                frame_type: 0x01,
                flags
            }
        );
    }
}

#[test]
fn alpn_and_constants() {
    assert_eq!(ALPN, b"rpcnet/2");
    assert_eq!(ALPN_V1, b"rpcnet/1");
    assert!(PROTOCOL_MD.contains("`rpcnet/2`"));
    assert_eq!(HEADER_LEN, 6);
    assert_eq!(DEFAULT_MAX_FRAME_SIZE, 16_777_216);
    assert!(PROTOCOL_MD.contains("`rpcnet/1`"));
}

#[test]
#[should_panic(expected = "REQUEST method is 65536 bytes")]
fn encoding_an_overlong_method_panics() {
    let _ = request(&"m".repeat(MAX_METHOD_LEN + 1), 0, false, b"").to_bytes();
}

#[test]
fn cluster_link_frames_round_trip_and_reject_malformed_bodies() {
    use rpcnet_protocol::Attach;
    let frames = [
        Frame::Attach(Attach {
            session_id: 7,
            call_id: 9,
            next_seq: 42,
            route_epoch: 5,
            connection_id: "00ff00ff00ff00ff".into(),
            checkpoint: None,
            resumable: false,
        }),
        Frame::Attach(Attach {
            session_id: u64::MAX,
            call_id: 1,
            next_seq: 0,
            route_epoch: u64::MAX,
            connection_id: String::new(),
            checkpoint: Some(cp(40, 7, b"state-at-40")),
            resumable: false,
        }),
        Frame::Attach(Attach {
            session_id: 1,
            call_id: 2,
            next_seq: 3,
            route_epoch: 0,
            connection_id: "c".into(),
            checkpoint: Some(cp(0, 0, b"")),
            resumable: false,
        }),
        Frame::Checkpoint(cp(5, 0, b"s")),
        Frame::Checkpoint(cp(0, 0, b"")),
        Frame::Checkpoint(cp(0, 9, b"")),
        Frame::Suspended { next_seq: 1234 },
    ];
    let mut buf = BytesMut::new();
    for f in &frames {
        f.encode(&mut buf);
    }
    let mut decoder = Decoder::default();
    for f in &frames {
        assert_eq!(decoder.decode(&mut buf).unwrap().as_ref(), Some(f));
    }
    assert!(buf.is_empty());

    let reject = |bytes: &[u8], needle: &str| {
        let e = Decoder::default()
            .decode(&mut BytesMut::from(bytes))
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::Protocol);
        assert!(e.to_string().contains(needle), "{e}");
    };
    reject(&[0x12, 0, 0, 0, 0, 4, 0, 0, 0, 1], "SUSPENDED");
    reject(&[0x11, 0, 0, 0, 0, 3, 0, 0, 0], "CHECKPOINT");
    reject(&[0x10, 0, 0, 0, 0, 3, 0, 0, 0], "ATTACH");
    // Flag READ promises a read field: 8 bytes are not enough.
    reject(&[0x11, 0x01, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0], "read");
    reject(&[0x11, 0x02, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0], "flag");
    // connection_id_len larger than what follows.
    let mut attach = vec![0x10, 0, 0, 0, 0, 33];
    attach.extend_from_slice(&[0u8; 32]);
    attach.push(9);
    reject(&attach, "connection_id_len");
}

//! Unit tests of the snapshot format across its stages: layouts, round trips through the staged
//! and the fused pipelines, and the errors of each check.

use bytes::Bytes;
use ring::{aead, digest, hkdf};

use super::encoding::encode_body_into;
use super::frame::finish_header;
use super::*;

const SECRET: &[u8] = b"cluster secret for unit tests...";

fn sample() -> SessionSnapshot {
    SessionSnapshot {
        session_id: 7,
        connection_id: "conn-7".into(),
        captured_at_ms: 1_700_000_000_000,
        route_epoch: 0,
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
                checkpoint: Some(crate::Checkpoint {
                    seq: 3,
                    read: 2,
                    state: Bytes::from_static(b"cp"),
                }),
                headers: {
                    let mut m = crate::metadata::Metadata::new();
                    m.append("x-handler", "feed").unwrap();
                    m.append("trace-bin", vec![0u8, 0xff]).unwrap();
                    m
                },
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
    assert_eq!(&enc[..4], &3u32.to_be_bytes());
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
    v[3] = 1;
    assert_eq!(
        decode(&v).unwrap_err(),
        MigrationError::SnapshotVersion {
            found: 1,
            supported: 3
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
    // Find "b" item seq 11 and change it to 13: session(8)+conn(8)+cap(8)+epoch(8)+app(4+10)+count(4)
    // + call_id 8 + method 2+14 + request 4+3 + streaming 1 + deadline 4 + next_seq 8 + n 4
    // + item0 8+4+1 = offset of item1 seq.
    let off = 8 + 8 + 8 + 8 + 14 + 4 + 8 + 16 + 7 + 1 + 4 + 8 + 4 + 13;
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
    let at = body.len() - 4 - 1 - 4 - 8 - 4 - 1; // streaming byte
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

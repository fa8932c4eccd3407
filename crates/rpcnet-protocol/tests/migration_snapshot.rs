//! Session snapshots end to end (RFC-001 sections 3.3 and 5.2): round trips of realistic
//! sessions, and every way a sealed snapshot must be refused (bit flips, truncation, another
//! cluster secret, another session, decompression bombs, lying zstd frames).

use bytes::Bytes;
use rpcnet_protocol::migration::snapshot::{
    self, CallSnapshot, SessionSnapshot, HEADER_LEN, SEALED_HEADER_LEN, TAG_LEN,
};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const MIB: usize = 1 << 20;
const LIMIT: usize = 64 * MIB;

/// Deterministic pseudo-random bytes (SplitMix64), incompressible on purpose.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn session(app_state: Vec<u8>, calls: usize) -> SessionSnapshot {
    let mut rng = Rng(calls as u64);
    SessionSnapshot {
        session_id: 0xfeed,
        connection_id: "conn-0001".into(),
        captured_at_ms: 1_700_000_000_000,
        route_epoch: 0,
        app_state: Bytes::from(app_state),
        calls: (0..calls as u64)
            .map(|i| CallSnapshot {
                call_id: i,
                method: format!("svc.method{}", i % 7),
                request: Bytes::from(rng.bytes(32)),
                streaming: i % 2 == 0,
                deadline_ms: (i as u32) * 10,
                next_seq: i * 100,
                pending: (0..(i % 5))
                    .map(|k| (i * 100 + k, Bytes::from(rng.bytes(64))))
                    .collect(),
                checkpoint: (i % 3 == 0).then(|| rpcnet_protocol::Checkpoint {
                    seq: i,
                    read: i / 2,
                    state: Bytes::from(format!("cp{i}")),
                }),
                headers: Default::default(),
            })
            .collect(),
    }
}

fn seal(s: &SessionSnapshot) -> Vec<u8> {
    snapshot::seal(s, SECRET, 77, 1_700_000_000_123, [3; 12]).unwrap()
}

#[test]
fn round_trip_empty_app_state() {
    let s = session(Vec::new(), 1);
    let sealed = seal(&s);
    assert_eq!(
        snapshot::open(&sealed, SECRET, Some(0xfeed), LIMIT).unwrap(),
        s
    );
    let empty = SessionSnapshot::default();
    assert_eq!(
        snapshot::open(&seal(&empty), SECRET, Some(0), LIMIT).unwrap(),
        empty
    );
}

#[test]
fn round_trip_one_mib_app_state() {
    let s = session(Rng(9).bytes(MIB), 3);
    let sealed = seal(&s);
    let (header, got) = snapshot::open_with_header(&sealed, SECRET, Some(0xfeed), LIMIT).unwrap();
    assert_eq!(got, s);
    assert_eq!(header.migration_id, 77);
    assert_eq!(header.timestamp_ms, 1_700_000_000_123);
}

#[test]
fn round_trip_compressible_state_shrinks() {
    let text: Vec<u8> = b"{\"user\":42,\"cart\":[1,2,3]}".repeat(40_000);
    let s = session(text, 10);
    let sealed = seal(&s);
    let plain = snapshot::encode(&s).unwrap();
    assert!(
        sealed.len() * 10 < plain.len(),
        "{} vs {}",
        sealed.len(),
        plain.len()
    );
    assert_eq!(snapshot::open(&sealed, SECRET, None, LIMIT).unwrap(), s);
}

#[test]
fn round_trip_many_calls() {
    let s = session(b"state".to_vec(), 2_000);
    assert_eq!(
        s.calls.iter().map(|c| c.pending.len()).sum::<usize>(),
        4_000
    );
    assert_eq!(snapshot::open(&seal(&s), SECRET, None, LIMIT).unwrap(), s);
    let plain = snapshot::encode(&s).unwrap();
    assert_eq!(snapshot::decode(&plain).unwrap(), s);
}

#[test]
fn staged_functions_compose_like_seal_and_open() {
    let s = session(Rng(1).bytes(10_000), 5);
    let encoded = snapshot::encode(&s).unwrap();
    let compressed = snapshot::compress(&encoded, 1).unwrap();
    let sealed = snapshot::seal_frame(&compressed, SECRET, 77, 0xfeed, 5, [1; 12]).unwrap();
    let (_, opened) = snapshot::open_frame(&sealed, SECRET, Some(0xfeed)).unwrap();
    assert_eq!(opened, compressed);
    let decompressed = snapshot::decompress(&opened, LIMIT).unwrap();
    assert_eq!(decompressed, encoded);
    assert_eq!(snapshot::decode(&decompressed).unwrap(), s);
}

fn assert_tampered(sealed: &[u8], what: &str) {
    let err = snapshot::open(sealed, SECRET, Some(0xfeed), LIMIT).unwrap_err();
    assert_eq!(err.code(), "SNAPSHOT_TAMPERED", "{what}: {err}");
}

#[test]
fn every_single_bit_flip_is_tampered() {
    let sealed = seal(&session(b"small".to_vec(), 2));
    assert!(sealed.len() < 1_000);
    for bit in 0..sealed.len() * 8 {
        let mut bad = sealed.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert_tampered(&bad, &format!("bit {bit}"));
    }
}

#[test]
fn sampled_bit_flips_in_a_large_snapshot_are_tampered() {
    let sealed = seal(&session(Rng(5).bytes(MIB), 50));
    let mut rng = Rng(42);
    let total_bits = sealed.len() as u64 * 8;
    // Every bit of the clear header and the tag, plus 200 random bits of the ciphertext.
    let tail = (sealed.len() - TAG_LEN) as u64 * 8;
    let bits = (0..SEALED_HEADER_LEN as u64 * 8)
        .chain(tail..total_bits)
        .chain((0..200).map(|_| rng.next() % total_bits));
    for bit in bits {
        let mut bad = sealed.clone();
        bad[(bit / 8) as usize] ^= 1 << (bit % 8);
        assert_tampered(&bad, &format!("bit {bit}"));
    }
}

#[test]
fn every_truncation_is_rejected() {
    let sealed = seal(&session(b"state".to_vec(), 3));
    for n in 0..sealed.len() {
        let err = snapshot::open(&sealed[..n], SECRET, Some(0xfeed), LIMIT).unwrap_err();
        let want = if n < SEALED_HEADER_LEN + TAG_LEN {
            "SNAPSHOT_TRUNCATED"
        } else {
            "SNAPSHOT_TAMPERED"
        };
        assert_eq!(err.code(), want, "len {n}: {err}");
    }
    let plain = snapshot::encode(&session(b"state".to_vec(), 3)).unwrap();
    for n in 0..plain.len() {
        let err = snapshot::decode(&plain[..n]).unwrap_err();
        assert_eq!(err.code(), "SNAPSHOT_TRUNCATED", "plain len {n}: {err}");
    }
}

#[test]
fn appended_bytes_are_rejected() {
    let mut sealed = seal(&session(Vec::new(), 1));
    sealed.push(0);
    assert_tampered(&sealed, "one extra byte");
}

#[test]
fn wrong_cluster_secret_is_rejected() {
    let sealed = seal(&session(b"x".to_vec(), 1));
    let err =
        snapshot::open(&sealed, b"another cluster's secret........", None, LIMIT).unwrap_err();
    assert_eq!(err.code(), "SNAPSHOT_TAMPERED");
    assert!(
        err.to_string().contains("different cluster secret"),
        "{err}"
    );
}

#[test]
fn wrong_expected_session_is_rejected() {
    let sealed = seal(&session(b"x".to_vec(), 1));
    let err = snapshot::open(&sealed, SECRET, Some(0xbeef), LIMIT).unwrap_err();
    assert_eq!(err.code(), "SNAPSHOT_TAMPERED");
    assert!(
        err.to_string()
            .contains("is for session 65261, expected session 48879"),
        "{err}"
    );
}

#[test]
fn migration_id_is_bound_to_the_key() {
    // Re-labelling a snapshot as another migration's changes the derived key.
    let mut sealed = seal(&session(b"x".to_vec(), 1));
    sealed[..8].copy_from_slice(&78u64.to_be_bytes());
    assert_tampered(&sealed, "relabelled migration id");
}

#[test]
fn unsupported_version_inside_the_seal() {
    let mut frame = snapshot::encode(&session(b"x".to_vec(), 1)).unwrap();
    frame[..4].copy_from_slice(&1u32.to_be_bytes());
    let sealed = snapshot::seal_frame(&frame, SECRET, 77, 0xfeed, 1, [0; 12]).unwrap();
    let err = snapshot::open(&sealed, SECRET, None, LIMIT).unwrap_err();
    assert_eq!(err.code(), "SNAPSHOT_VERSION");
    assert_eq!(
        err.to_string(),
        "snapshot format version 1 is not supported (this build reads version 3)"
    );
}

/// Wraps a raw zstd body in a compressed frame header and seals it (as only a key holder
/// could), so the decompression limits are what is tested.
fn seal_zstd_body(body: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8; HEADER_LEN];
    frame[..4].copy_from_slice(&snapshot::SNAPSHOT_VERSION.to_be_bytes());
    frame[4..8].copy_from_slice(&1u32.to_be_bytes());
    frame[8..12].copy_from_slice(&(body.len() as u32).to_be_bytes());
    let sum = ring::digest::digest(&ring::digest::SHA256, body);
    frame[12..16].copy_from_slice(&sum.as_ref()[..4]);
    frame.extend_from_slice(body);
    snapshot::seal_frame(&frame, SECRET, 77, 0xfeed, 1, [0; 12]).unwrap()
}

#[test]
fn decompression_bomb_is_rejected_before_allocating() {
    // A 12-byte zstd frame declaring 1 TiB of content.
    let mut bomb = vec![0x28, 0xb5, 0x2f, 0xfd, 0xe0];
    bomb.extend_from_slice(&(1u64 << 40).to_le_bytes());
    bomb.extend_from_slice(&[0x01, 0x00, 0x00]);
    let err = snapshot::open(&seal_zstd_body(&bomb), SECRET, None, LIMIT).unwrap_err();
    assert_eq!(err.code(), "SNAPSHOT_MALFORMED");
    assert_eq!(
        err.to_string(),
        "snapshot malformed: body would decompress to 1099511627776 bytes, above the 67108864-byte limit"
    );

    // A genuine one: 16 MiB of zeros compresses to a few hundred bytes.
    let s = session(vec![0u8; 16 * MIB], 1);
    let sealed = seal(&s);
    assert!(sealed.len() < 4_096, "{}", sealed.len());
    let err = snapshot::open(&sealed, SECRET, None, MIB).unwrap_err();
    assert_eq!(err.code(), "SNAPSHOT_MALFORMED");
    assert!(
        err.to_string().contains("above the 1048576-byte limit"),
        "{err}"
    );
}

#[test]
fn zstd_frame_lying_about_its_size_is_rejected() {
    // Single-segment frame, 1-byte content size, one raw block of 10 bytes.
    for declared in [1u8, 20] {
        let mut body = vec![0x28, 0xb5, 0x2f, 0xfd, 0x20, declared, 0x51, 0x00, 0x00];
        body.extend_from_slice(b"0123456789");
        let err = snapshot::open(&seal_zstd_body(&body), SECRET, None, LIMIT).unwrap_err();
        assert_eq!(
            err.code(),
            "SNAPSHOT_MALFORMED",
            "declared {declared}: {err}"
        );
    }
    // Sanity: the same frame declaring 10 decodes to a (malformed) body, not a zstd error.
    let mut body = vec![0x28, 0xb5, 0x2f, 0xfd, 0x20, 10, 0x51, 0x00, 0x00];
    body.extend_from_slice(b"0123456789");
    let err = snapshot::open(&seal_zstd_body(&body), SECRET, None, LIMIT).unwrap_err();
    assert!(err.to_string().contains("body "), "{err}");
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = Rng(7);
    for i in 0..2_000 {
        let n = (rng.next() % 200) as usize;
        let mut junk = rng.bytes(n);
        if i % 2 == 0 && junk.len() >= 4 {
            junk[..4].copy_from_slice(&1u32.to_be_bytes());
        }
        let _ = snapshot::decode(&junk);
        let _ = snapshot::decompress(&junk, MIB);
        let _ = snapshot::open(&junk, SECRET, None, MIB);
    }
}

#[test]
fn byte_mutations_of_plain_frames_never_panic() {
    // Mutate bodies behind a recomputed checksum so body validation is exercised.
    let plain = snapshot::encode(&session(b"state".to_vec(), 4)).unwrap();
    let mut rng = Rng(11);
    for _ in 0..3_000 {
        let mut v = plain.clone();
        let at = HEADER_LEN + (rng.next() as usize % (v.len() - HEADER_LEN));
        v[at] = rng.next() as u8;
        let sum = ring::digest::digest(&ring::digest::SHA256, &v[HEADER_LEN..]);
        let sum = sum.as_ref()[..4].to_vec();
        v[12..16].copy_from_slice(&sum);
        match snapshot::decode(&v) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.code(), "SNAPSHOT_MALFORMED", "{e}"),
        }
    }
}

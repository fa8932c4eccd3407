//! Management-plane messages (RFC-001 section 3.1): round trips of every message and variant,
//! and decoding of truncated, mutated and random bytes, which must fail with
//! `MESSAGE_MALFORMED` and never panic.

use bytes::Bytes;
use rpcnet_protocol::migration::message::*;
use rpcnet_protocol::migration::token::TokenKey;

/// Deterministic pseudo-random numbers (SplitMix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn request(reason: MigrationReason) -> ManagementMessage {
    let token = TokenKey::from_bytes(&[9; 32])
        .issue_with_nonce([4; 32], 55, "worker-1", "worker-2", 1_000, 5_000)
        .unwrap();
    MigrationRequest {
        migration_id: u64::MAX,
        session_id: 55,
        source: "worker-1".into(),
        target: "worker-2".into(),
        reason,
        token,
        requested_at_ms: 1_000,
        route_epoch: 0,
    }
    .into()
}

fn samples() -> Vec<ManagementMessage> {
    vec![
        request(MigrationReason::Drain),
        request(MigrationReason::LoadBalancing),
        request(MigrationReason::Admin),
        request(MigrationReason::Failover),
        request(MigrationReason::Custom("zone b → zone c".into())),
        MigrationConfirmation {
            migration_id: 1,
            decision: ConfirmationDecision::Accept,
        }
        .into(),
        MigrationConfirmation {
            migration_id: 2,
            decision: ConfirmationDecision::Reject {
                reason: "over capacity".into(),
            },
        }
        .into(),
        MigrationConfirmation {
            migration_id: 3,
            decision: ConfirmationDecision::Defer {
                retry_after_ms: 250,
            },
        }
        .into(),
        PrepareAck {
            migration_id: 4,
            ready: true,
        }
        .into(),
        PrepareAck {
            migration_id: 5,
            ready: false,
        }
        .into(),
        StateTransfer {
            migration_id: 6,
            sealed: Bytes::from(vec![0xab; 300]),
        }
        .into(),
        StateTransfer {
            migration_id: 7,
            sealed: Bytes::new(),
        }
        .into(),
        MigrationComplete {
            migration_id: 8,
            session_id: 55,
        }
        .into(),
        MigrationAbort {
            migration_id: 9,
            reason: "SNAPSHOT_TAMPERED: snapshot tampered".into(),
        }
        .into(),
        Register {
            worker_id: "worker-1".into(),
            user_addr: "127.0.0.1:4433".into(),
            mgmt_addr: "127.0.0.1:4434".into(),
            lease_ms: 0,
        }
        .into(),
        Heartbeat {
            worker_id: "worker-1".into(),
            sessions: 12,
            at_ms: 1_700_000_000_000,
        }
        .into(),
        rpcnet_protocol::migration::SessionClosed {
            session_id: 0x0123_4567_89ab_cdef,
        }
        .into(),
        rpcnet_protocol::migration::Claim {
            session_id: 0x0123_4567_89ab_cdef,
            generation: 7,
        }
        .into(),
        rpcnet_protocol::migration::Claimed {
            session_id: 0x0123_4567_89ab_cdef,
            status: 3,
            epoch: (7 << 32) + 2,
        }
        .into(),
    ]
}

#[test]
fn every_message_round_trips() {
    for m in samples() {
        let enc = m.encode().unwrap();
        assert_eq!(enc[0], m.type_byte());
        assert_eq!(ManagementMessage::decode(&enc).unwrap(), m, "{}", m.name());
        assert_eq!(
            ManagementMessage::decode_shared(&Bytes::from(enc)).unwrap(),
            m
        );
    }
}

#[test]
fn every_truncation_is_malformed() {
    for m in samples() {
        let enc = m.encode().unwrap();
        for n in 0..enc.len() {
            let err = ManagementMessage::decode(&enc[..n]).unwrap_err();
            assert_eq!(err.code(), "MESSAGE_MALFORMED", "{} len {n}", m.name());
            if n > 0 {
                assert!(err.to_string().contains(m.name()), "{err}");
            }
        }
    }
}

#[test]
fn single_byte_mutations_never_panic() {
    let mut rng = Rng(3);
    for m in samples() {
        let enc = m.encode().unwrap();
        for at in 0..enc.len() {
            for _ in 0..8 {
                let mut v = enc.clone();
                v[at] = rng.next() as u8;
                if let Err(e) = ManagementMessage::decode(&v) {
                    assert_eq!(e.code(), "MESSAGE_MALFORMED");
                }
            }
        }
    }
}

#[test]
fn random_garbage_never_panics() {
    let types = [0x01u8, 0x02, 0x03, 0x04, 0x05, 0x06, 0x10, 0x11];
    let mut rng = Rng(17);
    let mut decoded = 0;
    for i in 0..20_000 {
        let n = (rng.next() % 96) as usize;
        let mut v: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        if i % 2 == 0 && !v.is_empty() {
            v[0] = types[(rng.next() % types.len() as u64) as usize];
        }
        match ManagementMessage::decode(&v) {
            Ok(m) => {
                // Anything that decodes re-encodes to the same bytes.
                assert_eq!(m.encode().unwrap(), v);
                decoded += 1;
            }
            Err(e) => assert_eq!(e.code(), "MESSAGE_MALFORMED"),
        }
    }
    assert!(
        decoded > 0,
        "the generator should hit some valid short messages"
    );
}

#[test]
fn huge_length_prefix_does_not_allocate() {
    // StateTransfer claiming a 4 GiB snapshot in a 13-byte message.
    let mut v = vec![0x04, 0, 0, 0, 0, 0, 0, 0, 1];
    v.extend_from_slice(&u32::MAX.to_be_bytes());
    let err = ManagementMessage::decode(&v).unwrap_err();
    assert_eq!(
        err.to_string(),
        "migration message malformed: StateTransfer.sealed: needs 4294967295 bytes, only 0 left"
    );
}

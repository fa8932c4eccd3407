//! Migration tokens end to end (RFC-001 section 5.1): issue, encode, decode, redeem; and every
//! way a token must be refused (tampered, expired, replayed, for another target, truncated).

use rpcnet_protocol::migration::token::{
    MigrationToken, TokenClaim, TokenKey, TokenLedger, DEFAULT_TOKEN_TTL_MS,
};

const NOW: u64 = 1_700_000_000_000;

fn key() -> TokenKey {
    TokenKey::from_bytes(&[0x5a; 32])
}

/// Deterministic nonces for reproducible tests (SplitMix64).
fn nonce(seed: u64) -> [u8; 32] {
    let mut s = seed;
    let mut out = [0u8; 32];
    for chunk in out.chunks_mut(8) {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_be_bytes());
    }
    out
}

fn issue(seed: u64) -> MigrationToken {
    key()
        .issue_with_nonce(
            nonce(seed),
            1234,
            "worker-a",
            "worker-b",
            NOW,
            DEFAULT_TOKEN_TTL_MS,
        )
        .unwrap()
}

/// The receiving side: decode from the wire, then redeem.
fn receive(ledger: &mut TokenLedger, wire: &[u8], target: &str, now: u64) -> Result<(), String> {
    let token = MigrationToken::decode(wire).map_err(|e| e.code().to_string())?;
    ledger
        .redeem(
            &key(),
            &token,
            &TokenClaim::new(1234, "worker-a", target),
            now,
        )
        .map_err(|e| e.code().to_string())
}

#[test]
fn issue_and_redeem_ok() {
    let mut ledger = TokenLedger::new();
    let wire = issue(1).encode().unwrap();
    assert_eq!(wire.len(), 32 + 8 + 2 + 8 + 2 + 8 + 8 + 32);
    receive(&mut ledger, &wire, "worker-b", NOW + 10).unwrap();
}

#[test]
fn default_lifetime_is_five_seconds() {
    assert_eq!(DEFAULT_TOKEN_TTL_MS, 5_000);
    assert_eq!(issue(1).expires_at_ms, NOW + 5_000);
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let wire = issue(2).encode().unwrap();
    for bit in 0..wire.len() * 8 {
        let mut bad = wire.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let mut ledger = TokenLedger::new();
        assert_eq!(
            receive(&mut ledger, &bad, "worker-b", NOW + 10),
            Err("TOKEN_INVALID".to_string()),
            "bit {bit}"
        );
        assert!(ledger.is_empty());
    }
}

#[test]
fn every_truncation_is_rejected() {
    let wire = issue(3).encode().unwrap();
    for n in 0..wire.len() {
        assert_eq!(
            receive(&mut TokenLedger::new(), &wire[..n], "worker-b", NOW),
            Err("TOKEN_INVALID".to_string()),
            "len {n}"
        );
    }
}

#[test]
fn forged_with_another_key_is_rejected() {
    let forged = TokenKey::from_bytes(&[0x5b; 32])
        .issue_with_nonce(nonce(4), 1234, "worker-a", "worker-b", NOW, 5_000)
        .unwrap();
    let err = TokenLedger::new()
        .redeem(
            &key(),
            &forged,
            &TokenClaim::new(1234, "worker-a", "worker-b"),
            NOW,
        )
        .unwrap_err();
    assert_eq!(err.code(), "TOKEN_INVALID");
    assert!(err.to_string().contains("HMAC-SHA256"), "{err}");
}

#[test]
fn expired_is_rejected_with_its_age() {
    let mut ledger = TokenLedger::new();
    let err = ledger
        .redeem(
            &key(),
            &issue(5),
            &TokenClaim::new(1234, "worker-a", "worker-b"),
            NOW + 5_120,
        )
        .unwrap_err();
    assert_eq!(err.code(), "TOKEN_EXPIRED");
    assert_eq!(err.to_string(), "migration token expired 120 ms ago");
    assert!(ledger.is_empty());
}

#[test]
fn replayed_is_rejected() {
    let mut ledger = TokenLedger::new();
    let wire = issue(6).encode().unwrap();
    receive(&mut ledger, &wire, "worker-b", NOW + 1).unwrap();
    assert_eq!(
        receive(&mut ledger, &wire, "worker-b", NOW + 2),
        Err("TOKEN_REPLAYED".to_string())
    );
    // After expiry the nonce is forgotten, and the token is refused as expired instead.
    assert_eq!(
        receive(&mut ledger, &wire, "worker-b", NOW + 6_000),
        Err("TOKEN_EXPIRED".to_string())
    );
    assert!(ledger.is_empty());
}

#[test]
fn wrong_target_is_rejected_and_does_not_burn_the_token() {
    let mut ledger = TokenLedger::new();
    let token = issue(7);
    let err = ledger
        .redeem(
            &key(),
            &token,
            &TokenClaim::new(1234, "worker-a", "worker-c"),
            NOW + 1,
        )
        .unwrap_err();
    assert_eq!(err.code(), "TOKEN_MISMATCH");
    assert_eq!(
        err.to_string(),
        "migration token is for target \"worker-b\", expected \"worker-c\""
    );
    ledger
        .redeem(
            &key(),
            &token,
            &TokenClaim::new(1234, "worker-a", "worker-b"),
            NOW + 2,
        )
        .unwrap();
}

#[test]
fn wrong_session_is_rejected() {
    let err = TokenLedger::new()
        .redeem(
            &key(),
            &issue(8),
            &TokenClaim::new(999, "worker-a", "worker-b"),
            NOW,
        )
        .unwrap_err();
    assert_eq!(err.code(), "TOKEN_MISMATCH");
    assert!(err.to_string().contains("session"), "{err}");
}

#[test]
fn ledger_memory_stays_bounded() {
    let mut ledger = TokenLedger::new();
    // One migration per 10 ms for a simulated minute, each token living 5 s.
    for i in 0..6_000u64 {
        let now = NOW + i * 10;
        let t = key()
            .issue_with_nonce(nonce(1_000 + i), 1234, "worker-a", "worker-b", now, 5_000)
            .unwrap();
        ledger
            .redeem(
                &key(),
                &t,
                &TokenClaim::new(1234, "worker-a", "worker-b"),
                now,
            )
            .unwrap();
        assert!(ledger.len() <= 501, "len {} at {i}", ledger.len());
    }
}

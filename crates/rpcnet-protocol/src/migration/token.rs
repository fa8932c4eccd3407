//! Migration tokens: the single-use credential that authorises one migration (RFC-001 sections
//! 3.2 phase 1 and 5.1).
//!
//! The coordinator issues a token for exactly one (session, source, target) triple with a short
//! lifetime; the target redeems it before accepting the session. Authenticity comes from
//! HMAC-SHA256 (RFC 2104) under a cluster-wide [`TokenKey`]; single use comes from a
//! [`TokenLedger`] that remembers redeemed nonces until they expire (after that the expiry check
//! rejects them anyway), and at most [`DEFAULT_MAX_REDEEMED_TOKENS`] of them, so memory stays
//! bounded. Time is an input (`now_ms`, unix
//! milliseconds) and randomness is a [`SecureRandom`] or explicit bytes.

use std::collections::BTreeSet;

use ring::hmac;
use ring::rand::SecureRandom;

use super::wire::{put_bytes16, put_u64, ReadError, Reader};
use super::MigrationError;

/// Default token lifetime: 5000 ms, RFC-001's default migration timeout (section 3.2, phase 1).
pub const DEFAULT_TOKEN_TTL_MS: u64 = 5_000;

/// Longest worker id a token may carry, in bytes of UTF-8.
pub const MAX_WORKER_ID_LEN: usize = 255;

/// Default longest lifetime a [`TokenLedger`] accepts (60 000 ms): it bounds how long the ledger
/// must remember a redeemed nonce, hence its memory.
pub const DEFAULT_MAX_TOKEN_LIFETIME_MS: u64 = 60_000;

/// Default most redeemed, unexpired tokens a [`TokenLedger`] remembers (16,384). At the bound
/// it refuses further redemptions (`MIGRATION_CAPACITY`) until the oldest expire, rather than
/// forgetting an unexpired nonce (which would let that token be replayed). With the default
/// token lifetime ([`DEFAULT_TOKEN_TTL_MS`]) that is more than 3,000 migrations per second into
/// one worker; an entry costs ~110 bytes, so the bound is ~2 MB.
pub const DEFAULT_MAX_REDEEMED_TOKENS: usize = 16_384;

/// Size of the nonce and of the MAC, in bytes (256 bits each, RFC-001 section 5.1).
pub const TOKEN_NONCE_LEN: usize = 32;

/// The cluster-wide secret that authenticates migration tokens with HMAC-SHA256 (RFC 2104).
///
/// 32 bytes, shared by every process that issues or redeems tokens. `Debug` never prints it.
#[derive(Clone)]
pub struct TokenKey {
    key: hmac::Key,
}

impl TokenKey {
    /// A key from 32 secret bytes (for example from the cluster configuration).
    pub fn from_bytes(secret: &[u8; 32]) -> Self {
        TokenKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// A fresh random key. Errors: `RANDOM_UNAVAILABLE` if `rng` fails.
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, MigrationError> {
        let mut secret = [0u8; 32];
        rng.fill(&mut secret)
            .map_err(|_| MigrationError::RandomUnavailable {
                while_doing: "generating a token key",
            })?;
        Ok(Self::from_bytes(&secret))
    }

    /// Issues a token for moving `session_id` from `source` to `target`, valid from `now_ms`
    /// (unix ms) for `ttl_ms` milliseconds ([`DEFAULT_TOKEN_TTL_MS`] is RFC-001's default),
    /// with a 256-bit nonce drawn from `rng`.
    ///
    /// Errors: `RANDOM_UNAVAILABLE` if `rng` fails; `TOKEN_INVALID` if a worker id is longer
    /// than [`MAX_WORKER_ID_LEN`] bytes.
    pub fn issue(
        &self,
        rng: &dyn SecureRandom,
        session_id: u64,
        source: &str,
        target: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<MigrationToken, MigrationError> {
        let mut nonce = [0u8; TOKEN_NONCE_LEN];
        rng.fill(&mut nonce)
            .map_err(|_| MigrationError::RandomUnavailable {
                while_doing: "drawing a migration token nonce",
            })?;
        self.issue_with_nonce(nonce, session_id, source, target, now_ms, ttl_ms)
    }

    /// [`issue`](Self::issue) with an explicit nonce (deterministic tests, or a caller that
    /// draws randomness itself). The nonce must be unpredictable and never reused.
    ///
    /// Errors: `TOKEN_INVALID` if a worker id is longer than [`MAX_WORKER_ID_LEN`] bytes.
    pub fn issue_with_nonce(
        &self,
        nonce: [u8; TOKEN_NONCE_LEN],
        session_id: u64,
        source: &str,
        target: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<MigrationToken, MigrationError> {
        let mut token = MigrationToken {
            nonce,
            session_id,
            source: source.to_owned(),
            target: target.to_owned(),
            expires_at_ms: now_ms.saturating_add(ttl_ms),
            mac: [0u8; 32],
        };
        let tag = hmac::sign(&self.key, &token.mac_input()?);
        token.mac.copy_from_slice(tag.as_ref());
        Ok(token)
    }

    /// Checks only the token's HMAC-SHA256 tag, in constant time (`ring::hmac::verify`).
    /// Errors: `TOKEN_INVALID` when the tag does not verify or a field is over-long.
    pub fn verify(&self, token: &MigrationToken) -> Result<(), MigrationError> {
        hmac::verify(&self.key, &token.mac_input()?, &token.mac).map_err(|_| {
            MigrationError::TokenInvalid {
                detail:
                    "HMAC-SHA256 tag does not verify (forged, altered, or issued under another key)"
                        .into(),
            }
        })
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

/// A migration token (RFC-001 section 5.1): 256 random bits bound by HMAC-SHA256 to one session,
/// one source worker, one target worker and an expiry time.
///
/// Binary layout (big-endian), as produced by [`encode`](Self::encode):
///
/// ```text
/// nonce          32 bytes
/// session_id     u64
/// source_len     u16   (<= 255) | source  UTF-8 bytes
/// target_len     u16   (<= 255) | target  UTF-8 bytes
/// expires_at_ms  u64   (unix ms)
/// mac            32 bytes = HMAC-SHA256(token key, every byte above, in this order)
/// ```
///
/// So the MAC covers exactly `nonce || session_id || len-prefixed source || len-prefixed target
/// || expires_at_ms`: an encoded token is its MAC input followed by its MAC.
#[derive(Clone, PartialEq, Eq)]
pub struct MigrationToken {
    /// 256 random bits; the identity used for single-use enforcement.
    pub nonce: [u8; TOKEN_NONCE_LEN],
    /// The session this token allows to move.
    pub session_id: u64,
    /// The worker the session moves from.
    pub source: String,
    /// The worker the session moves to.
    pub target: String,
    /// First instant (unix ms) at which the token is no longer valid.
    pub expires_at_ms: u64,
    /// HMAC-SHA256 tag over the fields above (see the type's layout).
    pub mac: [u8; 32],
}

impl MigrationToken {
    /// The bytes the MAC covers (every field but `mac`, in layout order).
    /// Errors: `TOKEN_INVALID` if a worker id is longer than [`MAX_WORKER_ID_LEN`].
    fn mac_input(&self) -> Result<Vec<u8>, MigrationError> {
        check_id("source", &self.source)?;
        check_id("target", &self.target)?;
        let mut out = Vec::with_capacity(52 + self.source.len() + self.target.len() + 32);
        out.extend_from_slice(&self.nonce);
        put_u64(&mut out, self.session_id);
        // Lengths are checked above, so these cannot fail.
        let _ = put_bytes16(&mut out, self.source.as_bytes(), "source");
        let _ = put_bytes16(&mut out, self.target.as_bytes(), "target");
        put_u64(&mut out, self.expires_at_ms);
        Ok(out)
    }

    /// Encodes the token in the layout documented on the type.
    /// Errors: `TOKEN_INVALID` if a worker id is longer than [`MAX_WORKER_ID_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, MigrationError> {
        let mut out = self.mac_input()?;
        out.extend_from_slice(&self.mac);
        Ok(out)
    }

    /// Decodes a token, requiring every byte to be consumed. Checks the shape only, not the
    /// MAC (use [`TokenKey::verify`] or [`TokenLedger::redeem`]). Never panics.
    /// Errors: `TOKEN_INVALID` naming the field that is short, over-long or not UTF-8.
    pub fn decode(bytes: &[u8]) -> Result<Self, MigrationError> {
        let mut r = Reader::new(bytes);
        let token = Self::read(&mut r).map_err(invalid)?;
        r.finish().map_err(invalid)?;
        Ok(token)
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, ReadError> {
        let nonce = r.array("nonce")?;
        let session_id = r.u64("session_id")?;
        let source = r.str16("source")?;
        let target = r.str16("target")?;
        for (field, v) in [("source", &source), ("target", &target)] {
            if v.len() > MAX_WORKER_ID_LEN {
                return Err(ReadError::Invalid {
                    field,
                    detail: format!("{} bytes, at most {MAX_WORKER_ID_LEN} allowed", v.len()),
                });
            }
        }
        let expires_at_ms = r.u64("expires_at_ms")?;
        let mac = r.array("mac")?;
        Ok(MigrationToken {
            nonce,
            session_id,
            source,
            target,
            expires_at_ms,
            mac,
        })
    }

    /// Hex of the first 4 nonce bytes: enough to correlate logs, useless to an attacker.
    pub fn nonce_prefix(&self) -> String {
        self.nonce[..4].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for MigrationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigrationToken")
            .field("nonce", &format_args!("{}…", self.nonce_prefix()))
            .field("session_id", &self.session_id)
            .field("source", &self.source)
            .field("target", &self.target)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

fn check_id(field: &'static str, v: &str) -> Result<(), MigrationError> {
    if v.len() > MAX_WORKER_ID_LEN {
        return Err(MigrationError::TokenInvalid {
            detail: format!(
                "{field} worker id is {} bytes, at most {MAX_WORKER_ID_LEN} allowed",
                v.len()
            ),
        });
    }
    Ok(())
}

fn invalid(e: ReadError) -> MigrationError {
    MigrationError::TokenInvalid {
        detail: format!("malformed encoding: {e}"),
    }
}

/// The move a verifier expects a token to authorize: this session, from this source worker, to
/// this target worker (RFC-001 section 6.1: the token's MAC covers all three).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenClaim<'a> {
    /// The session being moved.
    pub session_id: u64,
    /// The worker it moves from.
    pub source: &'a str,
    /// The worker it moves to.
    pub target: &'a str,
}

impl<'a> TokenClaim<'a> {
    /// The claim for moving `session_id` from `source` to `target`.
    pub fn new(session_id: u64, source: &'a str, target: &'a str) -> Self {
        TokenClaim {
            session_id,
            source,
            target,
        }
    }
}

/// Single-use enforcement for migration tokens (RFC-001 section 5.3, "Replay Attacks:
/// timestamp validation + nonce usage"). One ledger per redeeming process.
///
/// It remembers the nonce of every redeemed token until that token's expiry; afterwards the
/// expiry check alone rejects it, so the entry is pruned. Memory is bounded twice: by time
/// (tokens that claim a lifetime longer than `max_lifetime_ms` are refused, so an entry lives
/// at most that long) and by count (at most `max_entries` nonces; at the bound a new redemption
/// is refused with `MIGRATION_CAPACITY` and nothing is forgotten, so a replayed token is still
/// refused while it is unexpired). Deterministic: ordered sets, no hashing seeds.
#[derive(Debug, Clone)]
pub struct TokenLedger {
    nonces: BTreeSet<[u8; TOKEN_NONCE_LEN]>,
    by_expiry: BTreeSet<(u64, [u8; TOKEN_NONCE_LEN])>,
    max_lifetime_ms: u64,
    max_entries: usize,
}

impl Default for TokenLedger {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenLedger {
    /// An empty ledger accepting lifetimes up to [`DEFAULT_MAX_TOKEN_LIFETIME_MS`] and
    /// remembering up to [`DEFAULT_MAX_REDEEMED_TOKENS`] nonces.
    pub fn new() -> Self {
        Self::with_max_lifetime(DEFAULT_MAX_TOKEN_LIFETIME_MS)
    }

    /// An empty ledger refusing tokens whose `expires_at_ms - now_ms` exceeds `max_lifetime_ms`
    /// (remembering up to [`DEFAULT_MAX_REDEEMED_TOKENS`] nonces).
    pub fn with_max_lifetime(max_lifetime_ms: u64) -> Self {
        Self::with_limits(max_lifetime_ms, DEFAULT_MAX_REDEEMED_TOKENS)
    }

    /// An empty ledger refusing tokens whose `expires_at_ms - now_ms` exceeds `max_lifetime_ms`,
    /// and remembering at most `max_entries` redeemed nonces (at least 1): once that many
    /// unexpired tokens are redeemed, [`redeem`](Self::redeem) refuses new ones with
    /// `MIGRATION_CAPACITY` until the oldest expire (at most `max_lifetime_ms` later).
    pub fn with_limits(max_lifetime_ms: u64, max_entries: usize) -> Self {
        TokenLedger {
            nonces: BTreeSet::new(),
            by_expiry: BTreeSet::new(),
            max_lifetime_ms,
            max_entries: max_entries.max(1),
        }
    }

    /// Checks `token` for the move `claim` names at `now_ms` (unix ms) without redeeming it: the one verification path every participant
    /// uses (the target's Confirmation and Preparation, the source's State Capture). Records
    /// nothing. Redeemed tokens pass this check; only [`redeem`](Self::redeem) refuses them.
    ///
    /// Checks, in order, each with its error:
    /// 1. HMAC-SHA256 tag in constant time (`ring::hmac::verify`) -> `TOKEN_INVALID`;
    /// 2. `now_ms < expires_at_ms` -> `TOKEN_EXPIRED` (message says how long ago);
    /// 3. remaining lifetime `<= max_lifetime_ms` -> `TOKEN_INVALID`;
    /// 4. session, source, target equal the expected ones -> `TOKEN_MISMATCH`;
    pub fn check(
        &mut self,
        key: &TokenKey,
        token: &MigrationToken,
        claim: &TokenClaim<'_>,
        now_ms: u64,
    ) -> Result<(), MigrationError> {
        key.verify(token)?;
        self.prune(now_ms);
        if now_ms >= token.expires_at_ms {
            return Err(MigrationError::TokenExpired {
                ago_ms: now_ms - token.expires_at_ms,
            });
        }
        let lifetime = token.expires_at_ms - now_ms;
        if lifetime > self.max_lifetime_ms {
            return Err(MigrationError::TokenInvalid {
                detail: format!(
                    "token claims to stay valid for {lifetime} ms, this verifier accepts at most {} ms",
                    self.max_lifetime_ms
                ),
            });
        }
        if token.session_id != claim.session_id {
            return Err(MigrationError::TokenMismatch {
                field: "session",
                expected: claim.session_id.to_string(),
                found: token.session_id.to_string(),
            });
        }
        for (field, expected, found) in [
            ("source", claim.source, token.source.as_str()),
            ("target", claim.target, token.target.as_str()),
        ] {
            if expected != found {
                return Err(MigrationError::TokenMismatch {
                    field,
                    expected: expected.to_owned(),
                    found: found.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Redeems `token` for the move `claim` names at `now_ms` (unix ms). On success the nonce is recorded and any later
    /// redemption of the same token fails. A failed redemption records nothing.
    ///
    /// Checks, in order, each with its error: the four checks of [`check`](Self::check), then
    /// 5. nonce not redeemed before -> `TOKEN_REPLAYED`;
    /// 6. fewer than `max_entries` unexpired nonces remembered -> `MIGRATION_CAPACITY`.
    pub fn redeem(
        &mut self,
        key: &TokenKey,
        token: &MigrationToken,
        claim: &TokenClaim<'_>,
        now_ms: u64,
    ) -> Result<(), MigrationError> {
        self.check(key, token, claim, now_ms)?;
        if self.nonces.contains(&token.nonce) {
            return Err(MigrationError::TokenReplayed {
                nonce_prefix: token.nonce_prefix(),
            });
        }
        if self.nonces.len() >= self.max_entries {
            return Err(MigrationError::Capacity {
                what: "redeemed tokens",
                limit: self.max_entries,
            });
        }
        self.nonces.insert(token.nonce);
        self.by_expiry.insert((token.expires_at_ms, token.nonce));
        Ok(())
    }

    /// Forgets nonces whose tokens expired at or before `now_ms` (they can no longer pass the
    /// expiry check). Called by [`redeem`](Self::redeem); callers may also call it on a timer.
    pub fn prune(&mut self, now_ms: u64) {
        while let Some(&(expires, nonce)) = self.by_expiry.first() {
            if expires > now_ms {
                break;
            }
            self.by_expiry.pop_first();
            self.nonces.remove(&nonce);
        }
    }

    /// Number of remembered (redeemed, unexpired) nonces.
    pub fn len(&self) -> usize {
        self.nonces.len()
    }

    /// True when no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.nonces.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::from_bytes(&[7u8; 32])
    }

    fn token(nonce: u8, now: u64) -> MigrationToken {
        key()
            .issue_with_nonce([nonce; 32], 42, "w1", "w2", now, DEFAULT_TOKEN_TTL_MS)
            .unwrap()
    }

    #[test]
    fn mac_covers_documented_bytes() {
        let t = token(1, 1_000);
        let mut input = vec![1u8; 32];
        input.extend_from_slice(&42u64.to_be_bytes());
        input.extend_from_slice(&[0, 2, b'w', b'1', 0, 2, b'w', b'2']);
        input.extend_from_slice(&6_000u64.to_be_bytes());
        let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[7u8; 32]), &input);
        assert_eq!(&t.mac[..], expected.as_ref());
        let enc = t.encode().unwrap();
        assert_eq!(&enc[..input.len()], &input[..]);
        assert_eq!(&enc[input.len()..], &t.mac[..]);
    }

    #[test]
    fn encode_decode_round_trip_and_strictness() {
        let t = token(3, 5);
        let enc = t.encode().unwrap();
        assert_eq!(MigrationToken::decode(&enc).unwrap(), t);
        for n in 0..enc.len() {
            assert_eq!(
                MigrationToken::decode(&enc[..n]).unwrap_err().code(),
                "TOKEN_INVALID"
            );
        }
        let mut long = enc.clone();
        long.push(0);
        let e = MigrationToken::decode(&long).unwrap_err();
        assert!(e.to_string().contains("trailing"), "{e}");
    }

    #[test]
    fn redeem_ok_then_replay() {
        let mut ledger = TokenLedger::new();
        let t = token(1, 1_000);
        ledger
            .redeem(&key(), &t, &TokenClaim::new(42, "w1", "w2"), 1_100)
            .unwrap();
        assert_eq!(ledger.len(), 1);
        let e = ledger
            .redeem(&key(), &t, &TokenClaim::new(42, "w1", "w2"), 1_200)
            .unwrap_err();
        assert_eq!(e.code(), "TOKEN_REPLAYED");
        assert!(e.to_string().contains("01010101"), "{e}");
    }

    #[test]
    fn expired_message_names_age() {
        let mut ledger = TokenLedger::new();
        let t = token(1, 1_000);
        let e = ledger
            .redeem(&key(), &t, &TokenClaim::new(42, "w1", "w2"), 6_120)
            .unwrap_err();
        assert_eq!(e, MigrationError::TokenExpired { ago_ms: 120 });
        let e = ledger
            .redeem(&key(), &t, &TokenClaim::new(42, "w1", "w2"), 6_000)
            .unwrap_err();
        assert_eq!(e, MigrationError::TokenExpired { ago_ms: 0 });
        ledger
            .redeem(&key(), &t, &TokenClaim::new(42, "w1", "w2"), 5_999)
            .unwrap();
    }

    #[test]
    fn mismatch_each_field_and_nothing_recorded() {
        let mut ledger = TokenLedger::new();
        let t = token(1, 0);
        for (s, src, dst, field) in [
            (43, "w1", "w2", "session"),
            (42, "w9", "w2", "source"),
            (42, "w1", "w9", "target"),
        ] {
            match ledger
                .redeem(&key(), &t, &TokenClaim::new(s, src, dst), 1)
                .unwrap_err()
            {
                MigrationError::TokenMismatch { field: f, .. } => assert_eq!(f, field),
                e => panic!("unexpected {e}"),
            }
        }
        assert!(ledger.is_empty());
        ledger
            .redeem(&key(), &t, &TokenClaim::new(42, "w1", "w2"), 1)
            .unwrap();
    }

    #[test]
    fn forged_or_altered_tokens_are_invalid() {
        let mut ledger = TokenLedger::new();
        let t = token(1, 0);
        let other = TokenKey::from_bytes(&[8u8; 32]);
        assert_eq!(
            ledger
                .redeem(&other, &t, &TokenClaim::new(42, "w1", "w2"), 1)
                .unwrap_err()
                .code(),
            "TOKEN_INVALID"
        );
        let mut altered = t.clone();
        altered.expires_at_ms += 1_000;
        assert_eq!(
            ledger
                .redeem(&key(), &altered, &TokenClaim::new(42, "w1", "w2"), 1)
                .unwrap_err()
                .code(),
            "TOKEN_INVALID"
        );
        let mut altered = t.clone();
        altered.target = "w3".into();
        assert_eq!(
            ledger
                .redeem(&key(), &altered, &TokenClaim::new(42, "w1", "w3"), 1)
                .unwrap_err()
                .code(),
            "TOKEN_INVALID"
        );
    }

    #[test]
    fn overlong_lifetime_is_refused() {
        let mut ledger = TokenLedger::with_max_lifetime(1_000);
        let t = key()
            .issue_with_nonce([1; 32], 42, "w1", "w2", 0, 5_000)
            .unwrap();
        assert_eq!(
            ledger
                .redeem(&key(), &t, &TokenClaim::new(42, "w1", "w2"), 0)
                .unwrap_err()
                .code(),
            "TOKEN_INVALID"
        );
        // Once less than the limit remains it is acceptable.
        ledger
            .redeem(&key(), &t, &TokenClaim::new(42, "w1", "w2"), 4_000)
            .unwrap();
    }

    #[test]
    fn ledger_prunes_expired_nonces() {
        let mut ledger = TokenLedger::new();
        for i in 0..100u8 {
            let t = token(i, u64::from(i) * 100);
            ledger
                .redeem(
                    &key(),
                    &t,
                    &TokenClaim::new(42, "w1", "w2"),
                    u64::from(i) * 100,
                )
                .unwrap();
        }
        assert_eq!(ledger.len(), 50);
        ledger.prune(100_000);
        assert!(ledger.is_empty());
    }

    #[test]
    fn a_full_ledger_refuses_rather_than_forgets() {
        let mut ledger = TokenLedger::with_limits(DEFAULT_MAX_TOKEN_LIFETIME_MS, 3);
        let tokens: Vec<_> = (0..4u8).map(|i| token(i, 1_000)).collect();
        for t in &tokens[..3] {
            ledger
                .redeem(&key(), t, &TokenClaim::new(42, "w1", "w2"), 1_000)
                .unwrap();
        }
        // Full of unexpired nonces: a fresh token is refused, and nothing is forgotten.
        let e = ledger
            .redeem(&key(), &tokens[3], &TokenClaim::new(42, "w1", "w2"), 1_001)
            .unwrap_err();
        assert_eq!(e.code(), "MIGRATION_CAPACITY");
        assert!(e.to_string().contains("3 redeemed tokens"), "{e}");
        assert_eq!(ledger.len(), 3);
        // Replays are still refused as replays while the tokens are unexpired.
        for t in &tokens[..3] {
            let e = ledger
                .redeem(&key(), t, &TokenClaim::new(42, "w1", "w2"), 5_999)
                .unwrap_err();
            assert_eq!(e.code(), "TOKEN_REPLAYED");
        }
        // Once they expire (token(_, 1_000) expires at 6_000) there is room again; the expired
        // tokens themselves are refused by the expiry check.
        let fresh = token(9, 6_000);
        ledger
            .redeem(&key(), &fresh, &TokenClaim::new(42, "w1", "w2"), 6_000)
            .unwrap();
        assert_eq!(ledger.len(), 1);
        let e = ledger
            .redeem(&key(), &tokens[0], &TokenClaim::new(42, "w1", "w2"), 6_000)
            .unwrap_err();
        assert_eq!(e.code(), "TOKEN_EXPIRED");
    }

    #[test]
    fn the_default_bound_holds_under_a_burst() {
        let mut ledger = TokenLedger::new();
        let mut refused = 0;
        for i in 0..(DEFAULT_MAX_REDEEMED_TOKENS as u64 + 100) {
            let mut nonce = [0u8; 32];
            nonce[..8].copy_from_slice(&i.to_be_bytes());
            let t = key()
                .issue_with_nonce(nonce, 42, "w1", "w2", 0, DEFAULT_TOKEN_TTL_MS)
                .unwrap();
            if let Err(e) = ledger.redeem(&key(), &t, &TokenClaim::new(42, "w1", "w2"), 0) {
                assert_eq!(e.code(), "MIGRATION_CAPACITY");
                refused += 1;
            }
        }
        assert_eq!(ledger.len(), DEFAULT_MAX_REDEEMED_TOKENS);
        assert_eq!(refused, 100);
    }

    #[test]
    fn overlong_ids_are_refused_everywhere() {
        let long = "x".repeat(MAX_WORKER_ID_LEN + 1);
        assert_eq!(
            key()
                .issue_with_nonce([0; 32], 1, &long, "t", 0, 1)
                .unwrap_err()
                .code(),
            "TOKEN_INVALID"
        );
        let mut t = token(1, 0);
        t.source = long;
        assert_eq!(t.encode().unwrap_err().code(), "TOKEN_INVALID");
    }

    #[test]
    fn issue_uses_rng_and_debug_hides_secrets() {
        let rng = ring::rand::SystemRandom::new();
        let a = key().issue(&rng, 1, "a", "b", 0, 10).unwrap();
        let b = key().issue(&rng, 1, "a", "b", 0, 10).unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_eq!(format!("{:?}", key()), "TokenKey(<redacted>)");
        let dbg = format!("{a:?}");
        assert!(!dbg.contains("mac"), "{dbg}");
        assert!(TokenKey::generate(&rng).is_ok());
    }

    #[test]
    fn ttl_saturates() {
        let t = key()
            .issue_with_nonce([0; 32], 1, "a", "b", u64::MAX - 1, 10)
            .unwrap();
        assert_eq!(t.expires_at_ms, u64::MAX);
    }
}

//! The resume credential (PROTOCOL.md section 15.1): what a client presents in HELLO to re-attach
//! its session on a new connection, to the same director or another one of the cluster.
//!
//! It exists so that a session can outlive its QUIC connection without any director having to
//! remember it: the credential carries the session id, the resume generation and the owner's id
//! (a hint for finding it), sealed with AES-256-GCM under a key every cluster member derives from
//! the cluster secret. The client cannot read or change it, and nobody without the cluster secret
//! can make one. Whether a credential is current (not replayed) is decided by the session's owner,
//! which remembers the generation (`rpcnet_session::participant::SessionBook::claim`): a resume
//! moves the session to generation + 1, so the same credential never resumes twice.
//!
//! Layout: `nonce (12 bytes) | ciphertext | tag (16 bytes)`, the plaintext being
//! `session_id u64 | generation u32 | issued_at_ms u64 | owner_len u8 | owner (UTF-8)`, AAD the
//! ASCII bytes `rpcnet/1 resume`. No I/O, no clock and no randomness here: the nonce and the time
//! are inputs.

use bytes::{BufMut, Bytes, BytesMut};
use ring::aead;

/// AES-256-GCM additional authenticated data of every credential.
pub const RESUME_AAD: &[u8] = b"rpcnet/1 resume";

/// Length of the AES-GCM nonce that starts a credential.
pub const NONCE_LEN: usize = 12;
/// Length of the AES-GCM tag that ends a credential.
pub const TAG_LEN: usize = 16;
/// Longest credential a director accepts, bytes (a 255-byte owner id fits).
pub const MAX_CREDENTIAL_LEN: usize = NONCE_LEN + 8 + 4 + 8 + 1 + 255 + TAG_LEN;

/// Why a credential was refused. [`ResumeError::code`] is the stable code that leads the ERROR
/// message a director answers HELLO with (PROTOCOL.md section 15.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    /// `RESUME_INVALID`: not a credential of this cluster (forged, tampered, truncated, or sealed
    /// under another cluster secret).
    #[error("resume credential invalid: {detail}")]
    Invalid {
        /// What was wrong.
        detail: String,
    },
    /// `RESUME_REPLAYED`: a credential of an older generation: the session was resumed with it
    /// already, so this copy cannot resume it again.
    #[error("resume credential replayed: session {session_id:016x} is at generation {current}, the credential is for generation {presented}")]
    Replayed {
        /// The session.
        session_id: u64,
        /// The generation in the credential.
        presented: u32,
        /// The generation the owner holds.
        current: u32,
    },
    /// `RESUME_UNKNOWN`: no worker of the cluster holds the session any more (it ended, or its
    /// resume window passed).
    #[error("session {session_id:016x} cannot be resumed: no worker holds it")]
    Unknown {
        /// The session.
        session_id: u64,
    },
}

impl ResumeError {
    /// The stable code: `RESUME_INVALID`, `RESUME_REPLAYED` or `RESUME_UNKNOWN`.
    pub fn code(&self) -> &'static str {
        match self {
            ResumeError::Invalid { .. } => "RESUME_INVALID",
            ResumeError::Replayed { .. } => "RESUME_REPLAYED",
            ResumeError::Unknown { .. } => "RESUME_UNKNOWN",
        }
    }
}

/// What a credential says, once opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeCredential {
    /// The session (PROTOCOL.md section 2.1: the first connection's exporter bytes).
    pub session_id: u64,
    /// How many times the session was resumed before this credential was issued.
    pub generation: u32,
    /// When the director issued it, unix ms (for logs; expiry is the owner's resume window).
    pub issued_at_ms: u64,
    /// The worker that owned the session when it was issued: where a director looks first.
    pub owner: String,
}

/// The AES-256-GCM key that seals credentials (derive it from the cluster secret).
pub struct ResumeKey(aead::LessSafeKey);

impl std::fmt::Debug for ResumeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResumeKey(..)")
    }
}

impl ResumeKey {
    /// A key from 32 secret bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let key = aead::UnboundKey::new(&aead::AES_256_GCM, bytes).expect("32-byte AES key");
        ResumeKey(aead::LessSafeKey::new(key))
    }

    /// Seals `c` with the 12 random bytes `nonce` (a fresh one per credential).
    ///
    /// # Panics
    ///
    /// If `c.owner` is longer than 255 bytes.
    pub fn seal(&self, c: &ResumeCredential, nonce: [u8; NONCE_LEN]) -> Bytes {
        assert!(c.owner.len() <= 255, "owner id over 255 bytes");
        let mut body = Vec::with_capacity(21 + c.owner.len() + TAG_LEN);
        body.put_u64(c.session_id);
        body.put_u32(c.generation);
        body.put_u64(c.issued_at_ms);
        body.put_u8(c.owner.len() as u8);
        body.put_slice(c.owner.as_bytes());
        self.0
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(RESUME_AAD),
                &mut body,
            )
            .expect("AES-GCM seals any length below 64 GiB");
        let mut out = BytesMut::with_capacity(NONCE_LEN + body.len());
        out.put_slice(&nonce);
        out.put_slice(&body);
        out.freeze()
    }

    /// Opens a credential. Errors: `RESUME_INVALID` naming what is wrong.
    pub fn open(&self, sealed: &[u8]) -> Result<ResumeCredential, ResumeError> {
        let invalid = |detail: String| ResumeError::Invalid { detail };
        if sealed.len() < NONCE_LEN + 21 + TAG_LEN || sealed.len() > MAX_CREDENTIAL_LEN {
            return Err(invalid(format!(
                "{} bytes, expected {} to {MAX_CREDENTIAL_LEN}",
                sealed.len(),
                NONCE_LEN + 21 + TAG_LEN
            )));
        }
        let nonce: [u8; NONCE_LEN] = sealed[..NONCE_LEN].try_into().expect("12 bytes");
        let mut body = sealed[NONCE_LEN..].to_vec();
        let plain = self
            .0
            .open_in_place(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(RESUME_AAD),
                &mut body,
            )
            .map_err(|_| {
                invalid("authentication failed (forged, tampered or from another cluster)".into())
            })?;
        let u64_at = |i: usize| u64::from_be_bytes(plain[i..i + 8].try_into().expect("8 bytes"));
        let owner_len = plain[20] as usize;
        if plain.len() != 21 + owner_len {
            return Err(invalid(format!(
                "owner_len {owner_len} does not match the {} bytes that follow",
                plain.len() - 21
            )));
        }
        let owner = std::str::from_utf8(&plain[21..])
            .map_err(|_| invalid("owner is not UTF-8".into()))?
            .to_owned();
        Ok(ResumeCredential {
            session_id: u64_at(0),
            generation: u32::from_be_bytes(plain[8..12].try_into().expect("4 bytes")),
            issued_at_ms: u64_at(12),
            owner,
        })
    }
}

/// The route epoch that starts `generation` (PROTOCOL.md section 15.1): a route epoch's upper 32
/// bits are the session's resume generation, so every epoch a director uses after a resume is
/// above every epoch of the directors before it, and the owner's epoch fence (section 13.5)
/// turns away whatever an earlier director still sends.
pub fn generation_epoch(generation: u32) -> u64 {
    u64::from(generation) << 32
}

/// The resume generation a route epoch belongs to (its upper 32 bits).
pub fn epoch_generation(epoch: u64) -> u32 {
    (epoch >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> ResumeKey {
        ResumeKey::from_bytes(&[b; 32])
    }

    fn cred() -> ResumeCredential {
        ResumeCredential {
            session_id: 0x0123_4567_89ab_cdef,
            generation: 3,
            issued_at_ms: 1_700_000_000_000,
            owner: "worker-a".into(),
        }
    }

    #[test]
    fn round_trips_and_hides_its_contents() {
        let sealed = key(7).seal(&cred(), [1; 12]);
        assert_eq!(sealed.len(), NONCE_LEN + 21 + 8 + TAG_LEN);
        assert!(!sealed.windows(8).any(|w| w == b"worker-a"));
        assert_eq!(key(7).open(&sealed).unwrap(), cred());
    }

    #[test]
    fn forged_tampered_or_foreign_credentials_are_invalid() {
        let sealed = key(7).seal(&cred(), [1; 12]);
        for i in [0, NONCE_LEN, sealed.len() - 1] {
            let mut t = sealed.to_vec();
            t[i] ^= 1;
            let e = key(7).open(&t).unwrap_err();
            assert_eq!(e.code(), "RESUME_INVALID", "byte {i}");
        }
        assert_eq!(key(8).open(&sealed).unwrap_err().code(), "RESUME_INVALID");
        let e = key(7).open(&sealed[..20]).unwrap_err();
        assert!(e.to_string().contains("20 bytes"), "{e}");
        assert_eq!(key(7).open(&[]).unwrap_err().code(), "RESUME_INVALID");
    }

    #[test]
    fn generations_order_route_epochs() {
        assert!(generation_epoch(1) > generation_epoch(0) + u64::from(u32::MAX));
        assert_eq!(epoch_generation(generation_epoch(5) + 17), 5);
        assert_eq!(epoch_generation(3), 0);
    }
}

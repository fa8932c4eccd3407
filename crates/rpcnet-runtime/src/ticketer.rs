//! [`ClusterTicketer`]: TLS 1.3 session tickets (RFC 8446 section 4.6.1) that every director of a
//! cluster can open, so that a client resuming its session on another director (PROTOCOL.md
//! section 15) makes a resumed TLS handshake (PSK, RFC 8446 section 2.2) instead of a full one.
//!
//! rustls's own ticketers use a random key per process, so a ticket from one director is useless
//! at another. Here the ticket key is derived from the cluster secret and rolls every hour (the
//! "key rolling and erasure" rustls's `ProducesTickets::lifetime` asks for): the key of hour `h` is
//! HMAC-SHA256(base, `h` as u64 big-endian), base = HMAC-SHA256(cluster secret, "rpcnet/1 tls
//! ticket key"). A ticket is `hour u64 | nonce (12 bytes) | AES-256-GCM(state) | tag`, and a
//! director accepts tickets of the current and the previous hour. No early data is ever accepted
//! (`max_early_data_size` stays 0; PROTOCOL.md section 15.8).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ring::aead;
use ring::rand::{SecureRandom, SystemRandom};

/// Label of the base ticket key derived from the cluster secret.
pub const TICKET_KEY_LABEL: &[u8] = b"rpcnet/1 tls ticket key";
/// How long a ticket is offered for, s (the current hour and the next: a ticket issued at the
/// end of an hour stays usable for the hour after).
pub const TICKET_LIFETIME_S: u32 = 3_600;

/// Session tickets under a key of the cluster (see module docs). Counts the tickets it opened:
/// each is a resumed handshake.
pub struct ClusterTicketer {
    base: ring::hmac::Key,
    resumed: AtomicU64,
}

impl std::fmt::Debug for ClusterTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTicketer")
            .field("resumed", &self.resumed())
            .finish()
    }
}

impl ClusterTicketer {
    /// A ticketer with the base key `base` (derive it from the cluster secret with
    /// [`TICKET_KEY_LABEL`]).
    pub fn new(base: [u8; 32]) -> Self {
        ClusterTicketer {
            base: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &base),
            resumed: AtomicU64::new(0),
        }
    }

    /// Tickets opened so far (resumed handshakes).
    pub fn resumed(&self) -> u64 {
        self.resumed.load(Ordering::Relaxed)
    }

    fn key(&self, hour: u64) -> aead::LessSafeKey {
        let tag = ring::hmac::sign(&self.base, &hour.to_be_bytes());
        let key = aead::UnboundKey::new(&aead::AES_256_GCM, &tag.as_ref()[..32])
            .expect("a 32-byte AES key");
        aead::LessSafeKey::new(key)
    }

    fn seal(&self, hour: u64, plain: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; 12];
        SystemRandom::new().fill(&mut nonce).ok()?;
        let mut body = plain.to_vec();
        self.key(hour)
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(&hour.to_be_bytes()),
                &mut body,
            )
            .ok()?;
        let mut out = Vec::with_capacity(20 + body.len());
        out.extend_from_slice(&hour.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Some(out)
    }

    fn open(&self, now_hour: u64, ticket: &[u8]) -> Option<Vec<u8>> {
        let hour = u64::from_be_bytes(ticket.get(..8)?.try_into().ok()?);
        if hour != now_hour && hour.checked_add(1) != Some(now_hour) {
            return None;
        }
        let nonce: [u8; 12] = ticket.get(8..20)?.try_into().ok()?;
        let mut body = ticket.get(20..)?.to_vec();
        let plain = self
            .key(hour)
            .open_in_place(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(&hour.to_be_bytes()),
                &mut body,
            )
            .ok()?;
        Some(plain.to_vec())
    }
}

fn now_hour() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 3_600)
}

impl rustls::server::ProducesTickets for ClusterTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        TICKET_LIFETIME_S
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.seal(now_hour(), plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let plain = self.open(now_hour(), cipher)?;
        self.resumed.fetch_add(1, Ordering::Relaxed);
        Some(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_open_at_every_ticketer_of_the_cluster_for_two_hours_only() {
        let (a, b) = (ClusterTicketer::new([7; 32]), ClusterTicketer::new([7; 32]));
        let t = a.seal(100, b"resumption state").unwrap();
        assert_eq!(b.open(100, &t).unwrap(), b"resumption state");
        assert_eq!(
            b.open(101, &t).unwrap(),
            b"resumption state",
            "the next hour"
        );
        assert!(b.open(102, &t).is_none(), "rolled out");
        assert!(b.open(99, &t).is_none(), "from the future");
        assert!(
            ClusterTicketer::new([8; 32]).open(100, &t).is_none(),
            "another cluster"
        );
        let mut forged = t.clone();
        *forged.last_mut().unwrap() ^= 1;
        assert!(b.open(100, &forged).is_none());
        assert!(b.open(100, &t[..10]).is_none());
        assert!(b.open(100, &[]).is_none());
    }
}

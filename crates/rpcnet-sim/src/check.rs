//! The invariants checked after every step, and what a violation reports.

use std::fmt;

/// A broken invariant: which rule, where in the schedule, and what was seen. `Display` prints
/// the seed first, so a failing run can be replayed with `SIMULATION_SEED=<seed>`.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The schedule's seed.
    pub seed: u64,
    /// The step (event number) at which the rule broke.
    pub step: u64,
    /// Simulated time, ms since the schedule began.
    pub at_ms: u64,
    /// The rule: `exactly-once`, `one-owner`, `no-frozen-route`, `migration-timeout`,
    /// `deadline`, `liveness`, `resume`, `metadata`, `client-items`.
    pub rule: &'static str,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} violated {} at step {} ({} ms): {}",
            self.seed, self.rule, self.step, self.at_ms, self.detail
        )
    }
}

impl std::error::Error for Violation {}

/// The request headers the simulated client sends with call `call_id` (PROTOCOL.md section
/// 5.6): every owner must see them, with the director's `rpcnet-session-id`.
pub fn request_metadata_for(call_id: u64) -> rpcnet_protocol::Metadata {
    one_entry("authorization", call_id)
}

/// The response headers the simulated handler sets, at every (re)start of call `call_id`.
pub fn headers_for(call_id: u64) -> rpcnet_protocol::Metadata {
    one_entry("x-handler", call_id)
}

/// The response trailers the simulated handler sends with its END.
pub fn trailers_for(call_id: u64) -> rpcnet_protocol::Metadata {
    one_entry("x-items-bin", call_id)
}

fn one_entry(key: &str, call_id: u64) -> rpcnet_protocol::Metadata {
    let mut m = rpcnet_protocol::Metadata::new();
    m.append(key, format!("call-{call_id}"))
        .expect("a valid entry");
    m
}

/// The payload the simulated handler produces for item `seq` of call `call_id`.
pub fn payload_for(call_id: u64, seq: u64) -> bytes::Bytes {
    let mut x = call_id
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(seq.wrapping_mul(0xbf58_476d_1ce4_e5b9));
    x ^= x >> 31;
    bytes::Bytes::copy_from_slice(&x.to_be_bytes())
}

/// The payload of a bidi client's item `seq` of call `call_id` (distinct from every item the
/// handler produces).
pub fn client_payload_for(call_id: u64, seq: u64) -> bytes::Bytes {
    let mut b = payload_for(!call_id, seq).to_vec();
    b.push(b'c');
    bytes::Bytes::from(b)
}

/// The checkpoint state the simulated handler saves before producing item `seq`.
pub fn state_for(seq: u64) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(&seq.to_be_bytes())
}

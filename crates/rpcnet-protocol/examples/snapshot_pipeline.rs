//! Benchmark of the snapshot pipeline alone (RFC-001 phases 4-5 without any I/O): encode
//! (capture), compress (zstd level 1), seal (AES-256-GCM under an HKDF-derived key), then open,
//! decompress and decode, for sessions carrying 1 KiB, 64 KiB and 1 MiB of application state.
//!
//! `cargo run --release -p rpcnet-protocol --example snapshot_pipeline [iterations]` prints one
//! JSON object per size: median and p99 per stage in microseconds.

use std::time::Instant;

use bytes::Bytes;
use rpcnet_protocol::migration::snapshot::{
    compress, decode, decompress, encode, open_frame, seal_frame, DEFAULT_ZSTD_LEVEL,
};
use rpcnet_protocol::migration::{CallSnapshot, SessionSnapshot};

/// Pseudo-random bytes (xorshift), so zstd cannot shrink the state to nothing.
fn state(len: usize) -> Bytes {
    let mut x: u32 = 2_463_534_242;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let secret = [9u8; 32];
    for size in [1024usize, 64 * 1024, 1024 * 1024] {
        let snap = SessionSnapshot {
            session_id: 42,
            connection_id: "00112233aabbccdd".into(),
            captured_at_ms: 1,
            route_epoch: 0,
            app_state: state(size),
            calls: vec![CallSnapshot {
                call_id: 7,
                method: "tokens".into(),
                request: Bytes::from_static(b"{\"count\":180,\"intervalMs\":50}"),
                streaming: true,
                deadline_ms: 0,
                next_seq: 57,
                pending: vec![(57, Bytes::from_static(b"{\"seq\":57}"))],
                checkpoint: Some(rpcnet_protocol::Checkpoint {
                    seq: 57,
                    read: 0,
                    state: Bytes::from_static(b"{\"startedAt\":1,\"hash\":3}"),
                }),
                headers: Default::default(),
            }],
        };
        let names = [
            "encode",
            "compress",
            "seal",
            "open",
            "decompress",
            "decode",
            "total",
        ];
        let mut t: Vec<Vec<f64>> = vec![Vec::with_capacity(iterations); names.len()];
        let mut sealed_len = 0;
        for i in 0..iterations {
            let s0 = Instant::now();
            let framed = encode(&snap).unwrap();
            let s1 = Instant::now();
            let packed = compress(&framed, DEFAULT_ZSTD_LEVEL).unwrap();
            let s2 = Instant::now();
            let mut nonce = [0u8; 12];
            nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let sealed = seal_frame(&packed, &secret, i as u64, 42, 1, nonce).unwrap();
            let s3 = Instant::now();
            let (_, opened) = open_frame(&sealed, &secret, Some(42)).unwrap();
            let s4 = Instant::now();
            let plain = decompress(&opened, 64 << 20).unwrap();
            let s5 = Instant::now();
            let back = decode(&plain).unwrap();
            let s6 = Instant::now();
            assert_eq!(back.app_state.len(), size);
            sealed_len = sealed.len();
            let us = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e6;
            for (k, (a, b)) in [
                (s0, s1),
                (s1, s2),
                (s2, s3),
                (s3, s4),
                (s4, s5),
                (s5, s6),
                (s0, s6),
            ]
            .into_iter()
            .enumerate()
            {
                t[k].push(us(a, b));
            }
        }
        let stages: Vec<String> = names
            .iter()
            .zip(t.iter_mut())
            .map(|(n, v)| {
                format!(
                    "\"{n}\":{{\"p50_us\":{:.1},\"p99_us\":{:.1}}}",
                    percentile(v, 0.5),
                    percentile(v, 0.99)
                )
            })
            .collect();
        println!("{{\"state_bytes\":{size},\"sealed_bytes\":{sealed_len},\"iterations\":{iterations},{}}}", stages.join(","));
    }
}

//! Rust-only side of `benchmark/run.ts`: an rpcnet server and client with no JavaScript at all,
//! driving [`rpcnet_runtime::Server`] and [`rpcnet_runtime::Client`] directly. Its numbers are the
//! floor that the TypeScript API is compared with, so the gap between the two is what the N-API
//! binding and the JavaScript event loop cost.
//!
//! - `bench server`: binds 127.0.0.1 (self-signed certificate), serves `echo` (unary, 64-byte
//!   response) and `stream` (server-streaming 1 KiB items, as many as the 4-byte big-endian count
//!   in the request), and prints `{"addr":"…","fingerprint":"…"}` as one line on stdout.
//! - `bench client`: connects with the fingerprint pinned, runs one scenario (warm-up, then the
//!   measured window) and prints one JSON line with the raw result.
//!
//! The wire contract (method names, sizes, count encoding) is the same as that of
//! `benchmark/rpcnet-server.ts` and `benchmark/client.ts`, so either client can talk to either
//! server. Build with `cargo build --release -p rpcnet-runtime --examples`.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use rpcnet_runtime::tls::parse_fingerprint;
use rpcnet_runtime::{
    Client, ClientConfig, ClientTrust, MethodKind, PushStatus, Server, ServerConfig, ServerEvent,
};

/// Unary method name.
const UNARY_METHOD: &str = "echo";
/// Server-streaming method name.
const STREAM_METHOD: &str = "stream";
/// Unary request and response size, bytes.
const UNARY_SIZE: usize = 64;
/// Streaming item size, bytes.
const ITEM_SIZE: usize = 1024;
/// Items taken per `next_batch` (same as the TypeScript client's batch).
const ITEM_BATCH: usize = 1024;
/// Streaming producer yields to the scheduler after this many pushes that did not block.
const YIELD_EVERY: u32 = 64;

#[derive(Parser)]
#[command(about = "rpcnet Rust-only benchmark server and client (driven by benchmark/run.ts)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve `echo` and `stream` until killed (or until stdin closes with --watch-stdin).
    Server {
        /// UDP address to bind.
        #[arg(long, default_value = "127.0.0.1:0")]
        bind: SocketAddr,
        /// Exit when stdin reaches end-of-file (the driver died).
        #[arg(long)]
        watch_stdin: bool,
    },
    /// Run one scenario against a server and print a JSON result line.
    Client {
        /// Server address, ip:port.
        #[arg(long)]
        addr: SocketAddr,
        /// Server certificate SHA-256 (64 hex digits).
        #[arg(long)]
        fingerprint: String,
        /// What to measure.
        #[arg(long, value_enum)]
        scenario: Scenario,
        /// Concurrent call loops on the one connection (unary only).
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Measured window, ms.
        #[arg(long, default_value_t = 5000)]
        duration_ms: u64,
        /// Warm-up before the measured window, ms.
        #[arg(long, default_value_t = 1000)]
        warmup_ms: u64,
        /// Exit when stdin reaches end-of-file (the driver died).
        #[arg(long)]
        watch_stdin: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Scenario {
    /// 64-byte unary calls.
    Unary,
    /// One server-streaming call of 1 KiB items.
    Stream,
}

fn watch_stdin() {
    std::thread::spawn(|| {
        let mut buf = [0u8; 256];
        let mut stdin = std::io::stdin();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => std::process::exit(0),
                Ok(_) => {}
            }
        }
    });
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server {
            bind,
            watch_stdin: w,
        } => {
            if w {
                watch_stdin();
            }
            serve(bind).await
        }
        Command::Client {
            addr,
            fingerprint,
            scenario,
            concurrency,
            duration_ms,
            warmup_ms,
            watch_stdin: w,
        } => {
            if w {
                watch_stdin();
            }
            let warmup = Duration::from_millis(warmup_ms);
            let duration = Duration::from_millis(duration_ms);
            client(
                addr,
                &fingerprint,
                scenario,
                concurrency.max(1),
                warmup,
                duration,
            )
            .await
        }
    };
    if let Err(e) = result {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

async fn serve(bind: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let server = Arc::new(
        Server::bind(ServerConfig {
            bind,
            ..ServerConfig::default()
        })
        .await?,
    );
    server.register(UNARY_METHOD, MethodKind::Unary);
    server.register(STREAM_METHOD, MethodKind::ServerStreaming);
    println!(
        "{{\"addr\":\"{}\",\"fingerprint\":\"{}\"}}",
        server.local_addr(),
        server.cert_fingerprint()
    );
    let response = Bytes::from(vec![0x5a; UNARY_SIZE]);
    let item = Bytes::from(vec![0xa5; ITEM_SIZE]);
    loop {
        let events = server.next_events(1024).await;
        if events.is_empty() {
            return Ok(());
        }
        for event in events {
            let ServerEvent::Call {
                id, kind, payload, ..
            } = event
            else {
                continue;
            };
            match kind {
                MethodKind::Unary => {
                    server.respond(id, Ok(response.clone()));
                }
                MethodKind::ServerStreaming => {
                    let count = payload
                        .get(..4)
                        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                    tokio::spawn(produce(server.clone(), id, count, item.clone()));
                }
                // The benchmark registers no client-streaming method.
                MethodKind::ClientStreaming | MethodKind::Bidi => {}
            }
        }
    }
}

/// Pushes `count` copies of `item` into a streaming call, honouring backpressure, then ends it.
async fn produce(server: Arc<Server>, id: u64, count: u32, item: Bytes) {
    let mut unblocked = 0u32;
    for _ in 0..count {
        match server.push(id, item.clone()) {
            PushStatus::Ready => {
                unblocked += 1;
                if unblocked == YIELD_EVERY {
                    unblocked = 0;
                    tokio::task::yield_now().await;
                }
            }
            PushStatus::Full => {
                unblocked = 0;
                if !server.writable(id).await {
                    return;
                }
            }
            PushStatus::Closed => return,
        }
    }
    server.end(id, Ok(()));
}

/// What one measured window produced.
#[derive(Default)]
struct Window {
    ops: u64,
    errors: u64,
    bytes: u64,
    elapsed: Duration,
    /// Per-call latencies, ns (unary only).
    latencies: Vec<u64>,
}

async fn client(
    addr: SocketAddr,
    fingerprint: &str,
    scenario: Scenario,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<(), Box<dyn std::error::Error>> {
    let trust = ClientTrust::Pin(parse_fingerprint(fingerprint)?);
    let client = Arc::new(Client::connect(addr, ClientConfig::new(trust)).await?);
    let window = match scenario {
        Scenario::Unary => {
            unary_window(&client, concurrency, warmup, false).await;
            unary_window(&client, concurrency, duration, true).await
        }
        Scenario::Stream => stream_window(&client, warmup, duration).await?,
    };
    client.close().await;
    let mut lat = window.latencies;
    lat.sort_unstable();
    let pct = |q: f64| -> String {
        if lat.is_empty() {
            return "null".into();
        }
        let rank = ((q * lat.len() as f64).ceil() as usize).clamp(1, lat.len());
        format!("{}", lat[rank - 1] as f64 / 1e6)
    };
    let mean = if lat.is_empty() {
        "null".into()
    } else {
        format!(
            "{}",
            lat.iter().sum::<u64>() as f64 / lat.len() as f64 / 1e6
        )
    };
    println!(
        "{{\"ops\":{},\"errors\":{},\"bytes\":{},\"elapsedMs\":{},\"p50Ms\":{},\"p99Ms\":{},\"meanMs\":{}}}",
        window.ops,
        window.errors,
        window.bytes,
        window.elapsed.as_secs_f64() * 1e3,
        pct(0.50),
        pct(0.99),
        mean,
    );
    Ok(())
}

/// Runs `concurrency` call loops for `length`; each loop has one call outstanding at a time.
async fn unary_window(
    client: &Arc<Client>,
    concurrency: usize,
    length: Duration,
    record: bool,
) -> Window {
    let request = Bytes::from(vec![0x42; UNARY_SIZE]);
    let start = Instant::now();
    let end = start + length;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let request = request.clone();
        tasks.spawn(async move {
            let mut w = Window::default();
            while Instant::now() < end {
                let t0 = Instant::now();
                match client.unary(UNARY_METHOD, request.clone(), 0).await {
                    Ok(response) => {
                        w.ops += 1;
                        w.bytes += response.len() as u64;
                        if record {
                            w.latencies.push(t0.elapsed().as_nanos() as u64);
                        }
                    }
                    Err(e) => {
                        if w.errors == 0 {
                            eprintln!("bench: unary call failed: {e}");
                        }
                        w.errors += 1;
                    }
                }
            }
            w
        });
    }
    let mut total = Window::default();
    while let Some(joined) = tasks.join_next().await {
        let w = joined.expect("call loop panicked");
        total.ops += w.ops;
        total.errors += w.errors;
        total.bytes += w.bytes;
        total.latencies.extend(w.latencies);
    }
    total.elapsed = start.elapsed();
    total
}

/// One streaming call: items during `warmup` are discarded, items during `length` are counted,
/// then the call is cancelled.
async fn stream_window(
    client: &Client,
    warmup: Duration,
    length: Duration,
) -> Result<Window, Box<dyn std::error::Error>> {
    let mut stream = client
        .streaming(
            STREAM_METHOD,
            Bytes::copy_from_slice(&u32::MAX.to_be_bytes()),
            0,
        )
        .await?;
    let warm_end = Instant::now() + warmup;
    while Instant::now() < warm_end {
        if stream.next_batch(ITEM_BATCH).await?.is_none() {
            return Err("stream ended during warm-up".into());
        }
    }
    let mut w = Window::default();
    let start = Instant::now();
    let end = start + length;
    while Instant::now() < end {
        let Some(batch) = stream.next_batch(ITEM_BATCH).await? else {
            break;
        };
        w.ops += batch.len() as u64;
        w.bytes += batch.iter().map(|b| b.len() as u64).sum::<u64>();
    }
    w.elapsed = start.elapsed();
    stream.cancel();
    Ok(w)
}

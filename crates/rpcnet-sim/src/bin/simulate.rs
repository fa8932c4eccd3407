//! Runs the cluster simulation: `simulate [SCHEDULES]` runs that many seeded schedules (default
//! 10 000) on every core and prints `simulation: N schedules, 0 violations`; a violation prints
//! its seed and the command that replays it, and the process exits 1.
//! `SIMULATION_SEED=<seed> simulate` replays exactly that schedule.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use rpcnet_sim::{run_schedule, Report, Violation};

fn main() {
    if let Ok(seed) = std::env::var("SIMULATION_SEED") {
        let seed: u64 = seed.trim().parse().unwrap_or_else(|_| {
            eprintln!("SIMULATION_SEED must be an unsigned integer, got {seed:?}");
            std::process::exit(2);
        });
        match run_schedule(seed) {
            Ok(r) => println!("simulation: seed {seed} ok: {}", describe(&r)),
            Err(v) => {
                println!("simulation: {v}");
                std::process::exit(1);
            }
        }
        return;
    }
    let arg = std::env::args().nth(1);
    let schedules: u64 = match arg.as_deref().map(str::parse) {
        None => 10_000,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("usage: simulate [SCHEDULES]  (or SIMULATION_SEED=<seed> simulate)");
            std::process::exit(2);
        }
    };
    let first_seed: u64 = std::env::var("SIMULATION_FIRST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let failures: Mutex<Vec<Violation>> = Mutex::new(Vec::new());
    let total: Mutex<Report> = Mutex::new(Report::default());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= schedules {
                    return;
                }
                match run_schedule(first_seed + i) {
                    Ok(r) => add(&mut total.lock().unwrap(), &r),
                    Err(v) => failures.lock().unwrap().push(v),
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|v| v.seed);
    for v in failures.iter().take(5) {
        println!("simulation: {v}");
        println!("simulation: replay with SIMULATION_SEED={} cargo run --release -p rpcnet-sim --bin simulate", v.seed);
    }
    let total = total.into_inner().unwrap();
    println!(
        "simulation: {schedules} schedules, {} violations ({}; {:.1} s)",
        failures.len(),
        describe(&total),
        started.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        std::process::exit(1);
    }
}

fn add(total: &mut Report, r: &Report) {
    total.steps += r.steps;
    total.items += r.items;
    total.completed += r.completed;
    total.aborted += r.aborted;
    total.failovers += r.failovers;
    total.crashes += r.crashes;
    total.director_crashes += r.director_crashes;
    total.resumes += r.resumes;
    total.cut_connections += r.cut_connections;
    total.superseded += r.superseded;
    total.client_items += r.client_items;
}

fn describe(r: &Report) -> String {
    format!(
        "{} steps checked, {} items delivered, {} client items read, {} migrations completed, {} aborted, {} failovers, {} worker crashes, {} director crashes, {} client connections cut, {} sessions resumed, {} stale sessions superseded",
        r.steps, r.items, r.client_items, r.completed, r.aborted, r.failovers, r.crashes, r.director_crashes, r.cut_connections, r.resumes, r.superseded
    )
}

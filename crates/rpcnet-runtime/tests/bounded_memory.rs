//! Guard test for issue 6, section 5 (memory): a session migrating back and forth thousands of
//! times between two workers, with a live stream, must not make the cluster's memory grow with
//! the number of migrations.
//!
//! Before the fix every migration left ~3 KB of heap behind (quinn-proto's recycled
//! receive-stream state, one per stream the peer ever opened, up to the 65,536-stream window of
//! each cluster connection; and a restored-migration record on the target that was never
//! removed). The test counts live heap bytes with a counting global allocator (this test binary
//! only) across director, workers and client, which all run in this process, and asserts the
//! growth per migration stays far below that, and that what each worker keeps for migrations
//! ([`rpcnet_runtime::worker::Worker::migration_memory`]) does not grow with the migrations.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A global allocator that counts the bytes currently allocated.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to `System` with the same arguments and only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            LIVE_BYTES.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Migrations before the first measurement (connections, windows and buffers settle).
const WARM_UP: usize = 500;
/// Migrations measured.
const MEASURED: usize = 3_000;
/// Largest accepted growth of live heap bytes per measured migration, for the whole cluster.
/// Before the fix it was ~3,000 bytes; after it, the only growth left is the token ledger
/// filling up to its 5-second window (~110 bytes per migration, then flat).
const MAX_GROWTH_PER_MIGRATION: f64 = 1_000.0;

/// Live bytes once the migration in flight has settled.
async fn settled_live_bytes() -> isize {
    tokio::time::sleep(Duration::from_millis(300)).await;
    LIVE_BYTES.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_and_forth_migrations_keep_memory_bounded() {
    let dir = std::env::temp_dir().join(format!("rpcnet-memory-{}", std::process::id()));
    let (director, workers) = common::cluster(
        &dir,
        &["worker-a", "worker-b"],
        u64::MAX,
        64,
        Duration::from_millis(5),
    )
    .await;
    let director = Arc::new(director);
    // An embedder drains the director's events (undrained, they would pile up by design).
    let events = director.clone();
    tokio::spawn(async move { while !events.next_events(256).await.is_empty() {} });
    let client = common::client(&director).await;
    let mut stream = client
        .streaming("count", bytes::Bytes::new(), 0)
        .await
        .unwrap();
    let reader = tokio::spawn(async move {
        let mut items = 0u64;
        while let Ok(Some(batch)) = stream.next_batch(256).await {
            items += batch.len() as u64;
        }
        items
    });
    let session = loop {
        if let Some(s) = director.sessions().first() {
            break s.0;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    let mut completed = 0;
    let run = |n: usize| {
        let director = director.clone();
        async move {
            let mut ok = 0;
            for _ in 0..n {
                // Under heavy load a migration may time out and abort; that is not the point here.
                if director.migrate(session, None).await.is_ok() {
                    ok += 1;
                }
            }
            ok
        }
    };
    completed += run(WARM_UP).await;
    let before = settled_live_bytes().await;
    let started = Instant::now();
    completed += run(MEASURED).await;
    let after = settled_live_bytes().await;
    let per_migration = (after - before) as f64 / MEASURED as f64;
    let memory: Vec<_> = workers.iter().map(|w| w.migration_memory()).collect();
    eprintln!(
        "{MEASURED} migrations in {:.1} s ({completed} of {} completed): live heap {:.1} -> {:.1} MB, {per_migration:.0} bytes per migration; workers keep {memory:?}",
        started.elapsed().as_secs_f64(),
        WARM_UP + MEASURED,
        before as f64 / 1e6,
        after as f64 / 1e6,
    );
    assert!(
        completed >= (WARM_UP + MEASURED) / 2,
        "only {completed} migrations completed"
    );
    assert!(
        per_migration < MAX_GROWTH_PER_MIGRATION,
        "live heap grew by {per_migration:.0} bytes per migration (at most {MAX_GROWTH_PER_MIGRATION} allowed)"
    );
    for m in &memory {
        // One session, one migration at a time: nothing kept per migration.
        assert!(m.sessions <= 1, "{m:?}");
        assert!(m.tombstones <= 1, "{m:?}");
        assert!(m.open_migrations <= 2, "{m:?}");
        // Tokens are kept until they expire (5 s), never more than were redeemed.
        assert!(m.redeemed_tokens <= completed, "{m:?}");
    }

    client.close().await;
    assert!(reader.await.unwrap() > 0);
    for w in &workers {
        w.close().await;
    }
    director.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

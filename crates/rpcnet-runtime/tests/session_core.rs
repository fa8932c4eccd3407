//! Regression tests, over real QUIC, for rules that now live in the sans-IO session core
//! (`rpcnet-session`): a migrated call keeps the deadline it has left (issue 6, defect 2), and a
//! resumed handler starts from the latest checkpoint that reached the director (defect 1, Rust
//! side: a checkpoint taken after item k crosses before item k+1 exists).

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rpcnet_runtime::worker::Worker;
use rpcnet_runtime::{MethodKind, PushStatus, ServerEvent};
use tokio::sync::mpsc;

/// What a handler saw when a call (re)started on a worker.
#[derive(Debug)]
struct Started {
    worker: String,
    deadline_ms: u32,
    resume_seq: Option<u64>,
}

/// Serves `count` like `common::serve` (one item every `every`, checkpoint after each item,
/// taken at once and not with the next item), reporting every call start on `seen`.
async fn serve(worker: Arc<Worker>, every: Duration, seen: mpsc::UnboundedSender<Started>) {
    let server = worker.server().clone();
    server.register("count", MethodKind::ServerStreaming);
    loop {
        let events = server.next_events(16).await;
        if events.is_empty() {
            return;
        }
        for e in events {
            let ServerEvent::Call {
                id,
                resume,
                deadline_ms,
                ..
            } = e
            else {
                continue;
            };
            let _ = seen.send(Started {
                worker: worker.id().to_string(),
                deadline_ms,
                resume_seq: resume.as_ref().map(|r| r.seq),
            });
            let server = server.clone();
            tokio::spawn(async move {
                let mut seq = resume.map_or(0, |r| r.seq);
                while seq < 1_000 {
                    let item = Bytes::copy_from_slice(&seq.to_be_bytes());
                    if server.push(id, item) == PushStatus::Closed {
                        return;
                    }
                    seq += 1;
                    server.checkpoint(id, Bytes::new(), 0);
                    tokio::time::sleep(every).await;
                }
                server.end(id, Ok(()));
            });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrated_call_keeps_its_remaining_deadline_and_latest_checkpoint() {
    let dir = std::env::temp_dir().join(format!("rpcnet-core-{}", std::process::id()));
    let (director, workers) = common::cluster(&dir, &[], 0, 0, Duration::ZERO).await;
    let (tx, mut seen) = mpsc::unbounded_channel();
    let mut ws = workers;
    for id in ["worker-a", "worker-b"] {
        let w = Arc::new(
            Worker::start(common::worker_config(&dir, &director, id))
                .await
                .unwrap(),
        );
        tokio::spawn(serve(w.clone(), Duration::from_millis(200), tx.clone()));
        ws.push(w);
    }
    let client = common::client(&director).await;
    let started = std::time::Instant::now();
    let mut stream = client
        .streaming("count", Bytes::new(), 3_000)
        .await
        .unwrap();
    let first = seen.recv().await.unwrap();
    // The director passes on what is left of the deadline when it attaches the call (PROTOCOL.md
    // 13.4), counted in whole ms from its receipt of the REQUEST: a millisecond boundary may
    // fall in between.
    assert!(
        (2_990..=3_000).contains(&first.deadline_ms),
        "{}",
        first.deadline_ms
    );
    let mut next = 0u64;
    while next < 4 {
        for item in stream.next_batch(16).await.unwrap().unwrap() {
            assert_eq!(common::seq_of(&item), next);
            next += 1;
        }
    }
    // The handler checkpointed next = 4 right after item 3 and is now sleeping: migrate while
    // no item 4 exists yet.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (session_id, _, owner) = director.sessions().pop().unwrap();
    let target = if owner == "worker-a" {
        "worker-b"
    } else {
        "worker-a"
    };
    let report = director
        .migrate(session_id, Some(target.into()))
        .await
        .unwrap();
    assert!(report.completed);
    let elapsed = started.elapsed().as_millis() as u32;
    let resumed = seen.recv().await.unwrap();
    assert_eq!(resumed.worker, target);
    assert_eq!(
        resumed.resume_seq,
        Some(4),
        "resumed from the latest checkpoint"
    );
    assert!(
        resumed.deadline_ms <= 3_000 - elapsed + 50 && resumed.deadline_ms > 0,
        "the new owner got {} ms of deadline after {elapsed} ms of a 3000 ms call",
        resumed.deadline_ms
    );
    while let Ok(Some(batch)) = stream.next_batch(16).await {
        for item in batch {
            assert_eq!(common::seq_of(&item), next, "exactly once, in order");
            next += 1;
        }
    }
    // The call ends with DEADLINE_EXCEEDED near 3 s, not a fresh deadline after the migration.
    let total = started.elapsed();
    assert!(
        total < Duration::from_millis(3_600),
        "call lasted {total:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

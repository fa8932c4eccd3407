//! Failure detection under loss and the heartbeat lease (issue 6, defect 7; PROTOCOL.md 14.1),
//! over real QUIC with the worker's heartbeats through a lossy UDP proxy:
//! - 20% loss each way on the heartbeat path is not death: no worker is declared lost;
//! - a worker whose heartbeats stop reaching the director fences itself (stops producing)
//!   before the director fails its session over: one producing owner at a time.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::lossy_proxy::LossyProxy;
use rpcnet_runtime::director::{Director, DirectorConfig, DirectorEvent};
use rpcnet_runtime::worker::{Worker, WorkerConfig};

/// A worker registering with `director` (a director's or a proxy's management address), serving
/// `count` one item every 20 ms; `on_push` sees every accepted item.
async fn worker(
    dir: &std::path::Path,
    id: &str,
    director: std::net::SocketAddr,
    on_push: common::OnPush,
) -> Arc<Worker> {
    let w = Arc::new(
        Worker::start(WorkerConfig::new(
            id,
            vec![director.to_string()],
            common::creds(dir, id),
        ))
        .await
        .unwrap(),
    );
    let every = Duration::from_millis(20);
    tokio::spawn(common::serve_observed(
        w.clone(),
        100_000,
        8,
        every,
        on_push,
    ));
    w
}

/// Reads the stream for `span`, checking exactly once and in order from `next`.
async fn read_for(stream: &mut rpcnet_runtime::ItemStream, next: &mut u64, span: Duration) {
    let stop = Instant::now() + span;
    while Instant::now() < stop {
        let batch = stream.next_batch(64).await.unwrap();
        for item in batch.expect("the stream goes on") {
            assert_eq!(common::seq_of(&item), *next, "exactly once, in order");
            *next += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_percent_heartbeat_loss_is_not_death() {
    let dir = std::env::temp_dir().join(format!("rpcnet-lease-loss-{}", std::process::id()));
    let director = Director::bind(DirectorConfig::new(common::creds(&dir, "director")))
        .await
        .unwrap();
    let proxy = LossyProxy::start(director.mgmt_addr(), 200, 0x5eed).await;
    let _a = worker(&dir, "worker-a", proxy.addr, Arc::new(|_| {})).await;
    let _b = worker(&dir, "worker-b", director.mgmt_addr(), Arc::new(|_| {})).await;
    let client = common::client(&director).await;
    let mut stream = client.streaming("count", Bytes::new(), 0).await.unwrap();
    let mut next = 0;
    read_for(&mut stream, &mut next, Duration::from_secs(15)).await;
    let events = director.next_events(10_000).await;
    let lost: Vec<_> = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                DirectorEvent::WorkerLost { .. } | DirectorEvent::Failover { .. }
            )
        })
        .collect();
    assert!(lost.is_empty(), "declared dead under 20% loss: {lost:?}");
    assert!(next > 300, "the stream went on: {next} items in 15 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_worker_stops_producing_before_its_session_fails_over() {
    let dir = std::env::temp_dir().join(format!("rpcnet-lease-cut-{}", std::process::id()));
    let director = Director::bind(DirectorConfig::new(common::creds(&dir, "director")))
        .await
        .unwrap();
    let proxy = LossyProxy::start(director.mgmt_addr(), 0, 1).await;
    let origin = Instant::now();
    let last_push_a = Arc::new(AtomicU64::new(0));
    let seen = last_push_a.clone();
    let on_push: common::OnPush =
        Arc::new(move |_| seen.store(origin.elapsed().as_millis() as u64, Ordering::SeqCst));
    let _a = worker(&dir, "worker-a", proxy.addr, on_push).await;
    let client = common::client(&director).await;
    let mut stream = client.streaming("count", Bytes::new(), 0).await.unwrap();
    let mut next = 0;
    read_for(&mut stream, &mut next, Duration::from_millis(300)).await;
    let _b = worker(&dir, "worker-b", director.mgmt_addr(), Arc::new(|_| {})).await;
    assert_eq!(director.sessions()[0].2, "worker-a");
    proxy.set_loss(1_000);
    let failed_over_at = loop {
        let events = director.next_events(64).await;
        if events
            .iter()
            .any(|e| matches!(e, DirectorEvent::Failover { .. }))
        {
            break origin.elapsed().as_millis() as u64;
        }
    };
    let last = last_push_a.load(Ordering::SeqCst);
    assert!(
        last + 50 < failed_over_at,
        "worker-a produced at {last} ms, its session failed over at {failed_over_at} ms"
    );
    read_for(&mut stream, &mut next, Duration::from_millis(500)).await;
    assert!(next > 20, "the stream resumed on worker-b: {next} items");
    assert_eq!(director.sessions()[0].2, "worker-b");
}

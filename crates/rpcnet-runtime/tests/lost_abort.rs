//! Issue 6, defect 3, over real QUIC: a MigrationAbort that never reaches the source must not
//! leave the session frozen there. The target refuses the restore after the source captured the
//! session; the abort to the source is dropped by a proxy in front of its management port. The
//! next ATTACH carries a newer route epoch (PROTOCOL.md 13.5), so the source serves the session
//! again from the state it captured, and the stream goes on, exactly once, in order.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::lossy_proxy::LossyProxy;
use rpcnet_runtime::director::{Director, DirectorConfig};
use rpcnet_runtime::worker::{HookAnswer, Worker, WorkerConfig, WorkerHook};

/// A free UDP port on loopback (bound, then released).
fn free_port() -> std::net::SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_abort_does_not_leave_the_source_frozen() {
    let dir = std::env::temp_dir().join(format!("rpcnet-lost-abort-{}", std::process::id()));
    let director = Director::bind(DirectorConfig::new(common::creds(&dir, "director")))
        .await
        .unwrap();
    // worker-a's management port sits behind a proxy that will drop the MigrationAbort.
    let a_mgmt = free_port();
    let proxy = Arc::new(LossyProxy::start(a_mgmt, 0, 3).await);
    let a = Arc::new(
        Worker::start(WorkerConfig {
            mgmt: a_mgmt,
            advertise_mgmt: Some(proxy.addr.to_string()),
            ..common::worker_config(&dir, &director, "worker-a")
        })
        .await
        .unwrap(),
    );
    let every = Duration::from_millis(20);
    tokio::spawn(common::serve(a.clone(), 100_000, 8, every));
    let client = common::client(&director).await;
    let mut stream = client.streaming("count", Bytes::new(), 0).await.unwrap();
    let mut next = 0u64;
    let read = |batch: Vec<Bytes>, next: &mut u64| {
        for item in batch {
            assert_eq!(common::seq_of(&item), *next, "exactly once, in order");
            *next += 1;
        }
    };
    while next < 10 {
        read(stream.next_batch(64).await.unwrap().unwrap(), &mut next);
    }
    // worker-b refuses the restore, after worker-a captured (froze) the session; from then on
    // nothing reaches worker-a's management port, so the MigrationAbort to it is lost.
    let b = Arc::new(
        Worker::start(common::worker_config(&dir, &director, "worker-b"))
            .await
            .unwrap(),
    );
    tokio::spawn(common::serve(b.clone(), 100_000, 8, every));
    b.set_hooks(false, false, true);
    let (hooks, cut) = (b.clone(), proxy.clone());
    tokio::spawn(async move {
        for hook in hooks.next_hooks(16).await {
            if let WorkerHook::Restore { id, .. } = hook {
                cut.set_loss(1_000);
                hooks.answer_hook(id, HookAnswer::Failed("refused by the test".into()));
            }
        }
    });
    let (session_id, _, _) = director.sessions().pop().unwrap();
    let migrated = director.migrate(session_id, Some("worker-b".into())).await;
    let e = migrated.expect_err("the target refused the restore");
    assert!(e.message.contains("StateTransfer"), "{e:?}");
    assert_eq!(director.sessions()[0].2, "worker-a");
    // The stream goes on from worker-a within a second, not after a 10 s route timeout.
    let aborted_at = Instant::now();
    let resumed_from = next;
    while next < resumed_from + 20 {
        let batch = tokio::time::timeout(Duration::from_secs(3), stream.next_batch(64))
            .await
            .expect("worker-a stayed frozen after the lost MigrationAbort")
            .unwrap()
            .unwrap();
        read(batch, &mut next);
    }
    assert!(
        aborted_at.elapsed() < Duration::from_secs(2),
        "20 items took {:?} after the abort",
        aborted_at.elapsed()
    );
}

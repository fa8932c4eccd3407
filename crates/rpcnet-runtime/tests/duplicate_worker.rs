//! A worker id has one owner at a time. A second worker that registers with the id of a live
//! worker is refused with a clear error and the first keeps serving its sessions; the id can be
//! registered again by the same worker (same addresses) and, once the director has declared its
//! worker dead, by a new one.

mod common;

use std::time::Duration;

use bytes::Bytes;
use rpcnet_protocol::migration::{ManagementMessage, Register};
use rpcnet_runtime::director::Director;
use rpcnet_runtime::worker::Worker;
use rpcnet_runtime::{mgmt, Client, ClientConfig, ErrorCode, ItemStream};

const ITEMS: u64 = 100_000;

/// Reads `n` more items and checks they continue the stream at `next`, in order.
async fn read_on(stream: &mut ItemStream, next: &mut u64, n: u64) {
    let until = *next + n;
    while *next < until {
        let batch = tokio::time::timeout(Duration::from_secs(5), stream.next_batch(64))
            .await
            .expect("items keep arriving")
            .unwrap()
            .expect("the stream is not over");
        for item in batch {
            assert_eq!(common::seq_of(&item), *next, "exactly once, in order");
            *next += 1;
        }
    }
}

fn owner(director: &Director) -> String {
    director.sessions().pop().expect("one session").2
}

/// Director and worker-a in cluster directory `dir`, and a client whose stream from worker-a
/// has delivered at least its first 20 items, with the `seq` of its next item (a batch may end
/// past 20).
async fn streaming(
    dir: &std::path::Path,
) -> (
    Director,
    Vec<std::sync::Arc<Worker>>,
    Client,
    ItemStream,
    u64,
) {
    let (director, workers) =
        common::cluster(dir, &["worker-a"], ITEMS, 8, Duration::from_millis(2)).await;
    let client = common::client(&director).await;
    let mut stream = client.streaming("count", Bytes::new(), 0).await.unwrap();
    let mut next = 0;
    read_on(&mut stream, &mut next, 20).await;
    (director, workers, client, stream, next)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_worker_with_a_live_id_is_refused_and_the_first_keeps_serving() {
    let dir = std::env::temp_dir().join(format!("rpcnet-dup-worker-{}", std::process::id()));
    let (director, workers, _client, mut stream, mut next) = streaming(&dir).await;

    let e = Worker::start(common::worker_config(&dir, &director, "worker-a"))
        .await
        .err()
        .expect("a second worker-a is refused");
    assert_eq!(e.code, ErrorCode::InvalidArgument, "{e}");
    let first = workers[0].server().local_addr();
    assert!(
        e.message.starts_with(&format!(
            "worker id worker-a is already registered by a live worker at {first}"
        )),
        "{e}"
    );

    // The first worker still owns the session and keeps serving it.
    read_on(&mut stream, &mut next, 200).await;
    assert_eq!(owner(&director), "worker-a");
    assert_eq!(director.workers(), vec![("worker-a".to_string(), 1)]);
    assert_eq!(workers[0].server().open_calls(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_id_is_registered_again_by_its_worker_or_after_its_death() {
    let dir = std::env::temp_dir().join(format!("rpcnet-reregister-{}", std::process::id()));
    let (director, workers, client, mut stream, mut next) = streaming(&dir).await;

    // The same worker registering again (as after the director restarted): accepted.
    let as_worker_a = Client::connect(
        director.mgmt_addr(),
        ClientConfig::cluster(common::creds(&dir, "worker-a")),
    )
    .await
    .unwrap();
    let again = ManagementMessage::Register(Register {
        worker_id: "worker-a".into(),
        user_addr: workers[0].server().local_addr().to_string(),
        mgmt_addr: workers[0].mgmt_addr().to_string(),
        lease_ms: 0,
    });
    mgmt::call(&as_worker_a, mgmt::REGISTER, &again, 5_000)
        .await
        .expect("the same worker registers again");
    read_on(&mut stream, &mut next, 50).await;
    assert_eq!(owner(&director), "worker-a");
    // The call ends here: a worker registers before its methods are, so a call re-attached the
    // moment its successor registers could find no method yet.
    drop(stream);

    // Declared dead (no heartbeats): a new worker may take the id and serves the session.
    workers[0].close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !director.workers().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker-a never declared dead"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let successor = std::sync::Arc::new(
        Worker::start(common::worker_config(&dir, &director, "worker-a"))
            .await
            .expect("the id of a dead worker can be registered"),
    );
    tokio::spawn(common::serve(
        successor.clone(),
        ITEMS,
        8,
        Duration::from_millis(2),
    ));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut stream = client.streaming("count", Bytes::new(), 0).await.unwrap();
    let mut next = 0;
    read_on(&mut stream, &mut next, 50).await;
    assert_eq!(owner(&director), "worker-a");
    assert_eq!(director.workers(), vec![("worker-a".to_string(), 1)]);
    assert_eq!(successor.server().open_calls(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

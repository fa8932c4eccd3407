//! A migration while the client has stopped reading: the source can freeze a call only at an
//! item boundary, so the migration either completes (the blocked write sat at a boundary) or
//! aborts after State Capture times out. Either way the client, once it reads again, gets every
//! item exactly once and in order, and the session is where the report says.

mod common;

use std::time::Duration;

use bytes::Bytes;

const ITEMS: u64 = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_a_session_whose_reader_stalled_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("rpcnet-stalled-{}", std::process::id()));
    // 16 KiB items produced as fast as the windows allow: QUIC flow control blocks the source's
    // writes while the client does not read.
    let (director, _workers) = common::cluster(
        &dir,
        &["worker-a", "worker-b"],
        ITEMS,
        16 * 1024,
        Duration::ZERO,
    )
    .await;
    let client = common::client(&director).await;
    let mut stream = client.streaming("count", Bytes::new(), 0).await.unwrap();
    let first = stream.next_batch(1).await.unwrap().unwrap();
    assert_eq!(common::seq_of(&first[0]), 0);
    tokio::time::sleep(Duration::from_millis(300)).await; // let every window fill up
    let (session_id, _, _) = director.sessions().pop().unwrap();
    let report = director.migrate(session_id, Some("worker-b".into())).await;
    let owner = director.sessions().pop().unwrap().2;
    match &report {
        Ok(r) => assert!(
            r.completed && owner == "worker-b",
            "completed but owner is {owner}"
        ),
        Err(e) => {
            assert!(e.message.contains("aborted"), "{e}");
            assert_eq!(
                owner, "worker-a",
                "an aborted migration leaves the session on the source"
            );
        }
    }
    let mut next = 1u64;
    while let Some(batch) = stream.next_batch(256).await.unwrap() {
        for item in batch {
            assert_eq!(
                common::seq_of(&item),
                next,
                "items arrive exactly once, in order"
            );
            next += 1;
        }
    }
    assert_eq!(next, ITEMS);
    // The session still works for a later migration, whichever way the first one went.
    let again = director.migrate(session_id, None).await.unwrap();
    assert!(again.completed);
    let _ = std::fs::remove_dir_all(&dir);
}

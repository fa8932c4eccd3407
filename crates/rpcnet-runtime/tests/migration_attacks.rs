//! A director and two workers in one process over real QUIC: forged, replayed and expired
//! migration tokens and a tampered snapshot sent to the workers' management ports are refused
//! with their migration codes, and the client's stream neither moves nor loses an item.

use std::time::Duration;

use bytes::Bytes;
use ring::rand::SystemRandom;
use rpcnet_protocol::migration::{
    snapshot, CallSnapshot, ManagementMessage, MigrationReason, MigrationRequest, SessionSnapshot,
    StateTransfer, TokenKey,
};
use rpcnet_runtime::mgmt;
use rpcnet_runtime::worker::token_key;
use rpcnet_runtime::{Client, ClientConfig, ErrorCode};

mod common;

const ITEMS: u64 = 300;

fn refused(result: Result<ManagementMessage, rpcnet_runtime::RpcError>, code: &str) {
    let e = result.expect_err("must be refused");
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(
        e.message.starts_with(code),
        "expected {code}, got {}",
        e.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_expired_and_tampered_messages_leave_the_session_in_place() {
    let dir = std::env::temp_dir().join(format!("rpcnet-attacks-{}", std::process::id()));
    let (director, workers) = common::cluster(
        &dir,
        &["worker-a", "worker-b"],
        ITEMS,
        8,
        Duration::from_millis(2),
    )
    .await;
    let client = common::client(&director).await;
    let mut stream = client.streaming("count", Bytes::new(), 0).await.unwrap();
    let first = stream.next_batch(1).await.unwrap().unwrap();
    assert_eq!(first.len(), 1);
    let (session_id, _, owner) = director.sessions().pop().unwrap();
    assert_eq!(owner, "worker-a");

    // A cluster member acting on its own: it holds a cluster certificate, so mutual TLS lets it in,
    // and the token and snapshot checks must stop it.
    // A director certificate: only directors may call a worker's migration methods, so the
    // attacks below reach the token and snapshot checks.
    let peer_creds = common::creds_as(&dir, rpcnet_runtime::cluster::Role::Director, "intruder");
    let to_b = Client::connect(
        workers[1].mgmt_addr(),
        ClientConfig::cluster(peer_creds.clone()),
    )
    .await
    .unwrap();
    let to_a = Client::connect(
        workers[0].mgmt_addr(),
        ClientConfig::cluster(peer_creds.clone()),
    )
    .await
    .unwrap();
    let rng = SystemRandom::new();
    let now = mgmt::now_ms();
    let request = |migration_id: u64, token| {
        ManagementMessage::Request(MigrationRequest {
            migration_id,
            session_id,
            source: "worker-a".into(),
            target: "worker-b".into(),
            reason: MigrationReason::Admin,
            token,
            requested_at_ms: now,
            route_epoch: 0,
        })
    };

    // Forged: a token MACed under another key is refused by the target and by the source.
    let forged = TokenKey::from_bytes(&[7u8; 32])
        .issue(&rng, session_id, "worker-a", "worker-b", now, 5_000)
        .unwrap();
    refused(
        mgmt::call(&to_b, mgmt::PREPARE, &request(900, forged.clone()), 2_000).await,
        "TOKEN_INVALID",
    );
    refused(
        mgmt::call(&to_a, mgmt::CAPTURE, &request(900, forged), 2_000).await,
        "TOKEN_INVALID",
    );

    // Replayed: the first redemption succeeds, the second is refused.
    let key = token_key(&peer_creds);
    let token = key
        .issue(&rng, session_id, "worker-a", "worker-b", now, 5_000)
        .unwrap();
    assert!(matches!(
        mgmt::call(&to_b, mgmt::PREPARE, &request(901, token.clone()), 2_000).await,
        Ok(ManagementMessage::PrepareAck(_))
    ));
    refused(
        mgmt::call(&to_b, mgmt::PREPARE, &request(902, token), 2_000).await,
        "TOKEN_REPLAYED",
    );

    // Expired.
    let stale = key
        .issue(
            &rng,
            session_id,
            "worker-a",
            "worker-b",
            now - 10_000,
            5_000,
        )
        .unwrap();
    refused(
        mgmt::call(&to_b, mgmt::PREPARE, &request(903, stale), 2_000).await,
        "TOKEN_EXPIRED",
    );

    // Tampered snapshot for the prepared migration 901: one flipped bit is detected.
    let snap = SessionSnapshot {
        session_id,
        connection_id: "forged".into(),
        captured_at_ms: now,
        route_epoch: 0,
        app_state: Bytes::from_static(b"evil"),
        calls: vec![CallSnapshot {
            call_id: 1,
            method: "count".into(),
            streaming: true,
            next_seq: 0,
            ..Default::default()
        }],
    };
    let mut sealed = snapshot::seal(&snap, &peer_creds.secret, 901, now, [1; 12]).unwrap();
    let last = sealed.len() - 1;
    sealed[last] ^= 0x01;
    let transfer = ManagementMessage::StateTransfer(StateTransfer {
        migration_id: 901,
        sealed: Bytes::from(sealed.clone()),
    });
    refused(
        mgmt::call(&to_b, mgmt::TRANSFER, &transfer, 2_000).await,
        "SNAPSHOT_TAMPERED",
    );
    // Replaying the StateTransfer (now with a valid seal) finds no prepared migration.
    sealed[last] ^= 0x01;
    let transfer = ManagementMessage::StateTransfer(StateTransfer {
        migration_id: 901,
        sealed: Bytes::from(sealed),
    });
    refused(
        mgmt::call(&to_b, mgmt::TRANSFER, &transfer, 2_000).await,
        "MIGRATION_STATE",
    );

    // Nothing moved: the session is still on worker-a and the stream is complete and in order.
    assert_eq!(director.sessions().pop().unwrap().2, "worker-a");
    let mut next = 1u64;
    while let Some(batch) = stream.next_batch(64).await.unwrap() {
        for item in batch {
            assert_eq!(common::seq_of(&item), next);
            next += 1;
        }
    }
    assert_eq!(next, ITEMS);

    // And a legitimate migration still works afterwards.
    let report = director
        .migrate(session_id, Some("worker-b".into()))
        .await
        .unwrap();
    assert!(report.completed);
    assert_eq!(director.sessions().pop().unwrap().2, "worker-b");

    // The target holds the (idle) session now; when the client goes away the director tells it
    // (SessionClosed) and it frees the session.
    assert_eq!(workers[1].server().sessions().ids(), vec![session_id]);
    client.close().await;
    let mut freed = false;
    for _ in 0..100 {
        if workers[1].server().sessions().is_empty() {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed, "the owner still holds the closed session");
    let _ = std::fs::remove_dir_all(&dir);
}

//! A whole migration, sans-IO: a director running the state machine, a source worker and a
//! target worker exchanging encoded management messages, with tokens and a sealed snapshot,
//! all in memory with a simulated clock (RFC-001 section 3.2). Also the failure paths: a
//! tampered snapshot, a replayed token and an expired token each abort the migration and
//! leave the session on the source.

use bytes::Bytes;
use rpcnet_protocol::migration::machine::{
    Action, Event, Migration, MigrationConfig, Outcome, Phase,
};
use rpcnet_protocol::migration::message::*;
use rpcnet_protocol::migration::snapshot::{self, CallSnapshot, SessionSnapshot};
use rpcnet_protocol::migration::token::{
    MigrationToken, TokenClaim, TokenKey, TokenLedger, DEFAULT_TOKEN_TTL_MS,
};
use rpcnet_protocol::migration::MigrationError;

const SECRET: &[u8] = b"cluster secret: 32 bytes long!!!";
const T0: u64 = 1_700_000_000_000;
const SESSION: u64 = 42;

fn token_key() -> TokenKey {
    TokenKey::from_bytes(&[1; 32])
}

/// Sends a message "over the wire": encode, then decode on the other side.
fn wire(m: impl Into<ManagementMessage>) -> ManagementMessage {
    let bytes = Bytes::from(m.into().encode().unwrap());
    ManagementMessage::decode_shared(&bytes).unwrap()
}

struct Worker {
    id: &'static str,
    ledger: TokenLedger,
    session: Option<SessionSnapshot>,
    frozen: bool,
    /// The request this worker was asked to prepare for (target side).
    request: Option<MigrationRequest>,
}

impl Worker {
    fn new(id: &'static str, session: Option<SessionSnapshot>) -> Self {
        Worker {
            id,
            ledger: TokenLedger::new(),
            session,
            frozen: false,
            request: None,
        }
    }

    /// Target: redeem the token from the request, answer PrepareAck.
    fn prepare(&mut self, now: u64) -> (PrepareAck, Option<MigrationError>) {
        let req = self.request.as_ref().unwrap();
        let res = self.ledger.redeem(
            &token_key(),
            &req.token,
            &TokenClaim::new(req.session_id, &req.source, self.id),
            now,
        );
        (
            PrepareAck {
                migration_id: req.migration_id,
                ready: res.is_ok(),
            },
            res.err(),
        )
    }

    /// Source: freeze and seal.
    fn capture(&mut self, migration_id: u64, now: u64) -> StateTransfer {
        self.frozen = true;
        let s = self.session.as_ref().unwrap();
        let sealed = snapshot::seal(s, SECRET, migration_id, now, [7; 12]).unwrap();
        StateTransfer {
            migration_id,
            sealed: Bytes::from(sealed),
        }
    }

    /// Target: open and restore, or report why not.
    fn restore(&mut self, t: &StateTransfer) -> ManagementMessage {
        match snapshot::open_with_header(&t.sealed, SECRET, Some(SESSION), 16 << 20) {
            Ok((h, s)) if h.migration_id == t.migration_id => {
                self.session = Some(s);
                MigrationComplete {
                    migration_id: t.migration_id,
                    session_id: SESSION,
                }
                .into()
            }
            Ok(_) => MigrationAbort {
                migration_id: t.migration_id,
                reason: "wrong migration".into(),
            }
            .into(),
            Err(e) => MigrationAbort {
                migration_id: t.migration_id,
                reason: format!("{}: {e}", e.code()),
            }
            .into(),
        }
    }
}

fn session() -> SessionSnapshot {
    SessionSnapshot {
        session_id: SESSION,
        connection_id: "conn-42".into(),
        captured_at_ms: T0,
        route_epoch: 0,
        app_state: Bytes::from_static(b"{\"counter\":7}"),
        calls: vec![CallSnapshot {
            call_id: 1,
            method: "ticks.stream".into(),
            request: Bytes::from_static(b"{}"),
            streaming: true,
            deadline_ms: 0,
            next_seq: 100,
            pending: vec![
                (100, Bytes::from_static(b"t100")),
                (101, Bytes::from_static(b"t101")),
            ],
            checkpoint: Some(rpcnet_protocol::Checkpoint {
                seq: 99,
                read: 0,
                state: Bytes::from_static(b"99"),
            }),
            headers: Default::default(),
        }],
    }
}

/// What can go wrong on purpose.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    TamperSnapshot,
    ReplayToken,
    SlowTarget,
}

struct Cluster {
    route: &'static str,
    source: Worker,
    target: Worker,
    used_token: Option<MigrationToken>,
}

/// Feeds an event; once a deadline has aborted the machine, late events are refused.
fn feed(m: &mut Migration, event: Event, now: u64) {
    if let Err(e) = m.handle(event, now) {
        assert_eq!(e.code(), "MIGRATION_STATE");
        assert_eq!(m.phase(), Phase::Aborted, "{e}");
    }
}

/// Runs one migration to its end; returns the machine. `now` advances 1 ms per step.
fn run(
    cluster: &mut Cluster,
    migration_id: u64,
    config: MigrationConfig,
    fault: Fault,
) -> Migration {
    let mut now = T0;
    let mut m = Migration::new(config, migration_id, SESSION, "w1", "w2", now);
    let mut sealed: Option<StateTransfer> = None;
    while !m.is_finished() {
        now += 1;
        let Some(action) = m.poll_action() else {
            // Nothing to do: jump to the next timer.
            now = m.poll_timeout().expect("a pending migration has a timer");
            m.handle_timeout(now);
            continue;
        };
        match action {
            Action::SendRequest => {
                let token = match (fault, &cluster.used_token) {
                    (Fault::ReplayToken, Some(old)) => old.clone(),
                    _ => token_key()
                        .issue_with_nonce(
                            [migration_id as u8; 32],
                            SESSION,
                            "w1",
                            "w2",
                            now,
                            DEFAULT_TOKEN_TTL_MS,
                        )
                        .unwrap(),
                };
                cluster.used_token = Some(token.clone());
                let req = MigrationRequest {
                    migration_id,
                    session_id: SESSION,
                    source: "w1".into(),
                    target: "w2".into(),
                    reason: MigrationReason::Drain,
                    token,
                    requested_at_ms: now,
                    route_epoch: 0,
                };
                let ManagementMessage::Request(r) = wire(req) else {
                    panic!()
                };
                cluster.target.request = Some(r);
                feed(&mut m, Event::RequestSent, now);
            }
            Action::AskConfirmation => {
                let c = MigrationConfirmation {
                    migration_id,
                    decision: ConfirmationDecision::Accept,
                };
                let ManagementMessage::Confirmation(c) = wire(c) else {
                    panic!()
                };
                feed(&mut m, Event::Confirmed(c.decision), now);
            }
            Action::SendPrepare => {
                if fault == Fault::SlowTarget {
                    now += 6_000;
                }
                let (ack, _) = cluster.target.prepare(now);
                let ManagementMessage::PrepareAck(ack) = wire(ack) else {
                    panic!()
                };
                feed(&mut m, Event::PrepareAck { ready: ack.ready }, now);
            }
            Action::CaptureState => {
                let t = cluster.source.capture(migration_id, now);
                feed(
                    &mut m,
                    Event::Captured {
                        sealed_bytes: t.sealed.len() as u64,
                    },
                    now,
                );
                sealed = Some(t);
            }
            Action::SendStateTransfer => {
                let mut t = sealed.take().unwrap();
                if fault == Fault::TamperSnapshot {
                    let mut v = t.sealed.to_vec();
                    let mid = v.len() / 2;
                    v[mid] ^= 0x20;
                    t.sealed = Bytes::from(v);
                }
                let ManagementMessage::StateTransfer(t) = wire(t) else {
                    panic!()
                };
                match wire(cluster.target.restore(&t)) {
                    ManagementMessage::Complete(_) => feed(&mut m, Event::Restored, now),
                    ManagementMessage::Abort(a) => feed(
                        &mut m,
                        Event::Failure(MigrationError::Aborted { reason: a.reason }),
                        now,
                    ),
                    other => panic!("{other:?}"),
                }
            }
            Action::SwitchRoute => {
                cluster.route = "w2";
                feed(&mut m, Event::PivotDone, now);
            }
            other => panic!("unexpected {other:?} before the end"),
        }
    }
    // Final instruction: complete or abort.
    match m.poll_action() {
        Some(Action::SendComplete) => {
            let ManagementMessage::Complete(c) = wire(MigrationComplete {
                migration_id,
                session_id: SESSION,
            }) else {
                panic!()
            };
            assert_eq!(c.session_id, SESSION);
            cluster.source.session = None;
        }
        Some(Action::SendAbort { reason }) => {
            let ManagementMessage::Abort(_) = wire(MigrationAbort {
                migration_id,
                reason,
            }) else {
                panic!()
            };
            cluster.source.frozen = false;
            cluster.target.session = None;
        }
        other => panic!("{other:?}"),
    }
    m
}

fn cluster() -> Cluster {
    Cluster {
        route: "w1",
        source: Worker::new("w1", Some(session())),
        target: Worker::new("w2", None),
        used_token: None,
    }
}

fn assert_still_on_source(c: &Cluster) {
    assert_eq!(c.route, "w1");
    assert_eq!(c.source.session, Some(session()));
    assert!(!c.source.frozen);
    assert_eq!(c.target.session, None);
}

#[test]
fn session_moves_with_every_item() {
    let mut c = cluster();
    let m = run(&mut c, 1, MigrationConfig::default(), Fault::None);
    assert_eq!(m.outcome(), Some(&Outcome::Completed));
    assert_eq!(c.route, "w2");
    assert_eq!(c.source.session, None);
    assert_eq!(c.target.session, Some(session()));
    let phases: Vec<Phase> = m.phase_durations().into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        phases,
        [
            Phase::Initiation,
            Phase::Confirmation,
            Phase::Preparation,
            Phase::StateCapture,
            Phase::StateTransfer,
            Phase::Pivot
        ]
    );
    assert!(m.sealed_bytes().unwrap() > 0);
}

#[test]
fn auto_confirm_moves_without_asking() {
    let mut c = cluster();
    let config = MigrationConfig {
        auto_confirm: true,
        ..Default::default()
    };
    let m = run(&mut c, 1, config, Fault::None);
    assert_eq!(m.outcome(), Some(&Outcome::Completed));
    assert!(m
        .phase_durations()
        .iter()
        .all(|(p, _)| *p != Phase::Confirmation));
}

fn abort_error(m: &Migration) -> (&Phase, &MigrationError) {
    match m.outcome() {
        Some(Outcome::Aborted { phase, error }) => (phase, error),
        o => panic!("{o:?}"),
    }
}

#[test]
fn tampered_snapshot_aborts_and_session_stays() {
    let mut c = cluster();
    let m = run(&mut c, 1, MigrationConfig::default(), Fault::TamperSnapshot);
    let (phase, error) = abort_error(&m);
    assert_eq!(*phase, Phase::StateTransfer);
    assert!(error.to_string().contains("SNAPSHOT_TAMPERED"), "{error}");
    assert_still_on_source(&c);
}

#[test]
fn replayed_token_aborts_the_second_migration() {
    let mut c = cluster();
    // First attempt is aborted late (tampered snapshot) after the target redeemed the token.
    run(&mut c, 1, MigrationConfig::default(), Fault::TamperSnapshot);
    let m = run(&mut c, 2, MigrationConfig::default(), Fault::ReplayToken);
    let (phase, error) = abort_error(&m);
    assert_eq!(*phase, Phase::Preparation);
    assert_eq!(error.code(), "MIGRATION_REJECTED");
    // The target's own view of why:
    let (_, why) = c.target.prepare(T0 + 3);
    assert_eq!(why.unwrap().code(), "TOKEN_REPLAYED");
    assert_still_on_source(&c);
}

#[test]
fn expired_token_aborts() {
    let mut c = cluster();
    let config = MigrationConfig {
        phase_timeout_ms: 8_000,
        total_timeout_ms: 10_000,
        ..Default::default()
    };
    let m = run(&mut c, 1, config, Fault::SlowTarget);
    let (phase, error) = abort_error(&m);
    assert_eq!(*phase, Phase::Preparation);
    assert_eq!(error.code(), "MIGRATION_REJECTED");
    let (_, why) = c.target.prepare(T0 + 6_003);
    assert_eq!(why.unwrap().code(), "TOKEN_EXPIRED");
    assert_still_on_source(&c);
}

#[test]
fn slow_target_times_out_with_default_limits() {
    let mut c = cluster();
    let m = run(&mut c, 1, MigrationConfig::default(), Fault::SlowTarget);
    let (phase, error) = abort_error(&m);
    assert_eq!(*phase, Phase::Preparation);
    assert_eq!(error.code(), "MIGRATION_TIMEOUT");
    assert_still_on_source(&c);
}

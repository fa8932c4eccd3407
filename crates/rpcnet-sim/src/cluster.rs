//! One simulated cluster and the event loop that runs a schedule (see the crate docs).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use rpcnet_protocol::metadata::SESSION_ID_KEY;
use rpcnet_protocol::migration::{
    ConfirmationDecision, ManagementMessage, MigrationConfig, MigrationConfirmation,
    MigrationReason, SessionSnapshot, TokenKey,
};
use rpcnet_protocol::resume::ResumeError;
use rpcnet_protocol::{Attach, ErrorCode, Frame, Request, DEFAULT_MAX_FRAME_SIZE};
use rpcnet_session::coordinator::{CoordinatorEvent, MigrationStart, Transmit, WorkerMethod};
use rpcnet_session::participant::{
    choose_owner, AttachDecision, ClaimAnswer, ClaimStatus, DirectorKey, SessionBook,
};
use rpcnet_session::{
    CallError, ClientItem, ClientItems, ClientRequests, ClientStream, Coordinator, Lease,
    OwnerFrame, Participant, Produced, Received, RelayCall, Route, ServerCall, MAX_KEPT_BYTES,
};

use crate::check::{
    client_payload_for, headers_for, payload_for, request_metadata_for, state_for, trailers_for,
    Violation,
};
use crate::net::{Dice, Queue};
use crate::params::Params;

/// The simulated cluster's one director, as the workers' books number it.
const DIRECTOR: DirectorKey = 1;
/// A worker's book at the start of a schedule: registered, with the director's lease.
fn leased_book() -> SessionBook {
    let mut b = SessionBook::new();
    b.lease_held(DIRECTOR);
    b
}

/// Simulated time 0 as unix ms (tokens carry absolute expiries).
const BASE_MS: u64 = 1_700_000_000_000;
/// Frames a worker may have in flight on one stream before the relay reads them (QUIC flow
/// control, in frames).
const STREAM_WINDOW: u32 = 8;
/// Entries a handler may queue before it is paused (the runtime's `streamWindow`).
const QUEUE_HIGH: usize = 6;
/// Items the director may have forwarded that the client has not read.
const CLIENT_WINDOW: usize = 8;
/// A relayed call waits this long for a usable route before failing, ms (as the runtime).
const ROUTE_WAIT_MS: u64 = 10_000;
/// Largest snapshot a worker opens, bytes.
const MAX_SNAPSHOT: usize = 1 << 20;
/// A resumable call's writer stops while this many items are unacknowledged.
const RETAIN_MAX: usize = 24;
/// A resumable client ACKs once it has this many items it has not acknowledged.
const ACK_EVERY: u64 = 2;
/// Map keys of stale sessions: the director's session of a client connection that was cut off
/// while the director lives on (the client resumed on a new connection) carries this bit.
const STALE: u64 = 1 << 63;

/// What one schedule did, for the summary line.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Events processed (each followed by a check of every invariant).
    pub steps: u64,
    /// Items delivered to clients.
    pub items: u64,
    /// Migrations that completed.
    pub completed: u64,
    /// Migrations that aborted.
    pub aborted: u64,
    /// Failovers.
    pub failovers: u64,
    /// Worker crashes.
    pub crashes: u64,
    /// Director crashes.
    pub director_crashes: u64,
    /// Sessions resumed (after a director crash or a cut client connection).
    pub resumes: u64,
    /// Client connections cut while their director lived on.
    pub cut_connections: u64,
    /// Stale sessions (of a cut connection) given up because a worker answered SUPERSEDED.
    pub superseded: u64,
    /// Client items of bidi calls read by handlers (a resumed handler reads some again).
    pub client_items: u64,
}

#[derive(Debug, Clone)]
enum LinkIn {
    Open(Attach, Request),
    Stop,
    Credit,
    /// The client's ACK, forwarded by the relay.
    Ack(u64),
    /// The director gave up the stream because its client connection was lost (resumable: the
    /// worker keeps the call for a resume).
    Lost,
    /// A client ITEM or END of a bidi call, forwarded or replayed by the relay.
    Client(Frame),
}

#[derive(Debug)]
enum Ev {
    StartCall(usize),
    Produce {
        w: usize,
        inc: u64,
        stream: u64,
    },
    ToWorker {
        w: usize,
        inc: u64,
        stream: u64,
        msg: LinkIn,
    },
    ToDirector {
        w: usize,
        inc: u64,
        stream: u64,
        frame: Frame,
    },
    ToClient {
        call: usize,
        /// The client connection it was sent on (frames of a lost connection never arrive).
        conn: u64,
        frame: Frame,
    },
    ClientRead {
        call: usize,
    },
    /// A bidi client sends its next item (or its END).
    ClientSend {
        call: usize,
    },
    /// A bidi client's ITEM or END reaches the director.
    ClientToDirector {
        call: usize,
        conn: u64,
        frame: Frame,
    },
    Mgmt {
        w: usize,
        inc: u64,
        t: Transmit,
        session: u64,
    },
    Reply {
        session: u64,
        migration_id: u64,
        method: WorkerMethod,
        result: Result<ManagementMessage, CallError>,
    },
    Heartbeat {
        w: usize,
        inc: u64,
        sent_at: u64,
    },
    HeartbeatAck {
        w: usize,
        inc: u64,
        sent_at: u64,
        known: bool,
        /// The director declared the worker dead (not merely unknown to a restarted director).
        forget: bool,
    },
    Register {
        w: usize,
        inc: u64,
        sent_at: u64,
    },
    RegisterAck {
        w: usize,
        inc: u64,
        sent_at: u64,
        accepted: bool,
    },
    WorkerTick {
        w: usize,
        inc: u64,
    },
    LeaseCheck {
        w: usize,
        inc: u64,
    },
    DirectorTick,
    CoordTimer {
        session: u64,
    },
    Trigger,
    Restart {
        w: usize,
    },
    Heal,
    /// A waiting relay may retry the same route now (`director_poll` runs after every event).
    RelayRetry,
    /// A resumable client acknowledges items (PROTOCOL.md section 15.4).
    ClientAck {
        call: usize,
        next_seq: u64,
    },
    DirectorUp,
    /// The director notices that the connection of a stale session is gone and drops it.
    StaleExpire {
        key: u64,
    },
    /// A worker notices that its link to the crashed director is gone.
    LinkLost {
        w: usize,
        inc: u64,
    },
    /// A client presents its credential to the restarted director.
    Resume {
        session: u64,
    },
    Claim {
        w: usize,
        inc: u64,
        session: u64,
        generation: u32,
    },
    ClaimReply {
        session: u64,
        w: usize,
        result: Result<(ClaimStatus, u64), ResumeError>,
    },
    Release {
        w: usize,
        inc: u64,
        session: u64,
    },
}

/// A resume the director is claiming at the workers.
struct PendingClaim {
    generation: u32,
    waiting: BTreeSet<usize>,
    answers: Vec<ClaimAnswer>,
}

/// A client call as specified by the schedule.
struct ClientSide {
    session: u64,
    call_id: u64,
    items: u64,
    every_ms: u64,
    checkpoint_every: u64,
    deadline_ms: u32,
    started_at: u64,
    /// The client's machine of the call, the runtime's own (from StartCall on).
    machine: Option<ClientStream>,
    /// Items handed to the caller so far (the next one's seq).
    delivered: u64,
    inbox: VecDeque<Frame>,
    reading: bool,
    stalled_until: u64,
    outcome: Option<Result<u64, CallError>>,
    request: Option<Request>,
    /// The client's connection number (a new one after each resume).
    conn: u64,
    /// HEADERS frames delivered to the caller (exactly one per call, before its first item).
    headers_seen: u32,
    /// A bidi call (PROTOCOL.md section 3.4): the client sends `items` items and END, and the
    /// handler produces item k from client item k.
    bidi: bool,
    /// The client's requests: their seqs, END, and in a resumable session all of them, to send
    /// again after a resume (the runtime's own machine).
    requests: ClientRequests,
}

struct Relay {
    machine: RelayCall,
    client: usize,
    /// The client connection the relay serves.
    conn: u64,
    attached: Option<(usize, u64, u64)>,
    inbox: VecDeque<Frame>,
    outstanding: usize,
    waiting_since: u64,
    retry_scheduled: Option<u64>,
}

struct DSession {
    coord: Coordinator,
    relays: BTreeMap<u64, Relay>,
    connection_id: String,
    migration_started: Option<u64>,
}

struct DWorker {
    /// Registered with this director incarnation.
    known: bool,
    alive: bool,
    inc: u64,
    last_rx: u64,
    draining: bool,
}

struct WCall {
    session: u64,
    call_id: u64,
    client: usize,
    machine: ServerCall,
    queue: VecDeque<Produced>,
    credit: u32,
    /// The handler's next item (its own counter, from `ctx.resume`).
    next: u64,
    producing: bool,
    deadline_at: Option<u64>,
    /// A bidi call's client items: the receive rule, the items delivered and not read yet,
    /// and how many the handler read (its own counter, from `ctx.resume`).
    client_items: Option<ClientItems>,
    inbound: VecDeque<Bytes>,
    read: u64,
}

struct WProc {
    id: String,
    up: bool,
    inc: u64,
    registered: bool,
    participant: Participant,
    book: SessionBook,
    lease: Lease,
    calls: BTreeMap<u64, WCall>,
    partition_until: u64,
}

struct Sim {
    seed: u64,
    p: Params,
    dice: Dice,
    q: Queue<Ev>,
    now: u64,
    step: u64,
    key: TokenKey,
    secret: [u8; 32],
    config: MigrationConfig,
    dworkers: Vec<DWorker>,
    sessions: BTreeMap<u64, DSession>,
    workers: Vec<WProc>,
    clients: Vec<ClientSide>,
    next_stream: u64,
    next_migration: u64,
    report: Report,
    chaos: bool,
    /// Last delivery time per ordered stream, so that each stream stays in order (QUIC).
    fifo: BTreeMap<(u8, u64), u64>,
    director_up: bool,
    /// Each session's resume generation, as the client's credential says.
    generation: BTreeMap<u64, u32>,
    /// Sessions whose client has not resumed since the director crashed.
    resuming: BTreeSet<u64>,
    claims: BTreeMap<u64, PendingClaim>,
    /// Stale sessions made so far (for their keys).
    stale_made: u64,
}

/// Runs schedule `seed` to the end. Every step is followed by the invariant checks; the first
/// violation stops the schedule.
pub fn run_schedule(seed: u64) -> Result<Report, Violation> {
    let mut sim = Sim::new(seed);
    sim.run()?;
    sim.report.steps = sim.step;
    Ok(sim.report)
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut dice = Dice::new(seed);
        let p = Params::draw(|lo, hi| dice.range(lo, hi));
        let secret = dice.bytes::<32>();
        let key = TokenKey::from_bytes(&dice.bytes::<32>());
        let config = MigrationConfig {
            auto_confirm: dice.chance(300),
            phase_timeout_ms: 200,
            total_timeout_ms: 600,
            max_defers: 2,
        };
        let workers = (0..p.workers)
            .map(|i| WProc {
                id: format!("w{i}"),
                up: true,
                inc: 1,
                registered: true,
                participant: Participant::new(format!("w{i}"), key.clone(), &secret),
                book: leased_book(),
                lease: Lease::new(p.lease_ms, BASE_MS),
                calls: BTreeMap::new(),
                partition_until: 0,
            })
            .collect();
        let dworkers = (0..p.workers)
            .map(|_| DWorker {
                known: true,
                alive: true,
                inc: 1,
                last_rx: BASE_MS,
                draining: false,
            })
            .collect();
        Sim {
            seed,
            p,
            dice,
            q: Queue::new(),
            now: BASE_MS,
            step: 0,
            key,
            secret,
            config,
            dworkers,
            sessions: BTreeMap::new(),
            workers,
            clients: Vec::new(),
            next_stream: 1,
            next_migration: 1,
            report: Report::default(),
            chaos: true,
            fifo: BTreeMap::new(),
            director_up: true,
            generation: BTreeMap::new(),
            resuming: BTreeSet::new(),
            claims: BTreeMap::new(),
            stale_made: 0,
        }
    }

    fn violation(&self, rule: &'static str, detail: String) -> Violation {
        Violation {
            seed: self.seed,
            step: self.step,
            at_ms: self.now - BASE_MS,
            rule,
            detail,
        }
    }

    fn run(&mut self) -> Result<(), Violation> {
        self.open_sessions();
        for w in 0..self.workers.len() {
            let at = self.now + self.dice.range(1, self.p.heartbeat_ms);
            self.q.push(at, Ev::WorkerTick { w, inc: 1 });
            self.q
                .push(self.now + self.p.lease_ms, Ev::LeaseCheck { w, inc: 1 });
        }
        let trace = std::env::var_os("SIMULATION_TRACE").is_some();
        self.q.push(self.now + 20, Ev::DirectorTick);
        self.q.push(self.now + self.p.trigger_every_ms, Ev::Trigger);
        self.q.push(self.now + self.p.chaos_until_ms, Ev::Heal);
        while let Some((at, ev)) = self.q.pop() {
            self.now = at;
            self.step += 1;
            if trace {
                eprintln!("{:>6} {:>6} {ev:?}", self.step, self.now - BASE_MS);
            }
            self.handle(ev)?;
            self.check()?;
            if !self.chaos && self.clients.iter().all(|c| c.outcome.is_some()) {
                return Ok(());
            }
            if self.now - BASE_MS > self.p.give_up_at_ms {
                break;
            }
        }
        let unfinished: Vec<String> = self
            .clients
            .iter()
            .filter(|c| c.outcome.is_none())
            .map(|c| {
                format!(
                    "call {} has {} of {} items",
                    c.call_id, c.delivered, c.items
                )
            })
            .collect();
        Err(self.violation("liveness", unfinished.join("; ")))
    }

    // ---- set-up and triggers -------------------------------------------------------------

    fn open_sessions(&mut self) {
        for s in 0..self.p.sessions as u64 {
            let session = 0x5e55_0000 + s;
            let owner = self.place(None).expect("workers are up at the start");
            let id = self.workers[owner].id.clone();
            self.sessions.insert(
                session,
                DSession {
                    coord: Coordinator::new(session, id),
                    relays: BTreeMap::new(),
                    connection_id: format!("{session:016x}"),
                    migration_started: None,
                },
            );
            for _ in 0..self.dice.range(1, 2) {
                self.new_call(session);
            }
        }
    }

    fn new_call(&mut self, session: u64) {
        let idx = self.clients.len();
        let deadline_ms = if self.dice.chance(200) {
            self.dice.range(300, 3_000) as u32
        } else {
            0
        };
        self.clients.push(ClientSide {
            session,
            call_id: 1_000 + idx as u64,
            items: self.dice.range(10, 60),
            every_ms: self.dice.range(2, 25),
            checkpoint_every: [0, 1, 2, 3, 5][self.dice.range(0, 4) as usize],
            deadline_ms,
            started_at: 0,
            machine: None,
            delivered: 0,
            inbox: VecDeque::new(),
            reading: false,
            stalled_until: 0,
            outcome: None,
            request: None,
            conn: 1,
            headers_seen: 0,
            bidi: self.dice.chance(400),
            requests: ClientRequests::new(self.p.resumable, MAX_KEPT_BYTES),
        });
        let at = self.now + self.dice.range(0, 50);
        self.q.push(at, Ev::StartCall(idx));
    }

    fn trigger(&mut self) {
        if !self.director_up || !self.resuming.is_empty() {
            return; // one failure at a time: nothing else while clients resume
        }
        if self.p.resumable && self.dice.chance(60) && self.every_session_held() {
            return self.director_crash();
        }
        let sessions: Vec<u64> = self
            .sessions
            .keys()
            .copied()
            .filter(|k| k & STALE == 0)
            .collect();
        if self.p.resumable
            && self.dice.chance(80)
            && !sessions.is_empty()
            && self.every_session_held()
        {
            let s = sessions[self.dice.range(0, sessions.len() as u64 - 1) as usize];
            return self.client_reconnect(s);
        }
        let roll = self.dice.range(0, 99);
        let session = sessions[self.dice.range(0, sessions.len() as u64 - 1) as usize];
        let w = self.dice.range(0, self.workers.len() as u64 - 1) as usize;
        match roll {
            0..=24 => {
                self.admin_migrate(session, w);
                if self.dice.chance(200) {
                    let other = self.dice.range(0, self.workers.len() as u64 - 1) as usize;
                    self.admin_migrate(session, other); // two at once for one session
                }
            }
            25..=39 => {
                let serving = self
                    .dworkers
                    .iter()
                    .filter(|d| d.alive && !d.draining)
                    .count();
                if serving >= 2 && self.dworkers[w].alive {
                    self.dworkers[w].draining = true;
                }
            }
            40..=52 => {
                if self.workers[w].up {
                    self.crash(w);
                    let at = self.now + self.dice.range(100, 1_500);
                    self.q.push(at, Ev::Restart { w });
                }
            }
            53..=62 => self.workers[w].partition_until = self.now + self.dice.range(200, 900),
            63..=77 => {
                let c = self.dice.range(0, self.clients.len() as u64 - 1) as usize;
                self.clients[c].stalled_until = self.now + self.dice.range(50, 500);
            }
            _ => {
                let calls = self.clients.iter().filter(|c| c.session == session).count();
                let calls = if self.sessions.contains_key(&session) {
                    calls
                } else {
                    usize::MAX
                };
                if calls < 3 {
                    self.new_call(session);
                }
            }
        }
    }

    fn admin_migrate(&mut self, session: u64, target: usize) {
        let id = self.next_migration;
        self.next_migration += 1;
        let nonce = self.dice.bytes::<32>();
        let target = self.workers[target].id.clone();
        let (config, key, now) = (self.config, self.key.clone(), self.now);
        let s = self.sessions.get_mut(&session).expect("session");
        if s.coord
            .start_migration(
                MigrationStart {
                    config,
                    migration_id: id,
                    target: &target,
                    reason: MigrationReason::Admin,
                    key: &key,
                    nonce,
                },
                now,
            )
            .is_ok()
        {
            s.migration_started = Some(now);
        }
        self.after_coord(session);
    }

    fn crash(&mut self, w: usize) {
        self.report.crashes += 1;
        let p = &mut self.workers[w];
        p.up = false;
        p.calls.clear();
    }

    fn restart(&mut self, w: usize) {
        let (lease_ms, now) = (self.p.lease_ms, self.now);
        if self.sessions.keys().any(|k| k & STALE != 0) {
            // A worker that starts after a resume's claim knows nothing of it, so a director
            // that lost the session but has not noticed could fail it over there: the one
            // multi-fault case that gives a session two owners (PROTOCOL.md section 15.7).
            let at = now + self.dice.range(50, 300);
            self.q.push(at, Ev::Restart { w });
            return;
        }
        let p = &mut self.workers[w];
        if p.up {
            return;
        }
        p.up = true;
        p.inc += 1;
        p.registered = false;
        p.participant = Participant::new(p.id.clone(), self.key.clone(), &self.secret);
        // A new process: no lease until its registration is acknowledged.
        p.book = SessionBook::new();
        p.lease = Lease::new(lease_ms, 0);
        p.partition_until = 0;
        let inc = p.inc;
        self.q.push(now, Ev::WorkerTick { w, inc });
    }

    // ---- director crash and resume (PROTOCOL.md section 15) ------------------------------

    /// A director crash loses only what the director held when every worker is up and every
    /// session with an unfinished call is held by a worker: the gate for a single failure.
    fn every_session_held(&self) -> bool {
        let all_up = self.workers.iter().all(|p| p.up)
            && self.dworkers.iter().all(|d| d.alive && !d.draining);
        all_up
            && self
                .clients
                .iter()
                .filter(|c| c.outcome.is_none())
                .all(|c| {
                    self.workers
                        .iter()
                        .any(|p| p.book.resumable_ids().contains(&c.session))
                })
    }

    /// The director process dies: its sessions, relays, coordinators and worker table are gone,
    /// and so is whatever was in flight on its connections.
    fn director_crash(&mut self) {
        self.report.director_crashes += 1;
        self.director_up = false;
        self.resuming
            .extend(self.sessions.keys().copied().filter(|k| k & STALE == 0));
        self.sessions.clear();
        self.claims.clear();
        for d in &mut self.dworkers {
            *d = DWorker {
                known: false,
                alive: false,
                inc: 0,
                last_rx: 0,
                draining: false,
            };
        }
        self.q.retain(|e| {
            !matches!(
                e,
                Ev::ToWorker { .. }
                    | Ev::ToDirector { .. }
                    | Ev::ToClient { .. }
                    | Ev::ClientToDirector { .. }
                    | Ev::ClientAck { .. }
                    | Ev::Reply { .. }
                    | Ev::CoordTimer { .. }
                    | Ev::Heartbeat { .. }
                    | Ev::Register { .. }
            )
        });
        for c in self.clients.iter_mut().filter(|c| c.outcome.is_none()) {
            c.inbox.clear(); // unread stream data dies with the connection
        }
        for w in 0..self.workers.len() {
            let inc = self.workers[w].inc;
            let at = self.now + self.dice.range(1, 100);
            self.q.push(at, Ev::LinkLost { w, inc });
        }
        let at = self.now + self.dice.range(150, 800);
        self.q.push(at, Ev::DirectorUp);
    }

    /// The client's connection to the living director is cut: the director keeps the session
    /// (stale, under a key of its own: its relays and coordinator go on) until it notices, and
    /// the client resumes on a new connection, to which only the new session's frames go.
    fn client_reconnect(&mut self, sid: u64) {
        let Some(stale) = self.sessions.remove(&sid) else {
            return;
        };
        self.stale_made += 1;
        self.report.cut_connections += 1;
        let key = STALE | (self.stale_made << 32) | sid;
        self.sessions.insert(key, stale);
        self.after_coord(key); // its timer, now under its new key
        for c in self.clients.iter_mut().filter(|c| c.session == sid) {
            c.conn += 1;
            c.inbox.clear();
        }
        self.resuming.insert(sid);
        let at = self.now + self.dice.range(1, 60);
        self.q.push(at, Ev::Resume { session: sid });
        let at = self.now + self.dice.range(200, 1_000);
        self.q.push(at, Ev::StaleExpire { key });
    }

    /// The director notices a stale session's connection is gone: its relays let their owners
    /// keep the calls (UNAVAILABLE), and the session is forgotten.
    fn stale_expire(&mut self, key: u64) {
        let Some(stale) = self.sessions.remove(&key) else {
            return;
        };
        for r in stale.relays.values() {
            if let Some((w, inc, stream)) = r.attached {
                self.send_on_worker_stream(w, inc, stream, LinkIn::Lost);
            }
        }
    }

    /// The worker notices its director link is gone: it freezes every call and keeps it, with
    /// its unacknowledged items, for a resume.
    fn link_lost(&mut self, w: usize, inc: u64) {
        if !self.workers[w].up || self.workers[w].inc != inc {
            return;
        }
        let now = self.now;
        let streams: Vec<u64> = self.workers[w].calls.keys().copied().collect();
        for stream in streams {
            let (session, snap) = self.freeze_call(w, stream);
            self.workers[w].book.detach(session, &[snap], now);
        }
        for session in self.workers[w].book.resumable_ids() {
            self.workers[w].book.detach(session, &[], now);
        }
    }

    fn director_up(&mut self) {
        self.director_up = true;
        let sessions: Vec<u64> = self.resuming.iter().copied().collect();
        for session in sessions {
            let at = self.now + self.dice.range(0, 100);
            self.q.push(at, Ev::Resume { session });
        }
    }

    /// The client's HELLO with its credential: the director claims the session at every worker
    /// it knows.
    fn resume(&mut self, session: u64) {
        let known: BTreeSet<usize> = (0..self.dworkers.len())
            .filter(|&w| self.dworkers[w].alive)
            .collect();
        if !self.director_up || known.is_empty() || self.claims.contains_key(&session) {
            self.q.push(self.now + 50, Ev::Resume { session });
            return;
        }
        let generation = self.generation.get(&session).copied().unwrap_or(0);
        for &w in &known {
            let inc = self.dworkers[w].inc;
            let at = self.now + self.delay();
            self.q.push(
                at,
                Ev::Claim {
                    w,
                    inc,
                    session,
                    generation,
                },
            );
        }
        self.claims.insert(
            session,
            PendingClaim {
                generation,
                waiting: known,
                answers: Vec::new(),
            },
        );
    }

    fn worker_claim(&mut self, w: usize, inc: u64, session: u64, generation: u32) {
        let result = if self.workers[w].up && self.workers[w].inc == inc {
            let now = self.now;
            let p = &mut self.workers[w];
            let r = p
                .participant
                .on_claim(&mut p.book, session, generation, now);
            if r.is_ok() {
                let streams: Vec<u64> = self.workers[w]
                    .calls
                    .iter()
                    .filter(|(_, c)| c.session == session)
                    .map(|(s, _)| *s)
                    .collect();
                for stream in streams {
                    let (session, snap) = self.freeze_call(w, stream);
                    self.workers[w].book.detach(session, &[snap], now);
                }
            }
            r
        } else {
            Err(ResumeError::Unknown {
                session_id: session,
            }) // its answer: a timeout
        };
        let at = self.now + self.delay();
        self.q.push(at, Ev::ClaimReply { session, w, result });
    }

    fn claim_reply(
        &mut self,
        session: u64,
        w: usize,
        result: Result<(ClaimStatus, u64), ResumeError>,
    ) -> Result<(), Violation> {
        let Some(c) = self.claims.get_mut(&session) else {
            return Ok(());
        };
        c.waiting.remove(&w);
        match result {
            Ok((status, epoch)) => c.answers.push(ClaimAnswer {
                worker: self.workers[w].id.clone(),
                status,
                epoch,
            }),
            Err(ResumeError::Unknown { .. }) => {}
            Err(e) => {
                return Err(self.violation(
                    "resume",
                    format!("session {session:x}: the client's latest credential was refused: {e}"),
                ))
            }
        }
        if !c.waiting.is_empty() {
            return Ok(());
        }
        let c = self.claims.remove(&session).expect("pending");
        let open_calls = self
            .clients
            .iter()
            .any(|c| c.session == session && c.outcome.is_none());
        let owner = match choose_owner(&c.answers) {
            Some(o) => o.to_string(),
            // RESUME_UNKNOWN for a session with nothing open: the client opens a new one.
            None if !open_calls && self.place(None).is_some() => {
                let w = self.place(None).expect("checked");
                self.workers[w].id.clone()
            }
            None => {
                self.q.push(self.now + 100, Ev::Resume { session }); // holders not registered yet
                return Ok(());
            }
        };
        let generation = c.generation + 1;
        self.generation.insert(session, generation);
        for a in c.answers.iter().filter(|a| a.worker != owner) {
            let w = self.index_of(&a.worker).expect("worker");
            let (inc, at) = (self.dworkers[w].inc, self.now + self.delay());
            self.q.push(at, Ev::Release { w, inc, session });
        }
        self.open_resumed(session, &owner, generation);
        Ok(())
    }

    /// The director's side of a resumed session: its route at the new generation, and a relay
    /// per open call at the client's position (the CALL frames of PROTOCOL.md section 15.3).
    fn open_resumed(&mut self, session: u64, owner: &str, generation: u32) {
        let now = self.now;
        let mut relays = BTreeMap::new();
        for (i, c) in self.clients.iter().enumerate() {
            if c.session != session || c.outcome.is_some() {
                continue;
            }
            let Some(request) = c.request.clone() else {
                continue; // not started yet: StartCall opens it
            };
            let conn = format!("{session:016x}");
            let machine = RelayCall::new(session, c.call_id, conn, request, c.started_at)
                .resumable(c.delivered);
            relays.insert(
                c.call_id,
                Relay {
                    machine,
                    client: i,
                    conn: c.conn,
                    attached: None,
                    inbox: VecDeque::new(),
                    outstanding: 0,
                    waiting_since: now,
                    retry_scheduled: None,
                },
            );
        }
        let mut resent = Vec::new();
        for (i, c) in self.clients.iter_mut().enumerate() {
            if c.session != session {
                continue;
            }
            // The client re-attaches its open calls on the new connection (its machine's own
            // rule: next seq, a repeated HEADERS skipped; the relay above got the same request),
            // then sends all its requests again (PROTOCOL.md 15.4).
            if let (Some(m), None) = (c.machine.as_mut(), &c.outcome) {
                let _ = m.reattach(c.deadline_ms);
                if c.bidi && c.request.is_some() {
                    let frames = c
                        .requests
                        .resend()
                        .expect("small requests stay under the bound");
                    resent.extend(frames.into_iter().map(|f| (i, c.conn, f)));
                }
            }
        }
        self.sessions.insert(
            session,
            DSession {
                coord: Coordinator::with_route(session, Route::resumed(owner, generation)),
                relays,
                connection_id: format!("{session:016x}"),
                migration_started: None,
            },
        );
        self.resuming.remove(&session);
        self.report.resumes += 1;
        for (call, conn, frame) in resent {
            let at = self.ordered((4, call as u64));
            self.q.push(at, Ev::ClientToDirector { call, conn, frame });
        }
    }

    /// A client's ACK reaches the relay, which forwards what is new to the owner.
    fn director_client_ack(&mut self, call: usize, next_seq: u64) {
        let (session, call_id) = (self.clients[call].session, self.clients[call].call_id);
        let Some(r) = self
            .sessions
            .get_mut(&session)
            .and_then(|s| s.relays.get_mut(&call_id))
        else {
            return;
        };
        let (Some(Frame::Ack { next_seq }), Some((w, inc, stream))) =
            (r.machine.on_client_ack(next_seq), r.attached)
        else {
            return;
        };
        self.send_on_worker_stream(w, inc, stream, LinkIn::Ack(next_seq));
    }

    /// The live, non-draining worker with the fewest sessions (ties: lowest index).
    fn place(&self, exclude: Option<usize>) -> Option<usize> {
        let mut load = vec![0usize; self.workers.len()];
        for s in self.sessions.values() {
            if let Some(i) = self.index_of(&s.coord.route().owner) {
                load[i] += 1;
            }
        }
        (0..self.workers.len())
            .filter(|&i| Some(i) != exclude && self.dworkers[i].alive && !self.dworkers[i].draining)
            .min_by_key(|&i| (load[i], i))
    }

    fn index_of(&self, id: &str) -> Option<usize> {
        self.workers.iter().position(|w| w.id == id)
    }

    /// Delivery time on ordered stream `key`: a random delay, but never before what was sent on
    /// it earlier.
    fn ordered(&mut self, key: (u8, u64)) -> u64 {
        let at = self.now + self.dice.range(0, self.p.max_delay_ms);
        let last = self.fifo.entry(key).or_insert(0);
        *last = (*last).max(at);
        *last
    }

    /// Sends `frame` from worker `w` to the director on cluster-link stream `stream`, in order.
    fn send_on_director_stream(&mut self, w: usize, inc: u64, stream: u64, frame: Frame) {
        let at = self.ordered((2, stream));
        self.q.push(
            at,
            Ev::ToDirector {
                w,
                inc,
                stream,
                frame,
            },
        );
    }

    /// Sends `msg` from the director to worker `w` on cluster-link stream `stream`, in order.
    fn send_on_worker_stream(&mut self, w: usize, inc: u64, stream: u64, msg: LinkIn) {
        let at = self.ordered((1, stream));
        self.q.push(
            at,
            Ev::ToWorker {
                w,
                inc,
                stream,
                msg,
            },
        );
    }

    fn delay(&mut self) -> u64 {
        let d = self.p.max_delay_ms;
        self.dice.range(0, d)
    }

    // ---- the event loop ------------------------------------------------------------------

    fn handle(&mut self, ev: Ev) -> Result<(), Violation> {
        match ev {
            Ev::StartCall(c) => self.start_call(c),
            Ev::Produce { w, inc, stream } => self.produce(w, inc, stream)?,
            Ev::ToWorker {
                w,
                inc,
                stream,
                msg,
            } => self.deliver_to_worker(w, inc, stream, msg)?,
            Ev::ToDirector {
                w,
                inc,
                stream,
                frame,
            } => self.deliver_to_director(w, inc, stream, frame),
            Ev::ToClient { call, conn, .. } if conn != self.clients[call].conn => {}
            Ev::ToClient { call, frame, .. } => {
                self.clients[call].inbox.push_back(frame);
                self.schedule_read(call);
            }
            Ev::ClientRead { call } => self.client_read(call)?,
            Ev::ClientSend { call } => self.client_send(call),
            Ev::ClientToDirector { call, conn, frame } => {
                self.director_client_frame(call, conn, frame)?
            }
            Ev::Mgmt { w, inc, t, session } => self.worker_mgmt(w, inc, t, session),
            Ev::Reply {
                session,
                migration_id,
                method,
                result,
            } => {
                let now = self.now;
                if let Some(s) = self.sessions.get_mut(&session) {
                    s.coord.on_reply(migration_id, method, result, now);
                }
                self.after_coord(session);
            }
            Ev::Heartbeat { w, inc, sent_at } => self.director_heartbeat(w, inc, sent_at),
            Ev::HeartbeatAck {
                w,
                inc,
                sent_at,
                known,
                forget,
            } => self.worker_heartbeat_ack(w, inc, sent_at, known, forget),
            Ev::Register { w, inc, sent_at } => self.director_register(w, inc, sent_at),
            Ev::RegisterAck {
                w,
                inc,
                sent_at,
                accepted,
            } => {
                let p = &mut self.workers[w];
                if p.up && p.inc == inc && accepted && !p.registered {
                    p.registered = true;
                    p.lease = Lease::new(self.p.lease_ms, sent_at);
                    p.book.lease_held(DIRECTOR);
                    let at = p.lease.expires_at().unwrap_or(self.now);
                    self.q.push(at, Ev::LeaseCheck { w, inc });
                }
            }
            Ev::WorkerTick { w, inc } => self.worker_tick(w, inc),
            Ev::LeaseCheck { w, inc } => self.lease_check(w, inc),
            Ev::DirectorTick => self.director_tick(),
            Ev::CoordTimer { session } => {
                let now = self.now;
                if let Some(s) = self.sessions.get_mut(&session) {
                    s.coord.handle_timeout(now);
                }
                self.after_coord(session);
            }
            Ev::Trigger => {
                if self.chaos {
                    self.trigger();
                    let at = self.now + self.dice.range(1, 2 * self.p.trigger_every_ms);
                    self.q.push(at, Ev::Trigger);
                }
            }
            Ev::Restart { w } => self.restart(w),
            Ev::RelayRetry => {}
            Ev::ClientAck { call, next_seq } => self.director_client_ack(call, next_seq),
            Ev::DirectorUp => self.director_up(),
            Ev::StaleExpire { key } => self.stale_expire(key),
            Ev::LinkLost { w, inc } => self.link_lost(w, inc),
            Ev::Resume { session } => self.resume(session),
            Ev::Claim {
                w,
                inc,
                session,
                generation,
            } => self.worker_claim(w, inc, session, generation),
            Ev::ClaimReply { session, w, result } => self.claim_reply(session, w, result)?,
            Ev::Release { w, inc, session } => {
                let now = self.now;
                let p = &mut self.workers[w];
                if p.up && p.inc == inc {
                    p.book.drop_session(session, now);
                }
            }
            Ev::Heal => {
                self.chaos = false;
                for w in 0..self.workers.len() {
                    self.workers[w].partition_until = 0;
                    self.restart(w);
                }
                for d in &mut self.dworkers {
                    d.draining = false;
                }
                for c in &mut self.clients {
                    c.stalled_until = 0;
                }
            }
        }
        self.director_poll();
        Ok(())
    }

    // ---- client ------------------------------------------------------------------------

    fn start_call(&mut self, c: usize) {
        let now = self.now;
        if !self.sessions.contains_key(&self.clients[c].session) {
            self.q.push(now + 50, Ev::StartCall(c)); // the director is down or resuming it
            return;
        }
        let cl = &mut self.clients[c];
        cl.started_at = now;
        let request = Request {
            method: format!("sim/{}-{}-{}", cl.items, cl.every_ms, cl.checkpoint_every),
            deadline_ms: cl.deadline_ms,
            streaming: true,
            payload: Bytes::new(),
            metadata: request_metadata_for(cl.call_id),
            client_streaming: cl.bidi,
        };
        if cl.bidi {
            let at = now + cl.every_ms / 2;
            self.q.push(at, Ev::ClientSend { call: c });
        }
        cl.request = Some(request.clone());
        let started = if self.p.resumable {
            ClientStream::start_resumable(
                request.clone(),
                DEFAULT_MAX_FRAME_SIZE,
                cl.call_id,
                false,
            )
            .map(|(m, _)| m)
        } else {
            ClientStream::start(request.clone(), DEFAULT_MAX_FRAME_SIZE).map(|(m, _)| m)
        };
        cl.machine = Some(started.expect("the simulated request is valid"));
        let (session, call_id) = (cl.session, cl.call_id);
        let s = self.sessions.get_mut(&session).expect("session");
        let mut machine = RelayCall::new(session, call_id, s.connection_id.clone(), request, now);
        if self.p.resumable {
            machine = machine.resumable(0);
        }
        s.relays.insert(
            call_id,
            Relay {
                machine,
                client: c,
                conn: self.clients[c].conn,
                attached: None,
                inbox: VecDeque::new(),
                outstanding: 0,
                waiting_since: now,
                retry_scheduled: None,
            },
        );
    }

    fn schedule_read(&mut self, call: usize) {
        let c = &mut self.clients[call];
        if !c.reading && !c.inbox.is_empty() {
            c.reading = true;
            let at = self.now.max(c.stalled_until) + 1;
            self.q.push(at, Ev::ClientRead { call });
        }
    }

    /// What the client's machine hands out after a frame: items (checked against what the
    /// handler produced for their seq), the headers (once, before the first item), the end (with
    /// every item, the headers and the trailers) or a failure (only a deadline that passed).
    fn client_receive(&mut self, call: usize, now: u64) -> Result<(), Violation> {
        let call_id = self.clients[call].call_id;
        loop {
            let received = self.clients[call]
                .machine
                .as_mut()
                .expect("started")
                .poll(usize::MAX);
            let Some(received) = received else {
                return Ok(());
            };
            match received {
                Received::Items(items) => {
                    for payload in items {
                        let seq = self.clients[call].delivered;
                        if payload != payload_for(call_id, seq) {
                            return Err(self.violation(
                                "exactly-once",
                                format!("call {call_id} item {seq} has a payload the handler did not produce for that seq"),
                            ));
                        }
                        self.clients[call].delivered += 1;
                        self.report.items += 1;
                    }
                    let m = self.clients[call].machine.as_mut().expect("started");
                    if let Some(Frame::Ack { next_seq }) = m.ack_due(ACK_EVERY, u64::MAX) {
                        let at = self.ordered((3, call as u64));
                        self.q.push(at, Ev::ClientAck { call, next_seq });
                    }
                }
                Received::Headers => {
                    let c = &mut self.clients[call];
                    c.headers_seen += 1;
                    let got = c.machine.as_ref().expect("started").headers().cloned();
                    if got.as_ref() != Some(&headers_for(call_id)) || c.delivered > 0 {
                        let n = c.delivered;
                        return Err(self.violation(
                            "metadata",
                            format!("call {call_id}: HEADERS {got:?} after {n} items"),
                        ));
                    }
                }
                Received::End => {
                    let c = &self.clients[call];
                    let (want, got) = (c.items, c.delivered);
                    if got != want {
                        return Err(self.violation(
                            "exactly-once",
                            format!("call {call_id} ended after {got} of {want} items"),
                        ));
                    }
                    let m = c.machine.as_ref().expect("started");
                    let headers = m.headers() == Some(&headers_for(call_id));
                    let trailers = m.trailers() == Some(&trailers_for(call_id));
                    if !headers || !trailers || c.headers_seen > 1 {
                        let seen = c.headers_seen;
                        return Err(self.violation(
                            "metadata",
                            format!("call {call_id} ended with headers {headers} (handed out {seen}x), trailers {trailers}"),
                        ));
                    }
                    self.clients[call].outcome = Some(Ok(got));
                    return Ok(());
                }
                Received::Failed(f) => {
                    let e = f.error;
                    let c = &self.clients[call];
                    let late = c.deadline_ms > 0 && now - c.started_at >= u64::from(c.deadline_ms);
                    if !(e.code == ErrorCode::DeadlineExceeded && late) {
                        let after = now - c.started_at;
                        return Err(self.violation(
                            "exactly-once",
                            format!("call {call_id} failed after {after} ms: {e}"),
                        ));
                    }
                    self.clients[call].outcome = Some(Err(e));
                    return Ok(());
                }
                Received::Response(_) => unreachable!("streaming calls only"),
            }
        }
    }

    fn client_read(&mut self, call: usize) -> Result<(), Violation> {
        let now = self.now;
        let c = &mut self.clients[call];
        c.reading = false;
        if c.stalled_until > now {
            self.schedule_read(call);
            return Ok(());
        }
        let Some(frame) = c.inbox.pop_front() else {
            return Ok(());
        };
        let (session, call_id) = (c.session, c.call_id);
        if c.outcome.is_none() {
            let m = c.machine.as_mut().expect("a call with frames was started");
            m.on_data(&frame.to_bytes());
            self.client_receive(call, now)?;
        }
        if let Some(r) = self
            .sessions
            .get_mut(&session)
            .and_then(|s| s.relays.get_mut(&call_id))
        {
            r.outstanding = r.outstanding.saturating_sub(1);
        }
        self.pump_relay(session, call_id);
        self.schedule_read(call);
        Ok(())
    }

    /// A bidi client sends its next item, or END after the last one, at its own pace. While its
    /// session is resuming there is no connection to send on: the request is only kept, and
    /// the re-attach sends it ([`ClientRequests::resend`]).
    fn client_send(&mut self, call: usize) {
        let c = &mut self.clients[call];
        if c.outcome.is_some() || c.requests.is_ended() {
            return;
        }
        let frame = if c.requests.sent() < c.items {
            let payload = client_payload_for(c.call_id, c.requests.sent());
            c.requests.item(payload).expect("not ended")
        } else {
            c.requests.end().expect("not ended")
        };
        let (conn, every, session) = (c.conn, c.every_ms, c.session);
        if !self.resuming.contains(&session) && self.sessions.contains_key(&session) {
            let at = self.ordered((4, call as u64));
            self.q.push(at, Ev::ClientToDirector { call, conn, frame });
        }
        let next = self.now + self.dice.range(0, every);
        self.q.push(next, Ev::ClientSend { call });
    }

    /// A bidi client's ITEM or END at the director: kept for a replay, and forwarded to the
    /// owner if the call is attached (PROTOCOL.md section 13.6).
    fn director_client_frame(
        &mut self,
        call: usize,
        conn: u64,
        frame: Frame,
    ) -> Result<(), Violation> {
        let (session, call_id) = (self.clients[call].session, self.clients[call].call_id);
        let Some(r) = self
            .sessions
            .get_mut(&session)
            .and_then(|s| s.relays.get_mut(&call_id))
            .filter(|r| r.conn == conn && !r.machine.is_finished())
        else {
            return Ok(());
        };
        let forward = match frame {
            Frame::Item { seq, payload } => r.machine.on_client_item(seq, payload),
            Frame::End { items } => r.machine.on_client_end(items),
            other => unreachable!("the client sends ITEM and END, not {other:?}"),
        };
        let attached = r.attached;
        match forward {
            Ok(Some(f)) => {
                let (w, inc, stream) = attached.expect("forwarded only while attached");
                self.send_on_worker_stream(w, inc, stream, LinkIn::Client(f));
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(self.violation(
                "client-items",
                format!("call {call_id}: the relay refused the client's frame: {e}"),
            )),
        }
    }

    // ---- director: relays ----------------------------------------------------------------

    /// Attaches every waiting relay whose route is usable; fails those that waited too long.
    fn director_poll(&mut self) {
        let now = self.now;
        let ids: Vec<u64> = self.sessions.keys().copied().collect();
        for sid in ids {
            let route = self.sessions[&sid].coord.route().clone();
            let owner = self.index_of(&route.owner);
            let alive = owner.is_some_and(|w| self.dworkers[w].alive);
            let calls: Vec<u64> = self.sessions[&sid].relays.keys().copied().collect();
            for call_id in calls {
                let s = self.sessions.get_mut(&sid).expect("session");
                let r = s.relays.get_mut(&call_id).expect("relay");
                if r.machine.is_finished() || r.attached.is_some() {
                    continue;
                }
                let (client, conn) = (r.client, r.conn);
                if r.machine.can_attach(&route, alive, now) {
                    let w = owner.expect("alive owner");
                    match r.machine.attach(&route, now) {
                        Ok(frames) => {
                            let stream = self.next_stream;
                            self.next_stream += 1;
                            let inc = self.dworkers[w].inc;
                            r.attached = Some((w, inc, stream));
                            r.inbox.clear();
                            let mut frames = frames.into_iter();
                            let (Some(Frame::Attach(a)), Some(Frame::Request(req))) =
                                (frames.next(), frames.next())
                            else {
                                unreachable!("attach starts with ATTACH + REQUEST")
                            };
                            self.send_on_worker_stream(w, inc, stream, LinkIn::Open(a, req));
                            for f in frames {
                                self.send_on_worker_stream(w, inc, stream, LinkIn::Client(f));
                            }
                        }
                        Err(e) => self.fail_client(client, conn, e),
                    }
                    continue;
                }
                let expired = r.machine.deadline_at().is_some_and(|d| now >= d);
                if expired {
                    let e = r.machine.expire();
                    self.fail_client(client, conn, e);
                } else if now - r.waiting_since > ROUTE_WAIT_MS {
                    let e = r.machine.give_up(format!(
                        "no live worker for session {sid:x} within {ROUTE_WAIT_MS} ms"
                    ));
                    self.fail_client(client, conn, e);
                } else if let Some(at) = r.machine.retry_at().filter(|&t| t > now) {
                    if r.retry_scheduled != Some(at) {
                        r.retry_scheduled = Some(at);
                        self.q.push(at, Ev::RelayRetry);
                    }
                }
            }
        }
    }

    fn fail_client(&mut self, client: usize, conn: u64, e: CallError) {
        let at = self.ordered((0, client as u64));
        let frame = Frame::Error {
            code: e.code,
            message: e.message,
        };
        self.q.push(
            at,
            Ev::ToClient {
                call: client,
                conn,
                frame,
            },
        );
    }

    fn deliver_to_director(&mut self, w: usize, inc: u64, stream: u64, frame: Frame) {
        let Some((sid, call_id)) = self.relay_on(w, inc, stream) else {
            return;
        };
        let r = self
            .sessions
            .get_mut(&sid)
            .unwrap()
            .relays
            .get_mut(&call_id)
            .unwrap();
        r.inbox.push_back(frame);
        self.pump_relay(sid, call_id);
    }

    fn relay_on(&self, w: usize, inc: u64, stream: u64) -> Option<(u64, u64)> {
        self.sessions.iter().find_map(|(sid, s)| {
            s.relays
                .iter()
                .find(|(_, r)| r.attached == Some((w, inc, stream)))
                .map(|(c, _)| (*sid, *c))
        })
    }

    /// Reads what the relay's stream holds while the client has room, as the runtime's relay.
    fn pump_relay(&mut self, sid: u64, call_id: u64) {
        loop {
            let now = self.now;
            let Some(r) = self
                .sessions
                .get_mut(&sid)
                .and_then(|s| s.relays.get_mut(&call_id))
            else {
                return;
            };
            let Some((w, inc, stream)) = r.attached else {
                return;
            };
            // Only items wait for the client's window: the runtime's relay acts on the frames
            // that answer an ATTACH (SUSPENDED, SUPERSEDED) before it writes anything.
            let is_item = matches!(r.inbox.front(), Some(Frame::Item { .. }));
            if is_item && r.outstanding >= CLIENT_WINDOW {
                return;
            }
            let Some(frame) = r.inbox.pop_front() else {
                return;
            };
            let (client, conn) = (r.client, r.conn);
            let outcome = r.machine.on_owner_frame(frame, now);
            let mut to_client = None;
            let mut stop = false;
            let mut superseded = None;
            match outcome {
                OwnerFrame::Forward(f) => {
                    r.outstanding += 1;
                    to_client = Some(vec![f]);
                }
                OwnerFrame::Absorbed => {}
                OwnerFrame::Suspended => {
                    r.attached = None;
                    r.waiting_since = now;
                }
                OwnerFrame::Finished(frames) => {
                    r.attached = None;
                    to_client = Some(frames);
                }
                OwnerFrame::OwnerFailed(_) => {
                    r.attached = None;
                    r.waiting_since = now;
                    stop = true;
                }
                OwnerFrame::Superseded { generation, error } => {
                    r.attached = None;
                    to_client = Some(vec![error]);
                    superseded = Some(generation);
                }
            }
            if let Some(generation) = superseded {
                self.supersede(sid, generation);
            }
            let msg = if stop { LinkIn::Stop } else { LinkIn::Credit };
            self.send_on_worker_stream(w, inc, stream, msg);
            for frame in to_client.into_iter().flatten() {
                let at = self.ordered((0, client as u64));
                self.q.push(
                    at,
                    Ev::ToClient {
                        call: client,
                        conn,
                        frame,
                    },
                );
            }
        }
    }

    /// A worker answered SUPERSEDED: the director gives the session up. Its coordinator stops
    /// migrating and failing it over, and every call of it ends with `UNAVAILABLE` (its client
    /// connection was replaced, so nobody reads these).
    fn supersede(&mut self, sid: u64, generation: u32) {
        let now = self.now;
        let s = self.sessions.get_mut(&sid).expect("session");
        s.coord.on_superseded(generation, now);
        let mut errors = Vec::new();
        for r in s.relays.values_mut() {
            if !r.machine.is_finished() && r.attached.is_none() {
                errors.push((r.client, r.conn, r.machine.superseded(generation)));
            }
        }
        for (call, conn, frame) in errors {
            let at = self.ordered((0, call as u64));
            self.q.push(at, Ev::ToClient { call, conn, frame });
        }
        self.after_coord(sid);
    }

    // ---- director: coordinators, membership ---------------------------------------------

    /// Moves what a coordinator produced: messages, events, its next timer.
    fn after_coord(&mut self, sid: u64) {
        loop {
            let Some(s) = self.sessions.get_mut(&sid) else {
                return;
            };
            let Some(t) = s.coord.poll_transmit() else {
                break;
            };
            let Some(w) = self.index_of(&t.to) else {
                continue;
            };
            let inc = self.dworkers[w].inc;
            self.send_mgmt(w, inc, t, sid);
        }
        let s = self.sessions.get_mut(&sid).expect("session");
        while let Some(e) = s.coord.poll_event() {
            match e {
                CoordinatorEvent::MigrationFinished(m) => {
                    s.migration_started = None;
                    if m.completed {
                        self.report.completed += 1;
                    } else {
                        self.report.aborted += 1;
                    }
                }
                CoordinatorEvent::Failover { .. } => self.report.failovers += 1,
                CoordinatorEvent::Superseded { .. } => self.report.superseded += 1,
            }
        }
        if let Some(at) = s.coord.poll_timeout() {
            self.q
                .push(at.max(self.now), Ev::CoordTimer { session: sid });
        }
    }

    fn send_mgmt(&mut self, w: usize, inc: u64, t: Transmit, session: u64) {
        if self.dice.chance(self.p.drop_permille) {
            return;
        }
        let copies = if self.dice.chance(self.p.dup_permille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = self.now + self.delay();
            self.q.push(
                at,
                Ev::Mgmt {
                    w,
                    inc,
                    t: t.clone(),
                    session,
                },
            );
        }
    }

    fn reply(
        &mut self,
        session: u64,
        t: &Transmit,
        result: Result<ManagementMessage, CallError>,
        extra_ms: u64,
    ) {
        if self.dice.chance(self.p.drop_permille) {
            return;
        }
        let copies = if self.dice.chance(self.p.dup_permille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = self.now + extra_ms + self.delay();
            let ev = Ev::Reply {
                session,
                migration_id: t.migration_id,
                method: t.method,
                result: result.clone(),
            };
            self.q.push(at, ev);
        }
    }

    fn director_heartbeat(&mut self, w: usize, inc: u64, sent_at: u64) {
        let d = &mut self.dworkers[w];
        let known = d.alive && d.inc == inc;
        let forget = !known && d.known;
        if known {
            d.last_rx = self.now;
        }
        if self.workers[w].partition_until <= self.now && !self.dice.chance(self.p.drop_permille) {
            let at = self.now + self.delay();
            self.q.push(
                at,
                Ev::HeartbeatAck {
                    w,
                    inc,
                    sent_at,
                    known,
                    forget,
                },
            );
        }
    }

    fn director_register(&mut self, w: usize, inc: u64, sent_at: u64) {
        let now = self.now;
        let d = &mut self.dworkers[w];
        // A live worker keeps its id: a second registration under it is refused.
        let accepted = !(d.alive && d.inc != inc);
        if accepted && !(d.alive && d.inc == inc) {
            *d = DWorker {
                known: true,
                alive: true,
                inc,
                last_rx: now,
                draining: false,
            };
            let id = self.workers[w].id.clone();
            for s in self.sessions.values_mut() {
                for r in s.relays.values_mut() {
                    if r.attached.is_some_and(|a| a.0 == w) {
                        r.attached = None;
                        r.machine.owner_lost(now);
                        r.waiting_since = now;
                    }
                }
                s.coord.owner_relinked(&id);
            }
            self.place_orphans();
        }
        let at = now + self.delay();
        self.q.push(
            at,
            Ev::RegisterAck {
                w,
                inc,
                sent_at,
                accepted,
            },
        );
    }

    fn director_tick(&mut self) {
        let now = self.now;
        if !self.director_up {
            self.q.push(now + 20, Ev::DirectorTick);
            return;
        }
        for w in 0..self.dworkers.len() {
            let d = &self.dworkers[w];
            if d.alive && now - d.last_rx > self.p.failover_after_ms {
                self.declare_dead(w);
            }
        }
        self.place_orphans();
        self.drain_step();
        self.q.push(now + 20, Ev::DirectorTick);
    }

    fn declare_dead(&mut self, w: usize) {
        let now = self.now;
        self.dworkers[w].alive = false;
        let id = self.workers[w].id.clone();
        let sids: Vec<u64> = self.sessions.keys().copied().collect();
        for sid in sids {
            let s = self.sessions.get_mut(&sid).unwrap();
            for r in s.relays.values_mut() {
                if r.attached.is_some_and(|a| a.0 == w) {
                    r.attached = None;
                    r.machine.owner_lost(now);
                    r.waiting_since = now;
                }
            }
            s.coord.worker_lost(&id, now);
            self.after_coord(sid);
        }
    }

    /// Fails over every session whose owner is not a live worker and that no migration holds.
    fn place_orphans(&mut self) {
        let sids: Vec<u64> = self.sessions.keys().copied().collect();
        for sid in sids {
            let route = self.sessions[&sid].coord.route().clone();
            let owner_alive = self
                .index_of(&route.owner)
                .is_some_and(|w| self.dworkers[w].alive);
            if owner_alive || self.sessions[&sid].coord.migration().is_some() {
                continue;
            }
            if let Some(to) = self.place(None) {
                let id = self.workers[to].id.clone();
                self.sessions.get_mut(&sid).unwrap().coord.fail_over(&id);
                self.after_coord(sid);
            }
        }
    }

    fn drain_step(&mut self) {
        let sids: Vec<u64> = self.sessions.keys().copied().collect();
        for sid in sids {
            let owner = self.index_of(&self.sessions[&sid].coord.route().owner);
            let Some(w) = owner.filter(|&w| self.dworkers[w].draining && self.dworkers[w].alive)
            else {
                continue;
            };
            if self.sessions[&sid].coord.migration().is_some() {
                continue;
            }
            let Some(to) = self.place(Some(w)) else {
                continue;
            };
            let id = self.next_migration;
            self.next_migration += 1;
            let nonce = self.dice.bytes::<32>();
            let target = self.workers[to].id.clone();
            let (config, key, now) = (self.config, self.key.clone(), self.now);
            let s = self.sessions.get_mut(&sid).unwrap();
            if s.coord
                .start_migration(
                    MigrationStart {
                        config,
                        migration_id: id,
                        target: &target,
                        reason: MigrationReason::Drain,
                        key: &key,
                        nonce,
                    },
                    now,
                )
                .is_ok()
            {
                s.migration_started = Some(now);
            }
            self.after_coord(sid);
        }
        for w in 0..self.dworkers.len() {
            let owns = self
                .sessions
                .values()
                .any(|s| s.coord.route().owner == self.workers[w].id);
            if self.dworkers[w].draining && !owns {
                self.dworkers[w].draining = false; // drained; back in service
            }
        }
    }

    // ---- workers -------------------------------------------------------------------------

    fn worker_tick(&mut self, w: usize, inc: u64) {
        let now = self.now;
        let p = &mut self.workers[w];
        if !p.up || p.inc != inc {
            return;
        }
        p.book.prune(now);
        p.participant.prune(now);
        let partitioned = p.partition_until > now;
        let registered = p.registered;
        if !partitioned && !self.dice.chance(self.p.drop_permille) {
            let at = now + self.delay();
            let ev = if registered {
                Ev::Heartbeat {
                    w,
                    inc,
                    sent_at: now,
                }
            } else {
                Ev::Register {
                    w,
                    inc,
                    sent_at: now,
                }
            };
            self.q.push(at, ev);
        }
        self.q
            .push(now + self.p.heartbeat_ms, Ev::WorkerTick { w, inc });
    }

    fn worker_heartbeat_ack(
        &mut self,
        w: usize,
        inc: u64,
        sent_at: u64,
        known: bool,
        forget: bool,
    ) {
        let now = self.now;
        let p = &mut self.workers[w];
        if !p.up || p.inc != inc || !p.registered {
            return;
        }
        if known {
            p.lease.acked(sent_at);
            if p.lease.is_valid(now) {
                p.book.lease_held(DIRECTOR);
            }
            let at = p.lease.expires_at().unwrap_or(now);
            self.q.push(at, Ev::LeaseCheck { w, inc });
        } else if forget {
            // The director declared this worker dead: its sessions were moved. Stop what it
            // relays, forget those sessions, and register again.
            p.registered = false;
            self.fence_director(w);
            self.workers[w].book.forget_director(DIRECTOR, now);
        } else {
            // A restarted director that never knew this worker: register, keep the sessions
            // (their clients resume them).
            p.registered = false;
        }
    }

    fn lease_check(&mut self, w: usize, inc: u64) {
        let p = &self.workers[w];
        if p.up && p.inc == inc && !p.lease.is_valid(self.now) && p.book.is_leased(DIRECTOR) {
            self.fence_director(w);
        }
    }

    /// The director's lease lapsed on worker `w`: the book names the calls it relays, and each
    /// is frozen at an item boundary, its state kept (as the runtime's fence does).
    fn fence_director(&mut self, w: usize) {
        let calls: BTreeSet<(u64, u64)> = self.workers[w]
            .book
            .lease_lapsed(DIRECTOR)
            .into_iter()
            .collect();
        let streams: Vec<u64> = self.workers[w]
            .calls
            .iter()
            .filter(|(_, c)| calls.contains(&(c.session, c.call_id)))
            .map(|(stream, _)| *stream)
            .collect();
        for stream in streams {
            let snap = self.freeze_call(w, stream);
            self.workers[w]
                .book
                .keep_relayed(snap.0, &[snap.1], DIRECTOR);
        }
    }

    /// Freezes one call: SUSPENDED on its stream; returns (session, snapshot).
    fn freeze_call(
        &mut self,
        w: usize,
        stream: u64,
    ) -> (u64, rpcnet_protocol::migration::CallSnapshot) {
        let now = self.now;
        let p = &mut self.workers[w];
        let mut c = p.calls.remove(&stream).expect("call");
        let queued: Vec<Produced> = c.queue.drain(..).collect();
        let (suspended, snap) = c.machine.freeze(Vec::new(), queued);
        p.book.call_ended(c.session, c.call_id, now);
        let inc = p.inc;
        self.send_on_director_stream(w, inc, stream, suspended);
        (c.session, snap)
    }

    fn deliver_to_worker(
        &mut self,
        w: usize,
        inc: u64,
        stream: u64,
        msg: LinkIn,
    ) -> Result<(), Violation> {
        let now = self.now;
        if !self.workers[w].up || self.workers[w].inc != inc {
            return Ok(()); // the connection died with the process
        }
        match msg {
            LinkIn::Open(attach, request) => {
                let decision = self.workers[w].book.attach(&attach, DIRECTOR);
                let restored = match decision {
                    AttachDecision::Suspend { next_seq } => {
                        let frame = Frame::Suspended { next_seq };
                        self.send_on_director_stream(w, inc, stream, frame);
                        return Ok(());
                    }
                    AttachDecision::Superseded { generation } => {
                        let frame = Frame::Superseded { generation };
                        self.send_on_director_stream(w, inc, stream, frame);
                        return Ok(());
                    }
                    AttachDecision::Serve(r) => r,
                };
                let client = self
                    .clients
                    .iter()
                    .position(|c| c.call_id == attach.call_id)
                    .expect("client");
                let cl = &self.clients[client];
                let deadline_at =
                    (request.deadline_ms > 0).then(|| now + u64::from(request.deadline_ms));
                if let Some(d) = deadline_at {
                    let budget = cl.started_at + u64::from(cl.deadline_ms) + self.p.max_delay_ms;
                    if d > budget {
                        return Err(self.violation(
                            "deadline",
                            format!(
                                "call {} resumed with a deadline {} ms past the client's",
                                attach.call_id,
                                d - budget
                            ),
                        ));
                    }
                }
                let want = request_metadata_for(attach.call_id);
                let session_hex = format!("{:016x}", attach.session_id);
                let sent = &request.metadata;
                if sent.get("authorization") != want.get("authorization")
                    || sent.get(SESSION_ID_KEY).map(|v| v.as_ref()) != Some(session_hex.as_bytes())
                {
                    return Err(self.violation(
                        "metadata",
                        format!(
                            "call {} attached with request headers {sent:?}",
                            attach.call_id
                        ),
                    ));
                }
                let (machine, first) = ServerCall::attached(&attach, &request, restored);
                let next = match machine.resume() {
                    None => 0,
                    Some(c) => {
                        let (seq, state) = (c.seq, &c.state);
                        if !(state.is_empty() && seq == 0) && *state != state_for(seq) {
                            return Err(self.violation("exactly-once", format!(
                                "call {} resumed at seq {seq} with the checkpoint of another seq", attach.call_id)));
                        }
                        // The simulated bidi handler reads client item k to produce item k.
                        if request.client_streaming && c.read != seq {
                            return Err(self.violation(
                                "client-items",
                                format!(
                                    "call {} resumed at seq {seq} with read {}",
                                    attach.call_id, c.read
                                ),
                            ));
                        }
                        seq
                    }
                };
                let read = machine.read_from();
                let client_items = request.client_streaming.then(|| ClientItems::relayed(read));
                let call = WCall {
                    session: attach.session_id,
                    call_id: attach.call_id,
                    client,
                    machine,
                    // The handler sets its response headers at every (re)start.
                    queue: VecDeque::from([Produced::Headers(headers_for(attach.call_id))]),
                    credit: STREAM_WINDOW,
                    next,
                    producing: false,
                    deadline_at,
                    client_items,
                    inbound: VecDeque::new(),
                    read,
                };
                for frame in first {
                    self.send_on_director_stream(w, inc, stream, frame);
                }
                self.workers[w].calls.insert(stream, call);
                self.pump_writer(w, stream); // a handler resumed past its last item just ends
                self.schedule_produce(w, stream);
            }
            LinkIn::Stop => {
                if let Some(c) = self.workers[w].calls.remove(&stream) {
                    self.workers[w].book.call_ended(c.session, c.call_id, now);
                }
            }
            LinkIn::Credit => {
                if let Some(c) = self.workers[w].calls.get_mut(&stream) {
                    c.credit += 1;
                }
                self.pump_writer(w, stream);
            }
            LinkIn::Lost => {
                if self.workers[w].calls.contains_key(&stream) {
                    let (session, snap) = self.freeze_call(w, stream);
                    self.workers[w].book.detach(session, &[snap], now);
                }
            }
            LinkIn::Client(frame) => {
                let Some(c) = self.workers[w].calls.get_mut(&stream) else {
                    return Ok(()); // answered SUSPENDED, frozen or over: the relay moves on
                };
                let call_id = c.call_id;
                let rule = c
                    .client_items
                    .as_mut()
                    .expect("client frames only on bidi calls");
                let decided = match frame {
                    Frame::Item { seq, payload } => rule.on_item(seq).map(|d| {
                        if d == ClientItem::Deliver {
                            c.inbound.push_back(payload);
                        }
                    }),
                    Frame::End { items } => rule.on_end(items),
                    other => unreachable!("the relay forwards ITEM and END, not {other:?}"),
                };
                if let Err(e) = decided {
                    return Err(self.violation(
                        "client-items",
                        format!("call {call_id}: the worker refused a client frame: {e}"),
                    ));
                }
                self.pump_writer(w, stream);
                self.schedule_produce(w, stream);
            }
            LinkIn::Ack(next_seq) => {
                if let Some(c) = self.workers[w].calls.get_mut(&stream) {
                    c.machine.on_ack(next_seq);
                }
                self.pump_writer(w, stream);
            }
        }
        Ok(())
    }

    fn schedule_produce(&mut self, w: usize, stream: u64) {
        let inc = self.workers[w].inc;
        let Some(c) = self.workers[w].calls.get_mut(&stream) else {
            return;
        };
        let total = self.clients[c.client].items;
        if c.producing || c.next >= total || c.queue.len() >= QUEUE_HIGH {
            return;
        }
        if c.client_items.is_some() && c.inbound.is_empty() {
            return; // the bidi handler waits for the client's next item
        }
        c.producing = true;
        let at = self.now + self.clients[c.client].every_ms;
        self.q.push(at, Ev::Produce { w, inc, stream });
    }

    fn produce(&mut self, w: usize, inc: u64, stream: u64) -> Result<(), Violation> {
        let now = self.now;
        if !self.workers[w].up || self.workers[w].inc != inc {
            return Ok(());
        }
        let Some(c) = self.workers[w].calls.get_mut(&stream) else {
            return Ok(());
        };
        c.producing = false;
        if c.deadline_at.is_some_and(|d| now >= d) {
            let c = self.workers[w].calls.remove(&stream).unwrap();
            self.workers[w].book.call_ended(c.session, c.call_id, now);
            let frame = Frame::Error {
                code: ErrorCode::DeadlineExceeded,
                message: "deadline exceeded".into(),
            };
            self.send_on_director_stream(w, inc, stream, frame);
            return Ok(());
        }
        let spec = &self.clients[c.client];
        let seq = c.next;
        if c.client_items.is_some() {
            // Exactly-once towards the handler: it reads client item k (k = seq) now.
            let got = c
                .inbound
                .pop_front()
                .expect("scheduled with an item to read");
            if got != client_payload_for(spec.call_id, c.read) || c.read != seq {
                let (call_id, read) = (spec.call_id, c.read);
                return Err(self.violation(
                    "client-items",
                    format!("call {call_id}: the handler read a client item that is not item {read} before producing item {seq}"),
                ));
            }
            c.read += 1;
            self.report.client_items += 1;
        }
        c.queue
            .push_back(Produced::Item(payload_for(spec.call_id, seq)));
        c.next += 1;
        if spec.checkpoint_every > 0 && c.next % spec.checkpoint_every == 0 {
            c.queue.push_back(Produced::Checkpoint {
                state: state_for(c.next),
                read: c.read,
            });
        }
        self.pump_writer(w, stream);
        self.schedule_produce(w, stream);
        Ok(())
    }

    /// The call's writer: sends what the handler queued while the stream has credit; END once
    /// the handler finished and everything was sent.
    fn pump_writer(&mut self, w: usize, stream: u64) {
        let now = self.now;
        let inc = self.workers[w].inc;
        loop {
            let p = &mut self.workers[w];
            let Some(c) = p.calls.get_mut(&stream) else {
                return;
            };
            if c.credit == 0 || c.machine.unacked().0 >= RETAIN_MAX {
                return;
            }
            let total = self.clients[c.client].items;
            let Some(entry) = c.queue.pop_front() else {
                let read_all = c.client_items.as_ref().is_none_or(ClientItems::is_ended);
                if c.next >= total && read_all {
                    let end = c.machine.end();
                    let c = p.calls.remove(&stream).unwrap();
                    p.book.call_ended(c.session, c.call_id, now);
                    let trailers = Frame::Trailers {
                        metadata: trailers_for(c.call_id),
                    };
                    self.send_on_director_stream(w, inc, stream, trailers);
                    self.send_on_director_stream(w, inc, stream, end);
                }
                return;
            };
            if let Some(frame) = c.machine.on_produced(entry) {
                c.credit -= 1;
                self.send_on_director_stream(w, inc, stream, frame);
            }
            self.schedule_produce(w, stream);
        }
    }

    fn worker_mgmt(&mut self, w: usize, inc: u64, t: Transmit, session: u64) {
        let now = self.now;
        if !self.workers[w].up || self.workers[w].inc != inc {
            return;
        }
        let hook_ms = self.dice.range(0, 5);
        match (&t.method, &t.message) {
            (WorkerMethod::Request, ManagementMessage::Request(req)) => {
                if let Err(e) = self.workers[w].participant.on_request(req, now) {
                    return self.reply(session, &t, Err(refused(e)), 0);
                }
                let decision = match self.dice.range(0, 99) {
                    0..=74 => ConfirmationDecision::Accept,
                    75..=82 => ConfirmationDecision::Reject {
                        reason: "policy".into(),
                    },
                    83..=90 => ConfirmationDecision::Defer {
                        retry_after_ms: self.dice.range(10, 60) as u32,
                    },
                    91..=94 => {
                        return self.reply(
                            session,
                            &t,
                            Err(hook_threw("onMigrationRequest")),
                            hook_ms,
                        )
                    }
                    _ => return, // the hook never answers
                };
                let msg = ManagementMessage::Confirmation(MigrationConfirmation {
                    migration_id: req.migration_id,
                    decision,
                });
                self.reply(session, &t, Ok(msg), hook_ms);
            }
            (WorkerMethod::Prepare, ManagementMessage::Request(req)) => {
                let r = self.workers[w]
                    .participant
                    .on_prepare(req, now)
                    .map_err(refused);
                self.reply(session, &t, r, 0);
            }
            (WorkerMethod::Capture, ManagementMessage::Request(req)) => {
                let p = &mut self.workers[w];
                if let Err(e) = p.participant.on_capture(&mut p.book, req, now) {
                    return self.reply(session, &t, Err(refused(e)), 0);
                }
                let streams: Vec<u64> = p
                    .calls
                    .iter()
                    .filter(|(_, c)| c.session == req.session_id)
                    .map(|(s, _)| *s)
                    .collect();
                let mut frozen = Vec::new();
                for stream in streams {
                    frozen.push(self.freeze_call(w, stream).1);
                }
                let p = &mut self.workers[w];
                p.book.keep(req.session_id, &frozen);
                if let Some(thrown) = self.hook_fails("captureState") {
                    // It threw (answer the error) or it never answers (answer nothing).
                    if let Some(e) = thrown {
                        self.reply(session, &t, Err(e), hook_ms);
                    }
                    return;
                }
                let p = &self.workers[w];
                let snap = SessionSnapshot {
                    session_id: req.session_id,
                    connection_id: p.book.connection_id(req.session_id),
                    captured_at_ms: now,
                    route_epoch: 0,
                    app_state: Bytes::from_static(b"app"),
                    calls: p.book.kept_calls(req.session_id),
                };
                let nonce = self.dice.bytes::<12>();
                let r = self.workers[w]
                    .participant
                    .seal(&snap, req.migration_id, nonce)
                    .map_err(refused);
                self.reply(session, &t, r, hook_ms);
            }
            (WorkerMethod::Transfer, ManagementMessage::StateTransfer(st)) => {
                let snap = match self.workers[w].participant.on_transfer(st, MAX_SNAPSHOT) {
                    Ok(s) => s,
                    Err(e) => return self.reply(session, &t, Err(refused(e)), 0),
                };
                if let Some(thrown) = self.hook_fails("restoreState") {
                    // It threw (answer the error) or it never answers (answer nothing).
                    if let Some(e) = thrown {
                        self.reply(session, &t, Err(e), hook_ms);
                    }
                    return;
                }
                let p = &mut self.workers[w];
                let msg =
                    p.participant
                        .restored(&mut p.book, st.migration_id, &snap, DIRECTOR, now);
                self.reply(session, &t, Ok(msg), hook_ms);
            }
            (WorkerMethod::Complete, ManagementMessage::Complete(c)) => {
                let p = &mut self.workers[w];
                p.participant.on_complete(&mut p.book, c, now);
            }
            (WorkerMethod::Abort, ManagementMessage::Abort(a)) => {
                let p = &mut self.workers[w];
                p.participant.on_abort(&mut p.book, a, now);
            }
            (m, msg) => panic!("coordinator sent {} as {m:?}", msg.name()),
        }
    }

    /// A state hook's behaviour: `None` = it answered; `Some(Some(e))` = it threw;
    /// `Some(None)` = it never answered.
    fn hook_fails(&mut self, hook: &str) -> Option<Option<CallError>> {
        match self.dice.range(0, 99) {
            0..=93 => None,
            94..=96 => Some(Some(hook_threw(hook))),
            _ => Some(None),
        }
    }

    // ---- invariants ----------------------------------------------------------------------

    fn check(&self) -> Result<(), Violation> {
        let all: BTreeSet<u64> = self.clients.iter().map(|c| c.session).collect();
        for sid in &all {
            let producers: BTreeSet<&str> = self
                .workers
                .iter()
                .filter(|p| p.up && p.calls.values().any(|c| c.session == *sid))
                .map(|p| p.id.as_str())
                .collect();
            if producers.len() > 1 {
                return Err(self.violation(
                    "one-owner",
                    format!("session {sid:x} has calls producing on {producers:?}"),
                ));
            }
        }
        for (sid, s) in &self.sessions {
            let route = s.coord.route();
            let phase = s.coord.migration().map(|m| m.3);
            use rpcnet_protocol::migration::Phase;
            if route.frozen && !matches!(phase, Some(Phase::StateCapture | Phase::StateTransfer)) {
                return Err(self.violation(
                    "no-frozen-route",
                    format!("session {sid:x} route frozen with migration phase {phase:?}"),
                ));
            }
            if let (Some(started), Some(total)) =
                (s.migration_started, s.coord.migration_total_timeout_ms())
            {
                if self.now - started > total {
                    return Err(self.violation(
                        "migration-timeout",
                        format!(
                            "migration of session {sid:x} running for {} ms, timeout {total} ms",
                            self.now - started
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn refused(e: rpcnet_protocol::migration::MigrationError) -> CallError {
    CallError {
        code: ErrorCode::InvalidArgument,
        message: format!("{}: {e}", e.code()),
    }
}

fn hook_threw(hook: &str) -> CallError {
    CallError {
        code: ErrorCode::Unknown,
        message: format!("hook failed: {hook} threw"),
    }
}

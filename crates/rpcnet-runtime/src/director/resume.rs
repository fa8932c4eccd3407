//! Resumable sessions at the director (PROTOCOL.md section 15): the session stream a client
//! opens with HELLO, the credential the director issues in WELCOME, and the resume of a session
//! from its credential: the director claims it at every live worker, continues it on the owner
//! [`choose_owner`] designates and releases the other holders.
//!
//! The director keeps nothing of a session that another director could need: the credential
//! carries the session id and its generation (sealed under a key derived from the cluster
//! secret), and the workers hold the session's state and generation. So any director of the
//! cluster can resume any session, and a director that dies loses nothing but its connections.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rpcnet_protocol::codec::peek_header;
use rpcnet_protocol::migration::{Claim, ManagementMessage, SessionClosed};
use rpcnet_protocol::resume::{ResumeCredential, ResumeError, ResumeKey};
use rpcnet_protocol::{Decoder, ErrorCode, Frame, FrameType};
use rpcnet_session::session_book::{choose_owner, ClaimAnswer, ClaimStatus};
use tokio::task::JoinSet;

use super::{Inner, Session};
use crate::cluster::ClusterCredentials;
use crate::error::RpcError;
use crate::mgmt::{self, now_ms};

/// How long a worker may take to answer a claim, ms; a worker that does not answer in time is
/// left out (its copy of the session, if any, stays frozen until its resume window passes).
const CLAIM_TIMEOUT_MS: u32 = 2_000;
/// How long SessionClosed to a holder that was not chosen may take, ms.
const RELEASE_TIMEOUT_MS: u32 = 2_000;

/// The key that seals resume credentials: HMAC-SHA256(cluster secret, "rpcnet/1 resume
/// credential key"), the same on every director of the cluster.
pub(crate) fn resume_key(cluster: &ClusterCredentials) -> ResumeKey {
    ResumeKey::from_bytes(&cluster.derive_key(b"rpcnet/1 resume credential key"))
}

/// The WELCOME for `session` (PROTOCOL.md section 15.2): its id and a fresh credential of its
/// generation naming its owner now.
///
/// Errors: `INTERNAL` when the system's random source fails.
pub(crate) fn welcome(inner: &Inner, session: &Session) -> Result<Frame, RpcError> {
    let mut nonce = [0u8; 12];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
        .map_err(|_| RpcError::internal("no random bytes for a resume credential"))?;
    let credential = ResumeCredential {
        session_id: session.id,
        generation: session.generation,
        issued_at_ms: now_ms(),
        owner: session.owner(),
    };
    Ok(Frame::Welcome {
        session_id: session.id,
        credential: inner.resume_key.seal(&credential, nonce),
    })
}

/// What the first stream of a client connection starts with.
pub(crate) enum FirstFrame {
    /// HELLO: a resumable session (new with an empty credential).
    Hello(Bytes),
    /// Anything else: a client of sections 2 to 13 (its first call), with the bytes read.
    Call(BytesMut),
}

/// Reads the start of a connection's first stream: a HELLO is read whole; for anything else
/// only its header is looked at (PROTOCOL.md section 4), and the bytes read so far, a malformed
/// frame or a failed stream included, are left to the relay of a plain client's call, which
/// answers them as it answers any call (section 11).
pub(crate) async fn first_frame(recv: &mut quinn::RecvStream, max_frame_size: u32) -> FirstFrame {
    let mut buf = BytesMut::new();
    let mut decoder = Decoder::new(max_frame_size);
    loop {
        let hello = peek_header(&buf).map(|(ty, _, _)| ty == FrameType::Hello.as_u8());
        if hello == Some(true) {
            match decoder.decode(&mut buf) {
                Ok(Some(Frame::Hello { credential })) => return FirstFrame::Hello(credential),
                Ok(None) => {}
                // A malformed HELLO: what it got is refused as a plain client's bad first frame.
                Ok(Some(_)) | Err(_) => return FirstFrame::Call(buf),
            }
        } else if hello == Some(false) {
            return FirstFrame::Call(buf);
        }
        match recv.read_chunk(64 * 1024, true).await {
            Ok(Some(c)) => buf.extend_from_slice(&c.bytes),
            Ok(None) | Err(_) => return FirstFrame::Call(buf),
        }
    }
}

/// Resumes the session `credential` names (PROTOCOL.md section 15.6): claims it at every live
/// worker, and returns the session continued on the owner they designate, at the next
/// generation. The other holders are told to drop their copies.
///
/// Errors (the message starts with the code, for the ERROR frame): `RESUME_INVALID` for a
/// credential this cluster did not issue, `RESUME_REPLAYED` for one the session was already
/// resumed with, `RESUME_UNKNOWN` when no worker holds the session.
pub(crate) async fn resume(inner: &Arc<Inner>, credential: &[u8]) -> Result<Session, RpcError> {
    let c = inner.resume_key.open(credential).map_err(refused)?;
    let answers = claim_everywhere(inner, c.session_id, c.generation).await?;
    let owner = choose_owner(&answers)
        .ok_or_else(|| {
            refused(ResumeError::Unknown {
                session_id: c.session_id,
            })
        })?
        .to_string();
    for loser in answers.iter().filter(|a| a.worker != owner) {
        release(inner, &loser.worker, c.session_id);
    }
    tracing::info!(session = %format!("{:016x}", c.session_id), %owner, generation = c.generation + 1, "session resumed");
    Ok(Session::resumed(c.session_id, owner, c.generation + 1))
}

/// Claims the session at every live worker at once; returns the answers of those that hold it.
async fn claim_everywhere(
    inner: &Arc<Inner>,
    session_id: u64,
    generation: u32,
) -> Result<Vec<ClaimAnswer>, RpcError> {
    let workers: Vec<_> = inner
        .workers
        .lock()
        .unwrap()
        .values()
        .filter(|w| w.alive())
        .cloned()
        .collect();
    let mut claims = JoinSet::new();
    for w in workers {
        let msg = ManagementMessage::Claim(Claim {
            session_id,
            generation,
        });
        claims.spawn(async move {
            let r = mgmt::call(&w.mgmt, mgmt::CLAIM, &msg, CLAIM_TIMEOUT_MS).await;
            (w.id.clone(), r)
        });
    }
    let mut answers = Vec::new();
    let mut replayed = None;
    while let Some(joined) = claims.join_next().await {
        let Ok((worker, reply)) = joined else {
            continue;
        };
        match reply {
            Ok(ManagementMessage::Claimed(c)) => {
                if let Some(status) = ClaimStatus::from_u8(c.status) {
                    answers.push(ClaimAnswer {
                        worker,
                        status,
                        epoch: c.epoch,
                    });
                }
            }
            Ok(other) => {
                tracing::warn!(%worker, "worker answered Claim with {}", other.name());
            }
            Err(e) if e.message.starts_with("RESUME_REPLAYED") => replayed = Some(e),
            Err(e) => tracing::warn!(%worker, error = %e, "claim failed"),
        }
    }
    match replayed {
        Some(e) => Err(e),
        None => Ok(answers),
    }
}

/// Tells a holder that was not chosen to drop its copy (not waited for: its copy stays frozen,
/// fenced by the new generation, until its resume window passes anyway).
fn release(inner: &Arc<Inner>, worker: &str, session_id: u64) {
    let Some(w) = inner.worker(worker) else {
        return;
    };
    tokio::spawn(async move {
        let msg = ManagementMessage::SessionClosed(SessionClosed { session_id });
        if let Err(e) = mgmt::call(&w.mgmt, mgmt::SESSION_CLOSED, &msg, RELEASE_TIMEOUT_MS).await {
            tracing::debug!(error = %e, "releasing a resumed session's other copy failed");
        }
    });
}

/// A refused resume as the ERROR the client gets: `INVALID_ARGUMENT`, the code first.
fn refused(e: ResumeError) -> RpcError {
    RpcError::new(ErrorCode::InvalidArgument, format!("{}: {e}", e.code()))
}

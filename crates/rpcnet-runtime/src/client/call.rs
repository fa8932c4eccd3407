//! One call's QUIC stream at the client, driving the sans-IO [`ClientStream`] (quinn-proto
//! style): [`CallStream`] reads chunks (waiting, or only what quinn already holds), hands them,
//! the FIN and read failures to the machine, waits on the call's [`Alarms`] (its deadline, its
//! canceller) and carries out the failures the machine reports, with STOP_SENDING and
//! RESET_STREAM when it says so. Nothing here decides what the caller receives.

use std::sync::Arc;
use std::time::Duration;

use rpcnet_protocol::Frame;
use tokio::time::Instant;

use super::resume::{Resumable, ACK_EVERY_BYTES, ACK_EVERY_ITEMS};
use super::Canceller;
use crate::connection::ConnectionInfo;
use crate::error::{app_code, RpcError};
use rpcnet_session::{ClientStream, Failure, Received};

/// Largest chunk taken from quinn in one read, bytes.
const READ_CHUNK: usize = 256 * 1024;

/// What ends a call from the client's side while it waits for the server: its deadline (an
/// instant on tokio's clock) and an optional canceller.
pub(super) struct Alarms<'a> {
    deadline: Option<Instant>,
    canceller: Option<&'a Canceller>,
}

/// Which alarm went off.
pub(super) enum Alarm {
    Deadline,
    Cancelled,
}

impl<'a> Alarms<'a> {
    /// Alarms for `machine`'s deadline counted from now (PROTOCOL.md 8.2: from when the client
    /// sends the REQUEST), and for `canceller` when given.
    pub(super) fn new(machine: &ClientStream, canceller: Option<&'a Canceller>) -> Self {
        let deadline = machine
            .deadline_ms()
            .map(|ms| Instant::now() + Duration::from_millis(ms.into()));
        Alarms {
            deadline,
            canceller,
        }
    }

    /// Completes when an alarm goes off.
    pub(super) async fn rung(&self) -> Alarm {
        let deadline = async {
            match self.deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let cancelled = async {
            match self.canceller {
                Some(c) => c.cancelled().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = deadline => Alarm::Deadline,
            _ = cancelled => Alarm::Cancelled,
        }
    }
}

impl Alarms<'_> {
    /// The deadline left now, ms (0 = the call has none).
    pub(super) fn left_ms(&self) -> u32 {
        self.deadline.map_or(0, |d| {
            let left = d.saturating_duration_since(Instant::now()).as_millis();
            u32::try_from(left).unwrap_or(u32::MAX).max(1)
        })
    }
}

/// Opens a stream on `connection` and writes `frames`, then FIN when `finish`.
pub(super) async fn open_on(
    connection: &ConnectionInfo,
    frames: &[Frame],
    finish: bool,
) -> Result<(quinn::SendStream, quinn::RecvStream), RpcError> {
    let (mut send, recv) = connection.quinn().open_bi().await?;
    let mut chunks: Vec<bytes::Bytes> = frames.iter().map(Frame::to_bytes).collect();
    send.write_all_chunks(&mut chunks).await?;
    if finish {
        send.finish()?;
    }
    Ok((send, recv))
}

/// A call's stream just opened, and its resumable session if it has one (with the epoch of the
/// connection it was opened on).
pub(super) struct Opened {
    /// `None` when a [`super::RequestSender`] owns the send side (client-streaming calls).
    send: Option<quinn::SendStream>,
    recv: quinn::RecvStream,
    session: Option<(Arc<Resumable>, u64)>,
}

impl Opened {
    pub(super) fn plain(send: quinn::SendStream, recv: quinn::RecvStream) -> Self {
        Opened {
            send: Some(send),
            recv,
            session: None,
        }
    }

    /// A call whose send side belongs to a [`super::RequestSender`], of a resumable session
    /// (with the epoch of the connection it was opened on) or not.
    pub(super) fn receive_only(
        recv: quinn::RecvStream,
        session: Option<(Arc<Resumable>, u64)>,
    ) -> Self {
        Opened {
            send: None,
            recv,
            session,
        }
    }

    pub(super) fn resumable(
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        session: Arc<Resumable>,
        epoch: u64,
    ) -> Self {
        Opened {
            send: Some(send),
            recv,
            session: Some((session, epoch)),
        }
    }
}

impl Alarm {
    /// Tells `machine` that this alarm ended its call; returns the failure it decides.
    pub(super) fn end(self, machine: &mut ClientStream) -> Failure {
        match self {
            Alarm::Deadline => machine.expire(),
            Alarm::Cancelled => machine.cancel(),
        }
    }
}

/// A call's open stream and the machine that judges what arrives on it.
pub(super) struct CallStream {
    send: Option<quinn::SendStream>,
    recv: quinn::RecvStream,
    machine: ClientStream,
    /// A resumable session's call: the session and the epoch of the connection the stream is on.
    session: Option<(Arc<Resumable>, u64)>,
    /// The stream's connection was lost: re-attach on the session's next connection.
    lost: bool,
    /// A client-streaming call's requests, which own the send side (its ACKs go there too).
    requests: Option<super::RequestSender>,
}

impl CallStream {
    /// Drives `machine` over the stream its REQUEST was sent on.
    pub(super) fn new(opened: Opened, machine: ClientStream) -> Self {
        CallStream {
            send: opened.send,
            recv: opened.recv,
            machine,
            session: opened.session,
            lost: false,
            requests: None,
        }
    }

    /// The call's requests go through `requests`, which owns the send side: ACKs go out there,
    /// and a re-attach hands it the new stream ([`super::RequestSender::switch`]).
    pub(super) fn with_requests(mut self, requests: super::RequestSender) -> Self {
        self.requests = Some(requests);
        self
    }

    /// The machine's view of the call.
    pub(super) fn machine(&self) -> &ClientStream {
        &self.machine
    }

    /// The response headers and trailers received so far.
    pub(super) fn response_metadata(&self) -> super::ResponseMetadata {
        super::ResponseMetadata {
            headers: self.machine.headers().cloned().unwrap_or_default(),
            trailers: self.machine.trailers().cloned().unwrap_or_default(),
        }
    }

    /// Reads until the machine has something for a pull of `max_items` and returns it. A
    /// failure comes back as the error, after the stream was reset if the machine said so;
    /// `Ok` is never [`Received::Failed`].
    pub(super) async fn pull(
        &mut self,
        max_items: usize,
        alarms: &Alarms<'_>,
    ) -> Result<Received, RpcError> {
        loop {
            if self.lost {
                self.reattach(alarms).await?;
            }
            self.read_ready(max_items).await;
            if let Some(received) = self.machine.poll(max_items) {
                self.send_ack().await;
                if let (Received::End | Received::Response(_), Some(requests)) =
                    (&received, self.requests.clone())
                {
                    // The call has its outcome: the requests' side is finished (in a resumable
                    // session it stayed open for ACKs).
                    tokio::spawn(async move { requests.finish().await });
                }
                return match received {
                    Received::Failed(failure) => Err(self.fail(failure)),
                    other => Ok(other),
                };
            }
            if self.lost {
                continue;
            }
            tokio::select! {
                chunk = self.recv.read_chunk(READ_CHUNK, true) => self.feed(chunk),
                alarm = alarms.rung() => {
                    let failure = alarm.end(&mut self.machine);
                    return Err(self.fail(failure));
                }
            }
        }
    }

    /// Cancels the call in the machine and carries the failure out; returns the caller's error.
    pub(super) fn cancel(&mut self) -> RpcError {
        let failure = self.machine.cancel();
        self.fail(failure)
    }

    /// Hands the machine what quinn already holds for this stream, without waiting, while the
    /// machine wants more for a pull of `max_items`: one crossing into JavaScript then carries
    /// many items. A zero timeout still polls the read once, and quinn reads are cancel-safe.
    async fn read_ready(&mut self, max_items: usize) {
        while self.machine.wants_data(max_items) && !self.lost {
            let read = self.recv.read_chunk(READ_CHUNK, true);
            match tokio::time::timeout(Duration::ZERO, read).await {
                Ok(chunk) => self.feed(chunk),
                Err(_) => return,
            }
        }
    }

    fn feed(&mut self, chunk: Result<Option<quinn::Chunk>, quinn::ReadError>) {
        match chunk {
            Ok(Some(chunk)) => self.machine.on_data(&chunk.bytes),
            Ok(None) => self.machine.on_fin(),
            // A resumable session's connection is gone: the call continues on the next one.
            Err(quinn::ReadError::ConnectionLost(_)) if self.session.is_some() => self.lost = true,
            Err(e) => self.machine.on_read_error(RpcError::from(e).into()),
        }
    }

    /// Sends the ACK the machine says is due (resumable sessions, PROTOCOL.md section 15.4). A
    /// failed write is the connection's loss, which the next read reports.
    async fn send_ack(&mut self) {
        if let Some(ack) = self.machine.ack_due(ACK_EVERY_ITEMS, ACK_EVERY_BYTES) {
            if let Some(send) = self.send.as_mut() {
                let _ = send.write_all(&ack.to_bytes()).await;
            } else if let Some(requests) = self.requests.clone() {
                // The requests own the send side, and a send may hold it while QUIC holds the
                // requests back: the ACK goes out after it, and the items keep coming meanwhile.
                tokio::spawn(async move { requests.send_frame(ack).await });
            }
        }
    }

    /// Re-attaches the call on the session's next connection (CALL with its next seq, then the
    /// REQUEST with the deadline left), waiting for the session to resume.
    ///
    /// Errors: the session's loss; `UNAVAILABLE` for a unary call in flight that is not
    /// idempotent; the alarms' failures while waiting.
    async fn reattach(&mut self, alarms: &Alarms<'_>) -> Result<(), RpcError> {
        let (session, mut epoch) = self.session.clone().expect("only resumable calls get lost");
        loop {
            let next = tokio::select! {
                n = session.next_connection(epoch) => n,
                alarm = alarms.rung() => {
                    let failure = alarm.end(&mut self.machine);
                    return Err(self.fail(failure));
                }
            };
            let (connection, at) = match next {
                Ok(n) => n,
                Err(e) => {
                    self.machine.on_read_error(e.clone().into());
                    self.lost = false;
                    return Err(e);
                }
            };
            epoch = at;
            let frames = self.machine.reattach(alarms.left_ms())?;
            match open_on(&connection, &frames, false).await {
                Ok((send, recv)) => {
                    match &self.requests {
                        // The requests go out again on the new stream, after CALL and REQUEST.
                        Some(requests) => {
                            if let Err(e) = requests.switch(send).await {
                                self.machine.on_read_error(e.clone().into());
                                self.lost = false;
                                return Err(e);
                            }
                        }
                        None => self.send = Some(send),
                    }
                    self.recv = recv;
                    self.session = Some((session, epoch));
                    self.lost = false;
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(error = %e, "re-attaching a call failed; waiting for the next connection")
                }
            }
        }
    }

    /// Sends STOP_SENDING and RESET_STREAM with the failure's code when the machine asks for
    /// it (PROTOCOL.md sections 8 and 11); returns the caller's error.
    fn fail(&mut self, failure: Failure) -> RpcError {
        if failure.abort {
            let code = failure.error.code;
            tracing::debug!(%code, stream = %self.recv.id(), "resetting the call's stream");
            let _ = self.recv.stop(app_code(code));
            if let Some(send) = self.send.as_mut() {
                let _ = send.reset(app_code(code));
            }
        }
        // The call is over: its requests end too (a send that waits fails).
        if let Some(requests) = &self.requests {
            requests.abort(failure.error.code);
        }
        failure.error.into()
    }
}

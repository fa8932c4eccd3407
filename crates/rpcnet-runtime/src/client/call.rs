//! One call's QUIC stream at the client, driving the sans-IO [`ClientStream`] (quinn-proto
//! style): [`CallStream`] reads chunks (waiting, or only what quinn already holds), hands them,
//! the FIN and read failures to the machine, waits on the call's [`Alarms`] (its deadline, its
//! canceller) and carries out the failures the machine reports, with STOP_SENDING and
//! RESET_STREAM when it says so. Nothing here decides what the caller receives.

use std::time::Duration;

use tokio::time::Instant;

use super::Canceller;
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
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    machine: ClientStream,
}

impl CallStream {
    /// Drives `machine` over the stream its REQUEST was sent on.
    pub(super) fn new(
        (send, recv): (quinn::SendStream, quinn::RecvStream),
        machine: ClientStream,
    ) -> Self {
        CallStream {
            send,
            recv,
            machine,
        }
    }

    /// The machine's view of the call.
    pub(super) fn machine(&self) -> &ClientStream {
        &self.machine
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
            self.read_ready(max_items).await;
            if let Some(received) = self.machine.poll(max_items) {
                return match received {
                    Received::Failed(failure) => Err(self.fail(failure)),
                    other => Ok(other),
                };
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
        while self.machine.wants_data(max_items) {
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
            Err(e) => self.machine.on_read_error(RpcError::from(e).into()),
        }
    }

    /// Sends STOP_SENDING and RESET_STREAM with the failure's code when the machine asks for
    /// it (PROTOCOL.md sections 8 and 11); returns the caller's error.
    fn fail(&mut self, failure: Failure) -> RpcError {
        if failure.abort {
            let code = failure.error.code;
            tracing::debug!(%code, stream = %self.recv.id(), "resetting the call's stream");
            let _ = self.recv.stop(app_code(code));
            let _ = self.send.reset(app_code(code));
        }
        failure.error.into()
    }
}

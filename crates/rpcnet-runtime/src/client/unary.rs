//! Unary calls: one REQUEST, one RESPONSE or failure (PROTOCOL.md section 3.1), driven through
//! the sans-IO [`rpcnet_session::ClientStream`].

use bytes::Bytes;

use super::call::{Alarms, CallStream};
use super::{CallOptions, Canceller, Client, ResponseMetadata, UnaryOutcome};
use crate::error::RpcError;
use rpcnet_protocol::Metadata;
use rpcnet_session::Received;

impl Client {
    /// Makes a unary call. `deadline_ms` = 0 means none; otherwise both sides enforce it.
    ///
    /// Errors: the server's ERROR (code and message as sent, e.g. `NOT_FOUND`), `DEADLINE_EXCEEDED`,
    /// `UNAVAILABLE` on connection loss, `PROTOCOL` if the server breaks PROTOCOL.md;
    /// `INVALID_ARGUMENT` for a method name of 0 or more than 65 535 bytes and
    /// `RESOURCE_EXHAUSTED` for a request above the maximum frame size, before anything is sent.
    pub async fn unary(
        &self,
        method: &str,
        payload: Bytes,
        deadline_ms: u32,
    ) -> Result<Bytes, RpcError> {
        self.unary_cancellable(method, payload, deadline_ms, None)
            .await
    }

    /// As [`Client::unary`], and [`Canceller::cancel`] ends the call with `CANCELLED`, telling the
    /// server (STOP_SENDING + RESET_STREAM with code CANCELLED) so its handler's signal aborts.
    pub async fn unary_cancellable(
        &self,
        method: &str,
        payload: Bytes,
        deadline_ms: u32,
        canceller: Option<&Canceller>,
    ) -> Result<Bytes, RpcError> {
        self.unary_call(method, payload, deadline_ms, canceller, false)
            .await
    }

    /// As [`Client::unary_cancellable`]; `idempotent` says the request may run twice, so that
    /// in a resumable session (PROTOCOL.md section 15) a call in flight when the connection is
    /// lost is sent again on the next one. Without it such a call fails with `UNAVAILABLE`
    /// (its message says why).
    pub async fn unary_call(
        &self,
        method: &str,
        payload: Bytes,
        deadline_ms: u32,
        canceller: Option<&Canceller>,
        idempotent: bool,
    ) -> Result<Bytes, RpcError> {
        let options = CallOptions {
            deadline_ms,
            canceller,
            idempotent,
            metadata: &Metadata::new(),
        };
        self.unary_with(method, payload, options).await.result
    }

    /// A unary call with [`CallOptions`] (request headers among them), returning the response
    /// headers and trailers with the result (PROTOCOL.md section 5.6).
    ///
    /// Errors (in [`UnaryOutcome::result`]): as [`Client::unary`], and `UNIMPLEMENTED` for a
    /// call with request headers on a connection that negotiated `rpcnet/1` (nothing is sent).
    pub async fn unary_with(
        &self,
        method: &str,
        payload: Bytes,
        options: CallOptions<'_>,
    ) -> UnaryOutcome {
        let started = self.start_call(
            method,
            payload,
            options.deadline_ms,
            super::Kind::UNARY,
            options.idempotent,
            options.metadata,
        );
        let (mut machine, request) = match started {
            Ok(s) => s,
            Err(e) => return outcome(Err(e), ResponseMetadata::default()),
        };
        let alarms = Alarms::new(&machine, options.canceller);
        let streams = tokio::select! {
            r = self.open_stream(request) => r,
            alarm = alarms.rung() => Err(alarm.end(&mut machine).error.into()),
        };
        let streams = match streams {
            Ok(s) => s,
            Err(e) => return outcome(Err(e), ResponseMetadata::default()),
        };
        let mut call = CallStream::new(streams, machine);
        let result = match call.pull(1, &alarms).await {
            Ok(Received::Response(payload)) => Ok(payload),
            Ok(other) => unreachable!("a unary call's machine yielded {other:?}"),
            Err(e) => Err(e),
        };
        outcome(result, call.response_metadata())
    }
}

fn outcome(result: Result<Bytes, RpcError>, metadata: ResponseMetadata) -> UnaryOutcome {
    UnaryOutcome { result, metadata }
}

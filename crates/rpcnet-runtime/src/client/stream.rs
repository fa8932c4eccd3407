//! Server-streaming calls (PROTOCOL.md section 3.2): [`Client::streaming`] sends the REQUEST and
//! returns an [`ItemStream`], which the caller pulls in batches through the sans-IO
//! [`rpcnet_session::ClientStream`].

use bytes::Bytes;

use super::call::{open_on, Alarms, CallStream, Opened};
use super::{CallOptions, Client, Kind, RequestSender, ResponseMetadata};
use crate::error::RpcError;
use rpcnet_protocol::Metadata;
use rpcnet_session::Received;

impl Client {
    /// Starts a server-streaming call; items are pulled with [`ItemStream::next_batch`].
    ///
    /// Errors: as [`Client::unary`] for opening the stream; later errors come from `next_batch`.
    pub async fn streaming(
        &self,
        method: &str,
        payload: Bytes,
        deadline_ms: u32,
    ) -> Result<ItemStream, RpcError> {
        let options = CallOptions {
            deadline_ms,
            metadata: &Metadata::new(),
            ..CallOptions::default()
        };
        self.streaming_with(method, payload, options).await
    }

    /// A server-streaming call with [`CallOptions`] (its `deadline_ms` and `metadata`; a stream
    /// is cancelled with [`ItemStream::cancel`]). The response headers and trailers come from
    /// [`ItemStream::response_metadata`].
    ///
    /// Errors: as [`Client::streaming`], and `UNIMPLEMENTED` for a call with request headers on
    /// a connection that negotiated `rpcnet/1` (nothing is sent).
    pub async fn streaming_with(
        &self,
        method: &str,
        payload: Bytes,
        options: CallOptions<'_>,
    ) -> Result<ItemStream, RpcError> {
        let (machine, request) = self.start_call(
            method,
            payload,
            options.deadline_ms,
            super::Kind::SERVER_STREAMING,
            false,
            options.metadata,
        )?;
        let alarms = Alarms::new(&machine, None);
        let streams = self.open_stream(request).await?;
        Ok(ItemStream {
            call: CallStream::new(streams, machine),
            alarms,
        })
    }
}

impl Client {
    /// Opens a client-streaming call (`server_streaming` false: one response, read with
    /// [`ItemStream::response`]) or a bidi call (`server_streaming` true: items, read with
    /// [`ItemStream::next_batch`]). Requests go through the returned [`RequestSender`]: `send`
    /// each, then `close` (PROTOCOL.md section 3.4).
    ///
    /// In a resumable session the call re-attaches after a resume and sends its requests again
    /// (PROTOCOL.md section 15.4; [`RequestSender`]).
    ///
    /// Errors: as [`Client::streaming_with`]; `UNIMPLEMENTED` on a connection that negotiated
    /// `rpcnet/1` (nothing is sent).
    pub async fn open_duplex(
        &self,
        method: &str,
        options: CallOptions<'_>,
        server_streaming: bool,
    ) -> Result<(RequestSender, ItemStream), RpcError> {
        let kind = Kind {
            server_streaming,
            client_streaming: true,
        };
        let (machine, request) = self.start_call(
            method,
            Bytes::new(),
            options.deadline_ms,
            kind,
            options.idempotent,
            options.metadata,
        )?;
        let alarms = Alarms::new(&machine, None);
        let (send, opened) = match &self.session {
            None => {
                let (send, recv) = open_on(&self.info, &request, false).await?;
                (send, Opened::receive_only(recv, None))
            }
            Some(s) => {
                let (connection, epoch) = s.current()?;
                let (send, recv) = open_on(&connection, &request, false).await?;
                (send, Opened::receive_only(recv, Some((s.clone(), epoch))))
            }
        };
        let sender = RequestSender::new(send, self.session.is_some());
        let stream = ItemStream {
            call: CallStream::new(opened, machine).with_requests(sender.clone()),
            alarms,
        };
        Ok((sender, stream))
    }
}

/// The receiving side of a server-streaming call. Items arrive in seq order; a gap, a repeat or a
/// wrong END count is a `PROTOCOL` error.
pub struct ItemStream {
    call: CallStream,
    alarms: Alarms<'static>,
}

impl ItemStream {
    /// The seq the next item will carry (= items received so far).
    pub fn next_seq(&self) -> u64 {
        self.call.machine().next_seq()
    }

    /// The response headers and trailers received so far (the headers come before the first
    /// item, the trailers just before the end or the error).
    pub fn response_metadata(&self) -> ResponseMetadata {
        self.call.response_metadata()
    }

    /// Waits for at least one item and returns every item already received, up to `max_items`.
    /// An empty batch when the response headers arrived before any item (read them with
    /// [`ItemStream::response_metadata`]). `Ok(None)` after the END frame. Items received before a failure come first; the failure
    /// then comes on this and every later call.
    ///
    /// Errors: the server's ERROR; `DEADLINE_EXCEEDED`; `CANCELLED` after [`ItemStream::cancel`];
    /// `UNAVAILABLE` on connection loss; `PROTOCOL` on a malformed frame or a seq gap.
    pub async fn next_batch(&mut self, max_items: usize) -> Result<Option<Vec<Bytes>>, RpcError> {
        match self.call.pull(max_items, &self.alarms).await? {
            Received::Items(items) => Ok(Some(items)),
            // The headers came first: an empty batch, so the caller can read them now.
            Received::Headers => Ok(Some(Vec::new())),
            Received::End => Ok(None),
            other => unreachable!("a streaming call's machine yielded {other:?}"),
        }
    }

    /// The response of a client-streaming call (opened by [`Client::open_duplex`] without
    /// `server_streaming`).
    ///
    /// Errors: as [`ItemStream::next_batch`].
    pub async fn response(&mut self) -> Result<Bytes, RpcError> {
        match self.call.pull(1, &self.alarms).await? {
            Received::Response(payload) => Ok(payload),
            other => Err(RpcError::internal(format!(
                "a client-streaming call's machine yielded {other:?}, not a response"
            ))),
        }
    }

    /// Cancels the call: STOP_SENDING and RESET_STREAM with code CANCELLED (PROTOCOL.md
    /// "Cancellation"); the server's handler sees its signal abort.
    pub fn cancel(&mut self) {
        let _ = self.cancelled();
    }

    /// [`ItemStream::cancel`], returning the `CANCELLED` error the caller gets.
    pub(super) fn cancelled(&mut self) -> RpcError {
        self.call.cancel()
    }
}

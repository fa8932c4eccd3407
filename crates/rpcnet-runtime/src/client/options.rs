//! Per-call options and the response metadata a call returns with its result (PROTOCOL.md
//! section 5.6). They exist as types so that the call functions keep one argument for what a
//! caller may add later (gRPC's `CallOptions`, Connect's call options), instead of growing a
//! positional parameter per option.

use bytes::Bytes;
use rpcnet_protocol::Metadata;

use crate::cancel::Canceller;
use crate::error::RpcError;

/// Options of one call ([`crate::Client::unary_with`], [`crate::Client::streaming_with`]).
#[derive(Debug, Clone, Copy)]
pub struct CallOptions<'a> {
    /// Deadline in ms from when the REQUEST is sent; 0 = none. Both sides enforce it.
    pub deadline_ms: u32,
    /// Cancels the call (unary calls; a stream has [`crate::client::ItemStream::cancel`]).
    pub canceller: Option<&'a Canceller>,
    /// Calls with one response (unary, client-streaming) of a resumable session: the call may be
    /// sent again after a resume, a client-streaming one with all its requests (PROTOCOL.md
    /// sections 15.3 and 15.4).
    pub idempotent: bool,
    /// The request headers (PROTOCOL.md section 5.6); empty for none.
    pub metadata: &'a Metadata,
}

/// No request headers, for [`CallOptions::default`].
static NO_METADATA: Metadata = Metadata::new();

impl Default for CallOptions<'_> {
    /// No deadline, no canceller, not idempotent, no request headers.
    fn default() -> Self {
        CallOptions {
            deadline_ms: 0,
            canceller: None,
            idempotent: false,
            metadata: &NO_METADATA,
        }
    }
}

/// The response headers and trailers of a call, each empty when the server sent none.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResponseMetadata {
    /// The HEADERS frame's entries (sent before the first item or the result).
    pub headers: Metadata,
    /// The TRAILERS frame's entries (sent just before the final frame, with an error too).
    pub trailers: Metadata,
}

/// A unary call's result and its response metadata, which an error may carry too.
#[derive(Debug, Clone)]
pub struct UnaryOutcome {
    /// The response payload, or the call's error.
    pub result: Result<Bytes, RpcError>,
    /// What the server sent as headers and trailers.
    pub metadata: ResponseMetadata,
}

//! Node.js binding of rpcnet-runtime (napi-rs v3). It converts JavaScript values to runtime types
//! and back and forwards every call; all logic lives in `rpcnet-runtime` and in the TypeScript
//! package (`src/`), which is the public API. Nothing depends on this crate.
//!
//! What crosses is typed:
//! - Errors are JavaScript `Error` objects whose `code` property is the stable rpcnet code name
//!   ([`NativeErrorCode`], e.g. `"UNAVAILABLE"`): a failing async function's promise rejects with
//!   one ([`Fallible`]). The TypeScript layer reads `code`; it never parses messages.
//! - Events and hook questions are tagged objects (napi structured enums with a `kind` field);
//!   hook answers and other closed sets of values are tagged objects or string unions.

#![warn(missing_docs)]
#![deny(clippy::all)]

mod client;
mod cluster;
mod director;
mod log;
mod metadata;
mod server;
mod worker;

use bytes::Bytes;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use rpcnet_runtime::{ConnectionStats, ErrorCode, RpcError};

/// A stable rpcnet error code (PROTOCOL.md "Error codes"), as its `SCREAMING_SNAKE_CASE` name.
/// In TypeScript a string union, the same names as the public `ErrorCode`.
#[napi(string_enum = "UPPER_SNAKE")]
pub enum NativeErrorCode {
    /// `CANCELLED` (1).
    Cancelled,
    /// `UNKNOWN` (2).
    Unknown,
    /// `INVALID_ARGUMENT` (3).
    InvalidArgument,
    /// `DEADLINE_EXCEEDED` (4).
    DeadlineExceeded,
    /// `NOT_FOUND` (5).
    NotFound,
    /// `ALREADY_EXISTS` (6).
    AlreadyExists,
    /// `PERMISSION_DENIED` (7).
    PermissionDenied,
    /// `RESOURCE_EXHAUSTED` (8).
    ResourceExhausted,
    /// `FAILED_PRECONDITION` (9).
    FailedPrecondition,
    /// `ABORTED` (10).
    Aborted,
    /// `OUT_OF_RANGE` (11).
    OutOfRange,
    /// `UNIMPLEMENTED` (12).
    Unimplemented,
    /// `INTERNAL` (13).
    Internal,
    /// `UNAVAILABLE` (14).
    Unavailable,
    /// `DATA_LOSS` (15).
    DataLoss,
    /// `UNAUTHENTICATED` (16).
    Unauthenticated,
    /// `PROTOCOL` (256).
    Protocol,
}

impl From<ErrorCode> for NativeErrorCode {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::Cancelled => Self::Cancelled,
            ErrorCode::Unknown => Self::Unknown,
            ErrorCode::InvalidArgument => Self::InvalidArgument,
            ErrorCode::DeadlineExceeded => Self::DeadlineExceeded,
            ErrorCode::NotFound => Self::NotFound,
            ErrorCode::AlreadyExists => Self::AlreadyExists,
            ErrorCode::PermissionDenied => Self::PermissionDenied,
            ErrorCode::ResourceExhausted => Self::ResourceExhausted,
            ErrorCode::FailedPrecondition => Self::FailedPrecondition,
            ErrorCode::Aborted => Self::Aborted,
            ErrorCode::OutOfRange => Self::OutOfRange,
            ErrorCode::Unimplemented => Self::Unimplemented,
            ErrorCode::Internal => Self::Internal,
            ErrorCode::Unavailable => Self::Unavailable,
            ErrorCode::DataLoss => Self::DataLoss,
            ErrorCode::Unauthenticated => Self::Unauthenticated,
            ErrorCode::Protocol => Self::Protocol,
        }
    }
}

impl From<NativeErrorCode> for ErrorCode {
    fn from(code: NativeErrorCode) -> Self {
        match code {
            NativeErrorCode::Cancelled => Self::Cancelled,
            NativeErrorCode::Unknown => Self::Unknown,
            NativeErrorCode::InvalidArgument => Self::InvalidArgument,
            NativeErrorCode::DeadlineExceeded => Self::DeadlineExceeded,
            NativeErrorCode::NotFound => Self::NotFound,
            NativeErrorCode::AlreadyExists => Self::AlreadyExists,
            NativeErrorCode::PermissionDenied => Self::PermissionDenied,
            NativeErrorCode::ResourceExhausted => Self::ResourceExhausted,
            NativeErrorCode::FailedPrecondition => Self::FailedPrecondition,
            NativeErrorCode::Aborted => Self::Aborted,
            NativeErrorCode::OutOfRange => Self::OutOfRange,
            NativeErrorCode::Unimplemented => Self::Unimplemented,
            NativeErrorCode::Internal => Self::Internal,
            NativeErrorCode::Unavailable => Self::Unavailable,
            NativeErrorCode::DataLoss => Self::DataLoss,
            NativeErrorCode::Unauthenticated => Self::Unauthenticated,
            NativeErrorCode::Protocol => Self::Protocol,
        }
    }
}

/// The outcome of a binding function that can fail with an [`RpcError`]. Returned from an
/// `async fn`, its value resolves the promise; its error rejects the promise with a JavaScript
/// `Error` whose `message` is the error's message and whose `code` is its code name
/// (`napi_create_error` sets `code`). Functions returning it declare their TypeScript type with
/// `ts_return_type`, since the wrapper itself does not exist in TypeScript.
pub struct Fallible<T>(pub std::result::Result<T, RpcError>);

impl<T> From<std::result::Result<T, RpcError>> for Fallible<T> {
    fn from(r: std::result::Result<T, RpcError>) -> Self {
        Self(r)
    }
}

impl<T: ToNapiValue> Fallible<T> {
    /// The value, or the error to throw together with the JavaScript error object it refers to
    /// (null when the environment is tearing down), so that a caller may add properties to it.
    unsafe fn into_napi_value_or_error(
        self,
        env: sys::napi_env,
    ) -> std::result::Result<sys::napi_value, (Error, sys::napi_value)> {
        match self.0 {
            Ok(v) => unsafe { T::to_napi_value(env, v) }.map_err(|e| (e, std::ptr::null_mut())),
            Err(e) => {
                let code = e.code.as_str().to_owned();
                let fallback = format!("{}: {}", e.code, e.message);
                let js = unsafe { JsError::from(Error::new(code, e.message)).into_value(env) };
                if js.is_null() {
                    // The environment is tearing down; nothing will see this error.
                    return Err((Error::new(Status::GenericFailure, fallback), js));
                }
                // An error that refers to the JS object: napi-rs throws (or rejects with) that
                // very object, `code` included.
                Err((
                    Error::from(unsafe { Unknown::from_raw_unchecked(env, js) }),
                    js,
                ))
            }
        }
    }
}

impl<T: ToNapiValue> ToNapiValue for Fallible<T> {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        unsafe { val.into_napi_value_or_error(env) }.map_err(|(e, _)| e)
    }
}

pub(crate) fn bytes(buf: &Buffer) -> Bytes {
    Bytes::copy_from_slice(buf.as_ref())
}

/// A batch of payloads as JavaScript Buffers (`None`, the end, stays `None`).
pub(crate) fn buffers(batch: Option<Vec<Bytes>>) -> Option<Vec<Buffer>> {
    batch.map(|items| {
        items
            .into_iter()
            .map(|b| Buffer::from(b.to_vec()))
            .collect()
    })
}

/// quinn connection statistics.
#[napi(object)]
pub struct NativeStats {
    /// Smoothed RTT, ms.
    pub rtt_ms: f64,
    /// Congestion window, bytes.
    pub cwnd: f64,
    /// UDP payload bytes sent.
    pub bytes_sent: f64,
    /// UDP payload bytes received.
    pub bytes_received: f64,
    /// QUIC packets sent.
    pub packets_sent: f64,
    /// Packets declared lost.
    pub lost_packets: f64,
    /// Path MTU, bytes.
    pub mtu: u32,
}

pub(crate) fn stats(s: ConnectionStats) -> NativeStats {
    NativeStats {
        rtt_ms: s.rtt_ms,
        cwnd: s.cwnd as f64,
        bytes_sent: s.bytes_sent as f64,
        bytes_received: s.bytes_received as f64,
        packets_sent: s.packets_sent as f64,
        lost_packets: s.lost_packets as f64,
        mtu: s.mtu.into(),
    }
}

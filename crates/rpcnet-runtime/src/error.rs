//! [`RpcError`]: the one error type of the runtime. Every failure a caller can see carries a stable
//! [`ErrorCode`] (PROTOCOL.md, "Error codes") and a message that names the problem; quinn's and
//! rustls's errors are mapped here so no other module has to.

use rpcnet_protocol::{ErrorCode, FrameError};
use rpcnet_session::CallError;

/// A failed call, connection or configuration step.
///
/// `code` is the stable machine-readable code (the same numbers travel in ERROR frames and as QUIC
/// application error codes, PROTOCOL.md); `message` is for humans and names what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RpcError {
    /// Stable code, e.g. [`ErrorCode::NotFound`].
    pub code: ErrorCode,
    /// Human-readable description naming the problem.
    pub message: String,
}

impl RpcError {
    /// Builds an error from a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// `UNAVAILABLE`: the peer or the connection is gone or unreachable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// `INVALID_ARGUMENT`: the caller passed something unusable (bad option, bad pin, bad path).
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// `INTERNAL`: a bug or an unexpected local failure.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// `PROTOCOL`: the peer broke PROTOCOL.md.
    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Protocol, message)
    }

    /// `CANCELLED`.
    pub fn cancelled(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Cancelled, message)
    }

    /// `DEADLINE_EXCEEDED` for a deadline of `deadline_ms` milliseconds.
    pub fn deadline_exceeded(deadline_ms: u32) -> Self {
        Self::new(
            ErrorCode::DeadlineExceeded,
            format!("deadline of {deadline_ms} ms exceeded"),
        )
    }

    /// Maps a QUIC application error code (RESET_STREAM / STOP_SENDING, PROTOCOL.md) to an error.
    pub fn from_app_code(code: quinn::VarInt, what: &str) -> Self {
        let n = code.into_inner();
        let code = u16::try_from(n)
            .ok()
            .and_then(ErrorCode::from_u16)
            .unwrap_or(ErrorCode::Unknown);
        Self::new(code, format!("{what} (QUIC application error code {n})"))
    }
}

/// The machines of `rpcnet-session` report failures as [`CallError`]s: same code, same message.
impl From<CallError> for RpcError {
    fn from(e: CallError) -> Self {
        Self::new(e.code, e.message)
    }
}

/// A failure the runtime saw (a read error, a lost connection), for a `rpcnet-session` machine.
impl From<RpcError> for CallError {
    fn from(e: RpcError) -> Self {
        CallError::new(e.code, e.message)
    }
}

impl From<FrameError> for RpcError {
    fn from(e: FrameError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<quinn::ConnectionError> for RpcError {
    fn from(e: quinn::ConnectionError) -> Self {
        match e {
            quinn::ConnectionError::TimedOut => {
                Self::unavailable("connection timed out (idle timeout)")
            }
            quinn::ConnectionError::LocallyClosed => Self::unavailable("connection closed locally"),
            other => Self::unavailable(format!("connection lost: {other}")),
        }
    }
}

impl From<quinn::ConnectError> for RpcError {
    fn from(e: quinn::ConnectError) -> Self {
        Self::invalid_argument(format!("cannot start connecting: {e}"))
    }
}

impl From<quinn::ReadError> for RpcError {
    fn from(e: quinn::ReadError) -> Self {
        match e {
            quinn::ReadError::Reset(code) => Self::from_app_code(code, "stream reset by peer"),
            quinn::ReadError::ConnectionLost(c) => c.into(),
            other => Self::unavailable(format!("stream read failed: {other}")),
        }
    }
}

impl From<quinn::WriteError> for RpcError {
    fn from(e: quinn::WriteError) -> Self {
        match e {
            quinn::WriteError::Stopped(code) => Self::from_app_code(code, "stream stopped by peer"),
            quinn::WriteError::ConnectionLost(c) => c.into(),
            other => Self::unavailable(format!("stream write failed: {other}")),
        }
    }
}

impl From<quinn::ClosedStream> for RpcError {
    fn from(e: quinn::ClosedStream) -> Self {
        Self::internal(format!("stream already closed: {e}"))
    }
}

/// Converts an [`ErrorCode`] to a QUIC application error code (PROTOCOL.md: the numbers are the same).
pub fn app_code(code: ErrorCode) -> quinn::VarInt {
    quinn::VarInt::from_u32(u32::from(code.as_u16()))
}

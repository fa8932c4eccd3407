//! Stable error codes of rpcnet.
//!
//! This module exists so that the wire (the `code` field of an ERROR frame), QUIC application
//! error codes (`RESET_STREAM` / `STOP_SENDING` / `CONNECTION_CLOSE`, RFC 9000 sections 19.4, 19.5 and
//! 20.2) and the TypeScript API all speak the same small vocabulary. Numbers follow gRPC where gRPC
//! has an equivalent; rpcnet-specific codes start at 256. See PROTOCOL.md section 6
//! ("Error codes").

use std::fmt;

/// An rpcnet error code (PROTOCOL.md section 6).
///
/// The numeric value (`as_u16`) is what travels on the wire as the `code: u16` field of an ERROR
/// frame, and is also used as the QUIC application error code when a stream is reset or a
/// connection closed (RFC 9000 section 20.2; value 0 means "no error" and is not an
/// `ErrorCode`). The name (`as_str`) is the stable, string-valued code exposed by the TypeScript
/// API, e.g. `"NOT_FOUND"`.
///
/// Decoding an ERROR frame with a number that is not listed here yields [`ErrorCode::Unknown`]
/// (forward compatibility, PROTOCOL.md section 6); [`ErrorCode::from_u16`] itself returns `None`
/// for such numbers so callers can tell the difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// `CANCELLED` (1): the call was cancelled by the client (or the client went away).
    /// Also the QUIC application error code of a cancelling `RESET_STREAM` / `STOP_SENDING`.
    Cancelled = 1,
    /// `UNKNOWN` (2): an error with no better code; also what an unrecognised numeric code in an
    /// ERROR frame decodes to.
    Unknown = 2,
    /// `INVALID_ARGUMENT` (3): the request is well-formed on the wire but not acceptable, e.g. its
    /// STREAMING flag does not match the method's kind, or the handler rejected the payload.
    InvalidArgument = 3,
    /// `DEADLINE_EXCEEDED` (4): the call's deadline (`deadline_ms` of the REQUEST) passed before
    /// it completed.
    DeadlineExceeded = 4,
    /// `NOT_FOUND` (5): something the request names does not exist (a handler's answer; an
    /// unknown method is [`ErrorCode::Unimplemented`], as in gRPC).
    NotFound = 5,
    /// `ALREADY_EXISTS` (6): what the request wanted to create exists (a handler's answer).
    AlreadyExists = 6,
    /// `PERMISSION_DENIED` (7): the caller may not do this (a handler's or an interceptor's
    /// answer).
    PermissionDenied = 7,
    /// `RESOURCE_EXHAUSTED` (8): a limit was hit, e.g. a frame body longer than the receiver's
    /// maximum frame size (PROTOCOL.md section 9).
    ResourceExhausted = 8,
    /// `FAILED_PRECONDITION` (9): the system is not in a state the request needs (a handler's
    /// answer).
    FailedPrecondition = 9,
    /// `ABORTED` (10): the request lost a concurrency conflict and may be retried at a higher
    /// level (a handler's answer).
    Aborted = 10,
    /// `OUT_OF_RANGE` (11): the request went past a valid range (a handler's answer).
    OutOfRange = 11,
    /// `UNIMPLEMENTED` (12): the REQUEST named a method the server does not serve (gRPC's
    /// code for an unknown method).
    Unimplemented = 12,
    /// `INTERNAL` (13): the handler or the implementation failed unexpectedly.
    Internal = 13,
    /// `UNAVAILABLE` (14): the server (or the connection) is not able to serve the call right now,
    /// e.g. it is shutting down or the connection was lost.
    Unavailable = 14,
    /// `DATA_LOSS` (15): unrecoverable data loss or corruption (a handler's answer).
    DataLoss = 15,
    /// `UNAUTHENTICATED` (16): the request lacks valid credentials (a handler's or an
    /// interceptor's answer).
    Unauthenticated = 16,
    /// `PROTOCOL` (256, rpcnet-specific): the peer violated PROTOCOL.md (malformed frame, unknown
    /// frame type, reserved flags set, truncated frame, unexpected sequence number, ...).
    Protocol = 256,
}

impl ErrorCode {
    /// Every defined code, in ascending numeric order.
    pub const ALL: [ErrorCode; 17] = [
        ErrorCode::Cancelled,
        ErrorCode::Unknown,
        ErrorCode::InvalidArgument,
        ErrorCode::DeadlineExceeded,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::PermissionDenied,
        ErrorCode::ResourceExhausted,
        ErrorCode::FailedPrecondition,
        ErrorCode::Aborted,
        ErrorCode::OutOfRange,
        ErrorCode::Unimplemented,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
        ErrorCode::DataLoss,
        ErrorCode::Unauthenticated,
        ErrorCode::Protocol,
    ];

    /// The numeric value used on the wire (ERROR frame `code`, big-endian `u16`) and as the QUIC
    /// application error code (PROTOCOL.md sections 6 and 7).
    #[must_use]
    pub const fn as_u16(self) -> u16 {
        self as u16
    }

    /// The code with numeric value `n`, or `None` if `n` is not a defined code (including 0,
    /// which means "no error" at the QUIC level and is never an `ErrorCode`).
    #[must_use]
    pub const fn from_u16(n: u16) -> Option<ErrorCode> {
        Some(match n {
            1 => ErrorCode::Cancelled,
            2 => ErrorCode::Unknown,
            3 => ErrorCode::InvalidArgument,
            4 => ErrorCode::DeadlineExceeded,
            5 => ErrorCode::NotFound,
            6 => ErrorCode::AlreadyExists,
            7 => ErrorCode::PermissionDenied,
            8 => ErrorCode::ResourceExhausted,
            9 => ErrorCode::FailedPrecondition,
            10 => ErrorCode::Aborted,
            11 => ErrorCode::OutOfRange,
            12 => ErrorCode::Unimplemented,
            13 => ErrorCode::Internal,
            14 => ErrorCode::Unavailable,
            15 => ErrorCode::DataLoss,
            16 => ErrorCode::Unauthenticated,
            256 => ErrorCode::Protocol,
            _ => return None,
        })
    }

    /// The stable `SCREAMING_SNAKE_CASE` name, e.g. `"DEADLINE_EXCEEDED"`. These strings are the
    /// error codes of the public (TypeScript) API and never change (PROTOCOL.md section 6).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Cancelled => "CANCELLED",
            ErrorCode::Unknown => "UNKNOWN",
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::AlreadyExists => "ALREADY_EXISTS",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            ErrorCode::FailedPrecondition => "FAILED_PRECONDITION",
            ErrorCode::Aborted => "ABORTED",
            ErrorCode::OutOfRange => "OUT_OF_RANGE",
            ErrorCode::Unimplemented => "UNIMPLEMENTED",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::DataLoss => "DATA_LOSS",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Protocol => "PROTOCOL",
        }
    }

    /// The inverse of [`ErrorCode::as_str`]: exact, case-sensitive match on the stable name;
    /// `None` for anything else.
    #[must_use]
    pub fn from_name(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for ErrorCode {
    /// Writes the stable name, same as [`ErrorCode::as_str`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_round_trip() {
        let expected = [
            (1, "CANCELLED"),
            (2, "UNKNOWN"),
            (3, "INVALID_ARGUMENT"),
            (4, "DEADLINE_EXCEEDED"),
            (5, "NOT_FOUND"),
            (6, "ALREADY_EXISTS"),
            (7, "PERMISSION_DENIED"),
            (8, "RESOURCE_EXHAUSTED"),
            (9, "FAILED_PRECONDITION"),
            (10, "ABORTED"),
            (11, "OUT_OF_RANGE"),
            (12, "UNIMPLEMENTED"),
            (13, "INTERNAL"),
            (14, "UNAVAILABLE"),
            (15, "DATA_LOSS"),
            (16, "UNAUTHENTICATED"),
            (256, "PROTOCOL"),
        ];
        assert_eq!(expected.len(), ErrorCode::ALL.len());
        for (code, (n, name)) in ErrorCode::ALL.into_iter().zip(expected) {
            assert_eq!(code.as_u16(), n);
            assert_eq!(code.as_str(), name);
            assert_eq!(code.to_string(), name);
            assert_eq!(ErrorCode::from_u16(n), Some(code));
            assert_eq!(ErrorCode::from_name(name), Some(code));
        }
    }

    #[test]
    fn undefined_numbers_and_names_are_rejected() {
        for n in [0u16, 17, 255, 257, u16::MAX] {
            assert_eq!(ErrorCode::from_u16(n), None, "{n}");
        }
        for name in ["", "cancelled", "Cancelled", "OK", "PROTOCOL "] {
            assert_eq!(ErrorCode::from_name(name), None, "{name:?}");
        }
    }
}

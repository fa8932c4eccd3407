//! # rpcnet-protocol
//!
//! The sans-IO heart of rpcnet, in the manner of `quinn-proto`: everything here is deterministic
//! protocol logic with no sockets, no async runtime and no clock (time and randomness are inputs).
//! The runtime crate (`rpcnet-runtime`) drives it over real QUIC.
//!
//! - [`code`]: the stable error codes shared by the wire, the runtime and the TypeScript API.
//! - [`frame`] and [`codec`]: the call framing of PROTOCOL.md (one bidirectional QUIC stream per
//!   call, length-prefixed typed frames, sequence-numbered items).
//! - [`metadata`]: request headers, response headers and trailers (version 2).
//! - [`migration`]: RFC-001's migration pieces: tokens, sealed session snapshots, management
//!   messages and the migration state machine.

#![warn(missing_docs)]

pub mod code;
pub mod codec;
pub mod frame;
pub mod metadata;
pub mod migration;
pub mod resume;

pub use code::ErrorCode;
pub use codec::{Decoder, FrameError, FrameErrorKind};
pub use frame::{
    Attach, Checkpoint, Frame, FrameType, Request, Version, ALPN, ALPNS, ALPN_V1,
    DEFAULT_MAX_FRAME_SIZE, HEADER_LEN,
};
pub use metadata::{Metadata, MetadataError};

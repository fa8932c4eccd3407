//! Session snapshots: what a migration or a failover moves, its versioned binary format
//! (RFC-001 section 3.3) and its sealing for transfer (RFC-001 section 5.2).
//!
//! A [`SessionSnapshot`] is the server side of one client connection frozen at an item
//! boundary: the application state (opaque bytes from the TypeScript hook) and, per open call,
//! its method, request, next sequence number and the items produced but not yet delivered.
//!
//! Pipeline, each stage public so it can be benchmarked on its own:
//!
//! ```text
//! seal:  encode -> compress (zstd) -> seal_frame (AES-256-GCM)
//! open:  open_frame -> decompress (bounded) -> decode
//! ```
//!
//! [`seal`] and [`open`] run the same stages fused, without the intermediate copies and
//! checksum passes. Decoding treats every byte as hostile: it never panics, never reads past
//! the input and never allocates more than the caller's `max_plain_bytes` (zip-bomb safe).
//!
//! Modules, each named after what it holds:
//!
//! - `types`: [`SessionSnapshot`] and [`CallSnapshot`], the captured values;
//! - `frame`: the plain frame's 16-byte header (version, flags, length, checksum);
//! - `encoding`: the body's binary layout, [`encode`] and [`decode`];
//! - `compress`: zstd ([`compress()`]) and bounded decompression ([`decompress`]);
//! - `seal`: AES-256-GCM sealing, the [`SealedHeader`], [`seal_frame`] and [`open_frame`];
//! - `pipeline`: the fused [`seal()`] / [`open`] and their [`SealOptions`].
//!
//! The modules are private: every item is used through this module's re-exports, so paths such
//! as `rpcnet_protocol::migration::snapshot::seal` are those of the single file this was.

mod compress;
mod encoding;
mod frame;
mod pipeline;
mod seal;
mod types;

#[cfg(test)]
mod tests;

pub use compress::{compress, decompress, DEFAULT_ZSTD_LEVEL};
pub use encoding::{decode, encode};
pub use frame::{FLAG_ZSTD, HEADER_LEN, SNAPSHOT_VERSION};
pub use pipeline::{open, open_with_header, seal, seal_with, SealOptions};
pub use seal::{open_frame, seal_frame, SealedHeader, SEALED_HEADER_LEN, SEAL_SALT, TAG_LEN};
pub use types::{CallSnapshot, SessionSnapshot};

use super::MigrationError;

fn malformed(detail: String) -> MigrationError {
    MigrationError::SnapshotMalformed { detail }
}

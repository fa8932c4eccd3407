//! [`ReadToFin`]: the receive side of a call's stream on the serving end (a server, a worker, the
//! director), which is read to its end instead of being dropped unread.
//!
//! quinn sends STOP_SENDING with code 0 whenever a `quinn::RecvStream` is dropped before its FIN
//! was read, even when the FIN has already arrived. A server decodes the client's REQUEST and may
//! answer before it reads the FIN that follows (PROTOCOL.md section 3.1), so dropping the stream
//! at the end of the call would send STOP_SENDING(0) on every ordinary call, a code PROTOCOL.md
//! section 7 does not define for STOP_SENDING. [`ReadToFin`] hands the stream, when dropped, to a
//! task that reads it to its FIN: an ordinary call then ends with no STOP_SENDING at all, and
//! bytes after the REQUEST get STOP_SENDING with `PROTOCOL` (256) (PROTOCOL.md section 3.3).

use std::ops::{Deref, DerefMut};

use crate::error::app_code;
use rpcnet_protocol::ErrorCode;

/// Owns a call's `quinn::RecvStream` (dereferences to it) and, when dropped, reads it to its FIN
/// in a background task (see module docs). Explicit `stop(code)` calls still go out as sent:
/// a stopped stream is dropped at once.
pub(crate) struct ReadToFin(Option<quinn::RecvStream>);

impl ReadToFin {
    /// Wraps the receive side of a call's stream.
    pub(crate) fn new(recv: quinn::RecvStream) -> Self {
        Self(Some(recv))
    }

    /// The stream, unless [`ReadToFin::take`] moved it out.
    pub(crate) fn get_mut(&mut self) -> Option<&mut quinn::RecvStream> {
        self.0.as_mut()
    }

    /// Moves the stream out into a new owner (a task that reads the client's items); this one
    /// must not be read any more.
    pub(crate) fn take(&mut self) -> Self {
        Self(self.0.take())
    }
}

impl Deref for ReadToFin {
    type Target = quinn::RecvStream;

    fn deref(&self) -> &quinn::RecvStream {
        self.0.as_ref().expect("present until dropped")
    }
}

impl DerefMut for ReadToFin {
    fn deref_mut(&mut self) -> &mut quinn::RecvStream {
        self.0.as_mut().expect("present until dropped")
    }
}

impl Drop for ReadToFin {
    fn drop(&mut self) {
        let Some(recv) = self.0.take() else { return };
        // Outside a runtime (never the case for a serving task) the stream is simply dropped.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(read_to_fin(recv));
        }
    }
}

/// Reads `recv` until its FIN (then drops it silently), a reset or the connection's end. Bytes
/// that arrive are a protocol violation (the peer sends nothing after its REQUEST): the stream is
/// stopped with `PROTOCOL`. The wait is bounded by the connection's life, and the number of such
/// streams by the stream credit the serving end grants (`MAX_STREAMS`).
async fn read_to_fin(mut recv: quinn::RecvStream) {
    if let Ok(Some(_)) = recv.read_chunk(usize::MAX, true).await {
        let _ = recv.stop(app_code(ErrorCode::Protocol));
    }
}

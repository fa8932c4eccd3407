//! The client's items of a client-streaming or bidi call as they reach the handler's side
//! (PROTOCOL.md sections 3.4 and 13.6), sans-IO: which items the handler gets and which
//! frames break the rules.
//!
//! On a plain server the client numbers its items from 0 with no gap, and its END carries their
//! count. On a cluster link the director replays the client's items from its latest checkpoint's
//! `read` when it attaches a call to a new owner, while the handler resumes from the owner's own
//! checkpoint, which may be later: the items below the handler's `read` are skipped, never handed
//! to it twice, and a gap (an item the handler needs that nobody sent) fails the call rather
//! than hand the handler the wrong item.

use rpcnet_protocol::ErrorCode;

use crate::CallError;

/// The receive rule of one call's client items. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientItems {
    /// The first item the handler reads (its resume checkpoint's `read`).
    read_from: u64,
    /// The seq the sender must send next; `None` on a cluster link before the first item (the
    /// director's replay may start below `read_from`).
    expect: Option<u64>,
    ended: bool,
}

/// What [`ClientItems::on_item`] decided for one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientItem {
    /// Hand it to the handler.
    Deliver,
    /// The handler read it before it resumed (below its checkpoint's `read`): drop it.
    Skip,
}

impl ClientItems {
    /// The rule of a plain server: items 0, 1, 2, ... exactly.
    pub fn plain() -> Self {
        ClientItems {
            read_from: 0,
            expect: Some(0),
            ended: false,
        }
    }

    /// The rule of a call attached on a cluster link whose handler reads from `read_from`
    /// ([`crate::ServerCall::read_from`]): the director's items are contiguous and start at or
    /// below `read_from`.
    pub fn relayed(read_from: u64) -> Self {
        ClientItems {
            read_from,
            expect: None,
            ended: false,
        }
    }

    /// The next item the handler gets.
    pub fn next(&self) -> u64 {
        self.expect.unwrap_or(self.read_from).max(self.read_from)
    }

    /// One ITEM from the client (or the director).
    ///
    /// Errors: `PROTOCOL` for an item after END, a seq other than the next one, or (on a
    /// cluster link) a first item above the handler's `read`: the items between are lost.
    pub fn on_item(&mut self, seq: u64) -> Result<ClientItem, CallError> {
        if self.ended {
            return Err(CallError::protocol(format!(
                "client ITEM seq {seq} after END"
            )));
        }
        match self.expect {
            Some(e) if seq != e => {
                return Err(CallError::protocol(format!(
                    "client ITEM seq {seq} where seq {e} was expected"
                )))
            }
            None if seq > self.read_from => {
                return Err(CallError::protocol(format!(
                    "client ITEM seq {seq} is the first one, but the handler resumes at client \
                     item {}: the items between are missing",
                    self.read_from
                )))
            }
            _ => {}
        }
        self.expect = Some(seq + 1);
        Ok(if seq >= self.read_from {
            ClientItem::Deliver
        } else {
            ClientItem::Skip
        })
    }

    /// The client's END (the half-close) with its item count.
    ///
    /// Errors: `PROTOCOL` for a second END, or a count other than the number of items sent.
    pub fn on_end(&mut self, count: u64) -> Result<(), CallError> {
        if self.ended {
            return Err(CallError::protocol("a second client END".to_owned()));
        }
        let sent = self.expect.unwrap_or(self.read_from);
        if count != sent || count < self.read_from {
            return Err(CallError::new(
                ErrorCode::Protocol,
                format!("client END says {count} items, but {sent} were sent"),
            ));
        }
        self.ended = true;
        Ok(())
    }

    /// True once the client's END came.
    pub fn is_ended(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_server_takes_items_from_zero_without_gaps() {
        let mut c = ClientItems::plain();
        assert_eq!(c.on_item(0), Ok(ClientItem::Deliver));
        assert_eq!(c.on_item(2).unwrap_err().code, ErrorCode::Protocol);
        let mut c = ClientItems::plain();
        c.on_item(0).unwrap();
        assert_eq!(c.on_end(2).unwrap_err().code, ErrorCode::Protocol);
        c.on_end(1).unwrap();
        assert!(c.on_item(1).is_err(), "after END");
    }

    #[test]
    fn a_relayed_call_skips_what_its_handler_read_and_refuses_a_gap() {
        let mut c = ClientItems::relayed(3);
        assert_eq!(c.on_item(1), Ok(ClientItem::Skip));
        assert_eq!(c.on_item(2), Ok(ClientItem::Skip));
        assert_eq!(c.on_item(3), Ok(ClientItem::Deliver));
        assert_eq!(c.next(), 4);
        c.on_end(4).unwrap();
        let mut gap = ClientItems::relayed(3);
        assert_eq!(gap.on_item(4).unwrap_err().code, ErrorCode::Protocol);
        let mut none_left = ClientItems::relayed(3);
        none_left.on_end(3).unwrap();
        assert!(ClientItems::relayed(3).on_end(2).is_err());
    }
}

//! Where a session's calls go now (DESIGN.md "owner"), as the director's coordinator keeps it.
//!
//! The route is the single authority on ownership: relays attach only to an unfrozen route's
//! owner, and every ATTACH carries the route's `epoch`, which workers use as a fence (PROTOCOL.md
//! section 13.5). The epoch grows at every change of owner and at every unfreeze, so "the route
//! after the one that failed" is well defined.

/// A session's route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The worker id that owns the session.
    pub owner: String,
    /// Bumped at every change of owner and every unfreeze.
    pub epoch: u64,
    /// True from State Capture to the Pivot or the abort: relays do not attach then.
    pub frozen: bool,
    /// Set once a worker answered SUPERSEDED (PROTOCOL.md section 15.6): the session was
    /// resumed through another director at this generation. No call attaches any more; each
    /// ends with `UNAVAILABLE` ([`crate::RelayCall::superseded`]).
    pub superseded: Option<u32>,
}

impl Route {
    /// A fresh route to `owner` at epoch 1 (0 is never a live epoch, so a worker's initial fence
    /// of 0 lets every ATTACH through).
    pub fn new(owner: impl Into<String>) -> Self {
        Route {
            owner: owner.into(),
            epoch: 1,
            frozen: false,
            superseded: None,
        }
    }

    /// The first route of a session resumed at `generation` (PROTOCOL.md section 15.1): epoch
    /// [`generation_epoch`]`(generation) + 1`, above every epoch of the directors before.
    ///
    /// [`generation_epoch`]: rpcnet_protocol::resume::generation_epoch
    pub fn resumed(owner: impl Into<String>, generation: u32) -> Self {
        Route {
            owner: owner.into(),
            epoch: rpcnet_protocol::resume::generation_epoch(generation) + 1,
            frozen: false,
            superseded: None,
        }
    }

    /// Moves the route to `owner` (or keeps it with `None`), unfrozen, at the next epoch.
    pub fn advance(&mut self, owner: Option<&str>) {
        if let Some(o) = owner {
            self.owner = o.to_string();
        }
        self.frozen = false;
        self.epoch += 1;
    }
}

//! When a `getblocktemplate` long poll may be opened on a node, so that a pool or a solo
//! miner never holds more than one of the node's RPC threads.
//!
//! A node answers a long poll only when its tip changes (or, a minute on, when its mempool
//! has changed); until then the request holds one of its few RPC worker threads
//! (`-rpcthreads`, 4 by default), even after the client gave up or died: the node does not
//! notice a closed socket. So a client must not open a long poll while one it started may
//! still be waiting there:
//!
//! - one at a time: a new one only after the node answered the last;
//! - a long poll the client abandoned (its own timeout, a failover, a crash or restart of
//!   the process) is taken to wait until the tip changes: no new one until a tip other
//!   than the one it waited on has been seen;
//! - a process starts parked, because a process before it may have left one waiting on
//!   the current tip: it long-polls from the first tip change it sees.
//!
//! Meanwhile the caller learns of new blocks from a short poll (`getbestblockhash`) or ZMQ.

use crate::hash::Hash256;

/// The long-poll state of one node, as one client process sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LongPollGate {
    state: State,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// No long poll of ours waits on the node.
    Open,
    /// Ours is waiting on the node.
    InFlight,
    /// One may wait on this tip (`None`: on whatever tip the node has now).
    Parked(Option<Hash256>),
}

impl Default for LongPollGate {
    fn default() -> Self {
        LongPollGate::new()
    }
}

impl LongPollGate {
    /// The gate of a process that just started: parked until the tip changes.
    pub fn new() -> LongPollGate {
        LongPollGate {
            state: State::Parked(None),
        }
    }

    /// Whether a long poll may be opened now.
    pub fn may_start(&self) -> bool {
        self.state == State::Open
    }

    /// Whether a long poll of ours is waiting on the node.
    pub fn in_flight(&self) -> bool {
        self.state == State::InFlight
    }

    /// A long poll was sent.
    pub fn started(&mut self) {
        self.state = State::InFlight;
    }

    /// The node answered the long poll: its thread is free again.
    pub fn answered(&mut self) {
        if self.state == State::InFlight {
            self.state = State::Open;
        }
    }

    /// The long poll ended without the node's answer (a timeout, a transport error, given
    /// up on) while the node's tip was `tip` (`None` when not known): the node may hold it
    /// until its tip changes.
    pub fn abandoned(&mut self, tip: Option<Hash256>) {
        self.state = State::Parked(tip);
    }

    /// The node's tip as just seen (in a template or from `getbestblockhash`).
    pub fn tip_seen(&mut self, tip: Hash256) {
        match self.state {
            State::Parked(None) => self.state = State::Parked(Some(tip)),
            State::Parked(Some(parked)) if parked != tip => self.state = State::Open,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_one_long_poll_and_an_abandoned_one_is_waited_out() {
        let (a, b, c) = (Hash256([1; 32]), Hash256([2; 32]), Hash256([3; 32]));
        let mut gate = LongPollGate::new();
        // A new process: a dead one may have left a long poll on the current tip.
        assert!(!gate.may_start());
        gate.tip_seen(a);
        gate.tip_seen(a);
        assert!(!gate.may_start(), "not on the tip it started on");
        gate.tip_seen(b);
        assert!(
            gate.may_start(),
            "the tip changed: any old long poll has returned"
        );
        gate.started();
        assert!(gate.in_flight() && !gate.may_start(), "one at a time");
        gate.tip_seen(c);
        assert!(!gate.may_start(), "still in flight until the node answers");
        gate.answered();
        assert!(gate.may_start());
        gate.started();
        gate.abandoned(Some(c));
        assert!(!gate.may_start());
        gate.tip_seen(c);
        assert!(!gate.may_start(), "abandoned on c: it may still wait there");
        gate.tip_seen(a);
        assert!(gate.may_start());
        // A late answer to a long poll already given up on changes nothing.
        gate.abandoned(Some(a));
        gate.answered();
        assert!(!gate.may_start());
        // Abandoned with the tip unknown: parked until a change after the next tip seen.
        let mut gate = LongPollGate::new();
        gate.tip_seen(a);
        gate.tip_seen(b);
        gate.started();
        gate.abandoned(None);
        gate.tip_seen(b);
        assert!(!gate.may_start());
        gate.tip_seen(c);
        assert!(gate.may_start());
    }
}

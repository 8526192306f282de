//! Admission: who may connect. Bans, connections per address and in all, and strikes for
//! connections closed as protocol violations, in one table of addresses.
//!
//! The table sits behind a `std::sync::Mutex` held only for a map lookup and never across
//! an `.await`: admission happens once per connection, not per message.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::LimitsConfig;
use crate::observe::stats::PoolStats;

/// The admission table and the limits it applies.
#[derive(Debug)]
pub struct Admission {
    limits: LimitsConfig,
    stats: Arc<PoolStats>,
    peers: Mutex<PeerTable>,
}

#[derive(Debug, Default)]
struct Peer {
    connections: usize,
    banned_until: Option<Instant>,
    /// Protocol-violation closes since `strikes_since` (`limits.ban_after_violations`).
    strikes: u32,
    strikes_since: Option<Instant>,
    /// The ban came from another pool process (`limits.share_bans`), not from this one.
    ban_shared: bool,
}

impl Peer {
    /// Whether the entry still matters at `now` (otherwise it can be forgotten).
    fn live(&self, now: Instant, window: Duration) -> bool {
        self.connections > 0
            || self.banned_until.is_some_and(|until| until > now)
            || self
                .strikes_since
                .is_some_and(|since| now.saturating_duration_since(since) < window)
    }
}

/// From this many remembered addresses on, forgotten ones are pruned (a scan from many
/// addresses must not grow the table without bound).
const PRUNE_ABOVE: usize = 65_536;

/// Why a connection was turned away.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// The address is banned.
    Banned,
    /// Too many connections from the address.
    PerAddress(usize),
    /// Too many connections in all.
    Total(usize),
}

impl Admission {
    /// An empty table applying `limits`; bans are counted in `stats`.
    pub fn new(limits: LimitsConfig, stats: Arc<PoolStats>) -> Admission {
        Admission {
            limits,
            stats,
            peers: Mutex::new(PeerTable::new()),
        }
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, PeerTable> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.limits.ban_secs)
    }

    /// Admits a connection from `ip` or says why not. A refused address gets no entry it
    /// did not already have.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        let limits = &self.limits;
        let mut table = self.peers();
        // Counted here rather than by the connected counter, which moves only once a
        // connection is served: a burst of accepts (or proxies still sending their
        // headers) must not slip past the cap.
        let total = table.admitted;
        let open = match table.map.get_mut(&ip) {
            Some(peer) => {
                if peer.banned_until.is_some_and(|until| until > now) {
                    return Err(Refusal::Banned);
                }
                peer.banned_until = None;
                peer.connections
            }
            None => 0,
        };
        if limits.connections_per_ip > 0 && open >= limits.connections_per_ip {
            return Err(Refusal::PerAddress(open));
        }
        if limits.max_connections > 0 && total >= limits.max_connections {
            return Err(Refusal::Total(total));
        }
        table.prune(now, self.window());
        table.map.entry(ip).or_default().connections += 1;
        table.admitted += 1;
        Ok(())
    }

    /// A connection from `ip` ended.
    pub fn release(&self, ip: IpAddr) {
        let mut table = self.peers();
        let Some(peer) = table.map.get_mut(&ip) else {
            return;
        };
        if peer.connections == 0 {
            return;
        }
        peer.connections -= 1;
        if peer.connections == 0 && peer.banned_until.is_none() && peer.strikes == 0 {
            table.map.remove(&ip);
        }
        table.admitted = table.admitted.saturating_sub(1);
    }

    /// A connection from `ip` was closed for a protocol violation; true when this one
    /// bans the address (`limits.ban_after_violations` within `limits.ban_secs`).
    pub fn strike(&self, ip: IpAddr, now: Instant) -> bool {
        let limits = &self.limits;
        if limits.ban_after_violations == 0 {
            return false;
        }
        let window = self.window();
        let mut table = self.peers();
        table.prune(now, window);
        let peer = table.map.entry(ip).or_default();
        if peer
            .strikes_since
            .is_none_or(|since| now.saturating_duration_since(since) >= window)
        {
            peer.strikes = 0;
            peer.strikes_since = Some(now);
        }
        peer.strikes += 1;
        if peer.strikes < limits.ban_after_violations {
            return false;
        }
        peer.strikes = 0;
        peer.strikes_since = None;
        peer.banned_until = Some(now + window);
        peer.ban_shared = false;
        drop(table);
        self.stats.banned();
        true
    }

    /// Bans `ip` for the configured time.
    pub fn ban(&self, ip: IpAddr, now: Instant) {
        let window = self.window();
        let mut table = self.peers();
        table.prune(now, window);
        let peer = table.map.entry(ip).or_default();
        peer.banned_until = Some(now + window);
        peer.ban_shared = false;
        drop(table);
        self.stats.banned();
    }

    /// Another pool process banned `ip` with `left` to go, or lifted its ban (`None`). A
    /// longer ban of this process's own stays; a lift lifts any ban.
    pub fn apply_shared(&self, ip: IpAddr, left: Option<Duration>, now: Instant) {
        let mut table = self.peers();
        match left {
            Some(left) => {
                table.prune(now, self.window());
                let peer = table.map.entry(ip).or_default();
                let until = now + left;
                if peer
                    .banned_until
                    .is_none_or(|own| own <= now || own < until)
                {
                    peer.banned_until = Some(until);
                    peer.ban_shared = true;
                }
            }
            None => {
                if let Some(peer) = table.map.get_mut(&ip) {
                    peer.banned_until = None;
                    peer.ban_shared = false;
                    peer.strikes = 0;
                    peer.strikes_since = None;
                }
            }
        }
    }

    /// The bans this process made itself, in force at `now`, with the time they have
    /// left: what it tells the other processes.
    pub fn own_bans(&self, now: Instant) -> Vec<(IpAddr, Duration)> {
        self.peers()
            .map
            .iter()
            .filter(|(_, p)| !p.ban_shared)
            .filter_map(|(ip, p)| {
                let until = p.banned_until?;
                (until > now).then(|| (*ip, until - now))
            })
            .collect()
    }
}

impl Admission {
    /// The addresses banned at `now`, each with the time its ban has left, longest first.
    pub fn bans(&self, now: Instant) -> Vec<(IpAddr, Duration)> {
        let mut bans: Vec<(IpAddr, Duration)> = self
            .peers()
            .map
            .iter()
            .filter_map(|(ip, p)| {
                let until = p.banned_until?;
                (until > now).then(|| (*ip, until - now))
            })
            .collect();
        bans.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        bans
    }

    /// Lifts the ban on `ip` (and forgets its strikes); whether it was banned at `now`.
    pub fn lift(&self, ip: IpAddr, now: Instant) -> bool {
        let mut table = self.peers();
        let Some(peer) = table.map.get_mut(&ip) else {
            return false;
        };
        let banned = peer.banned_until.is_some_and(|until| until > now);
        peer.banned_until = None;
        peer.ban_shared = false;
        peer.strikes = 0;
        peer.strikes_since = None;
        banned
    }
}

/// Addresses with connections, bans or strikes.
#[derive(Debug)]
struct PeerTable {
    map: HashMap<IpAddr, Peer>,
    /// Size at which forgotten entries are next pruned: doubles with the live entries, so
    /// a big pool pays for a scan only as often as its table doubles.
    prune_at: usize,
    /// Admitted connections not yet released, all addresses together.
    admitted: usize,
}

impl PeerTable {
    fn new() -> PeerTable {
        PeerTable {
            map: HashMap::new(),
            prune_at: PRUNE_ABOVE,
            admitted: 0,
        }
    }

    fn prune(&mut self, now: Instant, window: Duration) {
        if self.map.len() < self.prune_at {
            return;
        }
        self.map.retain(|_, p| p.live(now, window));
        self.prune_at = PRUNE_ABOVE.max(self.map.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(limits: LimitsConfig) -> Admission {
        Admission::new(limits, Arc::new(PoolStats::default()))
    }

    #[test]
    fn bans_are_listed_and_lifted() {
        let s = shared(LimitsConfig::default());
        let now = Instant::now();
        s.ban(ip(1), now);
        s.ban(ip(2), now + Duration::from_secs(5));
        let bans = s.bans(now + Duration::from_secs(6));
        assert_eq!(
            bans.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
            vec![ip(2), ip(1)],
            "longest left first"
        );
        assert!(s.admit(ip(1), now + Duration::from_secs(6)).is_err());
        assert!(s.lift(ip(1), now + Duration::from_secs(6)));
        assert!(!s.lift(ip(1), now + Duration::from_secs(6)), "once");
        assert!(!s.lift(ip(3), now), "never banned");
        assert!(s.admit(ip(1), now + Duration::from_secs(6)).is_ok());
        assert_eq!(s.bans(now + Duration::from_secs(6)).len(), 1);
    }

    #[test]
    fn bans_from_other_processes_apply_and_lift_but_are_not_told_again() {
        let s = shared(LimitsConfig::default());
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        s.apply_shared(ip(1), Some(minute), now);
        assert_eq!(s.admit(ip(1), now), Err(Refusal::Banned));
        assert!(s.own_bans(now).is_empty(), "not this process's to tell");
        assert_eq!(s.bans(now).len(), 1, "but listed");
        // A ban of its own is told; a shorter shared one does not cut it short.
        s.ban(ip(2), now);
        s.apply_shared(ip(2), Some(Duration::from_secs(1)), now);
        assert_eq!(s.own_bans(now).len(), 1);
        assert!(s.own_bans(now)[0].1 > minute, "the own ban's 600 s stay");
        // Lifted anywhere, lifted here, whoever banned.
        s.apply_shared(ip(1), None, now);
        s.apply_shared(ip(2), None, now);
        assert_eq!(s.admit(ip(1), now), Ok(()));
        assert_eq!(s.admit(ip(2), now), Ok(()));
        assert!(s.bans(now).is_empty());
    }

    fn ip(i: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn per_address_cap_and_release() {
        let s = shared(LimitsConfig {
            connections_per_ip: 2,
            ..LimitsConfig::default()
        });
        let now = Instant::now();
        assert_eq!(s.admit(ip(1), now), Ok(()));
        assert_eq!(s.admit(ip(1), now), Ok(()));
        assert_eq!(s.admit(ip(1), now), Err(Refusal::PerAddress(2)));
        assert_eq!(s.admit(ip(2), now), Ok(()));
        s.release(ip(1));
        assert_eq!(s.admit(ip(1), now), Ok(()));
        for _ in 0..2 {
            s.release(ip(1));
        }
        s.release(ip(2));
        assert_eq!(s.peers().map.len(), 0, "nothing kept for idle addresses");
    }

    #[test]
    fn refusals_for_the_total_leave_no_entry_behind() {
        let s = shared(LimitsConfig {
            max_connections: 1,
            ..LimitsConfig::default()
        });
        let now = Instant::now();
        // Counted at admission, before the connection is served.
        assert_eq!(s.admit(ip(1), now), Ok(()));
        for i in 2..1000 {
            assert_eq!(s.admit(ip(i), now), Err(Refusal::Total(1)));
        }
        assert_eq!(s.peers().map.len(), 1);
        s.release(ip(1));
        assert_eq!(s.admit(ip(2), now), Ok(()));
    }

    #[test]
    fn repeated_violations_ban_within_the_window_only() {
        let s = shared(LimitsConfig {
            ban_after_violations: 3,
            ban_secs: 60,
            ..LimitsConfig::default()
        });
        let t0 = Instant::now();
        assert!(!s.strike(ip(1), t0));
        assert!(!s.strike(ip(1), t0));
        // The window passes: counting starts again.
        let later = t0 + Duration::from_secs(61);
        assert!(!s.strike(ip(1), later));
        assert!(!s.strike(ip(1), later));
        assert_eq!(s.admit(ip(1), later), Ok(()));
        assert!(s.strike(ip(1), later), "the third within the window bans");
        assert_eq!(s.admit(ip(1), later), Err(Refusal::Banned));
        assert_eq!(s.stats.snapshot().bans, 1);
        let after_ban = later + Duration::from_secs(61);
        assert_eq!(s.admit(ip(1), after_ban), Ok(()));
        let off = shared(LimitsConfig {
            ban_after_violations: 0,
            ..LimitsConfig::default()
        });
        assert!((0..100).all(|_| !off.strike(ip(1), t0)));
    }

    #[test]
    fn forgotten_addresses_are_pruned() {
        let s = shared(LimitsConfig {
            ban_secs: 1,
            ..LimitsConfig::default()
        });
        let t0 = Instant::now();
        let n = u32::try_from(PRUNE_ABOVE).unwrap() - 1;
        for i in 0..n {
            s.ban(ip(i), t0);
        }
        // Bans of two seconds ago are forgotten when the table reaches the threshold.
        let later = t0 + Duration::from_secs(2);
        s.ban(ip(n), later);
        assert_eq!(s.peers().map.len(), PRUNE_ABOVE);
        s.ban(ip(n + 1), later);
        assert_eq!(s.peers().map.len(), 2);
    }
}

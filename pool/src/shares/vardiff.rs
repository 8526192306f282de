//! Variable difficulty per connection: a decayed estimate of the miner's rate, in
//! difficulty-1 units per second, and a difficulty that aims at one share per
//! `target_secs`.
//!
//! The estimate is `S / W`: `S` sums the credited difficulty of each share, decayed by
//! `exp(-age / tau)`, and `W` is the same decay integrated over the time observed, so the
//! first seconds of a connection are not diluted by time that was never watched. The rate
//! does not depend on the difficulty in force, so nothing resets at a retarget.
//!
//! The first retarget comes after `first_retarget_shares` shares (or after a few target
//! intervals with none); later ones at most every `retarget_secs`, and only when the
//! difficulty is off by more than half. A connection that stops sharing is lowered as if
//! a share had just arrived, which bounds its rate from above. Pure: `now` is an argument.

use std::time::{Duration, Instant};

use protocol::Difficulty;

use crate::config::VardiffConfig;

/// A decayed share-rate estimate.
#[derive(Clone, Debug)]
pub struct RateEstimator {
    tau: f64,
    sum: f64,
    weight: f64,
    last: Instant,
}

impl RateEstimator {
    /// Starts observing at `now` with time constant `tau`.
    pub fn new(now: Instant, tau: Duration) -> RateEstimator {
        RateEstimator {
            tau: tau.as_secs_f64().max(1e-3),
            sum: 0.0,
            weight: 0.0,
            last: now,
        }
    }

    fn advance(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        if dt > 0.0 {
            let decay = (-dt / self.tau).exp();
            self.sum *= decay;
            self.weight = self.weight * decay + self.tau * (1.0 - decay);
            self.last = now;
        }
    }

    /// Records a share of `difficulty` at `now`.
    pub fn add(&mut self, now: Instant, difficulty: f64) {
        self.advance(now);
        self.sum += difficulty;
    }

    /// Difficulty-1 shares per second, or `None` before any time has passed.
    pub fn rate(&mut self, now: Instant) -> Option<f64> {
        self.advance(now);
        (self.weight > 0.0).then(|| self.sum / self.weight)
    }
}

/// The bounds a connection's difficulty moves in: the pool's `[vardiff]`, or the
/// difficulty profile its user agent or worker name matched (`shares::profile`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    /// Difficulty of a new connection.
    pub start: f64,
    /// Lowest difficulty.
    pub min: f64,
    /// Highest difficulty (the network difficulty caps it too).
    pub max: f64,
    /// Round to powers of two.
    pub powers_of_two: bool,
    /// Whole difficulties only.
    pub integer_only: bool,
}

impl Bounds {
    /// The pool-wide bounds.
    pub fn of(cfg: &VardiffConfig) -> Bounds {
        Bounds {
            start: cfg.start,
            min: cfg.min,
            max: cfg.max,
            powers_of_two: cfg.powers_of_two,
            integer_only: false,
        }
    }
}

/// The difficulty controller of one connection.
#[derive(Clone, Debug)]
pub struct Vardiff {
    cfg: VardiffConfig,
    bounds: Bounds,
    difficulty: Difficulty,
    /// Lowest difficulty for this connection (raised by `mining.suggest_difficulty`).
    floor: f64,
    /// Highest difficulty (the network difficulty, when lower than the setting).
    ceiling: f64,
    /// The network difficulty of the last job, once known.
    network: Option<f64>,
    /// What `mining.suggest_difficulty` asked for last.
    suggested: Option<f64>,
    /// A `d=N` password: no retargets.
    fixed: bool,
    estimator: RateEstimator,
    started: Instant,
    last_retarget: Option<Instant>,
    last_share: Instant,
    shares_since_retarget: u32,
}

impl Vardiff {
    /// A controller starting at `cfg.start`.
    pub fn new(cfg: &VardiffConfig, now: Instant) -> Vardiff {
        let tau = Duration::from_secs_f64((cfg.retarget_secs * 2.0).max(cfg.target_secs * 6.0));
        let bounds = Bounds::of(cfg);
        let mut v = Vardiff {
            cfg: cfg.clone(),
            bounds,
            difficulty: Difficulty::ONE,
            floor: bounds.min,
            ceiling: bounds.max,
            network: None,
            suggested: None,
            fixed: false,
            estimator: RateEstimator::new(now, tau),
            started: now,
            last_retarget: None,
            last_share: now,
            shares_since_retarget: 0,
        };
        v.difficulty = Difficulty::new(v.clamp(bounds.start)).unwrap_or(Difficulty::ONE);
        v
    }

    /// The difficulty in force.
    pub fn difficulty(&self) -> Difficulty {
        self.difficulty
    }

    /// Whether a `d=N` password fixed it.
    pub fn is_fixed(&self) -> bool {
        self.fixed
    }

    /// The bounds in force.
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    /// Moves into other bounds (a difficulty profile, chosen before work is sent): starts
    /// at the profile's start, or at what the miner suggested, within the new bounds. A
    /// fixed (`d=N`) difficulty stays.
    pub fn set_bounds(&mut self, bounds: Bounds) -> Option<Difficulty> {
        self.bounds = bounds;
        self.ceiling = bounds.max.min(self.network.unwrap_or(f64::INFINITY));
        let suggested = self.suggestion();
        self.floor = suggested.unwrap_or(0.0).max(bounds.min).min(self.ceiling);
        if self.fixed {
            return None;
        }
        self.change_to(self.clamp(suggested.unwrap_or(bounds.start)))
    }

    /// The miner's suggestion within the bounds' max, a power of two when they want one
    /// (the floor it becomes must survive the rounding in [`Vardiff::clamp`]).
    fn suggestion(&self) -> Option<f64> {
        let d = self.suggested?.min(self.bounds.max);
        Some(if self.bounds.powers_of_two {
            2f64.powi(d.log2().round() as i32)
        } else {
            d
        })
    }

    fn clamp(&self, d: f64) -> f64 {
        if self.fixed {
            // A miner's own `d=N` outranks a profile's guess: it may go down to the lower
            // of the pool's and the profile's minimum.
            return d.max(self.cfg.min.min(self.bounds.min)).min(self.ceiling);
        }
        let mut d = d;
        if self.bounds.powers_of_two {
            d = 2f64.powi(d.log2().round() as i32);
        }
        d = d.max(self.floor);
        if self.bounds.integer_only {
            // Round, but never below the floor; the network cap below still wins.
            d = d.round().max(self.floor.ceil()).max(1.0);
        }
        // The network cap wins over the floor.
        d.min(self.ceiling)
    }

    /// Caps the difficulty at the network's (a share above it would be worth more than a
    /// block). Returns the new difficulty if it had to change.
    pub fn set_network_difficulty(&mut self, network: Difficulty) -> Option<Difficulty> {
        self.network = Some(network.get());
        self.ceiling = self.bounds.max.min(network.get());
        self.floor = self.floor.min(self.ceiling);
        self.change_to(self.clamp(self.difficulty.get()))
    }

    /// `mining.suggest_difficulty`: start there, and do not go below it (vardiff may still
    /// raise it), within the bounds.
    pub fn suggest(&mut self, d: Difficulty) -> Option<Difficulty> {
        if self.fixed {
            return None;
        }
        self.suggested = Some(d.get());
        let d = self.suggestion().unwrap_or(self.bounds.start);
        self.floor = d.max(self.bounds.min).min(self.ceiling);
        self.change_to(self.clamp(d))
    }

    /// A new difficulty to start from (a V2 channel's declared hash rate), within the floor
    /// and the ceiling; the floor stays.
    pub fn start_at(&mut self, d: Difficulty) -> Option<Difficulty> {
        if self.fixed {
            return None;
        }
        self.change_to(self.clamp(d.get()))
    }

    /// The least difficulty the miner takes (a V2 channel's maximum target): the floor
    /// rises to it if it is higher, within the ceiling.
    pub fn raise_floor(&mut self, d: Difficulty) -> Option<Difficulty> {
        self.floor = self.floor.max(d.get()).min(self.ceiling);
        self.change_to(self.clamp(self.difficulty.get()))
    }

    /// The difficulty for `hash_rate` (H/s) at this controller's share interval.
    pub fn for_hash_rate(&self, hash_rate: f64) -> Option<Difficulty> {
        Difficulty::new(hash_rate * self.cfg.target_secs / protocol::target::HASHES_PER_DIFFICULTY)
    }

    /// A `d=N` password: this difficulty, no retargets (not below the lower of the pool's
    /// and the profile's min, nor above the network).
    pub fn fix(&mut self, d: Difficulty) -> Option<Difficulty> {
        self.fixed = true;
        self.change_to(self.clamp(d.get()))
    }

    fn change_to(&mut self, d: f64) -> Option<Difficulty> {
        let now = self.difficulty.get();
        if (d - now).abs() <= f64::EPSILON * now {
            return None;
        }
        self.difficulty = Difficulty::new(d)?;
        Some(self.difficulty)
    }

    /// Records an accepted share; returns a new difficulty when it is time to retarget.
    pub fn on_share(&mut self, now: Instant, credited: Difficulty) -> Option<Difficulty> {
        self.estimator.add(now, credited.get());
        self.last_share = now;
        self.shares_since_retarget += 1;
        self.retarget(now)
    }

    /// Called periodically: lowers the difficulty of a connection that stopped sharing.
    pub fn on_tick(&mut self, now: Instant) -> Option<Difficulty> {
        self.retarget(now)
    }

    fn retarget(&mut self, now: Instant) -> Option<Difficulty> {
        if self.fixed {
            return None;
        }
        let since = now.saturating_duration_since(self.last_retarget.unwrap_or(self.started));
        let quiet = now.saturating_duration_since(self.last_share).as_secs_f64();
        let due = match self.last_retarget {
            None => {
                self.shares_since_retarget >= self.cfg.first_retarget_shares
                    || since.as_secs_f64() >= self.cfg.target_secs * 3.0
            }
            Some(_) => since.as_secs_f64() >= self.cfg.retarget_secs,
        };
        if !due {
            return None;
        }
        let ideal = if self.shares_since_retarget == 0 {
            // Nothing since the last retarget: the rate is at most about one share now.
            if quiet < self.cfg.target_secs * 3.0 {
                return None;
            }
            self.difficulty.get() * self.cfg.target_secs / quiet
        } else {
            self.estimator.rate(now)? * self.cfg.target_secs
        };
        let ratio = ideal / self.difficulty.get();
        if (0.5..=1.5).contains(&ratio) {
            self.last_retarget = Some(now);
            self.shares_since_retarget = 0;
            return None;
        }
        // Move at most 64x at once: an estimate from few shares can be far off.
        let next = self.clamp(self.difficulty.get() * ratio.clamp(1.0 / 64.0, 64.0));
        self.last_retarget = Some(now);
        self.shares_since_retarget = 0;
        self.change_to(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(x: f64) -> Difficulty {
        Difficulty::new(x).unwrap()
    }

    fn cfg() -> VardiffConfig {
        VardiffConfig {
            start: 1.0,
            min: 1e-6,
            max: 1e12,
            target_secs: 10.0,
            retarget_secs: 60.0,
            first_retarget_shares: 5,
            powers_of_two: false,
            allow_below_one: None,
            ..VardiffConfig::default()
        }
    }

    /// xorshift64*: a deterministic source for the simulated miner.
    struct Rng(u64);
    impl Rng {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            ((self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        /// Exponential waiting time with the given mean.
        fn wait(&mut self, mean: f64) -> f64 {
            -mean * self.uniform().ln()
        }
    }

    /// Simulates a miner of `rate` difficulty-1 shares/s for `secs`, ticking every
    /// second; returns the difficulty at the end and the mean interval over the last half.
    fn simulate(start: f64, rate: f64, secs: f64, seed: u64) -> (f64, f64) {
        let t0 = Instant::now();
        let mut v = Vardiff::new(&VardiffConfig { start, ..cfg() }, t0);
        let mut rng = Rng(seed);
        let mut t = 0.0;
        let mut next_share = rng.wait(v.difficulty().get() / rate);
        let mut late_shares = 0u32;
        while t < secs {
            let tick = t + 1.0;
            while next_share <= tick && next_share < secs {
                let now = t0 + Duration::from_secs_f64(next_share);
                if next_share > secs / 2.0 {
                    late_shares += 1;
                }
                let d = v.difficulty();
                if v.on_share(now, d).is_some() {
                    // The new difficulty applies to the next share (memoryless).
                }
                next_share += rng.wait(v.difficulty().get() / rate);
            }
            t = tick;
            if v.on_tick(t0 + Duration::from_secs_f64(t)).is_some() {
                next_share = t + rng.wait(v.difficulty().get() / rate);
            }
        }
        (
            v.difficulty().get(),
            (secs / 2.0) / f64::from(late_shares.max(1)),
        )
    }

    #[test]
    fn converges_from_far_below() {
        // 1,000 diff-1 shares/s (about 4.3 TH/s) starting at difficulty 1: 1,000x too low.
        for seed in 1..=5 {
            let (d, interval) = simulate(1.0, 1000.0, 3600.0, seed);
            assert!(
                (5000.0..20000.0).contains(&d),
                "seed {seed}: difficulty {d}"
            );
            assert!(
                (6.0..15.0).contains(&interval),
                "seed {seed}: interval {interval}"
            );
        }
    }

    #[test]
    fn converges_from_far_above() {
        // 0.5 diff-1 shares/s starting at difficulty 10,000: one share every 5.5 hours.
        for seed in 1..=5 {
            let (d, interval) = simulate(10_000.0, 0.5, 3600.0, seed);
            assert!((2.5..10.0).contains(&d), "seed {seed}: difficulty {d}");
            assert!(
                (6.0..15.0).contains(&interval),
                "seed {seed}: interval {interval}"
            );
        }
    }

    #[test]
    fn the_first_retarget_is_fast() {
        let t0 = Instant::now();
        let mut v = Vardiff::new(&cfg(), t0);
        // Five shares in half a second at difficulty 1: about 10 shares/s.
        let mut changed = None;
        for i in 1..=5 {
            changed = v.on_share(t0 + Duration::from_millis(100 * i), d(1.0));
        }
        let new = changed.expect("retarget after the fifth share");
        assert!(new.get() > 30.0, "{new}");
    }

    #[test]
    fn a_declared_hash_rate_and_a_maximum_target() {
        let t0 = Instant::now();
        let mut v = Vardiff::new(&cfg(), t0);
        v.set_network_difficulty(d(1e9));
        // 1 GH/s at one share per 10 s: 10e9 hashes, 2^32 per difficulty 1.
        let want = 1e10 / 4_294_967_296.0;
        assert_eq!(v.for_hash_rate(1e9), Some(d(want)));
        assert_eq!(v.for_hash_rate(0.0), None);
        assert_eq!(v.start_at(d(want)), Some(d(want)));
        assert_eq!(v.start_at(d(1e15)), Some(d(1e9)), "within the ceiling");
        assert_eq!(v.start_at(d(1e-9)), Some(d(1e-6)), "within the floor");
        // A maximum target raises the floor, at once and for later retargets.
        assert_eq!(v.raise_floor(d(5.0)), Some(d(5.0)));
        assert_eq!(v.raise_floor(d(1.0)), None, "a lower one changes nothing");
        for i in 1..=20 {
            v.on_tick(t0 + Duration::from_secs(60 * i));
        }
        assert_eq!(v.difficulty(), d(5.0));
        assert_eq!(v.start_at(d(2.0)), None);
        assert_eq!(
            v.raise_floor(d(1e12)),
            Some(d(1e9)),
            "never over the network"
        );
    }

    #[test]
    fn bounds_suggestions_fixed_and_powers_of_two() {
        let t0 = Instant::now();
        let mut v = Vardiff::new(&cfg(), t0);
        assert_eq!(
            v.set_network_difficulty(d(0.5)),
            Some(d(0.5)),
            "capped at the network"
        );
        assert_eq!(v.suggest(d(100.0)), None, "still capped");
        v.set_network_difficulty(d(1e9));
        assert_eq!(v.difficulty(), d(0.5));
        assert_eq!(v.suggest(d(100.0)), Some(d(100.0)));
        // The suggestion is a floor: a slow miner is not taken below it.
        for i in 1..=20 {
            v.on_tick(t0 + Duration::from_secs(60 * i));
        }
        assert_eq!(v.difficulty(), d(100.0));
        assert_eq!(v.fix(d(3.0)), Some(d(3.0)));
        assert!(v.is_fixed());
        for i in 1..=100 {
            assert_eq!(v.on_share(t0 + Duration::from_millis(i), d(3.0)), None);
        }
        let mut p = Vardiff::new(
            &VardiffConfig {
                start: 1000.0,
                powers_of_two: true,
                ..cfg()
            },
            t0,
        );
        assert_eq!(p.difficulty(), d(1024.0));
        let new = (1..=5)
            .filter_map(|i| p.on_share(t0 + Duration::from_millis(10 * i), d(1024.0)))
            .last()
            .unwrap();
        assert_eq!(new.get().log2().fract(), 0.0, "{new}");
    }

    #[test]
    fn a_profile_with_a_suggestion_is_still_retargeted_upward() {
        let t0 = Instant::now();
        let mut v = Vardiff::new(&cfg(), t0);
        v.set_network_difficulty(d(1e12));
        // ESP-Miner's order: the suggestion (1000) before the profile is known.
        v.suggest(d(1000.0));
        let bitaxe = Bounds {
            start: 1024.0,
            min: 256.0,
            max: 1e9,
            powers_of_two: false,
            integer_only: true,
        };
        assert_eq!(v.set_bounds(bitaxe), None, "the suggestion stands: 1000");
        assert_eq!(v.difficulty(), d(1000.0));
        // A 1.2 TH/s Bitaxe (about 280 difficulty-1 shares/s) shares every 3.6 s at 1000:
        // vardiff raises it to a whole number near 2800 (one share per 10 s).
        let mut t = 0.0;
        let mut changed = None;
        for _ in 0..5 {
            t += 1000.0 / 280.0;
            changed = v
                .on_share(t0 + Duration::from_secs_f64(t), v.difficulty())
                .or(changed);
        }
        let new = changed.expect("a retarget after five shares").get();
        assert!((2000.0..4000.0).contains(&new), "{new}");
        assert_eq!(new.fract(), 0.0, "integer_only");
        // A miner that goes quiet comes back down, but not below its suggestion.
        for i in 1..=60 {
            v.on_tick(t0 + Duration::from_secs_f64(t + 60.0 * f64::from(i)));
        }
        assert_eq!(v.difficulty(), d(1000.0));
    }
}

//! Difficulty profiles: vardiff bounds per kind of miner, so that an ESP32 board, a
//! Bitaxe and an Antminer each start near a difficulty that suits them instead of the
//! pool-wide one (too high for the first, a flood of shares from the last).
//!
//! A profile matches a connection by the user agent it sent with `mining.subscribe` (V2:
//! `vendor/hardware/firmware` from SetupConnection) or by its worker name, each a
//! case-insensitive prefix. The operator's `[[vardiff.profile]]` entries are tried first,
//! in order, then the shipped ones below (unless `vardiff.builtin_profiles = false`); the
//! first match wins. Values a profile leaves unset are the pool-wide `[vardiff]` ones.
//!
//! The shipped profiles may go below difficulty 1 (ESP32 miners need thousandths); where
//! the operator does not allow that (`vardiff.allow_below_one`, by default not on main
//! chains) their `min` and `start` are raised to 1. docs/pool.md gives the reasons for
//! each value.

use std::sync::LazyLock;

use protocol::address::Network;

use crate::config::{ProfileConfig, VardiffConfig};
use crate::shares::vardiff::Bounds;

/// A profile chosen for a connection.
#[derive(Clone, Debug, PartialEq)]
pub struct Chosen {
    /// The profile's name.
    pub name: String,
    /// Its bounds, with the pool's values where it sets none.
    pub bounds: Bounds,
}

fn profile(
    name: &str,
    user_agents: &[&str],
    (start, min, max): (f64, f64, Option<f64>),
    integer_only: bool,
) -> ProfileConfig {
    ProfileConfig {
        name: name.to_string(),
        user_agents: user_agents.iter().map(|s| s.to_string()).collect(),
        workers: Vec::new(),
        start: Some(start),
        min: Some(min),
        max,
        powers_of_two: Some(false),
        integer_only: Some(integer_only),
    }
}

/// The shipped profiles (docs/pool.md has the reasoning behind every number).
pub static BUILTIN: LazyLock<Vec<ProfileConfig>> = LazyLock::new(|| {
    vec![
        // 0.4-6 TH/s: one share per 10 s is difficulty ~1,000-14,000. ESP-Miner suggests
        // 1000 itself; older firmware reads set_difficulty as an integer.
        profile(
            "bitaxe",
            &["bitaxe", "esp-miner", "nerdaxe", "nerdqaxe", "luckyminer"],
            (1024.0, 256.0, None),
            true,
        ),
        // ESP32 boards at 50-1,000 kH/s: difficulty 1 is a share every few hours.
        profile(
            "nerdminer",
            &["nerdminer", "han_solominer", "nmminer"],
            (0.0005, 0.0001, Some(0.05)),
            false,
        ),
        // Antminer/Whatsminer/Avalon and cgminer's USB sticks: 0.3-400 TH/s.
        profile(
            "asic",
            &[
                "cgminer",
                "bmminer",
                "bosminer",
                "antminer",
                "btminer",
                "whatsminer",
            ],
            (16384.0, 512.0, None),
            true,
        ),
        // NiceHash rents out whole farms and expects a high start (its pool checklist).
        profile(
            "nicehash",
            &["nicehash", "excavator"],
            (500_000.0, 65_536.0, None),
            false,
        ),
        // CPU miners: 1-100 MH/s.
        profile(
            "cpuminer",
            &["cpuminer", "minerd"],
            (0.01, 0.0001, Some(64.0)),
            false,
        ),
    ]
});

fn prefix_of(pattern: &str, text: &str) -> bool {
    let pattern = pattern.trim();
    text.trim()
        .get(..pattern.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(pattern))
}

/// The first profile matching `user_agent` or `worker`, with its bounds on `network`
/// (shipped fractions become 1 where the operator does not allow them there).
pub fn choose(
    cfg: &VardiffConfig,
    network: Network,
    user_agent: Option<&str>,
    worker: &str,
) -> Option<Chosen> {
    let below_one = cfg.below_one_allowed(network);
    let builtin = cfg.builtin_profiles.then(|| BUILTIN.iter()).into_iter();
    let p = cfg.profile.iter().chain(builtin.flatten()).find(|p| {
        user_agent.is_some_and(|ua| p.user_agents.iter().any(|u| prefix_of(u, ua)))
            || (!worker.is_empty() && p.workers.iter().any(|w| prefix_of(w, worker)))
    })?;
    let pool = Bounds::of(cfg);
    let floor = |x: f64| if below_one { x } else { x.max(1.0) };
    Some(Chosen {
        name: p.name.clone(),
        bounds: Bounds {
            start: floor(p.start.unwrap_or(pool.start)),
            min: floor(p.min.unwrap_or(pool.min)),
            max: floor(p.max.unwrap_or(pool.max)),
            powers_of_two: p.powers_of_two.unwrap_or(pool.powers_of_two),
            integer_only: p.integer_only.unwrap_or(pool.integer_only),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(cfg: &VardiffConfig, ua: Option<&str>, worker: &str) -> Option<String> {
        choose(cfg, Network::Regtest, ua, worker).map(|c| c.name)
    }

    #[test]
    fn real_user_agents_find_their_profiles() {
        let cfg = VardiffConfig::default();
        for (ua, want) in [
            ("bitaxe/BM1370/v2.9.0", "bitaxe"),
            ("NerdQAxe++/BM1370/v1.0.30", "bitaxe"),
            ("NerdMinerV2/1.7.0", "nerdminer"),
            ("cgminer/4.12.1", "asic"),
            ("bmminer/2.0.0", "asic"),
            ("Antminer S19j Pro/Thu Jul  7 10:44:53 CST 2022", "asic"),
            ("NiceHash/1.0.0", "nicehash"),
            ("cpuminer/2.5.1", "cpuminer"),
            ("cpuminer-opt-26.1-x64L", "cpuminer"),
        ] {
            assert_eq!(name(&cfg, Some(ua), ""), Some(want.into()), "{ua}");
        }
        assert_eq!(name(&cfg, Some("ourminer/0.1"), "rig1"), None);
        assert_eq!(name(&cfg, None, ""), None);
        let off = VardiffConfig {
            builtin_profiles: false,
            ..VardiffConfig::default()
        };
        assert_eq!(name(&off, Some("bitaxe/BM1366/v2.1"), ""), None);
    }

    #[test]
    fn operator_profiles_come_first_and_match_workers_too() {
        let cfg = VardiffConfig {
            profile: vec![ProfileConfig {
                name: "garage".into(),
                user_agents: vec!["Bitaxe/BM1366".into()],
                workers: vec!["s9-".into()],
                start: Some(4096.0),
                min: None,
                max: None,
                powers_of_two: Some(true),
                integer_only: None,
            }],
            ..VardiffConfig::default()
        };
        let garage = choose(&cfg, Network::Regtest, Some("bitaxe/BM1366/v2.1"), "").unwrap();
        assert_eq!(garage.name, "garage");
        let pool = Bounds::of(&cfg);
        assert_eq!(
            garage.bounds,
            Bounds {
                start: 4096.0,
                powers_of_two: true,
                ..pool
            }
        );
        // Another Bitaxe model falls through to the shipped profile.
        assert_eq!(
            name(&cfg, Some("bitaxe/BM1370/v2.9"), ""),
            Some("bitaxe".into())
        );
        // By worker name, whatever the user agent says.
        assert_eq!(
            name(&cfg, Some("whatever/1"), "S9-garage"),
            Some("garage".into())
        );
        assert_eq!(name(&cfg, None, "s8"), None);
    }

    #[test]
    fn shipped_fractions_become_one_where_the_operator_does_not_allow_them() {
        let cfg = VardiffConfig::default();
        let nerd = choose(&cfg, Network::Main, Some("NerdMinerV2/1.7.0"), "").unwrap();
        assert_eq!(
            (nerd.bounds.start, nerd.bounds.min, nerd.bounds.max),
            (1.0, 1.0, 1.0)
        );
        let nerd = choose(&cfg, Network::Regtest, Some("NerdMinerV2/1.7.0"), "").unwrap();
        assert_eq!((nerd.bounds.start, nerd.bounds.min), (0.0005, 0.0001));
    }
}

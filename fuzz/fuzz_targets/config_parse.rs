//! Arbitrary text as the pool's TOML configuration: parse and validate never panic, and a
//! configuration that validates has the invariants the pool relies on at start.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pool::config::PoolConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = PoolConfig::from_toml(text) else {
        return;
    };
    if config.validate().is_ok() {
        assert!(!config.nodes.is_empty());
        assert!(config.limits.messages_per_sec > 0);
        assert!(config.vardiff.min > 0.0 && config.vardiff.min <= config.vardiff.max);
    }
});

//! Fixtures shared by the fuzz targets: real templates (a testnet3 `getblocktemplate`
//! captured from a public pool's node, and a regtest one at the easiest target so that
//! fuzzed shares can be accepted and even be blocks), jobs built from them the way the
//! pool builds them, and session settings as the pool's defaults set them.

use std::sync::Arc;
use std::time::Duration;

use pool::chain::jobs::{CoinbaseSettings, Job, JobMaker};
use pool::chain::template::Template;
use pool::config::{LimitsConfig, Mode, VardiffConfig};
use pool::stratum::session::SessionSettings;
use protocol::address::Network;

/// The unix time every target runs at.
pub const NOW: u32 = 1_700_000_100;

/// A real testnet3 template (height 2442185, 9 transactions).
pub const TESTNET_GBT: &str =
    include_str!("../../protocol/tests/data/gbt-testnet3-2442185-public-pool.json");

/// A regtest template at the easiest target (half of all hashes are blocks); the previous
/// block changes with the height.
pub fn regtest_gbt(height: u64) -> serde_json::Value {
    serde_json::json!({
        "version": 536870912u32,
        "previousblockhash": format!("{height:064x}"),
        "transactions": [],
        "coinbaseaux": {"flags": ""},
        "coinbasevalue": 5000000000u64,
        "longpollid": "x1",
        "target": "7fffff0000000000000000000000000000000000000000000000000000000000",
        "mintime": 1_700_000_000u32,
        "mutable": ["time", "transactions", "prevblock"],
        "noncerange": "00000000ffffffff",
        "sizelimit": 32000000,
        "curtime": NOW,
        "bits": "207fffff",
        "height": height
    })
}

/// A template from `getblocktemplate` JSON, checked as the pool checks it.
pub fn template(json: &serde_json::Value) -> Option<Arc<Template>> {
    let raw = protocol::template::BlockTemplate::from_json(json).ok()?;
    Some(Arc::new(Template {
        checked: raw.validate().ok()?,
        node: "fuzz".into(),
        fetch_time: Duration::ZERO,
    }))
}

/// The testnet template's "result".
pub fn testnet_template() -> Arc<Template> {
    let v: serde_json::Value = serde_json::from_str(TESTNET_GBT).expect("the captured template");
    let result = v.get("result").cloned().unwrap_or(v);
    template(&result).expect("the captured template is valid")
}

/// Settings like the pool's defaults, at a regtest-friendly difficulty.
pub fn settings(mode: Mode) -> Arc<SessionSettings> {
    Arc::new(SessionSettings {
        mode,
        network: Network::Regtest,
        version_mask: 0x1fffe000,
        coinbase: CoinbaseSettings {
            pool_tag: b"/fuzz/".to_vec(),
            extranonce2_size: 8,
        },
        vardiff: VardiffConfig {
            start: 1e-10,
            min: 1e-12,
            ..VardiffConfig::default()
        },
        keep_jobs: 4,
        max_ntime_ahead: 7000,
        limits: LimitsConfig::default(),
        ack_when_stored: false,
    })
}

/// A job maker (PPLNS pays OP_TRUE, SOLO pays the miner).
pub fn maker(s: &SessionSettings) -> JobMaker {
    let pool_script = (s.mode == Mode::Pplns).then(|| vec![0x51]);
    JobMaker::new(s.coinbase.clone(), pool_script)
}

/// A job from `template`.
pub fn job(maker: &mut JobMaker, template: Arc<Template>) -> Arc<Job> {
    Arc::new(
        maker
            .make(template, NOW)
            .expect("a job from a valid template"),
    )
}

//! Miner settings signed by the miner's key, against a running PPLNS pool on a regtest
//! pair with PostgreSQL: a payment threshold changed with a message signed by the node
//! wallet's `signmessage` (a real wallet signature, of a P2PKH address), refused when replayed, forged, stale,
//! out of bounds or from an address type that cannot sign; and payment rounds paying each
//! address at its own threshold.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::SocketAddr;

use common::*;
use serde_json::{Value, json};
use testkit::Node;

const TOKEN: &str = "test-admin-token-0123456789";

fn now() -> u64 {
    u64::from(pool::clock::unix_now())
}

/// The message a miner signs to set `threshold` (coins, 8 decimals) at `timestamp`.
fn message(address: &str, threshold: &str, timestamp: u64) -> String {
    format!(
        "sha256d-pool settings pool=pool address={address} paymentThreshold={threshold} \
         timestamp={timestamp}"
    )
}

/// `signmessage` by the wallet that holds `signer`.
fn sign(node: &Node, signer: &str, message: &str) -> String {
    node.call("signmessage", json!([signer, message]))
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

async fn post(api: SocketAddr, address: &str, body: Value) -> (u16, Value) {
    let path = format!("/api/pools/pool/miners/{address}/settings");
    http_call(api, "POST", &path, None, Some(body)).await
}

fn body(threshold: Value, timestamp: u64, signature: &str) -> Value {
    json!({
        "ipAddress": "198.51.100.7",
        "settings": {"paymentThreshold": threshold},
        "timestamp": timestamp,
        "signature": signature,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_sets_its_threshold_with_its_key_and_is_paid_by_it() {
    let setup = Setup::start();
    let (wallet, miners) = (setup.pair.node(0), setup.pair.node(1));
    let mut cfg = setup.config();
    cfg.api.admin_token = Some(TOKEN.into());
    // Rounds by hand only: the first on its own comes `check_secs` after leading.
    cfg.payouts.payment_interval_secs = 3600;
    cfg.payouts.check_secs = 600;
    let pool = TestPool::start(cfg).await;
    let api = pool.running.api_addr.unwrap();
    let round =
        || async { http_call(api, "POST", "/api/admin/payouts/round", Some(TOKEN), None).await };
    // The leader answers: nobody is due yet.
    let (status, body_) = round().await;
    assert_eq!((status, &body_["payout"]), (200, &json!(null)), "{body_}");

    // The regtest node's wallet hands out P2PKH addresses, which every wallet can sign with.
    let (a, other) = (miners.new_address().unwrap(), miners.new_address().unwrap());
    let settings = format!("/api/pools/pool/miners/{a}/settings");
    let (status, shown) = http_json(api, &settings).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        shown,
        json!({"paymentThreshold": 0.01, "source": "pool", "minimumPaymentThreshold": 0.01,
               "maximumPaymentThreshold": 10.0, "signedAt": null, "updated": null})
    );

    // Signed by the address's key: taken.
    let t = now();
    let signature = sign(miners, &a, &message(&a, "0.50000000", t));
    let (status, shown) = post(api, &a, body(json!(0.5), t, &signature)).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["paymentThreshold"], json!(0.5));
    assert_eq!(shown["source"], json!("address"));
    assert_eq!(shown["signedAt"], json!(t));
    assert_eq!(http_json(api, &settings).await.1, shown);

    // The same request again: a replay.
    let (status, e) = post(api, &a, body(json!(0.5), t, &signature)).await;
    assert_eq!(status, 409, "{e}");
    // Another value under that signature, or a later time: not what was signed.
    let (status, e) = post(api, &a, body(json!(0.6), t + 1, &signature)).await;
    assert_eq!(status, 403, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("paymentThreshold=0.60000000")
    );
    // The right message, signed by another key.
    let forged = sign(miners, &other, &message(&a, "0.40000000", t + 1));
    let (status, e) = post(api, &a, body(json!(0.4), t + 1, &forged)).await;
    assert_eq!(status, 403, "{e}");
    // Signed properly, but an hour old.
    let stale = sign(miners, &a, &message(&a, "0.40000000", t - 3600));
    let (status, e) = post(api, &a, body(json!(0.4), t - 3600, &stale)).await;
    assert_eq!(status, 400, "{e}");
    // Outside the operator's bounds, and finer than a satoshi.
    for bad in [json!(0.001), json!(11), json!(0.123456789), json!("lots")] {
        let (status, e) = post(api, &a, body(bad.clone(), t + 1, &signature)).await;
        assert_eq!(status, 400, "{bad}: {e}");
    }
    let (status, e) = post(api, &a, json!({"settings": {}})).await;
    assert_eq!(status, 400, "{e}");
    let (status, e) = post(api, &a, body(json!(0.4), t + 1, "bm90IGEgc2lnbmF0dXJl")).await;
    assert_eq!(status, 400, "{e}");
    // A taproot address cannot sign this way, and is told so.
    let program = bitcoin::WitnessProgram::new(bitcoin::WitnessVersion::V1, &[7; 32]).unwrap();
    let taproot = bitcoin::Address::from_witness_program(program, bitcoin::Network::Regtest);
    let (status, e) = post(
        api,
        &taproot.to_string(),
        body(json!(0.4), t + 1, &signature),
    )
    .await;
    assert_eq!(status, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("BIP 322"), "{e}");
    // The operator can set it for such an address (and only with the admin token).
    let path = format!("/api/admin/miners/{taproot}/settings");
    let set = Some(json!({"paymentThreshold": 0.4}));
    let (status, _) = http_call(api, "POST", &path, None, set.clone()).await;
    assert_eq!(status, 401);
    let (status, e) = http_call(api, "POST", &path, Some(TOKEN), set).await;
    assert_eq!(status, 200, "{e}");
    let (_, shown) = http_json(api, &format!("/api/pools/pool/miners/{taproot}/settings")).await;
    assert_eq!(
        (&shown["paymentThreshold"], &shown["source"]),
        (&json!(0.4), &json!("address"))
    );
    let (status, _) = http_json(api, "/api/pools/other/miners/x/settings").await;
    assert_eq!(status, 404);
    let (status, _) = http_json(api, "/api/pools/pool/miners/nonsense/settings").await;
    assert_eq!(status, 400);
    assert_eq!(
        http_json(api, &settings).await.1["paymentThreshold"],
        json!(0.5)
    );

    // Payments: `a` waits for 0.5, the other address is paid at the pool's 0.01.
    let d = miners.new_address().unwrap();
    let mut payees = vec![a.clone(), d.clone()];
    payees.sort();
    let amounts = |a_amount, d_amount| {
        if payees[0] == a {
            [a_amount, d_amount]
        } else {
            [d_amount, a_amount]
        }
    };
    let store = pool::store::Store::open(&setup.pg.url(), 2, std::time::Duration::from_secs(10))
        .await
        .unwrap();
    credit(store.db(), &payees, amounts(30_000_000, 12_000_000)).await;
    wallet.generate(101).unwrap();
    setup.pair.wait_synced().unwrap();
    let (status, paid) = round().await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(
        paid["payout"]["payments"],
        json!([{"address": d, "amount": 12_000_000}]),
        "{paid}"
    );
    // `a` lowers its threshold (a newer signature) and the next round pays it.
    let t2 = now().max(t + 1);
    let signature = sign(miners, &a, &message(&a, "0.20000000", t2));
    let (status, shown) = post(api, &a, body(json!("0.2"), t2, &signature)).await;
    assert_eq!(status, 200, "{shown}");
    let (status, paid) = round().await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(
        paid["payout"]["payments"],
        json!([{"address": a, "amount": 30_000_000}]),
        "{paid}"
    );
    wallet.generate(1).unwrap();
    setup.pair.wait_synced().unwrap();
    for (address, sat) in [(&a, 30_000_000), (&d, 12_000_000)] {
        let got = miners
            .call("getreceivedbyaddress", json!([address, 1]))
            .unwrap();
        assert_eq!((got.as_f64().unwrap() * 1e8).round() as i64, sat);
    }
    pool.stop().await;
}

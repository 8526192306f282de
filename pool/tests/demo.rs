//! The README's main command, `scripts/demo`, is `pool/examples/demo.rs`: run it here, on
//! free ports, so it keeps working (a regtest pair, PostgreSQL, the pool, two miners, until
//! a PPLNS payment is sent).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

#[path = "../examples/demo.rs"]
mod demo;

use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_until_a_payment() {
    let any = "127.0.0.1:0".parse().unwrap();
    let cancel = CancellationToken::new();
    let result = tokio::time::timeout(
        std::time::Duration::from_secs(600),
        demo::run(any, any, false, cancel.clone()),
    )
    .await;
    cancel.cancel();
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("the demo failed: {e}"),
        Err(_) => panic!("the demo took more than ten minutes"),
    }
}

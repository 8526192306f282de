//! `GET /metrics` in the Prometheus text format (version 0.0.4): connections, shares by
//! result and reject reason, hashrate, blocks and their status, job age, and histograms of
//! template fetch, submitblock and share acknowledgement latency.

use std::borrow::Cow;
use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use crate::clock::unix_now;
use crate::observe::latency::LatencySnapshot;
use crate::observe::stats::Protocol;

/// The handler.
pub async fn metrics(State(state): State<ApiState>) -> Response {
    let by_status = match &state.store {
        // Only the counts: a scrape need not sum this round's work.
        Some(store) => store.block_counts().await.ok(),
        None => None,
    };
    let body = render(&state, by_status.as_ref().map(|s| &s[..]));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Escapes a label value (backslash, quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn value(&mut self, name: &str, labels: &str, v: f64) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {v}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {v}");
        }
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, v: f64) {
        self.head(name, kind, help);
        self.value(name, "", v);
    }

    fn histogram(&mut self, name: &str, help: &str, h: &LatencySnapshot) {
        self.head(name, "histogram", help);
        for (bound, count) in &h.buckets {
            self.value(
                &format!("{name}_bucket"),
                &format!("le=\"{bound}\""),
                *count as f64,
            );
        }
        self.value(&format!("{name}_bucket"), "le=\"+Inf\"", h.count as f64);
        self.value(&format!("{name}_sum"), "", h.sum_secs);
        self.value(&format!("{name}_count"), "", h.count as f64);
    }
}

/// The exposition text; `blocks_by_status` from the database when there is one.
pub fn render(state: &ApiState, blocks_by_status: Option<&[(String, i64)]>) -> String {
    let s = state.stats.snapshot();
    let now = u64::from(unix_now());
    let live = state.stats.live.snapshot(now);
    let peers = state.stats.peers.current();
    let processes = 1 + peers.len();
    // Alone (the usual case), every process's figures are this one's: no copy of its
    // 19,000 rows to read four totals.
    let combined = if peers.is_empty() {
        Cow::Borrowed(&live)
    } else {
        Cow::Owned(crate::observe::live::combine_with(live.clone(), &peers))
    };
    let mut o = Out(String::new());
    o.head(
        "pool_connections",
        "gauge",
        "Open Stratum connections, by protocol (v1: plain and TLS; v2).",
    );
    for p in Protocol::ALL {
        let labels = format!("protocol=\"{}\"", p.label());
        o.value(
            "pool_connections",
            &labels,
            s.protocol(p).connections as f64,
        );
    }
    o.head(
        "pool_connections_total",
        "counter",
        "Stratum connections accepted since start, by protocol.",
    );
    for p in Protocol::ALL {
        let labels = format!("protocol=\"{}\"", p.label());
        let total = s.protocol(p).connections_total as f64;
        o.value("pool_connections_total", &labels, total);
    }
    o.one(
        "pool_connections_refused_total",
        "counter",
        "Connections refused by a limit or a ban.",
        s.refused as f64,
    );
    o.one(
        "pool_bans_total",
        "counter",
        "Addresses banned.",
        s.bans as f64,
    );
    o.one(
        "pool_miners",
        "gauge",
        "Distinct payout addresses connected to this process.",
        live.miners as f64,
    );
    o.one(
        "pool_workers",
        "gauge",
        "Distinct workers connected to this process.",
        live.connected_workers as f64,
    );
    o.head(
        "pool_shares_total",
        "counter",
        "Shares by protocol and result (accepted or rejected).",
    );
    for p in Protocol::ALL {
        let counts = s.protocol(p);
        for (result, n) in [("accepted", counts.accepted), ("rejected", counts.rejected)] {
            let labels = format!("protocol=\"{}\",result=\"{result}\"", p.label());
            o.value("pool_shares_total", &labels, n as f64);
        }
    }
    o.head(
        "pool_shares_rejected_total",
        "counter",
        "Rejected shares by reason.",
    );
    for (reason, n) in &s.rejected {
        o.value(
            "pool_shares_rejected_total",
            &format!("reason=\"{}\"", label(reason)),
            *n as f64,
        );
    }
    o.one(
        "pool_accepted_difficulty_total",
        "counter",
        "Sum of the difficulty of accepted shares.",
        s.accepted_difficulty,
    );
    o.one(
        "pool_hashrate_hashes_per_second",
        "gauge",
        "This process's hashrate from accepted share difficulty over the last ten minutes.",
        live.hashrate,
    );
    o.one(
        "pool_shares_per_second",
        "gauge",
        "Accepted shares per second over the last ten minutes, this process.",
        live.shares_per_sec,
    );
    // The same of every pool process on the database (the live view they share): a
    // miner on two processes counts once here, twice in a sum of the gauges above.
    o.one(
        "pool_processes",
        "gauge",
        "Pool processes on this database whose live figures count, this one included.",
        processes as f64,
    );
    o.one(
        "pool_combined_miners",
        "gauge",
        "Distinct payout addresses connected to any pool process on this database.",
        combined.miners as f64,
    );
    o.one(
        "pool_combined_workers",
        "gauge",
        "Distinct workers connected to any pool process on this database.",
        combined.connected_workers as f64,
    );
    o.one(
        "pool_combined_hashrate_hashes_per_second",
        "gauge",
        "Hashrate of every pool process on this database, over the last ten minutes.",
        combined.hashrate,
    );
    o.one(
        "pool_combined_shares_per_second",
        "gauge",
        "Accepted shares per second of every pool process on this database.",
        combined.shares_per_sec,
    );
    o.one(
        "pool_best_share_difficulty",
        "gauge",
        "Highest share difficulty since start.",
        s.best_share,
    );
    let best = state.stats.best.get(&crate::observe::best::Scope::Pool);
    o.head(
        "pool_best_difficulty",
        "gauge",
        "Best share difficulty of the pool this round (since its last block) and all time (kept in the database when there is one).",
    );
    o.value("pool_best_difficulty", "period=\"round\"", best.round);
    o.value("pool_best_difficulty", "period=\"all_time\"", best.all_time);
    o.head(
        "pool_api_rate_limited_total",
        "counter",
        "API requests refused with 429 (api.rate_limit).",
    );
    o.value(
        "pool_api_rate_limited_total",
        "",
        state
            .guard
            .limited
            .load(std::sync::atomic::Ordering::Relaxed) as f64,
    );
    if let Some(w) = state.stats.withholding() {
        o.head(
            "pool_withholding_flagged_addresses",
            "gauge",
            "Addresses the last block-withholding report flagged (alerts.withholding_p).",
        );
        o.value("pool_withholding_flagged_addresses", "", w.flagged as f64);
        o.head(
            "pool_withholding_lowest_probability",
            "gauge",
            "The lowest chance, over the report's addresses, of finding as few blocks as they did.",
        );
        o.value("pool_withholding_lowest_probability", "", w.lowest);
    }
    let sinks = state.stats.notify.counts();
    if !sinks.is_empty() {
        o.head(
            "pool_notifications_total",
            "counter",
            "Notifications per [[notify]] sink: sent, failed (after every attempt), retried (attempts after the first), dropped (queue full).",
        );
        for (sink, c) in sinks {
            use std::sync::atomic::Ordering::Relaxed;
            for (result, n) in [
                ("sent", c.sent.load(Relaxed)),
                ("failed", c.failed.load(Relaxed)),
                ("retried", c.retries.load(Relaxed)),
                ("dropped", c.dropped.load(Relaxed)),
            ] {
                let labels = format!("sink=\"{sink}\",result=\"{result}\"");
                o.value("pool_notifications_total", &labels, n as f64);
            }
        }
    }
    o.head(
        "pool_blocks_total",
        "counter",
        "Block candidates found and blocks a node accepted, since start.",
    );
    o.value(
        "pool_blocks_total",
        "result=\"found\"",
        s.blocks_found as f64,
    );
    o.value(
        "pool_blocks_total",
        "result=\"accepted\"",
        s.blocks_accepted as f64,
    );
    o.one(
        "pool_node_longpolls_total",
        "counter",
        "getblocktemplate long polls sent to nodes.",
        s.longpolls as f64,
    );
    o.one(
        "pool_node_longpolls_abandoned_total",
        "counter",
        "Long polls given up on before the node answered (each may hold a node RPC thread until the next block).",
        s.longpolls_abandoned as f64,
    );
    o.one(
        "pool_node_longpolls_in_flight",
        "gauge",
        "Long polls of this process waiting on a node (one per node at most).",
        s.longpolls_in_flight as f64,
    );
    if let Some(statuses) = blocks_by_status {
        o.head(
            "pool_blocks",
            "gauge",
            "Blocks in the database by status (pending, confirmed, orphaned).",
        );
        for (status, n) in statuses {
            o.value(
                "pool_blocks",
                &format!("status=\"{}\"", label(status)),
                *n as f64,
            );
        }
    }
    if let Some(r) = state.store.as_ref().and_then(|s| s.replica_figures()) {
        o.one(
            "pool_read_replica_up",
            "gauge",
            "1 while the read replica (database.read_url) answers the API's history reads.",
            f64::from(u8::from(r.up)),
        );
        o.head(
            "pool_history_reads_total",
            "counter",
            "The API's history reads, by the database that answered them.",
        );
        o.value(
            "pool_history_reads_total",
            "database=\"replica\"",
            r.from_replica as f64,
        );
        o.value(
            "pool_history_reads_total",
            "database=\"primary\"",
            r.from_primary as f64,
        );
        o.one(
            "pool_history_read_fallbacks_total",
            "counter",
            "History reads that failed on the replica and were run again on the primary.",
            r.fallbacks as f64,
        );
    }
    if s.job_unix > 0 {
        o.one(
            "pool_job_age_seconds",
            "gauge",
            "Seconds since the current job was made.",
            now.saturating_sub(s.job_unix) as f64,
        );
        o.one(
            "pool_block_height",
            "gauge",
            "Height of the block being mined.",
            s.height as f64,
        );
        o.one(
            "pool_network_difficulty",
            "gauge",
            "Network difficulty of the block being mined.",
            s.network_difficulty,
        );
    }
    o.histogram(
        "pool_template_fetch_seconds",
        "getblocktemplate round trips (long polls excluded).",
        &state.stats.template_fetch.snapshot(),
    );
    o.histogram(
        "pool_submitblock_seconds",
        "submitblock round trips.",
        &state.stats.submitblock.snapshot(),
    );
    o.histogram(
        "pool_share_ack_seconds",
        "From an accepted share to its durable acknowledgement.",
        &state.stats.share_ack.snapshot(),
    );
    let w = &state.writer;
    o.histogram(
        "pool_store_commit_seconds",
        "Commits of new shares to PostgreSQL (group commit: one per batch).",
        &w.commit.snapshot(),
    );
    o.head(
        "pool_share_records_total",
        "counter",
        "Share records by where they went: stored, spooled, replayed, lost.",
    );
    for (what, n) in [
        ("stored", &w.stored),
        ("spooled", &w.spooled),
        ("replayed", &w.replayed),
        ("lost", &w.lost),
    ] {
        o.value(
            "pool_share_records_total",
            &format!("outcome=\"{what}\""),
            n.load(Ordering::Relaxed) as f64,
        );
    }
    o.one(
        "pool_leader",
        "gauge",
        "1 when this process does the bookkeeping (blocks, payments, statistics).",
        if state.leading.load(Ordering::Relaxed) {
            1.0
        } else {
            0.0
        },
    );
    o.0
}

//! `miner -o ...`: wires the engine, a work source (Stratum client or solo), the statistics,
//! the console line and the API together, and stops cleanly on Ctrl-C.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::client::{self, ClientOptions, PoolUrl, SessionConfig};
use crate::config::MineArgs;
use crate::engine::Engine;
use crate::hash::{Backend, select};
use crate::stats::{Snapshot, Stats, format_rate};
use crate::{api, selfcheck, solo};

/// How long Ctrl-C waits for a solo block submission in flight (a found block is worth
/// the wait; the node answers submitblock in milliseconds unless it is in trouble).
const SUBMIT_GRACE: Duration = Duration::from_secs(10);

/// Checks the settings and mines until Ctrl-C. Errors are one clear line for the user.
pub fn mine(args: MineArgs) -> Result<Snapshot, String> {
    if args.url.is_empty() {
        return Err("no pool: give -o stratum+tcp://HOST:PORT (or --solo -o http://USER:PASS@NODE:PORT); see miner --help".into());
    }
    let (backend, backend_reason) = match &args.backend {
        Some(name) => {
            let b: Backend = name.parse().map_err(|e| format!("{e}"))?;
            if !b.is_supported() {
                return Err(format!("backend {b} is not supported by this CPU"));
            }
            (b, format!("{b}: chosen with --backend"))
        }
        None => {
            let choice = select::choose(Duration::from_millis(40), 3);
            (choice.backend, choice.reason)
        }
    };
    info!("backend {backend_reason}");
    selfcheck::run(backend).map_err(|e| e.to_string())?;
    let gpus =
        crate::opencl::open_selected(args.gpu, &args.gpu_devices).map_err(|e| e.to_string())?;
    for g in &gpus {
        info!(device = g.summary.index, name = %g.summary.name, units = g.summary.compute_units, "OpenCL device ready");
    }
    // Each device's thread needs a little CPU to feed it.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = match args.threads {
        Some(n) => n,
        None => cores
            .saturating_sub(gpus.len())
            .max(usize::from(gpus.is_empty())),
    };
    if threads == 0 && gpus.is_empty() {
        return Err("--threads 0 needs --gpu or --gpu-devices".into());
    }
    let version_rolling = !args.no_version_rolling;
    let solo_mode = args.solo;

    // Validate the work source before starting anything.
    enum Source {
        Pool(ClientOptions),
        Solo(solo::SoloOptions),
    }
    let source = if args.solo {
        let node = noderpc::Endpoint::parse(&args.url[0], args.rpc_cookie.as_deref())
            .map_err(|e| e.to_string())?;
        node.check().map_err(|e| e.to_string())?;
        let addr = args
            .coinbase_addr
            .clone()
            .ok_or("--solo needs --coinbase-addr ADDRESS (who the block reward pays)")?;
        let network = args
            .network
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e: protocol::address::AddressError| e.to_string())?;
        let payout = solo::parse_payout(&addr, network).map_err(|e| e.to_string())?;
        Source::Solo(solo::SoloOptions {
            node,
            payout,
            tag: args
                .coinbase_tag
                .clone()
                .unwrap_or_else(|| "/sha256d-stack/".into())
                .into_bytes(),
            version_rolling,
            poll: Duration::from_secs(5),
        })
    } else {
        let authority = args
            .authority_key
            .as_deref()
            .map(|k| {
                protocol::sv2::keys::parse_public(k)
                    .map_err(|e| format!("--authority-key {k:?}: {e}"))
            })
            .transpose()?;
        let pools = args
            .url
            .iter()
            .map(|u| PoolUrl::parse(u, authority).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let sv2_channel = match args.sv2_channel.as_deref() {
            None | Some("extended") => client::ChannelKind::Extended,
            Some("standard") => client::ChannelKind::Standard,
            Some(other) => {
                return Err(format!(
                    "--sv2-channel {other:?}: expected extended or standard"
                ));
            }
        };
        Source::Pool(ClientOptions {
            pools,
            session: SessionConfig {
                user: args.user.clone().ok_or(
                    "give the worker name with -u USER (for most pools, your payout address)",
                )?,
                password: args.pass.clone().unwrap_or_else(|| "x".into()),
                agent: format!("sha256d-miner/{}", env!("CARGO_PKG_VERSION")),
                suggest_difficulty: args.suggest_diff,
                version_rolling_mask: version_rolling.then_some(0x1fff_e000),
                extranonce2_range: None,
            },
            failback: Duration::from_secs(args.failback.unwrap_or(300).max(1)),
            allow_redirect: args.allow_redirect,
            timeout: Duration::from_secs(args.timeout.unwrap_or(180).max(5)),
            max_bad_lines: 10,
            tls_fingerprint: args
                .tls_fingerprint
                .as_deref()
                .map(client::tls::parse_fingerprint)
                .transpose()
                .map_err(|e| e.to_string())?,
            sv2_channel,
        })
    };

    let (found_tx, found_rx) = crate::engine::solution_channel();
    let placement = crate::engine::Placement {
        cpus: args
            .cpu_affinity
            .as_deref()
            .map(crate::engine::placement::parse_cpus)
            .transpose()?,
        priority: Some(crate::engine::placement::check_priority(
            args.cpu_priority.unwrap_or(0),
        )?),
    };
    let engine = Arc::new(
        Engine::start_placed(backend, threads, gpus, found_tx, placement)
            .map_err(|e| e.to_string())?,
    );
    let stats = Arc::new(Stats::new(Instant::now(), backend.name()));
    info!(%backend, threads, "hashing engine started");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let cancel = CancellationToken::new();

    let mut solo_handle = None;
    runtime.block_on(async {
        if let Some(bind) = &args.api_bind {
            let state = api::ApiState {
                stats: stats.clone(),
                token: args.api_token.clone(),
                worker: args
                    .user
                    .clone()
                    .or(args.coinbase_addr.clone())
                    .unwrap_or_default(),
                threads,
                engine: Some(engine.clone()),
                backend_reason: Some(backend_reason.clone()),
            };
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .map_err(|e| format!("cannot serve the API on {bind}: {e}"))?;
            info!(%bind, "JSON API listening (GET /2/summary)");
            let c = cancel.clone();
            tokio::spawn(async move {
                let serve = axum::serve(listener, api::router(state))
                    .with_graceful_shutdown(async move { c.cancelled().await });
                if let Err(e) = serve.await {
                    warn!(error = %e, "API server stopped");
                }
            });
        }
        let print_every = Duration::from_secs(args.print_interval.unwrap_or(10).max(1));
        let thermal = args
            .max_temp
            .map(|max| crate::thermal::ThermalGuard::new(max, std::path::Path::new(HWMON)));
        if let Some(guard) = &thermal
            && !guard.reads_cpu()
            && threads > 0
        {
            warn!("--max-temp: no CPU temperature sensor here (hwmon coretemp/k10temp); the CPU threads are not limited");
        }
        tokio::spawn(sample_and_print(
            engine.clone(),
            stats.clone(),
            print_every,
            thermal,
            cancel.clone(),
        ));
        match source {
            Source::Solo(opts) => {
                info!(node = %opts.node.url(), payout = %opts.payout.text, "solo mining");
                solo_handle = Some(solo::start(opts, engine.clone(), found_rx, stats.clone()));
            }
            Source::Pool(opts) => {
                let rx = client::forward_solutions(found_rx)
                    .map_err(|e| format!("cannot start a thread: {e}"))?;
                tokio::spawn(client::run(
                    opts,
                    engine.clone(),
                    rx,
                    stats.clone(),
                    cancel.clone(),
                ));
            }
        }
        let limit = args.time_limit.map(Duration::from_secs);
        tokio::select! {
            why = stop_signal() => info!("{why}: stopping"),
            () = async {
                match limit {
                    Some(limit) => tokio::time::sleep(limit).await,
                    None => std::future::pending().await,
                }
            } => info!(seconds = args.time_limit, "time limit reached: stopping"),
        }
        cancel.cancel();
        engine.clear_work();
        Ok::<(), String>(())
    })?;
    // A block found just before Ctrl-C still goes to the node, and into the summary.
    if let Some(h) = solo_handle {
        h.finish(SUBMIT_GRACE);
    }
    let snap = stats.snapshot(Instant::now());
    print_summary(&snap, solo_mode);
    Ok(snap)
}

/// Waits for Ctrl-C or SIGTERM (what a service manager sends to stop the miner); which.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "Ctrl-C",
                _ = term.recv() => "SIGTERM",
            },
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C still stops the miner");
                ctrl_c_or_never().await
            }
        }
    }
    #[cfg(not(unix))]
    {
        ctrl_c_or_never().await
    }
}

async fn ctrl_c_or_never() -> &'static str {
    if let Err(e) = tokio::signal::ctrl_c().await {
        warn!(error = %e, "cannot listen for Ctrl-C; running until killed");
        std::future::pending::<()>().await;
    }
    "Ctrl-C"
}

/// Where Linux publishes hardware sensors.
const HWMON: &str = "/sys/class/hwmon";

async fn sample_and_print(
    engine: Arc<Engine>,
    stats: Arc<Stats>,
    every: Duration,
    mut thermal: Option<crate::thermal::ThermalGuard>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_print = Instant::now();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let counts = engine
            .stats()
            .iter()
            .map(|s| s.hashes.load(std::sync::atomic::Ordering::Relaxed))
            .collect();
        let now = Instant::now();
        stats.sample(now, counts);
        if let Some(guard) = thermal.as_mut() {
            for change in guard.check(&engine) {
                warn!("{change}");
            }
        }
        if now.duration_since(last_print) >= every {
            last_print = now;
            let snapshot = stats.snapshot(now);
            for line in device_lines(&engine, &snapshot) {
                println!("{line}");
            }
            let line = status_line(
                &snapshot,
                engine.hardware_errors(),
                engine.dropped_solutions(),
            );
            let held = (0..engine.worker_names().len())
                .filter(|w| engine.is_held(*w))
                .count();
            let line = match (engine.is_paused(), held) {
                (true, _) => format!("{line} | PAUSED"),
                (false, 0) => line,
                (false, n) => format!("{line} | TOO HOT: {n} worker(s) paused (--max-temp)"),
            };
            println!("{line}");
        }
    }
}

fn show(r: Option<f64>) -> String {
    r.map_or("-".into(), format_rate)
}

/// One console line per OpenCL device: its 10 s and 60 s rates, the pool's verdicts on
/// its shares, hardware errors, and its sensors where the platform exposes them.
pub fn device_lines(engine: &Engine, s: &Snapshot) -> Vec<String> {
    use std::sync::atomic::Ordering::Relaxed;
    engine
        .gpu_workers()
        .map(|(i, name, w)| {
            let rates = s.threads.get(i).copied().unwrap_or_default();
            let mut line = format!(
                "  {name}: {} 10s | {} 60s | accepted {} rejected {} | HW errors {}",
                show(rates[0]),
                show(rates[1]),
                w.accepted.load(Relaxed),
                w.rejected.load(Relaxed),
                w.hardware_errors.load(Relaxed),
            );
            if let Some(why) = w.lost() {
                line.push_str(&format!(" | LOST: {why}"));
            }
            let r = engine.sensors(i).unwrap_or_default();
            if let Some(t) = r.temperature_c {
                line.push_str(&format!(" | {t:.0} °C"));
            }
            match (r.fan_rpm, r.fan_percent) {
                (Some(rpm), _) => line.push_str(&format!(" | fan {rpm} RPM")),
                (None, Some(p)) => line.push_str(&format!(" | fan {p}%")),
                (None, None) => {}
            }
            if let Some(w) = r.power_w {
                line.push_str(&format!(" | {w:.0} W"));
            }
            line
        })
        .collect()
}

/// The console status line.
pub fn status_line(s: &Snapshot, hardware_errors: u64, dropped: u64) -> String {
    format!(
        "{} | {} 10s | {} 60s | {} 15m | accepted {} rejected {} (stale {}) | diff {} | {}{}{}",
        s.backend,
        show(s.total[0]),
        show(s.total[1]),
        show(s.total[2]),
        s.accepted,
        s.rejected,
        s.stale,
        protocol::target::format_difficulty(s.difficulty),
        s.pool.as_deref().unwrap_or("not connected"),
        if hardware_errors > 0 {
            format!(" | HW errors {hardware_errors}")
        } else {
            String::new()
        },
        if dropped > 0 {
            format!(" | solutions dropped (client behind) {dropped}")
        } else {
            String::new()
        }
    )
}

fn print_summary(s: &Snapshot, solo: bool) {
    // Solo: the node's verdict is known. Pool mode: the pool decides, so the miner counts
    // what it sent.
    let blocks = if solo {
        format!("blocks {} (candidates {})", s.blocks, s.block_candidates)
    } else {
        format!("block candidates {}", s.block_candidates)
    };
    println!(
        "summary: {:.0} s, {} hashes, {} 60s, accepted {}, rejected {} (stale {}), {blocks}",
        s.uptime,
        s.hashes,
        show(s.total[1]),
        s.accepted,
        s.rejected,
        s.stale,
    );
    for (reason, n) in &s.reject_reasons {
        println!("  rejected {n} x {reason}");
    }
}

//! Wiring: checks the settings and the node, binds the listener, and starts the template
//! feed, the job maker, the block submitter, the share log and the Stratum server.
//!
//! ```text
//! templates::run --watch Template--> make_jobs --watch Job--> server/connection tasks
//! connections --mpsc BlockEvent--> blocks::run --submitblock--> nodes  (--kick--> templates)
//! connections --mpsc Submission (share + ack)--> store::writer --group commit--> PostgreSQL
//!                                                             \--while it is away--> spool
//! store::leader (one process per database): tracker, payments, statistics, retention
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::accounting::coinbase_payouts::{self, Basis, Payouts};
use crate::accounting::leader::{self, Duties};
use crate::accounting::payments::Payer;
use crate::accounting::tracker::Tracker;
use crate::chain::blocks::{self, BlockRecord};
use crate::chain::feed::{self, FeedOptions};
use crate::chain::jobs::FoundPayouts;
use crate::chain::jobs::{CoinbaseSettings, Job, JobMaker};
use crate::chain::node::Node;
use crate::chain::template::Template;
use crate::clock::unix_now;
use crate::config::PayoutMethod;
use crate::config::{ConfigError, Mode, PoolConfig};
use crate::net;
use crate::observe::api::miningcore::coin;
use crate::observe::api::{self, ApiState, PoolFacts};
use crate::observe::notify::{Notifier, OfflineWatch};
use crate::observe::stats::PoolStats;
use crate::shares::extranonce::Extranonces;
use crate::store::Store;
use crate::store::spool::Spool;
use crate::store::writer::ShareSink;
use crate::store::writer::{self, WriterOptions, WriterStats};
use crate::stratum::listener::{self, Door, Listener};
use crate::stratum::session::SessionSettings;
use crate::stratum::shared::{Outlets, Shared};
use crate::stratum::tls::Certificates;
use crate::stratum::v2::connection::Endpoint;

/// Block candidates waiting for the submitter. Beyond a few, candidates are for a height
/// already solved (regtest-like difficulty) and cost the submitter a set lookup each.
const BLOCK_QUEUE: usize = 1024;

/// Why the pool could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is wrong.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// The node says the pool's address is invalid.
    #[error("the node says pool_address {address} is not valid: {detail}")]
    PoolAddress {
        /// The address.
        address: String,
        /// What the node said.
        detail: String,
    },
    /// The `stratum+ssl` certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::stratum::tls::TlsError),
    /// PostgreSQL could not be reached or its schema brought up to date.
    #[error("database.url: {0}")]
    Database(#[from] crate::store::StoreError),
    /// The Stratum port could not be bound, or the data dir created.
    #[error("{what}: {detail}")]
    Io {
        /// What failed.
        what: String,
        /// The OS error.
        detail: String,
    },
}

/// A running pool.
pub struct RunningPool {
    /// The Stratum address it listens on.
    pub stratum_addr: SocketAddr,
    /// The `stratum+ssl` address, when configured.
    pub tls_addr: Option<SocketAddr>,
    /// The Stratum V2 address, when configured.
    pub v2_addr: Option<SocketAddr>,
    /// Live counters.
    pub stats: Arc<PoolStats>,
    /// Blocks as they are decided (accepted or refused).
    pub blocks: mpsc::Receiver<BlockRecord>,
    /// The store, when a database is configured.
    pub store: Option<Store>,
    /// What the store's writer has done.
    pub writer: Arc<WriterStats>,
    /// Whether this process runs the bookkeeping (holds the leader lock) right now.
    pub leading: Arc<AtomicBool>,
    /// Where the HTTP API listens, when it is enabled.
    pub api_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningPool {
    /// Waits until every task has ended (after the cancel token fired).
    pub async fn wait(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Starts the pool; it runs until `cancel` fires.
pub async fn start(
    config: PoolConfig,
    cancel: CancellationToken,
) -> Result<RunningPool, StartError> {
    let checked = config.validate()?;
    let longpoll = Duration::from_secs(config.jobs.longpoll_timeout_secs);
    let nodes: Vec<Node> = config
        .nodes
        .iter()
        .map(|n| Node::new(n, longpoll))
        .collect();
    if let Some(payout) = &checked.pool_payout {
        check_pool_address(&nodes, &payout.text).await?;
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|e| StartError::Io {
        what: format!("creating data_dir {}", config.data_dir.display()),
        detail: e.to_string(),
    })?;
    let s = &config.stratum;
    let bind_error = |key: &str, addr: SocketAddr, e: std::io::Error| StartError::Io {
        what: format!("binding {key} {addr}"),
        detail: if e.kind() == std::io::ErrorKind::AddrInUse && !s.reuse_port {
            format!("{e} (for a rolling restart set stratum.reuse_port = true in both processes)")
        } else {
            e.to_string()
        },
    };
    // Ports are bound now (a port in use fails the start at once) but listened on only
    // when everything else is up, so that during a rolling restart the kernel does not
    // hand miners to this process before it can serve them.
    let local = |l: &TcpSocket| {
        l.local_addr().map_err(|e| StartError::Io {
            what: "reading a listener's address".into(),
            detail: e.to_string(),
        })
    };
    let plain =
        net::reserve(s.bind, s.reuse_port).map_err(|e| bind_error("stratum.bind", s.bind, e))?;
    let stratum_addr = local(&plain)?;
    let mut reserved = vec![(plain, Door::V1)];
    let mut tls_addr = None;
    let mut certificates = None;
    if let Some(tls) = &s.tls {
        let certs = Arc::new(Certificates::load(&tls.cert_file, &tls.key_file)?);
        let tcp = net::reserve(tls.bind, s.reuse_port)
            .map_err(|e| bind_error("stratum.tls.bind", tls.bind, e))?;
        tls_addr = Some(local(&tcp)?);
        reserved.push((tcp, Door::V1Tls(certs.clone())));
        certificates = Some(certs);
    }
    let mut v2_addr = None;
    if let Some(v2) = &checked.v2 {
        let tcp = net::reserve(v2.bind, s.reuse_port)
            .map_err(|e| bind_error("stratum.v2.bind", v2.bind, e))?;
        v2_addr = Some(local(&tcp)?);
        let endpoint = Endpoint {
            keys: v2.keys.clone(),
            cert_validity: v2.cert_validity,
        };
        reserved.push((tcp, Door::V2(Arc::new(endpoint))));
    }

    let store = match &config.database.url {
        Some(url) => {
            let store = Store::open(
                url,
                config.database.max_connections,
                Duration::from_secs(config.database.write_timeout_secs),
            )
            .await?;
            Some(match &config.database.read_url {
                Some(read_url) => store.with_replica(read_url, config.database.max_connections)?,
                None => store,
            })
        }
        None => None,
    };
    let coinbase = CoinbaseSettings {
        pool_tag: config.pool_tag.as_bytes().to_vec(),
        extranonce2_size: config.stratum.extranonce2_size,
    };
    let pool_script = match config.mode {
        Mode::Pplns => checked
            .pool_payout
            .as_ref()
            .map(|p| p.script_pubkey.clone()),
        Mode::Solo => None,
    };
    let maker = JobMaker::new(coinbase.clone(), pool_script.clone())
        .with_first_id(JobMaker::first_id(unix_now()));
    let ids = maker.ids();
    let settings = Arc::new(SessionSettings {
        mode: config.mode,
        network: checked.network,
        version_mask: checked.version_mask,
        coinbase,
        vardiff: config.vardiff.clone(),
        keep_jobs: config.jobs.keep_jobs,
        max_ntime_ahead: config.jobs.max_ntime_ahead_secs,
        limits: config.limits.clone(),
        ack_when_stored: store.is_some(),
    });
    let mut stats = PoolStats::default();
    stats.notify = Notifier::start(&config.notify, &config.api.pool_id, coin(checked.network).0);
    let stats = Arc::new(stats);
    let kick = Arc::new(Notify::new());
    let (template_tx, template_rx) = watch::channel(None);
    let (job_tx, job_rx) = watch::channel(None);
    // Bounded queues: a full one makes its senders wait (connections stop reading their
    // miners), so a flood slows down the connections that cause it and never grows memory.
    let (block_tx, block_rx) = mpsc::channel(BLOCK_QUEUE);
    let (found_tx, found_rx) = mpsc::channel(BLOCK_QUEUE);

    let feed_options = FeedOptions {
        block_poll: Duration::from_millis(config.jobs.block_poll_ms),
        refresh: Duration::from_secs(config.jobs.refresh_secs),
        // ZMQ is the better word of a new block: it costs the node no RPC thread.
        longpoll: config
            .nodes
            .iter()
            .map(|n| config.jobs.longpoll && n.zmq_hashblock.is_none())
            .collect(),
        longpoll_timeout: longpoll,
        max_retry: Duration::from_secs(config.jobs.max_retry_secs.max(1)),
    };
    let zmq: Vec<_> = config
        .nodes
        .iter()
        .filter_map(|n| n.zmq_hashblock.clone())
        .map(|endpoint| {
            tokio::spawn(crate::chain::zmq::run(
                endpoint,
                kick.clone(),
                cancel.clone(),
            ))
        })
        .collect();
    // Coinbase payouts: a task keeps the window fresh, the job maker splits by it and by
    // the blocks found here that the database may not have yet.
    let found_payouts = Arc::new(FoundPayouts::default());
    let mut basis_task = None;
    let coinbase_jobs = match (&store, &pool_script) {
        (Some(store), Some(script)) if config.payouts.method == PayoutMethod::Coinbase => {
            let (basis_tx, basis_rx) = watch::channel(None);
            basis_task = Some(tokio::spawn(coinbase_payouts::refresh(
                store.clone(),
                config.payouts.window_factor,
                template_rx.clone(),
                basis_tx,
                Duration::from_secs(config.jobs.refresh_secs),
                cancel.clone(),
            )));
            Some((
                Payouts::new(&config.payouts, script.clone(), checked.network),
                basis_rx,
            ))
        }
        _ => None,
    };
    let mut tasks = vec![
        tokio::spawn(feed::run(
            nodes.clone(),
            feed_options,
            template_tx,
            kick.clone(),
            stats.clone(),
            cancel.clone(),
        )),
        tokio::spawn(make_jobs(
            maker,
            template_rx.clone(),
            job_tx,
            stats.clone(),
            coinbase_jobs,
            found_payouts.clone(),
        )),
    ];
    tasks.extend(basis_task);
    tasks.push(tokio::spawn(crate::memory::run(cancel.clone())));
    if let Some(store) = store.as_ref().filter(|s| s.replica_figures().is_some()) {
        tasks.push(tokio::spawn(store.clone().watch_replica(cancel.clone())));
    }
    tasks.extend(zmq);
    let writer_stats = Arc::new(WriterStats::default());
    let leading = Arc::new(AtomicBool::new(false));
    let thresholds = stats.notify.offline_thresholds();
    if !thresholds.is_empty() {
        tasks.push(tokio::spawn(watch_offline(
            stats.clone(),
            thresholds,
            // With a database, other pool processes may share it: the leader tells.
            store.as_ref().map(|_| leading.clone()),
            cancel.clone(),
        )));
    }
    if let Some(store) = &store
        && config.alerts.withholding_check_secs > 0
    {
        tasks.push(tokio::spawn(crate::accounting::withholding::watch(
            store.clone(),
            stats.clone(),
            leading.clone(),
            crate::accounting::withholding::WatchSettings {
                threshold: config.alerts.withholding_p,
                hours: config.alerts.withholding_hours,
                every: Duration::from_secs(config.alerts.withholding_check_secs),
            },
            cancel.clone(),
        )));
    }
    let mut shares = None;
    // This pool's name among the processes on the database (the live view, the admin API).
    let process = crate::observe::processes::process_name(stats.live.started());
    if let (Some(store), Some(url)) = (&store, &config.database.url) {
        // Best difficulties survive restarts: the session path's tracker starts from them.
        match store.all_bests().await {
            Ok(rows) => stats.best.seed(rows),
            Err(e) => warn!(error = %e, "cannot read the best difficulties; counting from now"),
        }
        let spool_dir = config.data_dir.join("spool");
        let spool = Spool::open(&spool_dir).map_err(|e| StartError::Io {
            what: format!("opening the share spool in {}", spool_dir.display()),
            detail: e.to_string(),
        })?;
        let (writer_tx, writer_rx) = mpsc::channel(config.database.batch_max.max(1) * 4);
        let options = WriterOptions {
            batch_max: config.database.batch_max,
            write_timeout: Duration::from_secs(config.database.write_timeout_secs),
            retry: Duration::from_secs(config.database.retry_secs.max(1)),
        };
        tasks.push(tokio::spawn(writer::run(
            store.clone(),
            spool,
            writer_rx,
            options,
            writer_stats.clone(),
        )));
        let payer = (config.mode == Mode::Pplns && config.payouts.payments).then(|| Payer {
            store: store.clone(),
            wallet: nodes[0].clone(),
            threshold: protocol::Amount::from_sat(config.payouts.threshold),
            notify: stats.notify.clone(),
        });
        let duties = Duties {
            url: url.clone(),
            store: store.clone(),
            tracker: Tracker {
                store: store.clone(),
                nodes: nodes.clone(),
                mode: config.mode,
                payouts: config.payouts.clone(),
                notify: stats.notify.clone(),
            },
            payer,
            database: config.database.clone(),
            payment_interval: Duration::from_secs(config.payouts.payment_interval_secs),
        };
        tasks.push(tokio::spawn(leader::run(
            duties,
            leading.clone(),
            cancel.clone(),
        )));
        shares = Some(ShareSink::new(writer_tx, config.stratum.instance_id));
        if config.database.live_interval_secs > 0 {
            tasks.push(tokio::spawn(crate::observe::processes::run(
                store.clone(),
                stats.clone(),
                crate::observe::processes::Settings {
                    process: process.clone(),
                    instance_id: config.stratum.instance_id,
                    interval: Duration::from_secs(config.database.live_interval_secs),
                    timeout: Duration::from_secs(config.database.live_timeout_secs),
                },
                cancel.clone(),
            )));
        }
    }
    let api_nodes = nodes.clone();
    let api_job = job_rx.clone();
    tasks.push(tokio::spawn(blocks::run(
        nodes,
        config.data_dir.clone(),
        block_rx,
        blocks::Accepted {
            found: found_tx,
            store: shares.as_ref().map(|s| s.writer.clone()),
            payouts: found_payouts,
        },
        kick,
        stats.clone(),
    )));
    let mut shared = Shared::new(
        settings,
        ids,
        Extranonces::new(config.stratum.instance_id),
        stats.clone(),
        Outlets {
            blocks: block_tx,
            shares,
        },
        job_rx,
        config.stratum.shutdown_message.clone(),
    );
    shared.proxies = checked.proxies.clone();
    shared.best_message = config.stratum.best_difficulty_message;
    let shared = Arc::new(shared);
    if let Some(store) = &store
        && config.limits.share_bans
        && config.database.live_interval_secs > 0
    {
        tasks.push(tokio::spawn(crate::stratum::ban_sharing::run(
            store.clone(),
            shared.clone(),
            process.clone(),
            Duration::from_secs(config.database.live_interval_secs),
            cancel.clone(),
        )));
    }
    let mut api_addr = None;
    if config.api.enabled {
        let state = ApiState {
            facts: Arc::new(PoolFacts {
                process: process.clone(),
                ..PoolFacts::new(&config, checked.network, stratum_addr.port())
            }),
            stats: stats.clone(),
            store: store.clone(),
            writer: writer_stats.clone(),
            leading: leading.clone(),
            nodes: api_nodes,
            job: api_job,
            guard: Arc::new(api::guard::Guard::new(
                config.api.cors_origins.clone(),
                config.api.rate_limit,
                net::Trusted::parse(&config.api.trusted_proxies).unwrap_or_default(),
            )),
            shutdown: cancel.clone(),
            admin: config.api.admin_token.clone().map(|token| {
                Arc::new(api::admin::Admin::new(
                    token,
                    shared.clone(),
                    certificates.clone(),
                ))
            }),
        };
        let (addr, task) = api::start(
            config.api.bind,
            config.stratum.reuse_port,
            state,
            cancel.clone(),
        )
        .await
        .map_err(|e| StartError::Io {
            what: format!("binding api.bind {}", config.api.bind),
            detail: e.to_string(),
        })?;
        api_addr = Some(addr);
        tasks.push(task);
    }
    tasks.push(reload_on_sighup(certificates, cancel.clone())?);
    let listeners = reserved
        .into_iter()
        .map(|(socket, door)| {
            let addr = socket.local_addr().ok();
            net::listen(socket)
                .map(|tcp| Listener { tcp, door })
                .map_err(|e| StartError::Io {
                    what: format!("listening on {addr:?}"),
                    detail: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    tasks.push(tokio::spawn(listener::run(listeners, shared, cancel)));
    info!(
        stratum = %stratum_addr,
        tls = %tls_addr.map_or("off".into(), |a| a.to_string()),
        v2 = %v2_addr.map_or("off".into(), |a| a.to_string()),
        mode = ?config.mode,
        network = %config.network,
        nodes = config.nodes.len(),
        api = %api_addr.map_or("off".into(), |a| a.to_string()),
        "pool started"
    );
    Ok(RunningPool {
        stratum_addr,
        tls_addr,
        v2_addr,
        stats,
        blocks: found_rx,
        store,
        writer: writer_stats,
        leading,
        api_addr,
        tasks,
    })
}

/// Turns each template into a job; ends when the feed ends.
/// Coinbase payouts for [`make_jobs`]: the split settings and the fresh basis.
type CoinbaseJobs = (Payouts, watch::Receiver<Option<Arc<Basis>>>);

async fn make_jobs(
    mut maker: JobMaker,
    mut templates: watch::Receiver<Option<Arc<Template>>>,
    jobs: watch::Sender<Option<Arc<Job>>>,
    stats: Arc<PoolStats>,
    mut coinbase: Option<CoinbaseJobs>,
    found_payouts: Arc<FoundPayouts>,
) {
    let mut last: Option<Arc<Job>> = None;
    loop {
        // A new template, or (coinbase payouts) a new window: a new job.
        let basis_changed = async {
            match coinbase.as_mut() {
                Some((_, basis)) => basis.changed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = templates.changed() => {
                if changed.is_err() {
                    return;
                }
                if let Some(t) = templates.borrow().as_ref()
                    && !t.fetch_time.is_zero()
                {
                    // Long-poll answers carry no fetch time (they wait on purpose).
                    stats.template_fetch.record(t.fetch_time);
                }
            }
            changed = basis_changed => if changed.is_err() { return },
        }
        let Some(template) = templates.borrow_and_update().clone() else {
            continue;
        };
        let paying = match &mut coinbase {
            None => None,
            Some((payouts, basis)) => {
                let basis = basis.borrow_and_update().clone();
                match payouts.paying(&template, basis.as_deref(), &found_payouts.recent()) {
                    Ok((outputs, payout)) => Some((outputs, Arc::new(payout))),
                    Err(e) => {
                        error!(error = %e, "cannot split this coinbase; miners keep the last job");
                        continue;
                    }
                }
            }
        };
        match maker.make_paying(template, unix_now(), paying) {
            // Nothing new at all (a long-poll answer and a fetch of the same template):
            // the miners have this work.
            Ok(job)
                if last
                    .as_ref()
                    .is_some_and(|l| job.same_work(l) && job.ntime == l.ntime) => {}
            Ok(mut job) => {
                // Nothing new but the time: the same work under a new id and ntime, which
                // keeps the work's number, so a share counts once under either id.
                if let Some(last) = last.as_ref().filter(|l| job.same_work(l)) {
                    job.work = last.work;
                }
                let job = Arc::new(job);
                last = Some(job.clone());
                stats.job_made(
                    job.checked().height,
                    job.network_difficulty(),
                    u64::from(unix_now()),
                );
                jobs.send_replace(Some(job));
            }
            Err(e) => {
                error!(error = %e, "cannot build a coinbase for this template; miners keep the last job")
            }
        }
    }
}

/// Asks the node whether the pool's address is valid (it knows address kinds we may not,
/// such as CashAddr); an unreachable node is only a warning, since the feed retries.
async fn check_pool_address(nodes: &[Node], address: &str) -> Result<(), StartError> {
    for node in nodes {
        match node.call("validateaddress", json!([address])).await {
            Ok(reply) => {
                if reply.get("isvalid").and_then(Value::as_bool) == Some(true) {
                    return Ok(());
                }
                return Err(StartError::PoolAddress {
                    address: address.to_string(),
                    detail: reply.to_string(),
                });
            }
            Err(e) => {
                warn!(node = %node.url(), error = %e, "cannot check pool_address with the node")
            }
        }
    }
    Ok(())
}

/// Tells `[[notify]]` sinks about workers that stay away: looks at the live workers of
/// every pool process on the database (a worker that reconnected to another process is
/// not away) every quarter of the shortest threshold (at most every 30 s) until `cancel`.
/// With `leading`, only the leader tells (once for all processes); every process watches,
/// so a new leader knows how long each worker has been away.
async fn watch_offline(
    stats: Arc<PoolStats>,
    thresholds: Vec<f64>,
    leading: Option<Arc<AtomicBool>>,
    cancel: CancellationToken,
) {
    let shortest = thresholds.iter().copied().fold(f64::INFINITY, f64::min);
    let every = Duration::from_secs_f64((shortest * 60.0 / 4.0).clamp(1.0, 30.0));
    let mut watch = OfflineWatch::default();
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {
                let now = u64::from(unix_now());
                let live = stats.combined(now);
                let notes = watch.observe(&live, &thresholds, now);
                if leading.as_ref().is_none_or(|l| l.load(Ordering::Relaxed)) {
                    for note in notes {
                        stats.notify.send(note);
                    }
                }
            }
        }
    }
}

/// Re-reads the TLS certificate and key on every SIGHUP until `cancel`; without TLS,
/// says there is nothing to reload. Installed in every pool, so that `systemctl reload`
/// (or a stray SIGHUP) never ends one: SIGHUP's default action would, with no drain.
///
/// The handler is installed before `start` returns.
#[cfg(unix)]
fn reload_on_sighup(
    certs: Option<Arc<Certificates>>,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, StartError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).map_err(|e| StartError::Io {
        what: "listening for SIGHUP".into(),
        detail: e.to_string(),
    })?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                got = hangup.recv() => if got.is_none() { return },
            }
            match certs.as_ref().map(|c| c.reload()) {
                None => info!("SIGHUP: nothing to reload (no [stratum.tls])"),
                Some(Ok(())) => info!("SIGHUP: TLS certificate reloaded"),
                Some(Err(e)) => {
                    error!(error = %e, "SIGHUP: TLS certificate not reloaded; the old one stays in use")
                }
            }
        }
    }))
}

/// Without Unix signals the certificate is read at start only.
#[cfg(not(unix))]
fn reload_on_sighup(
    _certs: Option<Arc<Certificates>>,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, StartError> {
    Ok(tokio::spawn(async move { cancel.cancelled().await }))
}

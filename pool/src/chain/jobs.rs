//! Jobs: what a template becomes before it goes to miners.
//!
//! A [`Job`] is a template plus everything a `mining.notify` needs that does not depend on
//! the miner: an id, the merkle branch, and (in PPLNS mode) the coinbase paying the pool.
//! In SOLO mode the coinbase pays the miner's own address: it is built once per job and
//! address ([`Job::solo_work`]), for every connection of that address.
//!
//! A job's `mining.notify` line is encoded once per coinbase and `clean_jobs` flag
//! ([`Job::notify_line`]) and the same bytes go to every connection that gets the job.
//!
//! [`JobMaker`] is pure: it numbers jobs and sets `clean_jobs` only when the previous block
//! changes. Which jobs a miner may still submit to is kept per session (`session.rs`), so
//! no lock is shared between connections on the submit path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use bytes::{Bytes, BytesMut};

use protocol::coinbase::{
    Coinbase, CoinbaseError, CoinbaseOutput, CoinbaseSpec, template_witness_commitment,
};
use protocol::stratum::{Message, Method, Notify, StratumCodec};
use protocol::template::CheckedTemplate;
use protocol::{Difficulty, Hash256, Target, merkle};

use crate::chain::template::Template;

/// Size of the extranonce1 the pool gives every connection.
pub const EXTRANONCE1_SIZE: usize = 4;

/// What every coinbase of this pool shares.
#[derive(Clone, Debug)]
pub struct CoinbaseSettings {
    /// Text in the scriptSig after the extranonces.
    pub pool_tag: Vec<u8>,
    /// Extranonce2 size.
    pub extranonce2_size: usize,
}

/// A unit of work as sent to miners.
#[derive(Debug)]
pub struct Job {
    /// The job id, unique within this process (and above every earlier process's).
    pub id: JobId,
    /// The id of the job this work was first sent as: a job reissued under a new id (a
    /// new difficulty) is the same work, and a share is a duplicate across both.
    pub work: JobId,
    /// The template it came from.
    pub template: Arc<Template>,
    /// The merkle branch from the coinbase to the root.
    pub branch: Vec<Hash256>,
    /// Whether miners must drop their old work (the previous block changed).
    pub clean: bool,
    /// The coinbase paying the pool (PPLNS); `None` in SOLO mode.
    pub coinbase: Option<Arc<Coinbase>>,
    /// What the coinbase pays whom, when it pays miners directly (`payouts.method =
    /// "coinbase"`).
    pub payout: Option<Arc<Payout>>,
    /// ntime sent with the job.
    pub ntime: u32,
    /// The notify lines of the pool's coinbase, encoded when first sent.
    pub lines: NotifyLines,
    /// SOLO: the coinbase and notify lines of each address that got this job.
    pub solo: SoloWorks,
}

/// A job's `mining.notify` for one coinbase, encoded when first asked for: with
/// `clean_jobs` true and false (a connection's first job is clean whatever the job says).
#[derive(Debug, Default)]
pub struct NotifyLines {
    clean: OnceLock<Bytes>,
    not_clean: OnceLock<Bytes>,
}

impl NotifyLines {
    fn get(&self, job: &Job, coinbase: &Coinbase, clean: bool) -> Bytes {
        let cell = if clean { &self.clean } else { &self.not_clean };
        cell.get_or_init(|| encode(&job.notify(coinbase, clean)))
            .clone()
    }
}

/// One line, newline included.
fn encode(msg: &Message) -> Bytes {
    let mut buf = BytesMut::new();
    StratumCodec::write(msg, &mut buf);
    buf.freeze()
}

/// SOLO: a job's coinbase for one payout address, shared by that address's connections.
#[derive(Debug)]
pub struct SoloWork {
    /// The coinbase paying the address the whole reward.
    pub coinbase: Arc<Coinbase>,
    lines: NotifyLines,
}

impl SoloWork {
    /// The job's `mining.notify` with this coinbase.
    pub fn notify_line(&self, job: &Job, clean: bool) -> Bytes {
        self.lines.get(job, &self.coinbase, clean)
    }
}

/// SOLO coinbases of one job by payout script (as many as addresses mined it).
#[derive(Debug, Default)]
pub struct SoloWorks(Mutex<HashMap<Vec<u8>, Arc<SoloWork>>>);

/// What a coinbase that pays miners directly pays (`payouts.method = "coinbase"`): every
/// address the job's PPLNS window or carried balances name, and the pool's output.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Payout {
    /// One row per address.
    pub rows: Vec<PayoutRow>,
    /// The pool's output (fee, residue, credits it carries), satoshis.
    pub pool: u64,
}

/// Payouts of the blocks this process found lately, newest last: the job maker counts
/// them before PostgreSQL has them (the share writer's lag), so that a carried balance one
/// block just paid is not paid again by the next block's first job.
#[derive(Debug, Default)]
pub struct FoundPayouts(std::sync::Mutex<std::collections::VecDeque<(String, Arc<Payout>)>>);

impl FoundPayouts {
    /// Kept at most.
    const KEEP: usize = 16;

    /// A block (display hash) whose coinbase paid `payout` was accepted.
    pub fn add(&self, hash: String, payout: Arc<Payout>) {
        let mut q = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        q.push_back((hash, payout));
        while q.len() > Self::KEEP {
            q.pop_front();
        }
    }

    /// The recent ones.
    pub fn recent(&self) -> Vec<(String, Arc<Payout>)> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }
}

/// One address in a [`Payout`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PayoutRow {
    /// The address as the miner wrote it.
    pub address: String,
    /// Its difficulty in the window.
    pub difficulty: f64,
    /// Its PPLNS credit from this coinbase's reward, satoshis.
    pub credit: u64,
    /// What this coinbase pays it (credit plus what it was carrying, or 0), satoshis.
    pub paid: u64,
    /// Its output's index in the coinbase, when paid.
    pub output: Option<u32>,
}

impl Job {
    /// The checked template.
    pub fn checked(&self) -> &CheckedTemplate {
        &self.template.checked
    }

    /// The network target (a share at or below it is a block).
    pub fn network_target(&self) -> Target {
        self.template.checked.target
    }

    /// The network difficulty.
    pub fn network_difficulty(&self) -> Difficulty {
        Difficulty::of_target(&self.template.checked.target)
    }

    /// The same work under a new id with `ntime`, e.g. to start a new difficulty on it.
    /// The ntime must differ from every ntime the work was sent with on the connection: a
    /// miner that starts its nonces again on a new job would otherwise find the same
    /// headers again, and they would be duplicates.
    pub fn reissue(&self, id: JobId, clean: bool, ntime: u32) -> Job {
        Job {
            id,
            work: self.work,
            template: self.template.clone(),
            branch: self.branch.clone(),
            clean,
            coinbase: self.coinbase.clone(),
            payout: self.payout.clone(),
            ntime,
            lines: NotifyLines::default(),
            solo: SoloWorks::default(),
        }
    }

    /// The `mining.notify` line of this job with the pool's coinbase (PPLNS), encoded
    /// once for all connections; `None` in SOLO mode.
    pub fn notify_line(&self, clean: bool) -> Option<Bytes> {
        let coinbase = self.coinbase.as_ref()?;
        Some(self.lines.get(self, coinbase, clean))
    }

    /// SOLO: the coinbase paying `script` the whole reward, built once per job and script.
    pub fn solo_work(
        &self,
        script: &[u8],
        settings: &CoinbaseSettings,
    ) -> Result<Arc<SoloWork>, CoinbaseError> {
        let mut works = self.solo.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(work) = works.get(script) {
            return Ok(work.clone());
        }
        let work = Arc::new(SoloWork {
            coinbase: Arc::new(coinbase_for(self.checked(), script, settings)?),
            lines: NotifyLines::default(),
        });
        works.insert(script.to_vec(), work.clone());
        Ok(work)
    }

    /// Whether `other` is the same work but for ntime, which miners may roll: the same
    /// previous block, version, bits, coinbase and transactions. The feed gives such a job
    /// the `work` number of the other, so a share is a duplicate under either id.
    pub fn same_work(&self, other: &Job) -> bool {
        let (a, b) = (self.checked(), other.checked());
        a.prev_hash == b.prev_hash
            && a.version == b.version
            && a.bits == b.bits
            && a.height == b.height
            && a.coinbase_value == b.coinbase_value
            && a.coinbase_aux == b.coinbase_aux
            && a.default_witness_commitment == b.default_witness_commitment
            && self.branch == other.branch
            && self.coinbase == other.coinbase
    }

    /// The `mining.notify` for this job with `coinbase`.
    pub fn notify(&self, coinbase: &Coinbase, clean: bool) -> Message {
        let t = self.checked();
        Message::notification(Method::Notify(Notify {
            job_id: self.id.to_string(),
            prev_hash: t.prev_hash,
            coinb1: coinbase.coinb1.clone(),
            coinb2: coinbase.coinb2.clone(),
            merkle_branch: self.branch.clone(),
            version: t.version,
            nbits: t.bits,
            ntime: self.ntime,
            clean_jobs: clean,
        }))
    }
}

/// Builds the coinbase of `template` that pays `script_pubkey` the whole reward.
pub fn coinbase_for(
    template: &CheckedTemplate,
    script_pubkey: &[u8],
    settings: &CoinbaseSettings,
) -> Result<Coinbase, CoinbaseError> {
    let whole = CoinbaseOutput {
        value: template.coinbase_value,
        script_pubkey: script_pubkey.to_vec(),
    };
    coinbase_paying(template, vec![whole], settings)
}

/// Builds the coinbase of `template` with these payout outputs (the witness commitment,
/// if any, after them).
pub fn coinbase_paying(
    template: &CheckedTemplate,
    outputs: Vec<CoinbaseOutput>,
    settings: &CoinbaseSettings,
) -> Result<Coinbase, CoinbaseError> {
    Coinbase::build(&CoinbaseSpec {
        height: template.height,
        aux: template.coinbase_aux.clone(),
        pool_tag: settings.pool_tag.clone(),
        extranonce1_len: EXTRANONCE1_SIZE,
        extranonce2_len: settings.extranonce2_size,
        outputs,
        coinbase_value: template.coinbase_value,
        witness_commitment: template_witness_commitment(template)?,
    })
}

/// Numbers jobs and decides `clean_jobs`. Job ids come from one counter shared with the
/// sessions' reissues, so an id never names two jobs.
#[derive(Debug)]
pub struct JobMaker {
    ids: Arc<AtomicU64>,
    first_id: u64,
    settings: CoinbaseSettings,
    pool_script: Option<Vec<u8>>,
    last_prev: Option<Hash256>,
}

impl JobMaker {
    /// A maker; `pool_script` is the pool's payout script in PPLNS mode, `None` in SOLO.
    /// Job ids count from 1 ([`JobMaker::first_id`] for a process).
    pub fn new(settings: CoinbaseSettings, pool_script: Option<Vec<u8>>) -> JobMaker {
        JobMaker {
            ids: Arc::new(AtomicU64::new(1)),
            first_id: 1,
            settings,
            pool_script,
            last_prev: None,
        }
    }

    /// Job ids of a process started at unix second `now` count from `now << 20`, above
    /// every id of an earlier process (a million jobs a second would be needed to catch
    /// up), so a miner's share for a job of the process before is recognised as stale.
    pub fn first_id(now: u32) -> u64 {
        u64::from(now) << 20
    }

    /// The same maker with ids counting from `first`.
    pub fn with_first_id(mut self, first: u64) -> JobMaker {
        self.first_id = first.max(1);
        self.ids.store(self.first_id, Ordering::Relaxed);
        self
    }

    /// The id counter, for sessions that reissue jobs.
    pub fn ids(&self) -> JobIds {
        JobIds {
            next: self.ids.clone(),
            first: self.first_id,
        }
    }

    /// The coinbase settings.
    pub fn settings(&self) -> &CoinbaseSettings {
        &self.settings
    }

    /// Turns a template into the next job. `now` (unix seconds) moves ntime forward when
    /// the template is older than the clock.
    pub fn make(&mut self, template: Arc<Template>, now: u32) -> Result<Job, CoinbaseError> {
        self.make_paying(template, now, None)
    }

    /// As [`JobMaker::make`], with a coinbase paying `outputs` (miners directly) when
    /// given, described by the payout.
    pub fn make_paying(
        &mut self,
        template: Arc<Template>,
        now: u32,
        paying: Option<(Vec<CoinbaseOutput>, Arc<Payout>)>,
    ) -> Result<Job, CoinbaseError> {
        let t = &template.checked;
        let (coinbase, payout) = match (&self.pool_script, paying) {
            (_, Some((outputs, payout))) => (
                Some(Arc::new(coinbase_paying(t, outputs, &self.settings)?)),
                Some(payout),
            ),
            (Some(script), None) => (
                Some(Arc::new(coinbase_for(t, script, &self.settings)?)),
                None,
            ),
            (None, None) => (None, None),
        };
        let txids: Vec<Hash256> = t.transactions.iter().map(|tx| tx.txid).collect();
        let clean = self.last_prev != Some(t.prev_hash);
        self.last_prev = Some(t.prev_hash);
        let ntime = t
            .curtime
            .max(now.min(t.curtime.saturating_add(600)))
            .max(t.mintime);
        let id = self.ids().next();
        Ok(Job {
            work: id,
            id,
            branch: merkle::coinbase_branch(&txids),
            clean,
            coinbase,
            payout,
            ntime,
            template,
            lines: NotifyLines::default(),
            solo: SoloWorks::default(),
        })
    }
}

/// A job's id: a number from the process's counter ([`JobIds`]), sent as lowercase hex.
/// Ids grow with time, so a lower one is an older job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(u64);

impl JobId {
    /// The id a miner sent back, if it is one we could have made (hex, 16 digits at most).
    pub fn parse(text: &str) -> Option<JobId> {
        if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(text, 16).ok().map(JobId)
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// The shared job id counter.
#[derive(Clone, Debug)]
pub struct JobIds {
    next: Arc<AtomicU64>,
    /// This process's first id.
    first: u64,
}

/// How far back a job id may come from an earlier pool process and still be taken for
/// one (a miner reconnecting after a restart): a day of [`JobMaker::first_id`] steps.
const EARLIER_PROCESSES: u64 = 86_400 << 20;

impl JobIds {
    /// The next id.
    pub fn next(&self) -> JobId {
        JobId(self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// Whether `id` can have been made by this process or by one that started within a
    /// day before it, rather than made up.
    pub fn could_be_ours(&self, id: JobId) -> bool {
        id.0 >= self.first.saturating_sub(EARLIER_PROCESSES)
            && id.0 < self.next.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    /// A regtest template as a Bitcoin SV node sends it (`tests/data/gbt-regtest-sv.json`),
    /// on `prev` at `height`, without its transaction.
    pub(crate) fn regtest_template(prev: &str, height: u64) -> Arc<Template> {
        let mut json: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/data/gbt-regtest-sv.json")).unwrap();
        json["previousblockhash"] = prev.into();
        json["longpollid"] = format!("{prev}1").into();
        json["height"] = height.into();
        json["transactions"] = serde_json::json!([]);
        let raw = protocol::template::BlockTemplate::from_json(&json).unwrap();
        Arc::new(Template {
            checked: raw.validate().unwrap(),
            node: "test".into(),
            fetch_time: Duration::ZERO,
        })
    }

    pub(crate) const PREV_A: &str =
        "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";
    pub(crate) const PREV_B: &str =
        "1f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";

    fn settings() -> CoinbaseSettings {
        CoinbaseSettings {
            pool_tag: b"/test/".to_vec(),
            extranonce2_size: 8,
        }
    }

    /// What a line says, parsed back.
    fn parsed(line: &[u8]) -> Message {
        protocol::stratum::codec::parse_line(line.strip_suffix(b"\n").unwrap()).unwrap()
    }

    #[test]
    fn a_jobs_notify_is_encoded_once_and_says_what_the_message_says() {
        let job = JobMaker::new(settings(), Some(vec![0x51]))
            .make(regtest_template(PREV_A, 2), 0)
            .unwrap();
        for clean in [true, false] {
            let first = job.notify_line(clean).unwrap();
            let again = job.notify_line(clean).unwrap();
            assert_eq!(first.as_ptr(), again.as_ptr(), "the same bytes, not a copy");
            assert!(first.ends_with(b"\n") && !first[..first.len() - 1].contains(&b'\n'));
            let coinbase = job.coinbase.as_deref().unwrap();
            assert_eq!(parsed(&first), job.notify(coinbase, clean));
        }
        assert_ne!(job.notify_line(true), job.notify_line(false));
        // A reissue is other work on the wire (id, ntime): its own line.
        let reissued = job.reissue(JobId(99), false, job.ntime + 1);
        assert_ne!(reissued.notify_line(false), job.notify_line(false));
        // SOLO jobs have no pool coinbase to share.
        let solo = JobMaker::new(settings(), None)
            .make(regtest_template(PREV_A, 2), 0)
            .unwrap();
        assert!(solo.notify_line(true).is_none());
    }

    #[test]
    fn solo_coinbases_are_built_once_per_address_and_job() {
        let job = JobMaker::new(settings(), None)
            .make(regtest_template(PREV_A, 2), 0)
            .unwrap();
        let alice = job.solo_work(&[0x51], &settings()).unwrap();
        let again = job.solo_work(&[0x51], &settings()).unwrap();
        let bob = job.solo_work(&[0x52], &settings()).unwrap();
        assert!(Arc::ptr_eq(&alice, &again));
        assert!(!Arc::ptr_eq(&alice, &bob));
        assert_eq!(
            *alice.coinbase,
            coinbase_for(job.checked(), &[0x51], &settings()).unwrap()
        );
        let line = alice.notify_line(&job, true);
        assert_eq!(line.as_ptr(), again.notify_line(&job, true).as_ptr());
        assert_eq!(parsed(&line), job.notify(&alice.coinbase, true));
        assert_ne!(parsed(&line), parsed(&bob.notify_line(&job, true)));
    }

    #[test]
    fn clean_jobs_only_when_the_previous_block_changes() {
        let mut maker = JobMaker::new(settings(), Some(vec![0x51]));
        let a1 = maker.make(regtest_template(PREV_A, 2), 0).unwrap();
        let a2 = maker.make(regtest_template(PREV_A, 2), 0).unwrap();
        let b1 = maker.make(regtest_template(PREV_B, 3), 0).unwrap();
        assert!(a1.clean, "the first job is clean");
        assert!(!a2.clean, "a refresh on the same block is not");
        assert!(b1.clean, "a new block is");
        assert_ne!(a1.id, a2.id);
        assert_ne!(a2.id, b1.id);
        let re = b1.reissue(maker.ids().next(), false, b1.ntime + 1);
        assert!(re.id != b1.id && re.id != a1.id);
        assert_eq!(re.work, b1.work, "a reissue is the same work");
        assert_ne!(a1.work, a2.work);
        // a2 is a1 again (nothing changed): the feed sends it as the same work.
        assert!(a2.same_work(&a1) && !b1.same_work(&a1));
        // A later ntime does not make it other work: miners roll ntime.
        let later = maker
            .make(regtest_template(PREV_B, 3), 2_000_000_000)
            .unwrap();
        assert!(later.ntime != b1.ntime && later.same_work(&b1));
    }

    #[test]
    fn a_process_numbers_its_jobs_above_every_earlier_one() {
        let early =
            JobMaker::new(settings(), None).with_first_id(JobMaker::first_id(1_700_000_000));
        let late = JobMaker::new(settings(), None).with_first_id(JobMaker::first_id(1_700_000_001));
        let a = early.ids().next();
        // A million jobs later the first process is still below the next one's start.
        let ids = late.ids();
        let b = ids.next();
        assert!(a.0 + 1_000_000 < b.0);
        assert!(ids.could_be_ours(a) && ids.could_be_ours(b));
        assert!(!ids.could_be_ours(JobId(b.0 + 1)), "not made yet");
        assert!(
            !ids.could_be_ours(JobId::parse("ffffff").unwrap()),
            "made up"
        );
        assert_eq!(JobId::parse(&b.to_string()), Some(b));
        for bad in ["", "zz", "+1", "12345678901234567"] {
            assert_eq!(JobId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ntime_follows_the_clock_within_bounds() {
        let mut maker = JobMaker::new(settings(), None);
        let t = regtest_template(PREV_A, 2);
        assert_eq!(maker.make(t.clone(), 0).unwrap().ntime, 1_700_000_100);
        assert_eq!(
            maker.make(t.clone(), 1_700_000_200).unwrap().ntime,
            1_700_000_200
        );
        // A clock far ahead of the template's does not drag ntime along.
        assert_eq!(maker.make(t, 1_800_000_000).unwrap().ntime, 1_700_000_700);
    }

    #[test]
    fn the_pool_coinbase_pays_the_whole_reward_and_rebuilds_the_block() {
        let mut maker = JobMaker::new(settings(), Some(vec![0x51]));
        let job = maker.make(regtest_template(PREV_A, 2), 0).unwrap();
        let cb = job.coinbase.as_ref().unwrap();
        let tx = cb.tx(&[1, 2, 3, 4], &[0; 8]).unwrap();
        let value = 5_000_000_000u64.to_le_bytes();
        assert!(tx.windows(8).any(|w| w == value));
        assert!(job.branch.is_empty(), "no transactions: empty branch");
    }
}

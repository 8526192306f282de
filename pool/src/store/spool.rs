//! The spool: an append-only file of records (one JSON line each) that holds what could not
//! reach PostgreSQL. A batch is acknowledged to miners only after it is in the database or
//! written here and synced to disk; once the database answers again the file is replayed
//! (the store skips records it already has) and emptied. It outlives the process: a pool
//! started after a crash replays what the last one spooled.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::store::Record;

/// The spool file and how many records it holds.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    file: File,
    records: usize,
}

impl Spool {
    /// Opens (or creates) `dir/spool.jsonl`.
    pub fn open(dir: &Path) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("spool.jsonl");
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)?;
        // A line torn by a crash must not swallow the next record appended.
        let text = std::fs::read(&path)?;
        let mut records = text.iter().filter(|&&b| b == b'\n').count();
        if text.last().is_some_and(|&b| b != b'\n') {
            file.write_all(b"\n")?;
            file.sync_data()?;
            records += 1;
        }
        Ok(Spool {
            path,
            file,
            records,
        })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records waiting for the database.
    pub fn len(&self) -> usize {
        self.records
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Appends records and syncs them to disk; only then may they be acknowledged.
    pub fn append(&mut self, records: &[Record]) -> std::io::Result<()> {
        let mut text = String::new();
        for record in records {
            let line = serde_json::to_string(record).map_err(std::io::Error::other)?;
            text.push_str(&line);
            text.push('\n');
        }
        self.file.write_all(text.as_bytes())?;
        self.file.sync_data()?;
        self.records += records.len();
        Ok(())
    }

    /// Everything spooled, oldest first. A torn last line (the process died while writing
    /// it, before that batch was acknowledged) is skipped with a warning.
    pub fn read(&self) -> std::io::Result<Vec<Record>> {
        let mut out = Vec::with_capacity(self.records);
        for (n, line) in BufReader::new(File::open(&self.path)?).lines().enumerate() {
            let line = line?;
            match serde_json::from_str(&line) {
                Ok(record) => out.push(record),
                Err(e) => warn!(
                    file = %self.path.display(),
                    line = n + 1,
                    error = %e,
                    "unreadable spool line skipped (a write cut short by a crash)"
                ),
            }
        }
        Ok(out)
    }

    /// Empties the file once its records are in the database.
    pub fn clear(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.sync_all()?;
        self.records = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{BlockRow, ShareRow};

    fn share(uid: i64) -> Record {
        Record::Share(ShareRow {
            time_us: 1_700_000_000_000_000 + uid,
            uid,
            address: "addr".into(),
            worker: "w".into(),
            difficulty: 4.656_542_373_906_925e-10 / 3.0,
            share_difficulty: 1e-9,
            network_difficulty: 4.656_542_373_906_925e-10,
            height: 7,
            instance: 1,
        })
    }

    #[test]
    fn records_survive_a_reopen_exactly_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let block = Record::Block(BlockRow {
            hash: "00ab".into(),
            height: 7,
            found_us: 5,
            finder: "addr.w".into(),
            reward: 5_000_000_000,
            network_difficulty: 1.5,
            // A coinbase-payout block's record survives the spool too.
            payout: Some(crate::chain::jobs::Payout {
                rows: vec![crate::chain::jobs::PayoutRow {
                    address: "addr".into(),
                    difficulty: 2.5,
                    credit: 4_900_000_000,
                    paid: 4_900_000_000,
                    output: Some(0),
                }],
                pool: 100_000_000,
            }),
        });
        {
            let mut spool = Spool::open(dir.path()).unwrap();
            spool.append(&[share(1), share(2)]).unwrap();
            spool.append(std::slice::from_ref(&block)).unwrap();
            assert_eq!(spool.len(), 3);
        }
        // A crash in the middle of a write.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join("spool.jsonl"))
            .unwrap();
        f.write_all(b"{\"kind\":\"share\",\"time_us\":12").unwrap();
        let mut spool = Spool::open(dir.path()).unwrap();
        spool.append(&[share(4)]).unwrap();
        assert_eq!(
            spool.read().unwrap(),
            vec![share(1), share(2), block, share(4)]
        );
        spool.clear().unwrap();
        assert!(spool.is_empty());
        spool.append(&[share(3)]).unwrap();
        let again = Spool::open(dir.path()).unwrap();
        assert_eq!(again.read().unwrap(), vec![share(3)]);
        assert_eq!(again.len(), 1);
    }
}

//! A throwaway PostgreSQL cluster: `initdb` and `pg_ctl` in a temp dir, on a free port;
//! and a streaming replica of one (`pg_basebackup -R`, a hot standby on a port of its own).
//!
//! PostgreSQL refuses to run as root, and CI runs as root: then the cluster directory is
//! given to the `postgres` user (which Debian's package creates) and every server command
//! runs through `runuser -u postgres --`.
//!
//! The server runs with `fsync=off`: a test may stop it abruptly (`-m immediate`) and
//! nothing committed is lost, since the OS still holds the writes; only a machine crash
//! would lose data, and the cluster is thrown away anyway. `synchronous_commit` stays on:
//! with it off, an immediate stop loses the last commits, which is exactly what the
//! pool's durability tests must be able to rely on not happening.
//!
//! `wal_init_zero=off`: a fresh cluster creates every WAL segment it writes, and zero-fills
//! each 16 MiB file first, stalling the commit that needs it (about 40 ms every few
//! seconds under the pool's load bench); a cluster in steady state recycles old segments
//! instead. The bench measures the pool, not a young cluster's growth (docs/operator.md).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use crate::Error;
use crate::util::free_port;

/// Environment variable naming the folder that holds `initdb` and `pg_ctl`.
pub const PG_BIN_ENV: &str = "TESTKIT_PG_BIN";

/// A running throwaway cluster; stopped and deleted on drop.
#[derive(Debug)]
pub struct TempPostgres {
    bin: PathBuf,
    as_postgres_user: bool,
    port: u16,
    running: bool,
    dir: TempDir,
}

/// Finds the folder with `initdb` and `pg_ctl`: `$TESTKIT_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin`, else wherever `initdb` is on the PATH.
pub fn locate_pg_bin() -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os(PG_BIN_ENV) {
        return check_pg_bin(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file());
    on_path.ok_or_else(|| Error::MissingBinary {
        what: "PostgreSQL server (initdb, pg_ctl)",
        looked: "/usr/lib/postgresql/*/bin and PATH".into(),
        hint: format!(", or point {PG_BIN_ENV} at the folder holding initdb"),
    })
}

fn check_pg_bin(dir: PathBuf) -> Result<PathBuf, Error> {
    if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
        Ok(dir)
    } else {
        Err(Error::MissingBinary {
            what: "PostgreSQL server (initdb, pg_ctl)",
            looked: dir.display().to_string(),
            hint: format!(" ({PG_BIN_ENV} is set but that folder lacks initdb or pg_ctl)"),
        })
    }
}

/// Whether this process runs as root (read from /proc, no libc needed).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Uid:"))?.to_string();
            // "Uid:\treal\teffective\tsaved\tfs"
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

fn run(mut cmd: Command) -> Result<Output, Error> {
    let line = format!("{cmd:?}");
    let out = cmd.output().map_err(Error::io(format!("running {line}")))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::Command {
            command: line,
            detail: format!(
                "{}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

impl TempPostgres {
    /// Creates and starts a cluster. Superuser `postgres`, trust authentication on
    /// 127.0.0.1 only.
    pub fn start() -> Result<TempPostgres, Error> {
        let bin = locate_pg_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("testkit-pg-")
            .tempdir()
            .map_err(Error::io("creating a temp dir"))?;
        let as_postgres_user = running_as_root();
        let mut pg = TempPostgres {
            bin,
            as_postgres_user,
            port: 0,
            running: false,
            dir,
        };
        if as_postgres_user {
            let mut chown = Command::new("chown");
            chown.args(["-R", "postgres:postgres"]).arg(pg.dir.path());
            run(chown)?;
        }
        let mut initdb = pg.command("initdb");
        initdb.arg("-D").arg(pg.data_dir()).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        run(initdb)?;
        pg.start_server()?;
        Ok(pg)
    }

    /// A streaming replica of this cluster: `pg_basebackup -R` (which writes
    /// `standby.signal` and the connection to this primary) into a cluster of its own, then
    /// started on a port of its own as a hot standby that answers reads.
    pub fn start_replica(&self) -> Result<TempPostgres, Error> {
        let dir = tempfile::Builder::new()
            .prefix("testkit-pg-replica-")
            .tempdir()
            .map_err(Error::io("creating a temp dir"))?;
        let mut replica = TempPostgres {
            bin: self.bin.clone(),
            as_postgres_user: self.as_postgres_user,
            port: 0,
            running: false,
            dir,
        };
        if replica.as_postgres_user {
            let mut chown = Command::new("chown");
            chown
                .args(["-R", "postgres:postgres"])
                .arg(replica.dir.path());
            run(chown)?;
        }
        let mut basebackup = replica.command("pg_basebackup");
        basebackup
            .arg("-D")
            .arg(replica.data_dir())
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"]);
        run(basebackup)?;
        replica.start_server()?;
        Ok(replica)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres_user {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// (Re)starts the server; after the first start it keeps its port.
    pub fn start_server(&mut self) -> Result<(), Error> {
        // A port can be taken between choosing and binding it; try a few.
        let mut last = None;
        for _ in 0..3 {
            let port = if self.port == 0 {
                free_port()?
            } else {
                self.port
            };
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c full_page_writes=off -c max_connections=200 -c wal_init_zero=off",
                self.dir.path().display()
            );
            let mut start = self.command("pg_ctl");
            start
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.log_file())
                .args(["-w", "-t", "60", "-o", &options, "start"]);
            match run(start) {
                Ok(_) => {
                    self.port = port;
                    self.running = true;
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        Err(match last {
            Some(Error::Command { command, detail }) => Error::Command {
                command,
                detail: format!("{detail}\nserver log:\n{log}"),
            },
            Some(other) => other,
            None => Error::Command {
                command: "pg_ctl start".into(),
                detail: log,
            },
        })
    }

    /// Stops the server at once (`-m immediate`), as if it had crashed; the data stays.
    pub fn stop_server(&mut self) -> Result<(), Error> {
        if !self.running {
            return Ok(());
        }
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"]);
        run(stop)?;
        self.running = false;
        Ok(())
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for the `postgres` database.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// A connection URL for database `name`.
    pub fn url_for(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Where the cluster lives (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let _ = self.stop_server();
    }
}

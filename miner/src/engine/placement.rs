//! Where and how eagerly the hashing threads run: `--cpu-affinity` (which CPUs, one per
//! thread in turn, as cpuminer-opt binds them) and `--cpu-priority` (0 idle to 5 highest,
//! cpuminer-opt's scale), applied by each hashing thread to itself when it starts.
//!
//! Priority is the thread's nice value (Linux keeps one per thread): 0 is nice 19, so a
//! desktop or a node on the same machine always comes first; 2 is normal; 3 to 5 need
//! `CAP_SYS_NICE` (root), and without it the thread stays at normal priority with a
//! warning.

/// The nice value of each `--cpu-priority` level.
const NICE: [i32; 6] = [19, 10, 0, -5, -10, -15];

/// How the hashing threads are placed; `Placement::default()` leaves them as started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// CPUs to pin the threads to, thread `i` to `cpus[i % len]`.
    pub cpus: Option<Vec<usize>>,
    /// `--cpu-priority`, 0 to 5.
    pub priority: Option<u8>,
}

/// The CPUs of `--cpu-affinity`: a hex mask (`0x5`: CPUs 0 and 2, as cpuminer-opt takes
/// it) or a list with ranges (`0,2-3`).
pub fn parse_cpus(text: &str) -> Result<Vec<usize>, String> {
    let text = text.trim();
    let bad = |why: &str| format!("--cpu-affinity {text:?}: {why}");
    let cpus: Vec<usize> =
        if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            let mask = u128::from_str_radix(hex, 16)
                .map_err(|_| bad("a mask is hex digits after 0x (at most 128 CPUs)"))?;
            (0..128).filter(|bit| mask >> bit & 1 == 1).collect()
        } else {
            let mut cpus = Vec::new();
            for part in text.split(',').map(str::trim) {
                let number = |s: &str| {
                    s.trim()
                        .parse::<usize>()
                        .ok()
                        .filter(|n| *n < 4096)
                        .ok_or_else(|| bad("expected CPU numbers like 0,2-3, or a mask like 0x5"))
                };
                match part.split_once('-') {
                    Some((from, to)) => {
                        let (from, to) = (number(from)?, number(to)?);
                        if from > to {
                            return Err(bad("a range goes up, like 2-3"));
                        }
                        cpus.extend(from..=to);
                    }
                    None => cpus.push(number(part)?),
                }
            }
            cpus.sort_unstable();
            cpus.dedup();
            cpus
        };
    if cpus.is_empty() {
        return Err(bad("names no CPU"));
    }
    Ok(cpus)
}

/// The CPUs this process may run on (`Cpus_allowed_list` of `/proc/self/status`; a
/// container may allow only some); `None` where that cannot be read.
pub fn allowed_cpus() -> Option<Vec<usize>> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
    parse_cpus(list).ok()
}

/// Checks a `--cpu-priority` level.
pub fn check_priority(level: u8) -> Result<u8, String> {
    if usize::from(level) < NICE.len() {
        Ok(level)
    } else {
        Err(format!(
            "--cpu-priority {level}: 0 (idle) to 5 (highest), 2 is normal"
        ))
    }
}

impl Placement {
    /// Places the calling thread, hashing thread number `index`; what could not be done.
    pub fn apply(&self, index: usize) -> Vec<String> {
        let mut failed = Vec::new();
        if let Some(cpus) = self.cpus.as_ref().filter(|c| !c.is_empty()) {
            let cpu = cpus[index % cpus.len()];
            if let Err(e) = pin_to(cpu) {
                failed.push(format!("hash-{index}: cannot pin to CPU {cpu}: {e}"));
            }
        }
        if let Some(level) = self.priority {
            let nice = NICE[usize::from(level).min(NICE.len() - 1)];
            if let Err(e) = set_nice(nice) {
                failed.push(format!(
                    "hash-{index}: cannot set priority {level} (nice {nice}): {e}"
                ));
            }
        }
        failed
    }
}

#[cfg(target_os = "linux")]
fn pin_to(cpu: usize) -> Result<(), std::io::Error> {
    // SAFETY: the set is a plain bit array the calls below fill; pid 0 is this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn set_nice(nice: i32) -> Result<(), std::io::Error> {
    // SAFETY: plain system calls on this thread's id.
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice)
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn pin_to(_cpu: usize) -> Result<(), std::io::Error> {
    Err(std::io::Error::other(
        "CPU affinity is supported on Linux only",
    ))
}

#[cfg(not(target_os = "linux"))]
fn set_nice(_nice: i32) -> Result<(), std::io::Error> {
    Err(std::io::Error::other(
        "per-thread priority is supported on Linux only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_lists_and_ranges() {
        assert_eq!(parse_cpus("0x5").unwrap(), vec![0, 2]);
        assert_eq!(parse_cpus("0XF0").unwrap(), vec![4, 5, 6, 7]);
        assert_eq!(parse_cpus("0,2-3").unwrap(), vec![0, 2, 3]);
        assert_eq!(parse_cpus(" 3, 1 ,1").unwrap(), vec![1, 3]);
        for bad in ["", "0x", "0x0", "a", "3-1", "1,,2", "0xZZ", "99999"] {
            let err = parse_cpus(bad).unwrap_err();
            assert!(err.starts_with("--cpu-affinity"), "{bad}: {err}");
        }
        assert_eq!(check_priority(0), Ok(0));
        assert!(check_priority(6).unwrap_err().contains("0 (idle) to 5"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_places_itself() {
        let allowed = allowed_cpus().unwrap_or_else(|| vec![0]);
        let placement = Placement {
            cpus: Some(vec![allowed[0]]),
            priority: Some(1),
        };
        let (failed, nice) = std::thread::spawn(move || {
            let failed = placement.apply(0);
            // SAFETY: reads this thread's nice value.
            let nice = unsafe {
                libc::getpriority(
                    libc::PRIO_PROCESS,
                    libc::syscall(libc::SYS_gettid) as libc::id_t,
                )
            };
            (failed, nice)
        })
        .join()
        .unwrap();
        assert!(failed.is_empty(), "{failed:?}");
        assert_eq!(nice, 10);
    }
}

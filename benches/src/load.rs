//! Shared parts of the load program (`load` and `load_clients`): the file
//! descriptor limit and what `/proc` says about a process.

use std::fs;
use std::io;

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit, which children
/// inherit, and returns the soft limit now in force.
pub fn raise_fd_limit() -> io::Result<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit)?;
    }
    Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
}

/// Splits command-line arguments into `--flag value` pairs.
pub fn flag_pairs(args: impl IntoIterator<Item = String>) -> Result<Vec<(String, String)>, String> {
    let mut args = args.into_iter();
    let mut pairs = Vec::new();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("missing value for {flag}"))?;
        pairs.push((flag, value));
    }
    Ok(pairs)
}

/// The number given to `flag`.
pub fn number(flag: &str, value: &str) -> Result<u64, String> {
    value
        .parse()
        .map_err(|_| format!("{flag} needs a number, got {value:?}"))
}

/// The count given to `flag`.
pub fn count(flag: &str, value: &str) -> Result<usize, String> {
    usize::try_from(number(flag, value)?).map_err(|_| format!("{flag}: {value} is too large"))
}

/// What `/proc/PID` says about a process at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcSample {
    /// Resident set size (`VmRSS` in `/proc/PID/status`), in KiB.
    pub rss_kib: u64,
    /// User CPU time of all its threads (`/proc/PID/stat`), in clock ticks.
    pub user_ticks: u64,
    /// System (kernel) CPU time of all its threads, in clock ticks.
    pub system_ticks: u64,
}

impl ProcSample {
    /// Reads the sample of process `pid`.
    pub fn read(pid: u32) -> io::Result<ProcSample> {
        let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
        let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let bad =
            |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("/proc/{pid}: {what}"));
        let (user_ticks, system_ticks) =
            parse_cpu_ticks(&stat).ok_or_else(|| bad("unreadable stat"))?;
        Ok(ProcSample {
            rss_kib: parse_vm_rss(&status).ok_or_else(|| bad("no VmRSS"))?,
            user_ticks,
            system_ticks,
        })
    }

    /// CPU seconds (user plus system) from `earlier` to `self`.
    pub fn cpu_seconds_since(&self, earlier: &ProcSample) -> f64 {
        let (user, system) = self.user_system_seconds_since(earlier);
        user + system
    }

    /// User and system CPU seconds from `earlier` to `self`.
    pub fn user_system_seconds_since(&self, earlier: &ProcSample) -> (f64, f64) {
        let hz = clock_ticks_per_second() as f64;
        (
            self.user_ticks.saturating_sub(earlier.user_ticks) as f64 / hz,
            self.system_ticks.saturating_sub(earlier.system_ticks) as f64 / hz,
        )
    }
}

/// The kernel's clock tick rate, the unit of `/proc/PID/stat` times.
pub fn clock_ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

/// `VmRSS` in KiB from the text of `/proc/PID/status`.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `(utime, stime)` from the text of `/proc/PID/stat`. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted from its closing parenthesis.
fn parse_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields from 3 (state) on; utime and stime are fields 14 and 15.
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_flags_with_values() {
        let args = ["--clients", "10", "--url", "ws://x/"].map(String::from);
        let pairs = flag_pairs(args).expect("pairs");
        assert_eq!(pairs[0], ("--clients".to_owned(), "10".to_owned()));
        assert_eq!(pairs[1], ("--url".to_owned(), "ws://x/".to_owned()));
        assert!(flag_pairs(["--clients".to_owned()]).is_err());
        assert_eq!(count("--clients", "10"), Ok(10));
        assert!(number("--clients", "ten").is_err());
    }

    #[test]
    fn reads_vm_rss_in_kib() {
        let status = "Name:\tserver\nVmPeak:\t  9000 kB\nVmRSS:\t   81234 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(81234));
        assert_eq!(parse_vm_rss("Name:\tzombie\n"), None);
    }

    #[test]
    fn cpu_ticks_count_fields_after_a_name_with_spaces_and_parentheses() {
        let stat =
            "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 3 0 99 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some((1234, 567)));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1"), None);
    }

    #[test]
    fn samples_this_process() {
        let sample = ProcSample::read(std::process::id()).expect("/proc of this process");
        assert!(sample.rss_kib > 0);
        assert!(sample.cpu_seconds_since(&sample) == 0.0);
    }
}

//! Child processes for the load programs: killed when dropped, stdout as lines, and
//! the fields of the JSON event lines they print.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;

use crate::load::ProcSample;

/// A child process that is killed when dropped, so no run leaves one behind.
pub struct Process {
    child: Child,
    what: &'static str,
}

impl Process {
    /// Starts `cmd` (stdin closed, stdout piped); `what` names it in errors.
    pub fn spawn(what: &'static str, cmd: &mut Command) -> Result<Process, String> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the {what} ({cmd:?}): {e}"))?;
        Ok(Process { child, what })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its RSS and CPU times now.
    pub fn sample(&self) -> Result<ProcSample, String> {
        ProcSample::read(self.pid()).map_err(|e| format!("cannot sample the {}: {e}", self.what))
    }

    /// Hands out the output lines, one by one, from a reader thread.
    pub fn lines(&mut self) -> Receiver<String> {
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = self.child.stdout.take() {
            thread::spawn(move || forward_lines(stdout, |line| tx.send(line).is_ok()));
        }
        rx
    }
}

impl Process {
    /// Whether it has exited, and how.
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.child.try_wait()
    }

    /// Kills it (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Hands each line of `stdout` to `each` until it returns `false` or the output ends.
pub fn forward_lines(stdout: ChildStdout, mut each: impl FnMut(String) -> bool) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if !each(line) {
            break;
        }
    }
}

/// The string value of `"key":"..."` in a JSON line (values here hold no quotes).
pub fn string_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    line[start..].split('"').next()
}

/// The number value of `"key":N` in a JSON line.
pub fn number_field(line: &str, key: &str) -> Option<u64> {
    let start = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = line[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Whether a JSON line is the event `event`.
pub fn is_event(line: &str, event: &str) -> bool {
    line.contains(&format!("\"event\":\"{event}\""))
}

//! The edgeslice binary as a subprocess, for tests whose subject is stderr
//! (the access log), signals (SIGHUP) or a hard kill: [`Edgeslice`] spawns it,
//! reads its stderr on a thread and kills it when dropped; [`field`] and
//! [`text_fields`] read tracing's `key=value` text lines.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::wait_for;

/// `edgeslice --config FILE` as a child process, killed when dropped; its
/// stderr is read on a thread so the pipe never fills.
pub struct Edgeslice {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    pub addr: SocketAddr,
}

impl Edgeslice {
    pub fn start(config: &Path) -> Edgeslice {
        Edgeslice::start_with_env(config, &[])
    }

    /// [`Edgeslice::start`] with `env` added to its environment. A
    /// `NOTIFY_SOCKET` the test runner inherited is never passed on: only a
    /// test that sets its own gets notifications.
    pub fn start_with_env(config: &Path, env: &[(&str, &Path)]) -> Edgeslice {
        let mut child = Command::new(env!("CARGO_BIN_EXE_edgeslice"))
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("NOTIFY_SOCKET")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("edgeslice binary starts");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        let sink = lines.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening") {
                    if let Some(addr) = field(&line, "addr").and_then(|a| a.parse().ok()) {
                        let _ = tx.send(addr);
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let mut proc = Edgeslice {
            child,
            lines,
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => proc.addr = addr,
            Err(_) => panic!(
                "edgeslice did not log its listening address; stderr:\n{}",
                proc.stderr()
            ),
        }
        proc
    }

    /// The process id, for /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Lines logged with target `edgeslice::access`.
    pub fn access_lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            // Text lines carry the target; JSON lines are bare objects.
            .filter(|l| l.contains("edgeslice::access") || l.starts_with('{'))
            .cloned()
            .collect()
    }

    /// Wait until `n` access lines were logged, and return them.
    pub fn wait_access_lines(&self, n: usize) -> Vec<String> {
        wait_for(Duration::from_secs(10), "access log lines", || {
            let lines = self.access_lines();
            (lines.len() >= n).then_some(lines)
        })
    }

    /// Wait for a line containing `needle` beyond the first `skip` lines.
    pub fn wait_line(&self, skip: usize, needle: &str) -> String {
        wait_for(Duration::from_secs(10), needle, || {
            self.lines
                .lock()
                .unwrap()
                .iter()
                .skip(skip)
                .find(|l| l.contains(needle))
                .cloned()
        })
    }

    /// The TLS listener's address, from its start line.
    pub fn tls_addr(&self) -> SocketAddr {
        let line = self.wait_line(0, "TLS clients accepted");
        field(&line, "tls_addr")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no tls_addr in {line:?}"))
    }

    pub fn line_count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// SIGKILL: no drain, no flush.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL is delivered");
        self.child.wait().expect("killed child is reaped");
    }

    /// Wait up to `limit` for the process to exit on its own.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        wait_for(limit, "edgeslice to exit", || {
            self.child.try_wait().expect("child can be waited for")
        })
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling the child this test started and still owns.
        assert_eq!(unsafe { kill(self.child.id() as i32, sig) }, 0);
    }
}

impl Drop for Edgeslice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

pub const SIGHUP: i32 = 1;
pub const SIGTERM: i32 = 15;

/// The value of `key=` in a tracing text line: bare, or quoted (Debug-escaped).
pub fn field(line: &str, key: &str) -> Option<String> {
    text_fields(line).remove(key)
}

/// Every `key=value` of a tracing text line.
pub fn text_fields(line: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // A key starts after a space (or at the line start) and runs to '='.
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && bytes[i] != b' ' {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] == b' ' {
            i += 1;
            continue;
        }
        let key = &line[start..i];
        i += 1;
        let value = if bytes.get(i) == Some(&b'"') {
            let mut v = String::new();
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    i += 1;
                }
                v.push(bytes[i] as char);
                i += 1;
            }
            i += 1;
            v
        } else {
            let s = i;
            while i < bytes.len() && bytes[i] != b' ' {
                i += 1;
            }
            line[s..i].to_string()
        };
        out.insert(key.to_string(), value);
    }
    out
}

/// The config file of a subprocess test: one worker, no cache, `tail` appended.
pub fn subprocess_config(origin: SocketAddr, cache: Option<&Path>, tail: &str) -> String {
    let cache = match cache {
        Some(dir) => format!(
            "dir = {:?}\nmemory_bytes = \"16MiB\"\ndisk_bytes = \"64MiB\"\n",
            dir
        ),
        None => "enabled = false\n".into(),
    };
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n\
         [origin]\naddress = \"{origin}\"\n\
         [slice]\nslice_size = 4\n\
         [cache]\n{cache}{tail}"
    )
}

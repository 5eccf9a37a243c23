//! The admin listener: `/metrics`, `/health`, `/status` and `/dashboard` for
//! operators.
//!
//! It runs on a thread of its own, apart from the workers, so a scrape never
//! competes with client traffic on a worker's event loop and stays answerable
//! when the workers are saturated. `/metrics` merges the workers' counters at
//! scrape time; `/health` is 200 while serving and 503 while starting or
//! draining; `/status` is a small JSON document; `/dashboard` is a page that
//! polls `/status` and `/metrics` ([`DASHBOARD`]).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cache::SliceCache;
use crate::config::Secret;
use crate::ops::metrics::{self, NodeGauges, WorkerMetrics};
use crate::server::reload::Reloadable;

/// The page of `GET /dashboard`: self-contained (its script and styles
/// inline, no external URL), it polls `/status` and `/metrics` every second
/// from the browser and draws the last ten minutes. The metric names it
/// reads are listed once, in its `METRICS` table (tests/dashboard.rs checks
/// each is exported).
pub const DASHBOARD: &str = include_str!("dashboard.html");

/// What the admin listener reports on.
pub struct AdminState {
    /// Workers started and the cache opened.
    pub ready: AtomicBool,
    /// Shutting down: no new requests.
    pub draining: AtomicBool,
    /// Each worker's counters.
    pub workers: Vec<Arc<WorkerMetrics>>,
    /// The cache, when enabled.
    pub cache: Option<Arc<SliceCache>>,
    /// The cache's directory, for its size on disk.
    pub cache_dir: Option<PathBuf>,
    /// The routes in force, for each origin's breaker.
    pub routes: Arc<Reloadable>,
    /// Static facts for `/status`.
    pub info: serde_json::Value,
    /// Workers whose thread ended by a panic: the node then answers on
    /// fewer cores than it says, and `/health` says so.
    pub lost_workers: AtomicUsize,
    /// `admin.token`: when set, every request must carry it as a bearer token.
    pub token: Option<Secret>,
    started: Instant,
    stop: AtomicBool,
}

impl AdminState {
    /// State for `workers`, not yet ready.
    pub fn new(
        workers: Vec<Arc<WorkerMetrics>>,
        cache: Option<Arc<SliceCache>>,
        cache_dir: Option<PathBuf>,
        routes: Arc<Reloadable>,
        info: serde_json::Value,
    ) -> AdminState {
        AdminState {
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            lost_workers: AtomicUsize::new(0),
            token: None,
            workers,
            cache,
            cache_dir,
            routes,
            info,
            started: Instant::now(),
            stop: AtomicBool::new(false),
        }
    }

    fn gauges(&self) -> NodeGauges {
        let (resident_bytes, cpu_seconds, open_fds) = process_gauges();
        let routes = self.routes.current();
        let mut g = NodeGauges {
            breakers: routes
                .0
                .origins()
                .map(|(name, breaker)| (name.to_string(), breaker.is_open()))
                .collect(),
            peers: routes.0.cluster().map(|c| c.gauges()).unwrap_or_default(),
            resident_bytes,
            cpu_seconds,
            open_fds,
            ..NodeGauges::default()
        };
        if let Some(cache) = &self.cache {
            g.cache_memory_bytes = cache.store.memory_usage() as u64;
            g.cache_recovery_seconds = cache.store.recovery_time().as_secs_f64();
            let (written, read) = cache.store.disk_traffic();
            g.cache_disk_written = written;
            g.cache_disk_read = read;
        }
        if let Some(dir) = &self.cache_dir {
            g.cache_disk_bytes = disk_usage(dir);
        }
        g
    }

    /// The same state, asking every request for `token` (`admin.token`).
    pub fn with_token(mut self, token: Option<&str>) -> AdminState {
        self.token = token.map(Secret::new);
        self
    }

    fn health(&self) -> (u16, &'static str) {
        if self.draining.load(Ordering::Acquire) {
            (503, "draining\n")
        } else if self.lost_workers.load(Ordering::Acquire) > 0 {
            (503, "a worker stopped\n")
        } else if self.ready.load(Ordering::Acquire) {
            (200, "ok\n")
        } else {
            (503, "starting\n")
        }
    }

    fn status(&self) -> String {
        let mut doc = self.info.clone();
        doc["uptime_seconds"] = self.started.elapsed().as_secs().into();
        doc["health"] = self.health().1.trim().into();
        if let Some(cache) = &self.cache {
            doc["cache"]["memory_bytes_used"] = (cache.store.memory_usage() as u64).into();
        }
        if let Some(dir) = &self.cache_dir {
            doc["cache"]["disk_bytes_used"] = disk_usage(dir).into();
        }
        if let Some(cluster) = self.routes.current().0.cluster() {
            doc["cluster"] = cluster_status(&cluster.gauges());
        }
        let mut text = doc.to_string();
        text.push('\n');
        text
    }
}

/// `/status`'s `cluster`: every node of the ring, this one included, with
/// its state (`self`, `up`, `down`), how long it stays down, and the
/// requests this node sent it and how many failed.
fn cluster_status(peers: &[metrics::PeerGauge]) -> serde_json::Value {
    let nodes: Vec<serde_json::Value> = peers
        .iter()
        .map(|p| {
            let state = match (p.is_self, p.down_for) {
                (true, _) => "self",
                (false, None) => "up",
                (false, Some(_)) => "down",
            };
            serde_json::json!({
                "addr": p.addr,
                "state": state,
                "down_for_ms": p.down_for.map_or(0, |d| d.as_millis() as u64),
                "requests": p.requests,
                "failures": p.failures,
            })
        })
        .collect();
    serde_json::json!({ "peers": nodes })
}

/// The running admin listener.
pub struct Admin {
    addr: SocketAddr,
    state: Arc<AdminState>,
    thread: Option<JoinHandle<()>>,
}

/// Admin connections answered at once; more are closed at once.
const MAX_ADMIN_CONNECTIONS: usize = 16;

/// Time a client has to send its request head, and to take the answer.
const ADMIN_DEADLINE: Duration = Duration::from_secs(2);

impl Admin {
    /// Bind `listen` and serve: one thread accepts, each connection gets a
    /// thread of its own (at most [`MAX_ADMIN_CONNECTIONS`] at once) and
    /// [`ADMIN_DEADLINE`] to send its head and again to take the answer, so
    /// no slow client keeps `/health` from answering.
    pub fn start(listen: SocketAddr, state: Arc<AdminState>) -> io::Result<Admin> {
        let listener = TcpListener::bind(listen)
            .map_err(|e| io::Error::new(e.kind(), format!("admin.listen {listen}: {e}")))?;
        let addr = listener.local_addr()?;
        let serving = state.clone();
        let open = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::Builder::new()
            .name("edgeslice-admin".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if serving.stop.load(Ordering::Acquire) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    if open.fetch_add(1, Ordering::AcqRel) >= MAX_ADMIN_CONNECTIONS {
                        open.fetch_sub(1, Ordering::AcqRel);
                        continue; // dropped: closed at once
                    }
                    let (state, done) = (serving.clone(), open.clone());
                    let spawned = std::thread::Builder::new()
                        .name("edgeslice-admin-conn".into())
                        .spawn(move || {
                            let _ = answer(stream, &state);
                            done.fetch_sub(1, Ordering::AcqRel);
                        });
                    if spawned.is_err() {
                        open.fetch_sub(1, Ordering::AcqRel);
                    }
                }
            })?;
        Ok(Admin {
            addr,
            state,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Release);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(mut stream: TcpStream, state: &AdminState) -> io::Result<()> {
    let deadline = Instant::now() + ADMIN_DEADLINE;
    stream.set_write_timeout(Some(ADMIN_DEADLINE))?;
    let mut buf = [0u8; 4096];
    let mut len = 0;
    while len < buf.len() && !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        // The whole head within the deadline, however it trickles in.
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        // A signal during a read with a timeout is EINTR even under SA_RESTART.
        match stream.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let mut words = head.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let authorized = state.token.as_ref().is_none_or(|token| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(name, _)| name.trim().eq_ignore_ascii_case("authorization"))
            .filter_map(|(_, value)| value.trim().strip_prefix("Bearer "))
            .any(|given| crate::cluster::same_secret(given.as_bytes(), token.expose()))
    });
    let (status, kind, body) = match (method, path) {
        _ if !authorized => (401, "text/plain", "admin.token required\n".into()),
        ("GET", "/metrics") => (
            200,
            "text/plain; version=0.0.4",
            metrics::exposition::render(&state.workers, &state.gauges()),
        ),
        ("GET", "/health") => {
            let (status, text) = state.health();
            (status, "text/plain", text.to_string())
        }
        ("GET", "/status") => (200, "application/json", state.status()),
        ("GET", "/dashboard") => (200, "text/html; charset=utf-8", DASHBOARD.into()),
        ("GET", _) => (
            404,
            "text/plain",
            "not found: try /metrics, /health, /status or /dashboard\n".into(),
        ),
        _ => (405, "text/plain", "only GET\n".into()),
    };
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Bytes allocated under `dir` (the disk tier's files may be sparse).
fn disk_usage(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.blocks() * 512)
            .sum()
    })
}

/// Resident bytes, CPU seconds and open fds of this process, from /proc.
fn process_gauges() -> (u64, f64, u64) {
    let page = 4096u64;
    let resident = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page);
    // utime and stime are fields 14 and 15, after the parenthesised command.
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            Some(ticks as f64 / 100.0)
        })
        .unwrap_or(0.0);
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    (resident, cpu, fds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_worker_fails_health() {
        use crate::config::Config;
        use crate::proxy::route::RouteTable;
        use crate::server::limits::ClientLimits;
        let config = Config::from_toml("[origin]\naddress = \"127.0.0.1:1\"\n").unwrap();
        let routes = Arc::new(Reloadable::new(
            RouteTable::new(Vec::new(), None),
            ClientLimits::from(&config),
        ));
        let state = AdminState::new(Vec::new(), None, None, routes, serde_json::json!({}));
        state.ready.store(true, Ordering::Release);
        assert_eq!(state.health(), (200, "ok\n"));
        state.lost_workers.fetch_add(1, Ordering::AcqRel);
        assert_eq!(state.health(), (503, "a worker stopped\n"));
    }

    #[test]
    fn process_gauges_read_proc() {
        let (rss, _cpu, fds) = process_gauges();
        assert!(rss > 0 && fds > 0);
    }
}

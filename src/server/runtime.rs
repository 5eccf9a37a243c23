//! Thread-per-core workers: pinning, io_uring with legacy fallback, shutdown.
//!
//! [`Server::start`] binds one `SO_REUSEPORT` listener per worker on the
//! configured address (the first one fixes the port when it is 0), then starts
//! one thread per worker. Each thread is pinned to its core when `pin_cores`
//! is set, builds its own monoio runtime (io_uring when the kernel offers it,
//! else the legacy epoll driver, with a log line saying which), its own origin
//! pool, and serves its listener until [`Server::shutdown`]. `start` returns
//! once every worker has its runtime and accepts (and the cache is
//! recovered): what systemd's readiness (`READY=1`) promises.
//!
//! Errors: a listener that cannot be bound, an origin address that does not
//! resolve, a `cache.dir` that cannot be made or written, or a worker whose
//! runtime cannot start fail `start` with a message naming what failed.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use futures_channel::oneshot;
use monoio::blocking::DefaultThreadPool;
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

use socket2::{Domain, Socket, Type};
use tracing::{info, warn};

use crate::cache::{Heuristics, SliceCache, StoreSettings};
use crate::config::{Config, DriverChoice};
use crate::disk::{self, DiskWay};
use crate::ops::metrics::WorkerMetrics;
use crate::proxy::route::RouteTable;
use crate::server::admin::{Admin, AdminState};
use crate::server::connection::accept_loop;
use crate::server::limits::ClientLimits;
use crate::server::membership::Membership;
use crate::server::reload::{Reloadable, WorkerRoutes};
use crate::server::tls::ClientTls;
use crate::server::worker::WorkerState;
use crate::slice::stream::SliceBudget;

/// Threads per legacy-driver worker that read what the page cache does not
/// hold: as many disk reads in flight as a worker's busy connections need.
const DISK_THREADS: usize = 8;

/// The event-loop driver a worker runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// Linux io_uring.
    IoUring,
    /// epoll, through mio.
    Legacy,
}

impl Driver {
    /// The driver to use for `choice` on this kernel; `auto` falls back to legacy.
    pub fn choose(choice: DriverChoice) -> io::Result<Driver> {
        let uring = monoio::utils::detect_uring();
        match choice {
            DriverChoice::Auto if uring => Ok(Driver::IoUring),
            DriverChoice::Auto => {
                warn!("io_uring is not available on this kernel: using the legacy driver");
                Ok(Driver::Legacy)
            }
            DriverChoice::IoUring if uring => Ok(Driver::IoUring),
            DriverChoice::IoUring => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "server.driver = \"io_uring\" but io_uring is not available on this kernel",
            )),
            DriverChoice::Legacy => Ok(Driver::Legacy),
        }
    }
}

/// Everything a worker thread needs, built on the main thread.
#[derive(Clone)]
struct WorkerPlan {
    reload: Arc<Reloadable>,
    driver: Driver,
    shutdown_timeout: std::time::Duration,
    max_buffered_bytes: u64,
    /// `cache.disk_reads_per_worker`.
    disk_reads: u32,
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// Running workers.
pub struct Server {
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    tls: Option<ClientTls>,
    driver: Driver,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
    cache: Option<Arc<SliceCache>>,
    admin: Option<Admin>,
    admin_state: Arc<AdminState>,
    reload: Arc<Reloadable>,
    /// The configuration in force (replaced on reload), for `peers_dns`.
    config: Arc<Mutex<Config>>,
    /// Re-resolves `cluster.peers_dns`, once a configuration uses it.
    membership: Mutex<Option<Membership>>,
}

impl Server {
    /// Bind the listeners and start the workers.
    pub fn start(config: &Config) -> io::Result<Server> {
        Server::start_with(config, None)
    }

    /// Start, naming the configuration file in `/status`.
    pub fn start_with(
        config: &Config,
        config_path: Option<&std::path::Path>,
    ) -> io::Result<Server> {
        let driver = Driver::choose(config.server.driver)?;
        let table = RouteTable::try_from(config)?;
        let reload = Arc::new(Reloadable::new(table, ClientLimits::from(config)));
        let tls = ClientTls::from_config(config)?;
        let plan = WorkerPlan {
            reload: reload.clone(),
            driver,
            shutdown_timeout: config.server.shutdown_timeout(),
            max_buffered_bytes: config.server.max_buffered_bytes,
            disk_reads: config.cache.disk_reads_per_worker,
            tls: tls.as_ref().map(ClientTls::server_config),
        };
        let cache = if config.cache.enabled {
            let c = &config.cache;
            let heuristics = Heuristics {
                fixed: (c.cache_ttl > 0).then(|| Duration::from_secs(c.cache_ttl)),
                max: Duration::from_secs(c.heuristic_max_ttl),
            };
            let cache = SliceCache::open(&StoreSettings::from(config), heuristics)?;
            info!(
                dir = %config.cache.dir.display(),
                memory_bytes = config.cache.memory_bytes,
                disk_bytes = config.cache.disk_bytes,
                recovery_ms = cache.store.recovery_time().as_millis() as u64,
                "cache opened"
            );
            Some(cache)
        } else {
            None
        };
        let workers = config.worker_count();
        let listeners = bind_listeners("server.listen", config.server.listen, workers)?;
        let addr = listeners[0].local_addr()?;
        let mut tls_listeners = match config.server.tls_listen {
            Some(at) => bind_listeners("server.tls_listen", at, workers)?,
            None => Vec::new(),
        };
        let tls_addr = match tls_listeners.first() {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let worker_metrics: Vec<Arc<WorkerMetrics>> =
            (0..workers.max(1)).map(|_| Arc::default()).collect();
        let cores: Vec<Option<usize>> = (0..workers.max(1))
            .map(|id| config.server.pin_cores.as_ref().map(|c| c[id % c.len()]))
            .collect();
        let info = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "listen": addr.to_string(),
            "tls_listen": tls_addr.map(|a| a.to_string()),
            "workers": cores.iter().enumerate().map(|(id, core)| serde_json::json!({"id": id, "core": core})).collect::<Vec<_>>(),
            "driver": format!("{driver:?}"),
            "origin": config.origin.address,
            "config_path": config_path.map(|p| p.display().to_string()),
            "cache": {
                "enabled": config.cache.enabled,
                "dir": config.cache.dir.display().to_string(),
                "memory_bytes": config.cache.memory_bytes,
                "disk_bytes": config.cache.disk_bytes,
            },
        });
        let admin_state = Arc::new(
            AdminState::new(
                worker_metrics.clone(),
                cache.clone(),
                cache.as_ref().map(|_| config.cache.dir.clone()),
                reload.clone(),
                info,
            )
            .with_token(config.admin.token.as_deref()),
        );
        let admin = match config.admin.listen {
            Some(listen) => Some(Admin::start(listen, admin_state.clone())?),
            None => None,
        };
        let mut stops = Vec::new();
        let mut threads = Vec::new();
        let (started_tx, started) = mpsc::channel::<WorkerStart>();
        for (id, listener) in listeners.into_iter().enumerate() {
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            let core = config
                .server
                .pin_cores
                .as_ref()
                .map(|cores| cores[id % cores.len()]);
            let plan = plan.clone();
            let cache = cache.clone();
            let metrics = worker_metrics[id].clone();
            let tls_listener = (!tls_listeners.is_empty()).then(|| tls_listeners.remove(0));
            let started = started_tx.clone();
            let lost = WorkerLost(admin_state.clone());
            let thread = std::thread::Builder::new()
                .name(format!("edgeslice-w{id}"))
                .spawn(move || {
                    let _lost = lost;
                    crate::ops::metrics::install(metrics);
                    let listeners = (listener, tls_listener);
                    run_worker(id, core, listeners, plan, cache, stop_rx, started)
                })?;
            stops.push(stop_tx);
            threads.push(thread);
        }
        drop(started_tx);
        // A worker whose runtime cannot start (io_uring refused past
        // detection, a seccomp filter) fails the start rather than leaving a
        // server that answers on fewer workers than it says.
        let waited = wait_for_workers(&started, threads.len());
        if let Err(e) = waited {
            for s in stops.drain(..) {
                let _ = s.send(());
            }
            for t in threads.drain(..) {
                let _ = t.join();
            }
            return Err(e);
        }
        info!(%addr, workers, ?driver, "edgeslice listening");
        if let Some(admin_addr) = admin.as_ref().map(|a| a.local_addr()) {
            info!(%admin_addr, "admin listening");
        }
        if let Some(tls_addr) = tls_addr {
            info!(%tls_addr, "TLS clients accepted");
        }
        admin_state
            .ready
            .store(true, std::sync::atomic::Ordering::Release);
        let server = Server {
            addr,
            tls_addr,
            tls,
            driver,
            stops,
            threads,
            cache,
            admin,
            admin_state,
            reload,
            config: Arc::new(Mutex::new(config.clone())),
            membership: Mutex::new(None),
        };
        server.watch_membership(config)?;
        Ok(server)
    }

    /// Start re-resolving `cluster.peers_dns` when `config` uses it and
    /// nothing does yet.
    fn watch_membership(&self, config: &Config) -> io::Result<()> {
        let dns = config
            .cluster
            .as_ref()
            .is_some_and(|c| c.peers_dns.is_some());
        let mut membership = self.membership.lock().unwrap_or_else(|p| p.into_inner());
        if dns && membership.is_none() {
            *membership = Some(Membership::start(self.config.clone(), self.reload.clone())?);
        }
        Ok(())
    }

    /// The address the workers accept on (with the real port when 0 was configured).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address the workers accept TLS clients on, when they do.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The driver the workers run on.
    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// Stop accepting, let in-flight responses finish (bounded by
    /// `server.shutdown_timeout_ms`) and wait for the worker threads to end.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    /// Apply the routes, client limits and TLS certificates of `config`
    /// (SIGHUP): workers pick them up at their next request or handshake;
    /// connections are not dropped. Nothing changes unless all of it loads.
    /// The listeners, workers, cache and timeouts of the shutdown need a
    /// restart.
    pub fn reload(&self, config: &Config) -> io::Result<()> {
        // Held throughout: the peers_dns watcher builds tables under it too.
        let mut in_force = self.config.lock().unwrap_or_else(|p| p.into_inner());
        let table = RouteTable::try_from(config)?;
        if config.server.tls_listen.is_some() != self.tls.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "server.tls_listen added or removed: that needs a restart",
            ));
        }
        if let Some(tls) = &self.tls {
            tls.reload(config)?;
        }
        self.reload.replace(table, ClientLimits::from(config));
        *in_force = config.clone();
        drop(in_force);
        self.watch_membership(config)
    }

    /// The admin listener's address, when it runs.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.local_addr())
    }

    /// The node's cache, when enabled.
    pub fn cache(&self) -> Option<&Arc<SliceCache>> {
        self.cache.as_ref()
    }

    fn stop_and_join(&mut self) {
        // /health answers 503 while the workers drain.
        self.admin_state
            .draining
            .store(true, std::sync::atomic::Ordering::Release);
        for s in self.stops.drain(..) {
            let _ = s.send(());
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // Workers are gone: flush what the disk tier still has queued.
        if let Some(cache) = self.cache.take() {
            cache.store.close();
        }
        self.admin.take();
        self.membership
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Counts its worker as lost when the worker's thread ends by a panic
/// (`/health` then answers 503).
struct WorkerLost(Arc<AdminState>);

impl Drop for WorkerLost {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0
                .lost_workers
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            tracing::error!("a worker stopped on a panic: /health answers 503");
        }
    }
}

/// One listener per worker on the same address, all with SO_REUSEPORT;
/// `key` names the address in an error.
fn bind_listeners(
    key: &str,
    addr: SocketAddr,
    count: usize,
) -> io::Result<Vec<std::net::TcpListener>> {
    let mut out = Vec::with_capacity(count);
    let mut bound = addr;
    for _ in 0..count.max(1) {
        let socket = Socket::new(Domain::for_address(bound), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket
            .bind(&bound.into())
            .map_err(|e| io::Error::new(e.kind(), format!("{key} {bound}: {e}")))?;
        socket.listen(1024)?;
        let listener: std::net::TcpListener = socket.into();
        bound = listener.local_addr()?;
        out.push(listener);
    }
    Ok(out)
}

/// A worker's plain listener, and its TLS listener when there is one.
type Listeners = (std::net::TcpListener, Option<std::net::TcpListener>);

/// What a worker reports once: `Ok` when its runtime runs and its listeners
/// are registered with it, else what failed.
type WorkerStart = Result<(), String>;

/// Wait until each of `count` workers reported its start; the first failure
/// (or a worker gone without a word) is the error.
fn wait_for_workers(started: &mpsc::Receiver<WorkerStart>, count: usize) -> io::Result<()> {
    for _ in 0..count {
        let report = started
            .recv()
            .unwrap_or_else(|_| Err("a worker thread ended before it started".into()));
        report.map_err(io::Error::other)?;
    }
    Ok(())
}

/// A worker's io_uring runtime. Completions' task work is deferred to the
/// worker's next wait for events (`IORING_SETUP_DEFER_TASKRUN`, Linux 6.1,
/// with `SINGLE_ISSUER`: only the worker uses its ring): by default the
/// kernel interrupts the worker to run it at once, and a receive run the
/// moment the client's bytes arrive spins on the socket's lock while the
/// other core is still inside that socket delivering them (a third of
/// the worker's CPU in bench (c) on a 2-core VM). A kernel without the
/// flag gets the default ring.
fn uring_runtime() -> io::Result<monoio::Runtime<monoio::time::TimeDriver<IoUringDriver>>> {
    let mut ring = io_uring::IoUring::builder();
    ring.setup_coop_taskrun()
        .setup_single_issuer()
        .setup_defer_taskrun();
    RuntimeBuilder::<IoUringDriver>::new()
        .enable_timer()
        .uring_builder(ring)
        .build()
        .or_else(|e| {
            warn!(error = %e, "io_uring without deferred task work (a kernel before 6.1?)");
            RuntimeBuilder::<IoUringDriver>::new()
                .enable_timer()
                .build()
        })
}

fn run_worker(
    id: usize,
    core: Option<usize>,
    listener: Listeners,
    plan: WorkerPlan,
    cache: Option<Arc<SliceCache>>,
    stop: oneshot::Receiver<()>,
    started: mpsc::Sender<WorkerStart>,
) {
    if let Some(core) = core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
            warn!(worker = id, core, "could not pin worker to core");
        }
    }
    let driver = plan.driver;
    disk::bound_cold_reads(plan.disk_reads);
    let serve = |started| worker(id, core, listener, plan, cache.clone(), stop, started);
    let result = match driver {
        Driver::IoUring => uring_runtime().map(|mut rt| {
            disk::set_way(DiskWay::Uring);
            rt.block_on(serve(started.clone()))
        }),
        // Without io_uring, a read the page cache cannot answer goes to
        // a thread of this worker's pool, as nginx's `aio threads`.
        Driver::Legacy => RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .attach_thread_pool(Box::new(DefaultThreadPool::new(DISK_THREADS)))
            .build()
            .map(|mut rt| {
                disk::set_way(DiskWay::Pool);
                rt.block_on(serve(started.clone()))
            }),
    };
    // The start reports the failure, naming the worker.
    if let Err(e) = result {
        let _ = started.send(Err(format!(
            "worker {id}: {driver:?} runtime failed to start: {e}"
        )));
    }
}

async fn worker(
    id: usize,
    core: Option<usize>,
    (listener, tls_listener): Listeners,
    plan: WorkerPlan,
    cache: Option<Arc<SliceCache>>,
    stop: oneshot::Receiver<()>,
    started: mpsc::Sender<WorkerStart>,
) {
    let listener = match monoio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            let _ = started.send(Err(format!("worker {id}: listener: {e}")));
            return;
        }
    };
    let tls_listener = match tls_listener.map(monoio::net::TcpListener::from_std) {
        Some(Ok(l)) => Some(l),
        Some(Err(e)) => {
            let _ = started.send(Err(format!("worker {id}: TLS listener: {e}")));
            return;
        }
        None => None,
    };
    info!(worker = id, ?core, driver = ?plan.driver, "worker started");
    let _ = started.send(Ok(()));
    let routes = Rc::new(WorkerRoutes::new(
        plan.reload.clone(),
        cache,
        SliceBudget::new(plan.max_buffered_bytes),
    ));
    let state = Rc::new(WorkerState::default());
    // The TLS listener has its own task: each listener keeps one accept in
    // flight for its whole life (cancelling an io_uring accept can lose a
    // connection it already took).
    let (tls_stop, tls_stopped) = local_sync::oneshot::channel::<()>();
    let tls_task = match (tls_listener, plan.tls.clone()) {
        (Some(l), Some(config)) => Some(monoio::spawn(accept_loop(
            l,
            Some(config),
            routes.clone(),
            state.clone(),
            async {
                let _ = tls_stopped.await;
            },
        ))),
        _ => None,
    };
    accept_loop(listener, None, routes, state.clone(), async {
        let _ = stop.await;
    })
    .await;
    drop(tls_stop);
    if let Some(task) = tls_task {
        task.await;
    }
    info!(worker = id, in_flight = state.in_flight(), "draining");
    let left = state.drain(plan.shutdown_timeout).await;
    if left > 0 {
        warn!(worker = id, left, "shutdown timeout: responses cut short");
    }
    info!(worker = id, "worker stopped");
}

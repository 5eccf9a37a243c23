//! Hostile load (review 2026-12-05, T7 and T8): idle or stalled clients cost
//! a worker neither CPU nor memory beyond what the configuration bounds, and
//! other clients are served meanwhile.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{get, object_bytes, Harness, Setup};
use edgeslice::config::DriverChoice;

/// Tests that measure this process's CPU take turns, and the others wait
/// for them: getrusage(RUSAGE_SELF) counts every test's servers.
static MEASURING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// CPU seconds this process spent, and GETs served, in 2 s of a GET
/// every 100 ms.
fn serve_for_two_seconds(addr: std::net::SocketAddr) -> (f64, usize) {
    let before = cpu_seconds();
    let window = Instant::now();
    let mut served = 0;
    while window.elapsed() < Duration::from_secs(2) {
        let resp = get(addr, "/obj/64/alive", &[]).unwrap();
        assert_eq!(resp.body, object_bytes("alive", 0, 63));
        served += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    (cpu_seconds() - before, served)
}

/// T7 (H6): a thousand connections that send only `P` (the first byte of
/// the HTTP/2 preface, and of POST/PUT) leave the worker idle: on f2b8ad1
/// each was peeked every millisecond. Other clients are served meanwhile,
/// and each `P` connection is closed at `client_header_timeout_ms`.
fn partial_prefaces_cost_nothing(driver: DriverChoice) {
    let _turn = MEASURING.lock().unwrap_or_else(|p| p.into_inner());
    let h = Harness::start(Setup {
        workers: 1,
        driver,
        server: "client_header_timeout_ms = 4000\n".into(),
        ..Setup::default()
    });
    // What a GET every 100 ms costs this process (the test's client, the
    // demo origin and the server, a debug build) on this host now: the
    // thousand connections must add next to nothing to it.
    let (base, _) = serve_for_two_seconds(h.addr());
    let opened = Instant::now();
    let mut idle: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut s = TcpStream::connect(h.addr()).expect("connect");
            s.write_all(b"P").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (spent, served) = serve_for_two_seconds(h.addr());
    assert!(served >= 10, "only {served} GETs served in 2 s");
    assert!(
        spent - base < 0.3,
        "{spent:.2} CPU seconds in 2 s with 1000 connections that sent only \"P\", \
         {base:.2} without them"
    );
    // Closed at the header timeout (4 s after they opened), not before.
    for s in idle.iter_mut() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "a P connection got an answer");
    }
    let closed_after = opened.elapsed();
    assert!(
        closed_after >= Duration::from_millis(3900),
        "closed after {closed_after:?}, before the 4 s header timeout"
    );
    // A connection that completes the preface after a pause is HTTP/2.
    let mut s = TcpStream::connect(h.addr()).unwrap();
    s.write_all(b"PRI * HT").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"TP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    s.write_all(&common::h2c::frame(common::h2c::SETTINGS, 0, 0, &[]))
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = [0u8; 9];
    s.read_exact(&mut head).unwrap();
    assert_eq!(head[3], common::h2c::SETTINGS, "the server's SETTINGS");
    // And one that turns out to be `PUT` after a pause is HTTP/1.1.
    let mut s = TcpStream::connect(h.addr()).unwrap();
    s.write_all(b"P").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut conn = common::HttpConnection::over(s);
    let resp = conn
        .raw(b"UT /echo/x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"hi");
}

#[test]
fn partial_prefaces_cost_nothing_io_uring() {
    partial_prefaces_cost_nothing(DriverChoice::Auto);
}

#[test]
fn partial_prefaces_cost_nothing_legacy() {
    partial_prefaces_cost_nothing(DriverChoice::Legacy);
}

/// Resident memory of process `pid`, in bytes.
fn rss_of(pid: u32) -> u64 {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).expect("/proc/PID/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// A raw h2c connection that grants the largest windows and asks `paths`,
/// one stream each, and never reads.
fn h2_asks_and_never_reads(addr: std::net::SocketAddr, paths: &[String]) -> TcpStream {
    use common::h2c::{frame, get_block, END_HEADERS, END_STREAM, HEADERS, SETTINGS};
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut s: TcpStream = socket.into();
    let mut wire = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    let mut settings = vec![0, 4];
    settings.extend(0x7fff_ffffu32.to_be_bytes());
    wire.extend(frame(SETTINGS, 0, 0, &settings));
    wire.extend(frame(0x8, 0, 0, &(0x7fff_ffffu32 - 65_535).to_be_bytes()));
    for (i, path) in paths.iter().enumerate() {
        let id = 1 + 2 * i as u32;
        wire.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            id,
            &get_block(path),
        ));
    }
    s.write_all(&wire).unwrap();
    s
}

const MIB: u64 = 1 << 20;

/// The bound of docs/cache.md ("Memory") on what a node holds beyond its start, for this
/// test's configuration and load: workers x max_buffered_bytes (2 x 32
/// MiB); 64 KiB per origin connection (at most max_buffered_bytes /
/// slice_size reading per worker, 64, and 10 idle per worker, 20); 1 MiB
/// queued in h2 per connection (10); ~16 KiB per request in flight (1000
/// streams and the bystanders); the cache's memory tier (16 MiB) and
/// foyer's buffers for manifests on their way to disk (32 MiB, allocated
/// at start and resident as manifests fill them); 64 KiB per client
/// connection reading a head (11); and the buffers of disk reads each
/// worker keeps for reuse (16 MiB each: the stalled streams' stored parts
/// are read into them as h2 takes them), with 1 MiB for the bystander's
/// cached part. Those last two terms were left out of this bound until
/// 2026-12-07: the test then failed under `cargo test --release` (growth
/// 120-156 MiB against 143, over it in 18 of 24 runs; 79-88 in debug builds).
const T8_BOUND: u64 = 2 * 32 * MIB
    + 84 * MIB / 16
    + 10 * MIB
    + 1010 * 16 * 1024
    + 16 * MIB
    + 32 * MIB
    + 11 * MIB / 16
    + 2 * 16 * MIB
    + MIB;

/// T8 (H5): 10 HTTP/2 connections x 100 streams, each asking a distinct
/// cold 16 MiB object with the largest windows and never reading, keep the
/// node's memory within that bound ([`T8_BOUND`]); other clients
/// are served meanwhile, each within half the send timeout (so not by the
/// stalled streams' reset), and the stalled streams are reset at
/// client_send_timeout_ms. On f2b8ad1 every stream kept its first slice
/// (1 MiB) whatever the budget, and h2 256 KiB more.
///
/// The send timeout is [`T8_SEND_TIMEOUT_MS`] here: with 3 s and bystanders
/// bounded at 2 s, the test failed on a 2-core AMD EPYC host in 2 of 2 CI
/// runs, and alone, interleaving builds with and without `ops::copies`,
/// the slowest bystander was over 2 s in 1 of 8 runs each (3.02 s and
/// 2.10 s; medians 1.64 s and 1.41 s): the first slices of 1000 cold objects
/// fetched and stored, the node's two workers, the test's origin and its
/// client all on 2 cores, every bystander iteration took 0.3-1.8 s through
/// the attack, its start or not.
const T8_SEND_TIMEOUT_MS: u64 = 8000;

#[test]
fn stalled_h2_streams_hold_no_more_than_the_budget() {
    let _turn = MEASURING.lock().unwrap_or_else(|p| p.into_inner());
    let origin = common::DemoOrigin::start().unwrap();
    let dir = common::temp_path("t8");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let _guard = common::TempDir(dir.clone());
    let conf = dir.join("edgeslice.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 2\nmax_buffered_bytes = \"32MiB\"\n\
         client_send_timeout_ms = {T8_SEND_TIMEOUT_MS}\n\
         [origin]\naddress = \"{}\"\n[slice]\nslice_size = \"1MiB\"\n\
         [cache]\ndir = {:?}\nmemory_bytes = \"16MiB\"\ndisk_bytes = \"2GiB\"\n",
        origin.addr(),
        dir.join("cache")
    );
    std::fs::write(&conf, text).unwrap();
    let node = common::process::Edgeslice::start(&conf);
    let addr = node.addr;
    // Warm what the bystanders ask, and the allocator.
    let warm = get(addr, "/obj/3000000/bystander", &[("Host", "test")]).unwrap();
    assert_eq!(warm.status, 200);
    let before = rss_of(node.pid());
    let attacked = Instant::now();
    let attack: Vec<TcpStream> = (0..10)
        .map(|c| {
            let paths: Vec<String> = (0..100)
                .map(|i| format!("/obj/{}/t8-{c}-{i}", 16 * MIB))
                .collect();
            h2_asks_and_never_reads(addr, &paths)
        })
        .collect();
    let mut peak = 0;
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        peak = peak.max(rss_of(node.pid()).saturating_sub(before));
        let t = Instant::now();
        let resp = get(addr, "/obj/3000000/bystander", &[("Host", "test")]).unwrap();
        assert!(resp.body == object_bytes("bystander", 0, 2_999_999));
        let cold = format!("/obj/100000/cold-{}", started.elapsed().as_nanos());
        assert_eq!(get(addr, &cold, &[]).unwrap().status, 200);
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "the node's RSS grew by at most {} MiB (bound {} MiB); the slowest bystander took {slowest:?}",
        peak >> 20,
        T8_BOUND >> 20
    );
    assert!(
        peak <= T8_BOUND,
        "RSS grew by {} MiB under the attack, over the bound of {} MiB",
        peak >> 20,
        T8_BOUND >> 20
    );
    assert!(
        slowest < Duration::from_millis(T8_SEND_TIMEOUT_MS / 2),
        "a bystander waited {slowest:?}, half the send timeout or more"
    );
    // The stalled streams are reset at the send timeout (read nothing
    // before: a read would unstall them).
    let reset_by = attacked + Duration::from_millis(T8_SEND_TIMEOUT_MS + 1500);
    std::thread::sleep(reset_by.saturating_duration_since(Instant::now()));
    let mut s = attack.into_iter().next().unwrap();
    let (frames, _) = common::h2c::read_frames(&mut s, Duration::from_secs(3));
    assert!(
        frames.iter().any(|f| f.kind == common::h2c::RST_STREAM),
        "no stream was reset"
    );
}

/// T10 (M11): a client that trickles a request to the admin listener (one
/// byte every 1.5 s) does not keep `/health` from answering: every probe
/// every 500 ms meanwhile is answered 200 within 1 s. On f2b8ad1 the one
/// admin thread was held by the trickler for up to 4096 reads.
#[test]
fn a_slow_admin_client_does_not_block_health() {
    let _turn = MEASURING.lock().unwrap_or_else(|p| p.into_inner());
    let origin = common::DemoOrigin::start().unwrap();
    let text = format!(
        "{}{}",
        common::config_text(origin.addr(), &Setup::default()),
        common::ADMIN
    );
    let server = common::start_server(&text);
    let admin = server.admin_addr().expect("admin listener");
    let trickler = std::thread::spawn(move || {
        let mut s = TcpStream::connect(admin).unwrap();
        for b in b"GET /metrics HTTP/1.1\r\n" {
            if s.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(1500));
        }
    });
    let started = Instant::now();
    let mut probes = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let t = Instant::now();
        let resp = get(admin, "/health", &[]).expect("/health answers");
        assert_eq!(resp.status, 200);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "/health took {:?}",
            t.elapsed()
        );
        probes += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(probes >= 6, "{probes} probes");
    drop(server);
    let _ = trickler.join();
}

/// M11: with `admin.token`, every admin request must carry it.
#[test]
fn the_admin_token_is_asked_when_set() {
    let _turn = MEASURING.lock().unwrap_or_else(|p| p.into_inner());
    let origin = common::DemoOrigin::start().unwrap();
    let text = format!(
        "{}[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"admin-secret\"\n",
        common::config_text(origin.addr(), &Setup::default())
    );
    let server = common::start_server(&text);
    let admin = server.admin_addr().unwrap();
    assert_eq!(get(admin, "/metrics", &[]).unwrap().status, 401);
    let wrong = [("Authorization", "Bearer admin-secretx")];
    assert_eq!(get(admin, "/health", &wrong).unwrap().status, 401);
    let right = [("Authorization", "Bearer admin-secret")];
    assert_eq!(get(admin, "/health", &right).unwrap().status, 200);
}

//! Origins over TLS (`https://` addresses): exact bytes through a sliced GET,
//! the keep-alive pool, a stale pooled connection and the connect timeout
//! over TLS; every way verification fails (unknown CA, expired, wrong name)
//! answered 502 with rustls's reason in the log, no byte reaching the origin
//! in plain text, and the breaker counting it; `tls_verify = false` warned
//! about and working.
//!
//! Certificates are made in each test with rcgen (`common::tls`): a CA and a
//! leaf for `localhost` and 127.0.0.1 signed by it. The TLS origin is a [`TlsFront`]: a monoio-rustls
//! acceptor on 127.0.0.1:0 that pipes each connection, decrypted, to a
//! [`DemoOrigin`], so Range answers, keep-alive and the request log are the
//! demo origin's, and the front counts connections and handshakes.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::Edgeslice;
use common::tls::TestCa;
use common::{get, get_host, object_bytes, start_server, DemoOrigin, TempDir};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Whether a leaf's dates hold today.
#[derive(Clone, Copy)]
enum Validity {
    Valid,
    Expired,
}

/// A leaf of `ca` for `names`, as the TLS front serves it.
fn leaf(ca: &TestCa, names: &[&str], validity: Validity) -> Leaf {
    let (cert, key) = ca.leaf(names, matches!(validity, Validity::Expired));
    Leaf {
        cert: CertificateDer::from_pem_slice(cert.as_bytes()).unwrap(),
        key: PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
    }
}

/// The CA certificate of `ca` written to `dir/name`.
fn write_ca(ca: &TestCa, dir: &TempDir, name: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, ca.pem()).unwrap();
    path
}

/// A server certificate and its key.
struct Leaf {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

/// A TLS origin: TLS from edgeslice, plain HTTP on to a demo origin.
struct TlsFront {
    addr: SocketAddr,
    origin: DemoOrigin,
    accepted: Arc<AtomicUsize>,
    handshakes: Arc<AtomicUsize>,
    /// Duplicates of the accepted sockets, to cut them from the test.
    sockets: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl TlsFront {
    fn start(leaf: Leaf) -> TlsFront {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.cert], leaf.key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = monoio_rustls::TlsAcceptor::from(Arc::new(config));
        let origin = DemoOrigin::start().expect("origin starts");
        let backend = origin.addr();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        // The legacy driver waits for readiness: a blocking accept would stall it.
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let handshakes = Arc::new(AtomicUsize::new(0));
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let (a, h, s) = (accepted.clone(), handshakes.clone(), sockets.clone());
        // The thread ends with the test process.
        std::thread::spawn(move || {
            let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = monoio::net::TcpListener::from_std(listener).unwrap();
                while let Ok((tcp, _)) = listener.accept().await {
                    a.fetch_add(1, Ordering::SeqCst);
                    // SAFETY: dup gives this side its own descriptor of the socket.
                    let dup = unsafe { libc::dup(tcp.as_raw_fd()) };
                    s.lock()
                        .unwrap()
                        .push(unsafe { std::net::TcpStream::from_raw_fd(dup) });
                    let (acceptor, h) = (acceptor.clone(), h.clone());
                    monoio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        h.fetch_add(1, Ordering::SeqCst);
                        pipe(tls, backend).await;
                    });
                }
            });
        });
        TlsFront {
            addr,
            origin,
            accepted,
            handshakes,
            sockets,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }

    /// Close every connection accepted so far, as an origin closing idle ones does.
    fn cut_connections(&self) {
        for s in self.sockets.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Copy both ways between a TLS connection and a new one to `backend`.
async fn pipe(tls: monoio_rustls::ServerTlsStream<monoio::net::TcpStream>, backend: SocketAddr) {
    use monoio::io::{AsyncWriteRent, Splitable};
    let Ok(plain) = monoio::net::TcpStream::connect_addr(backend).await else {
        return;
    };
    let (mut tls_r, mut tls_w) = tls.into_split();
    let (mut plain_r, mut plain_w) = plain.into_split();
    monoio::spawn(async move {
        let _ = monoio::io::copy(&mut tls_r, &mut plain_w).await;
        let _ = plain_w.shutdown().await;
    });
    let _ = monoio::io::copy(&mut plain_r, &mut tls_w).await;
    let _ = tls_w.shutdown().await;
}

/// An edgeslice in front of `address`: one worker, 16-byte slices, no cache,
/// the breaker off; `origin_lines` go into `[origin]`.
fn config(address: &str, window: usize, origin_lines: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n\
         [origin]\naddress = \"{address}\"\nbreaker_failures = 0\n{origin_lines}\n\
         [slice]\nslice_size = 16\nmax_concurrent_subrequests = {window}\n\
         [cache]\nenabled = false\n"
    )
}

#[test]
fn a_sliced_get_through_an_https_origin_is_exact_and_reuses_the_connection() {
    let dir = TempDir::new("otls-reuse");
    let ca = TestCa::new("reuse");
    let front = TlsFront::start(leaf(&ca, &["localhost", "127.0.0.1"], Validity::Valid));
    let ca_file = write_ca(&ca, &dir, "ca.pem");
    // Window 1: every slice on the one pooled connection.
    let text = config(
        &format!("https://127.0.0.1:{}", front.addr.port()),
        1,
        &format!("ca_file = {ca_file:?}"),
    );
    let server = start_server(&text);
    for round in 1..=2 {
        let resp = get(server.local_addr(), "/obj/100/a.bin", &[]).unwrap();
        assert_eq!(resp.status, 200, "round {round}: {:?}", resp.headers);
        assert_eq!(resp.body, object_bytes("a.bin", 0, 99), "round {round}");
        // 7 slices of 16 bytes each round, all reaching the origin decrypted.
        assert_eq!(front.origin.request_count(), 7 * round, "round {round}");
        assert_eq!(
            (front.accepted(), front.handshakes()),
            (1, 1),
            "round {round}: one TLS connection, kept alive"
        );
    }
    let resp = get(
        server.local_addr(),
        "/obj/100/a.bin",
        &[("Range", "bytes=20-40")],
    )
    .unwrap();
    assert_eq!(resp.status, 206);
    assert_eq!(resp.body, object_bytes("a.bin", 20, 40));
    assert_eq!(front.accepted(), 1);
    server.shutdown();
}

#[test]
fn a_dns_name_is_verified_against_the_ca_file() {
    let dir = TempDir::new("otls-dns");
    let ca = TestCa::new("dns");
    let front = TlsFront::start(leaf(&ca, &["localhost"], Validity::Valid));
    let ca_file = write_ca(&ca, &dir, "ca.pem");
    // A route's https origin, named by DNS, its own ca_file; `[origin]` plain.
    let text = format!(
        "{}[[route]]\nhost = \"tls.test\"\norigin = \"https://localhost:{}\"\norigin_ca_file = {ca_file:?}\n",
        config("127.0.0.1:9", 4, ""),
        front.addr.port()
    );
    let server = start_server(&text);
    let resp = get_host(server.local_addr(), "/obj/64/b.bin", "tls.test");
    assert_eq!(resp.status, 200, "{:?}", resp.headers);
    assert_eq!(resp.body, object_bytes("b.bin", 0, 63));
    assert!(front.handshakes() >= 1);
    server.shutdown();
}

#[test]
fn a_pooled_tls_connection_the_origin_closed_is_replaced() {
    let dir = TempDir::new("otls-stale");
    let ca = TestCa::new("stale");
    let front = TlsFront::start(leaf(&ca, &["127.0.0.1"], Validity::Valid));
    let ca_file = write_ca(&ca, &dir, "ca.pem");
    let text = config(
        &format!("https://127.0.0.1:{}", front.addr.port()),
        1,
        &format!("ca_file = {ca_file:?}"),
    );
    let server = start_server(&text);
    let first = get(server.local_addr(), "/obj/32/c.bin", &[]).unwrap();
    assert_eq!(first.body, object_bytes("c.bin", 0, 31));
    assert_eq!(front.accepted(), 1);
    front.cut_connections();
    std::thread::sleep(Duration::from_millis(50));
    let second = get(server.local_addr(), "/obj/32/c.bin", &[]).unwrap();
    assert_eq!(
        second.status,
        200,
        "{:?} {}",
        second.headers,
        String::from_utf8_lossy(&second.body)
    );
    assert_eq!(second.body, object_bytes("c.bin", 0, 31));
    assert_eq!(front.accepted(), 2, "one new TLS connection after the cut");
    server.shutdown();
}

#[test]
fn a_handshake_that_never_ends_is_a_connect_timeout() {
    // TCP is accepted by the kernel; no ServerHello ever comes back.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let text = config(
        &format!("https://127.0.0.1:{}", silent.local_addr().unwrap().port()),
        1,
        "connect_timeout_ms = 200\ntls_verify = false\n",
    )
    .replace(
        "max_concurrent_subrequests = 1",
        "max_concurrent_subrequests = 1\nmax_retries = 0",
    );
    let server = start_server(&text);
    let started = Instant::now();
    let resp = get(server.local_addr(), "/obj/32/d.bin", &[]).unwrap();
    let took = started.elapsed();
    assert_eq!(resp.status, 504, "{:?}", resp.headers);
    assert!(took >= Duration::from_millis(190), "took {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    server.shutdown();
}

/// One route of the refusal table: a front with its own certificate, and
/// the CA edgeslice is told to trust.
struct Refusal {
    host: &'static str,
    front: TlsFront,
    ca_file: PathBuf,
    reason: &'static str,
}

#[test]
fn failed_verification_is_a_502_with_the_reason_logged_and_no_plain_text() {
    let dir = TempDir::new("otls-refused");
    let ours = TestCa::new("ours");
    let theirs = TestCa::new("theirs");
    let ours_file = write_ca(&ours, &dir, "ours.pem");
    let both = ["localhost", "127.0.0.1"];
    // (route host, front's leaf, CA trusted, reason rustls gives)
    let cases = [
        Refusal {
            host: "unknown-ca.test",
            front: TlsFront::start(leaf(&theirs, &both, Validity::Valid)),
            ca_file: ours_file.clone(),
            reason: "UnknownIssuer",
        },
        Refusal {
            host: "expired.test",
            front: TlsFront::start(leaf(&ours, &both, Validity::Expired)),
            ca_file: ours_file.clone(),
            reason: "certificate expired",
        },
        Refusal {
            host: "wrong-name.test",
            front: TlsFront::start(leaf(&ours, &["origin.example"], Validity::Valid)),
            ca_file: ours_file.clone(),
            reason: "not valid for name",
        },
    ];
    let mut text = "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n\
                    [origin]\nbreaker_failures = 1\nbreaker_cooldown_ms = 60000\n\
                    [slice]\nslice_size = 16\nmax_concurrent_subrequests = 1\nmax_retries = 3\n\
                    [cache]\nenabled = false\n"
        .to_string();
    for case in &cases {
        text += &format!(
            "[[route]]\nhost = \"{}\"\norigin = \"https://127.0.0.1:{}\"\norigin_ca_file = {:?}\n",
            case.host,
            case.front.addr.port(),
            case.ca_file
        );
    }
    let edgeslice = Edgeslice::start(&dir.config(&text));
    for case in &cases {
        let resp = get_host(edgeslice.addr, "/obj/64/e.bin", case.host);
        assert_eq!(resp.status, 502, "{}: {:?}", case.host, resp.headers);
        let line = edgeslice.wait_line(0, case.reason);
        assert!(
            line.contains("TLS handshake with the origin failed"),
            "{}: {line}",
            case.host
        );
        // Refused once, not retried; nothing reached the origin.
        assert_eq!(case.front.accepted(), 1, "{}", case.host);
        assert_eq!(case.front.handshakes(), 0, "{}", case.host);
        assert_eq!(case.front.origin.request_count(), 0, "{}", case.host);
        // The breaker counted it as a connect failure: now it fails fast.
        let again = get_host(edgeslice.addr, "/obj/64/e.bin", case.host);
        assert_eq!(again.status, 503, "{}: {:?}", case.host, again.headers);
        assert_eq!(case.front.accepted(), 1, "{}", case.host);
    }
}

#[test]
fn tls_verify_false_accepts_an_unknown_ca_and_warns_at_start() {
    let dir = TempDir::new("otls-noverify");
    let theirs = TestCa::new("unverified");
    let front = TlsFront::start(leaf(&theirs, &["origin.example"], Validity::Valid));
    let address = format!("https://127.0.0.1:{}", front.addr.port());
    let text = config(&address, 2, "tls_verify = false");
    let edgeslice = Edgeslice::start(&dir.config(&text));
    let warning = edgeslice.wait_line(0, "tls_verify = false");
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains(&address), "{warning}");
    let resp = get(edgeslice.addr, "/obj/50/f.bin", &[]).unwrap();
    assert_eq!(
        resp.status,
        200,
        "{:?} {}",
        resp.headers,
        edgeslice.stderr()
    );
    assert_eq!(resp.body, object_bytes("f.bin", 0, 49));
    assert!(front.handshakes() >= 1);
}

#[test]
fn a_bad_ca_file_stops_the_start_with_its_path() {
    let dir = TempDir::new("otls-badca");
    let bad = dir.path().join("not-a-ca.pem");
    std::fs::write(&bad, "hello\n").unwrap();
    let text = config("https://127.0.0.1:9", 1, &format!("ca_file = {bad:?}"));
    let path = dir.config(&text);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgeslice"))
        .arg("--config")
        .arg(&path)
        .arg("--check")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "invalid origin.ca_file = {bad:?}: holds no PEM certificate"
        )),
        "{stderr}"
    );
}

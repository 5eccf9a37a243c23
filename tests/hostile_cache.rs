//! The cache under hostile conditions (review 2026-12-05): bytes that leave
//! the cache stay the object's however slowly a client reads while others
//! churn it (T11, H4).

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::cache::dir_guard;
use common::h2c;
use common::{get, object_bytes, CacheSetup, Harness, Setup};

const MIB: u64 = 1 << 20;

/// A raw h2c connection with a 16 KiB receive buffer that grants the
/// largest windows (so the server queues as much as h2 lets it), asks
/// `path`, reads nothing for `stall`, then reads the answer's DATA.
fn slow_h2_read(addr: SocketAddr, path: &str, stall: Duration) -> Vec<u8> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    // SETTINGS_INITIAL_WINDOW_SIZE (4) = 2^31-1, and the connection window.
    let mut settings = vec![0, 4];
    settings.extend(0x7fff_ffffu32.to_be_bytes());
    s.write_all(&h2c::frame(h2c::SETTINGS, 0, 0, &settings))
        .unwrap();
    let grow = (0x7fff_ffffu32 - 65_535).to_be_bytes();
    s.write_all(&h2c::frame(0x8, 0, 0, &grow)).unwrap();
    let flags = h2c::END_HEADERS | h2c::END_STREAM;
    s.write_all(&h2c::frame(h2c::HEADERS, flags, 1, &h2c::get_block(path)))
        .unwrap();
    let mut wire = Vec::new();
    let mut body = Vec::new();
    thread::sleep(stall);
    let mut buf = vec![0u8; 64 * 1024];
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < until, "the answer did not end in time");
        let n = common::read_some(&mut s, &mut buf).expect("read");
        assert!(n > 0, "connection closed before the stream ended");
        wire.extend_from_slice(&buf[..n]);
        // Whole frames off the front of `wire`.
        let mut ended = false;
        while wire.len() >= 9 {
            let len = u32::from_be_bytes([0, wire[0], wire[1], wire[2]]) as usize;
            if wire.len() < 9 + len {
                break;
            }
            let (kind, flags) = (wire[3], wire[4]);
            let stream = u32::from_be_bytes(wire[5..9].try_into().unwrap()) & 0x7fff_ffff;
            if stream == 1 && kind == h2c::DATA {
                body.extend_from_slice(&wire[9..9 + len]);
            }
            assert!(!(stream == 1 && kind == h2c::RST_STREAM), "stream reset");
            if stream == 1 && flags & h2c::END_STREAM != 0 && kind != h2c::HEADERS {
                ended = true;
            }
            if stream == 1 && kind == h2c::HEADERS && flags & h2c::END_STREAM != 0 {
                ended = true;
            }
            if kind == h2c::SETTINGS && flags & h2c::ACK == 0 {
                s.write_all(&h2c::frame(h2c::SETTINGS, h2c::ACK, 0, &[]))
                    .unwrap();
            }
            if kind == h2c::PING && flags & h2c::ACK == 0 {
                let pong = h2c::frame(h2c::PING, h2c::ACK, 0, &wire[9..9 + len]);
                s.write_all(&pong).unwrap();
            }
            wire.drain(..9 + len);
        }
        if ended {
            return body;
        }
    }
}

/// T11 (H4): an HTTP/2 reader of a cached 8 MiB object who stops reading for
/// 3 s, while another client churns a cache of 16 MiB of slices with other
/// objects, gets every byte right. h2 queues up to 256 KiB of a part after
/// the sink returns; those bytes were a mapping of the slot, unpinned at
/// once, so a slot evicted meanwhile was punched (zeros) or reused (another
/// object's bytes) under them. On f2b8ad1 the body differed.
#[test]
fn a_slow_h2_reader_of_a_churning_cache_gets_every_byte() {
    let setup = Setup {
        slice_size: MIB / 2,
        workers: 1,
        cache: Some(CacheSetup {
            memory_bytes: 16 * MIB,
            disk_bytes: 32 * MIB,
            ..CacheSetup::fresh("t11")
        }),
        ..Setup::default()
    };
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let len = 8 * MIB;
    let target = format!("/obj/{len}/slow");
    // h2c::get_block asks for host "test".
    let warm = get(h.addr(), &target, &[("Host", "test")]).unwrap();
    assert!(warm.body == object_bytes("slow", 0, len - 1));
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (stop, addr) = (stop.clone(), h.addr());
        thread::spawn(move || {
            let mut n = 0;
            // After the slow reader's request found every slice cached.
            thread::sleep(Duration::from_millis(300));
            while !stop.load(Ordering::SeqCst) && n < 400 {
                let name = format!("churn-{n}");
                // Twice: S3-FIFO keeps objects read twice over one-hit ones.
                for _ in 0..2 {
                    let resp = get(addr, &format!("/obj/{}/{name}", 2 * MIB), &[]).unwrap();
                    assert!(resp.body == object_bytes(&name, 0, 2 * MIB - 1), "{name}");
                }
                n += 1;
            }
            n
        })
    };
    let body = slow_h2_read(h.addr(), &target, Duration::from_secs(3));
    stop.store(true, Ordering::SeqCst);
    let churned = churn.join().unwrap();
    // 16 slice requests warmed it; the slow read must have had some from the cache.
    let asked = h
        .origin
        .requests()
        .iter()
        .filter(|r| r.target == target)
        .count();
    assert!(
        asked < 32,
        "every slice of the slow read came from the origin"
    );
    assert_eq!(body.len() as u64, len);
    let want = object_bytes("slow", 0, len - 1);
    let first_wrong = body.iter().zip(&want).position(|(a, b)| a != b);
    assert_eq!(
        first_wrong, None,
        "the slow reader got wrong bytes ({churned} objects churned meanwhile)"
    );
}

/// M4: a second edgeslice on a cache directory in use exits non-zero with a
/// message naming the directory, instead of starting beside the first on
/// its own port (on f2b8ad1 it served, allocating the same slots).
#[test]
fn a_second_process_on_one_cache_dir_is_refused() {
    let origin = common::DemoOrigin::start().unwrap();
    let dir = common::temp_path("m4");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let _guard = common::TempDir(dir.clone());
    let cache = dir.join("cache");
    let conf = dir.join("edgeslice.toml");
    let text = common::process::subprocess_config(origin.addr(), Some(&cache), "");
    std::fs::write(&conf, &text).unwrap();
    let first = common::process::Edgeslice::start(&conf);
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_edgeslice"))
        .arg("--config")
        .arg(&conf)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = second.id();
    let waiter = thread::spawn(move || second.wait_with_output().unwrap());
    let until = Instant::now() + Duration::from_secs(20);
    while !waiter.is_finished() {
        if Instant::now() > until {
            // SAFETY: a process this test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("a second edgeslice on the same cache.dir kept running");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = waiter.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let named = format!("{:?}", cache);
    assert!(
        stderr.contains(&named) && stderr.contains("in use"),
        "{stderr}"
    );
    // The first goes on serving.
    let resp = get(first.addr, "/obj/100/still", &[]).unwrap();
    assert_eq!(resp.body, object_bytes("still", 0, 99));
}

/// An origin for M9: objects fresh for 1 s, 304 to a matching If-None-Match,
/// 403 to a request carrying `X-Bad`, and `Vary: Origin` with
/// `Access-Control-Allow-Origin` only on answers to requests with Origin.
fn revalidating_origin() -> common::scripted::ScriptedOrigin {
    use common::scripted::{head, obj_of, ScriptedOrigin, Step};
    ScriptedOrigin::start(|req| {
        if req.header("x-bad").is_some() {
            return vec![Step::Send(head(
                "403 Forbidden",
                &[("Content-Length", "0".into())],
            ))];
        }
        let (name, len) = obj_of(&req.target).unwrap_or(("x".into(), 10));
        let etag = format!("\"{name}\"");
        let mut fields = vec![
            ("ETag", etag.clone()),
            ("Cache-Control", "max-age=1".into()),
        ];
        if let Some(origin) = req.header("origin") {
            fields.push(("Vary", "Origin".into()));
            fields.push(("Access-Control-Allow-Origin", origin.to_string()));
        }
        if req.header("if-none-match") == Some(etag.as_str()) {
            return vec![Step::Send(head("304 Not Modified", &fields))];
        }
        let (a, b) = req.range().unwrap_or((0, len - 1));
        let b = b.min(len - 1);
        fields.push(("Content-Range", format!("bytes {a}-{b}/{len}")));
        fields.push(("Content-Length", (b - a + 1).to_string()));
        let mut out = head("206 Partial Content", &fields);
        out.extend(object_bytes(&name, a, b));
        vec![Step::Send(out)]
    })
}

fn cached_one_worker(name: &str) -> Setup {
    Setup {
        workers: 1,
        cache: Some(CacheSetup::fresh(name)),
        slice_size: 64,
        ..Setup::default()
    }
}

/// M9: a revalidation the origin refuses because of the asking client's
/// own headers (403 here) leaves the object where it is: the next client's
/// revalidation gets its 304 and a hit. On f2b8ad1 the 403 forgot the
/// object, so any client could evict any stale object.
#[test]
fn a_revalidation_refused_for_the_client_s_headers_evicts_nothing() {
    let setup = cached_one_worker("m9-reval");
    let _dir = dir_guard(&setup);
    let edge = common::scripted::Edge::start(revalidating_origin(), &setup);
    let first = get(edge.addr(), "/obj/200/r", &[]).unwrap();
    assert_eq!(first.header("x-cache"), Some("MISS"));
    thread::sleep(Duration::from_millis(1200));
    let bad = get(edge.addr(), "/obj/200/r", &[("X-Bad", "1")]).unwrap();
    assert_eq!(bad.status, 403, "the origin's answer to that client");
    let before = edge.origin.requests().len();
    let next = get(edge.addr(), "/obj/200/r", &[]).unwrap();
    assert_eq!(next.status, 200);
    assert!(next.body == object_bytes("r", 0, 199));
    assert_eq!(
        next.header("x-cache"),
        Some("HIT"),
        "the object was evicted"
    );
    let asked: Vec<_> = edge.origin.requests()[before..].to_vec();
    assert_eq!(asked.len(), 1, "one conditional request: {asked:?}");
    assert!(asked[0].header("if-none-match").is_some());
}

/// M9: an origin that adds `Vary: Origin` only to answers for requests that
/// carry Origin (CORS), asked with Origin first, then alternately without
/// and with. Each kind is stored once (the variants are keyed by every
/// header any answer named) and then served from the cache with its own
/// headers. On f2b8ad1 the answer without Vary replaced the base manifest:
/// the CORS variant was orphaned, and the next CORS request got the answer
/// without `Access-Control-Allow-Origin`.
#[test]
fn a_vary_list_that_changes_keeps_both_kinds_of_answers() {
    let setup = cached_one_worker("m9-vary");
    let _dir = dir_guard(&setup);
    let edge = common::scripted::Edge::start(revalidating_origin(), &setup);
    let with = [("Origin", "https://app.test")];
    for round in 0..3 {
        let cors = get(edge.addr(), "/obj/100/v", &with).unwrap();
        assert_eq!(
            cors.header("access-control-allow-origin"),
            Some("https://app.test"),
            "round {round}: the answer without CORS was served to a CORS request"
        );
        let plain = get(edge.addr(), "/obj/100/v", &[]).unwrap();
        assert!(
            plain.header("access-control-allow-origin").is_none(),
            "round {round}"
        );
        if round > 0 {
            assert_eq!(cors.header("x-cache"), Some("HIT"), "round {round}: cors");
            assert_eq!(plain.header("x-cache"), Some("HIT"), "round {round}: plain");
        }
    }
}

/// RFC 9111 3.5: a request with `Authorization` is always answered by the
/// origin. Its answer is stored for requests without credentials only when
/// it says it may be shared (`public`, `s-maxage`, `must-revalidate`);
/// with a bare `max-age` it is not stored. Before, such answers were never
/// stored, whatever they said.
#[test]
fn answers_to_requests_with_credentials_are_stored_only_when_shareable() {
    let setup = Setup {
        slice_size: 4,
        cache: Some(CacheSetup::fresh("credentials")),
        ..Setup::default()
    };
    let _dir = dir_guard(&setup);
    let h = Harness::start(setup);
    let auth = [("Authorization", "Bearer alice")];
    let cases = [
        ("max-age=3600", false),
        ("max-age=3600,public", true),
        ("s-maxage=3600", true),
        ("max-age=3600,must-revalidate", true),
    ];
    for (cc, shared) in cases {
        let name = format!("cred-{}", cc.replace([',', '='], "-"));
        let target = format!("/obj/16/{name}?cc={cc}");
        h.origin.clear();
        let first = h.get(&target, &auth);
        assert_eq!(first.body, object_bytes(&name, 0, 15), "{cc}");
        let status = first.header("cache-status").unwrap_or_default();
        assert_eq!(status.ends_with("; stored"), shared, "{cc}: {status}");
        assert!(
            h.origin
                .requests()
                .iter()
                .all(|r| r.header("authorization") == Some("Bearer alice")),
            "{cc}: the credentials reach the origin"
        );
        h.origin.clear();
        let anonymous = h.get(&target, &[]);
        assert_eq!(anonymous.body, object_bytes(&name, 0, 15), "{cc}");
        let hit = h.origin.request_count() == 0;
        assert_eq!(hit, shared, "{cc}: served from the cache without asking");
        // A request with credentials is never answered from the cache.
        h.origin.clear();
        let again = h.get(&target, &auth);
        assert_eq!(again.body, object_bytes(&name, 0, 15), "{cc}");
        assert!(
            h.origin.request_count() > 0,
            "{cc}: credentials went to the origin"
        );
    }
}

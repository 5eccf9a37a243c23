//! The access log: one line per request, in text and JSON, with the same
//! fields for a MISS, a HIT and a pass-through; client aborts are logged as
//! such; `access_log = false` writes none. Runs the binary as a subprocess,
//! since stderr is the subject.

mod common;

use common::process::*;
use common::*;

/// Send a MISS, a HIT and a pass-through (POST) through `proc`.
fn miss_hit_pass(proc: &Edgeslice) -> usize {
    let miss = get(proc.addr, "/obj/16/log", &[]).unwrap();
    assert_eq!(miss.header("x-cache"), Some("MISS"));
    let hit = get(proc.addr, "/obj/16/log", &[("Range", "bytes=2-9")]).unwrap();
    assert_eq!(hit.status, 206);
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    let body = b"0123456789";
    let post = HttpConnection::connect(proc.addr)
        .and_then(|mut c| c.request("POST", "/echo/log", &[], Some(body)))
        .unwrap();
    assert_eq!(post.body, body);
    body.len()
}

/// (field, expected) for the MISS, HIT and POST lines, in that order.
fn expected_access_fields(posted: usize) -> [Vec<(&'static str, String)>; 3] {
    let s = |v: &str| v.to_string();
    [
        vec![
            ("method", s("GET")),
            ("path", s("/obj/16/log")),
            ("proto", s("http/1.1")),
            ("range", s("-")),
            ("status", s("200")),
            ("bytes", s("16")),
            ("cache", s("MISS")),
            ("slices_cached", s("0")),
            ("slices_peer", s("0")),
            ("slices_origin", s("4")),
            ("origin_attempts", s("4")),
            ("outcome", s("ok")),
            ("error", s("")),
        ],
        vec![
            ("method", s("GET")),
            ("path", s("/obj/16/log")),
            ("proto", s("http/1.1")),
            ("range", s("bytes=2-9")),
            ("status", s("206")),
            ("bytes", s("8")),
            ("cache", s("HIT")),
            ("slices_cached", s("3")),
            ("slices_peer", s("0")),
            ("slices_origin", s("0")),
            ("origin_attempts", s("0")),
            ("outcome", s("ok")),
            ("error", s("")),
        ],
        vec![
            ("method", s("POST")),
            ("path", s("/echo/log")),
            ("proto", s("http/1.1")),
            ("range", s("-")),
            ("status", s("200")),
            ("bytes", posted.to_string()),
            ("cache", s("-")),
            ("slices_cached", s("0")),
            ("slices_peer", s("0")),
            ("slices_origin", s("0")),
            ("origin_attempts", s("1")),
            ("outcome", s("ok")),
            ("error", s("")),
        ],
    ]
}

#[test]
fn text_access_log_lines_for_a_miss_a_hit_and_a_pass_through() {
    let origin = DemoOrigin::start().unwrap();
    let dir = TempDir::new("access-text");
    let conf = dir.path().join("edgeslice.toml");
    let cache = dir.path().join("cache");
    let tail = "[log]\naccess_log = true\nformat = \"text\"\n";
    std::fs::write(&conf, subprocess_config(origin.addr(), Some(&cache), tail)).unwrap();
    let proc = Edgeslice::start(&conf);
    let posted = miss_hit_pass(&proc);
    let lines = proc.wait_access_lines(3);
    eprintln!("{}", lines.join("\n"));
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for (line, want) in lines.iter().zip(expected_access_fields(posted)) {
        assert!(line.contains(" INFO "), "access lines are INFO: {line}");
        let got = text_fields(line);
        for (key, value) in want {
            assert_eq!(got.get(key), Some(&value), "{key} in {line}");
        }
        let ms: f64 = got["ms"].parse().unwrap_or_else(|_| panic!("ms in {line}"));
        assert!((0.0..10_000.0).contains(&ms), "{line}");
    }
}

#[test]
fn json_access_log_lines_carry_the_same_fields() {
    let origin = DemoOrigin::start().unwrap();
    let dir = TempDir::new("access-json");
    let conf = dir.path().join("edgeslice.toml");
    let cache = dir.path().join("cache");
    let tail = "[log]\nformat = \"json\"\n";
    std::fs::write(&conf, subprocess_config(origin.addr(), Some(&cache), tail)).unwrap();
    let proc = Edgeslice::start(&conf);
    let posted = miss_hit_pass(&proc);
    let lines = proc.wait_access_lines(3);
    eprintln!("{}", lines.join("\n"));
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for (line, want) in lines.iter().zip(expected_access_fields(posted)) {
        // Each JSON access line is a bare object, parseable on its own.
        assert!(line.starts_with('{'), "not a bare JSON line: {line}");
        let json = line.as_str();
        let doc: serde_json::Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {line}"));
        let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 14, "{line}");
        for (key, value) in want {
            let got = match &doc[key] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(got, value, "{key} in {line}");
        }
        assert!(doc["status"].is_u64() && doc["bytes"].is_u64(), "{line}");
        assert!(doc["ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{line}");
    }
}

/// A client that leaves mid-body is its own outcome, `client_abort`, not an
/// error; the line counts the slices fetched for it.
#[test]
fn a_client_that_leaves_is_logged_as_client_abort() {
    use std::io::Write;
    let origin = DemoOrigin::start().unwrap();
    let dir = TempDir::new("access-abort");
    let conf = dir.path().join("edgeslice.toml");
    let tail = "[log]\nformat = \"json\"\n";
    std::fs::write(&conf, subprocess_config(origin.addr(), None, tail)).unwrap();
    let proc = Edgeslice::start(&conf);
    let mut stream = std::net::TcpStream::connect(proc.addr).unwrap();
    stream
        .write_all(b"GET /obj/4194304/gone?delay_ms=2 HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 512];
    let n = read_some(&mut stream, &mut first).unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    drop(stream);
    let lines = proc.wait_access_lines(1);
    let doc: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(doc["outcome"], "client_abort", "{}", lines[0]);
    assert_eq!(doc["status"], 200, "{}", lines[0]);
    let fetched = doc["slices_origin"].as_u64().unwrap();
    assert!(fetched >= 1, "{}", lines[0]);
    assert!(
        fetched as usize <= origin.request_count(),
        "more slices than origin requests: {}",
        lines[0]
    );
}

#[test]
fn access_log_off_writes_no_access_lines() {
    let origin = DemoOrigin::start().unwrap();
    let dir = TempDir::new("access-off");
    let conf = dir.path().join("edgeslice.toml");
    let cache = dir.path().join("cache");
    let tail = "[log]\naccess_log = false\n";
    std::fs::write(&conf, subprocess_config(origin.addr(), Some(&cache), tail)).unwrap();
    let proc = Edgeslice::start(&conf);
    miss_hit_pass(&proc);
    // A line logged after the requests ended: SIGHUP's reload line.
    let seen = proc.line_count();
    proc.signal(SIGHUP);
    proc.wait_line(seen, "reloaded routes and limits");
    assert_eq!(proc.access_lines(), Vec::<String>::new());
}

//! The admin listener's `/health` (503 while draining) and `/status` (JSON
//! with the documented fields).

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn health_is_ok_while_serving_and_503_while_draining() {
    let origin = DemoOrigin::start().unwrap();
    let setup = Setup {
        slice_size: 4 << 20,
        ..Setup::default()
    };
    let server = start_server(&format!("{}{ADMIN}", config_text(origin.addr(), &setup)));
    let admin = server.admin_addr().unwrap();
    let addr = server.local_addr();
    let health = get(admin, "/health", &[]).unwrap();
    assert_eq!(health.status, 200);
    assert_eq!(health.body, b"ok\n");

    let client = thread::spawn(move || get(addr, "/stall/200000/s?stall_ms=1500", &[]));
    wait_for(
        Duration::from_secs(5),
        "the slow request reaches the origin",
        || (origin.request_count() > 0).then_some(()),
    );
    let drain_started = Instant::now();
    let stopper = thread::spawn(move || server.shutdown());
    let draining = wait_for(Duration::from_secs(1), "/health answers 503", || {
        get(admin, "/health", &[]).ok().filter(|r| r.status == 503)
    });
    assert_eq!(draining.body, b"draining\n");
    assert!(
        drain_started.elapsed() < Duration::from_millis(1400),
        "503 seen only after {:?}, not during the drain",
        drain_started.elapsed()
    );
    // Still draining: /status says so too.
    let status = get(admin, "/status", &[]).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(doc["health"], "draining", "{doc}");
    assert!(
        !stopper.is_finished(),
        "shutdown ended before the stalled response"
    );

    let resp = client.join().unwrap().expect("the in-flight response");
    assert_eq!(resp.status, 200);
    assert!(resp.complete, "the in-flight response was cut by the drain");
    assert_eq!(resp.body.len(), 200_000);
    stopper.join().unwrap();
}

#[test]
fn status_is_json_with_the_documented_fields() {
    let origin = DemoOrigin::start().unwrap();
    let setup = Setup {
        slice_size: 4,
        workers: 2,
        cache: Some(CacheSetup::fresh("ops-status")),
        ..Setup::default()
    };
    let _dir = TempDir(setup.cache.as_ref().unwrap().dir.clone());
    let server = start_server(&format!("{}{ADMIN}", config_text(origin.addr(), &setup)));
    let admin = server.admin_addr().unwrap();
    let resp = get(admin, "/status", &[]).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let doc: serde_json::Value = serde_json::from_slice(&resp.body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&resp.body)));
    assert_eq!(doc["version"], env!("CARGO_PKG_VERSION"), "{doc}");
    assert_eq!(doc["listen"], server.local_addr().to_string(), "{doc}");
    let workers = doc["workers"].as_array().expect("workers is an array");
    assert_eq!(workers.len(), 2, "{doc}");
    for (i, w) in workers.iter().enumerate() {
        assert_eq!(w["id"], i as u64, "{doc}");
        assert!(w["core"].is_null(), "no pinning configured: {doc}");
    }
    let driver = format!("{:?}", server.driver());
    assert_eq!(doc["driver"], driver.as_str(), "{doc}");
    assert_eq!(doc["origin"], origin.addr().to_string(), "{doc}");
    assert!(doc["config_path"].is_null(), "started in-process: {doc}");
    assert_eq!(doc["cache"]["enabled"], true, "{doc}");
    assert_eq!(doc["cache"]["memory_bytes"], 64u64 << 20, "{doc}");
    assert!(doc["cache"]["memory_bytes_used"].is_u64(), "{doc}");
    assert!(doc["cache"]["disk_bytes_used"].is_u64(), "{doc}");
    assert!(doc["uptime_seconds"].is_u64(), "{doc}");
    assert_eq!(doc["health"], "ok", "{doc}");
    let other = get(admin, "/nope", &[]).unwrap();
    assert_eq!(other.status, 404);
    let post = HttpConnection::connect(admin)
        .and_then(|mut c| c.request("POST", "/metrics", &[], Some(b"x")))
        .unwrap();
    assert_eq!(post.status, 405);
}

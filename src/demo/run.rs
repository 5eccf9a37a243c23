//! `edgeslice demo`: built-in origin on 127.0.0.1, edgeslice in front of it,
//! a large object fetched through it, every byte checked, and a report.

use std::time::Instant;

use anyhow::{ensure, Context};

use crate::demo::client::{get, HttpResponse};
use crate::demo::origin::{object_bytes, DemoOrigin};
use edgeslice::config::Config;
use edgeslice::server::runtime::Server;

/// Run the demo: fetch a `size_mib` MiB object through edgeslice from a
/// built-in origin that waits `delay_ms` before each answer.
pub fn run(size_mib: u64, delay_ms: u64) -> anyhow::Result<()> {
    let origin = DemoOrigin::start().context("starting the built-in origin")?;
    let cache_dir = std::env::temp_dir().join(format!("edgeslice-demo-{}", std::process::id()));
    let config = demo_config(&origin, 2, 4, Some(&cache_dir))?;
    let server = Server::start(&config).context("starting edgeslice")?;
    let proxy = server.local_addr();
    println!(
        "origin   http://{} (built in, {delay_ms} ms per answer)\nedgeslice http://{proxy} ({} workers, {:?} driver, 1 MiB slices, 4 concurrent subrequests)\n\
         cache     {} (memory 256 MiB + disk 1 GiB)\n",
        origin.addr(),
        config.worker_count(),
        server.driver(),
        cache_dir.display()
    );

    let len = size_mib * 1024 * 1024;
    let name = "demo/video.bin";
    let target = format!("/obj/{len}/{name}?delay_ms={delay_ms}");

    origin.clear();
    let started = Instant::now();
    let full = get(proxy, &target, &[])?;
    let took = started.elapsed();
    check(&full, 200, name, 0, len - 1)?;
    let requests = origin.requests();
    println!("GET {target}");
    println!(
        "  200, X-Cache: {}, {} bytes, every byte checked, in {:.0} ms ({:.0} MiB/s)",
        full.header("x-cache").unwrap_or("-"),
        full.body.len(),
        took.as_secs_f64() * 1e3,
        mib_per_s(len, took)
    );
    println!(
        "  origin saw {} slice requests, at most {} at once; first ranges: {}",
        requests.len(),
        origin.peak_concurrency(),
        requests
            .iter()
            .take(3)
            .filter_map(|r| r.range.clone())
            .collect::<Vec<_>>()
            .join(", ")
    );

    // The same fetch with one slice at a time, as nginx's slice module does.
    let one_at_a_time = demo_config(&origin, 1, 1, None)?;
    let sequential = Server::start(&one_at_a_time).context("starting edgeslice")?;
    let started = Instant::now();
    let again = get(sequential.local_addr(), &target, &[])?;
    let took_sequential = started.elapsed();
    check(&again, 200, name, 0, len - 1)?;
    sequential.shutdown();
    println!(
        "  the same with 1 slice in flight at a time: {:.0} ms ({:.0} MiB/s): 4 in flight is {:.1}x faster\n",
        took_sequential.as_secs_f64() * 1e3,
        mib_per_s(len, took_sequential),
        took_sequential.as_secs_f64() / took.as_secs_f64()
    );

    origin.clear();
    let started = Instant::now();
    let warm = get(proxy, &target, &[])?;
    let took_warm = started.elapsed();
    check(&warm, 200, name, 0, len - 1)?;
    println!(
        "GET {target} again\n  200, X-Cache: {}, {} origin requests, {:.0} ms ({:.0} MiB/s)\n",
        warm.header("x-cache").unwrap_or("-"),
        origin.request_count(),
        took_warm.as_secs_f64() * 1e3,
        mib_per_s(len, took_warm)
    );

    let other = "demo/other.bin";
    let target = format!("/obj/{len}/{other}?delay_ms={delay_ms}");
    let (first, last) = (len / 3, len / 3 + 3 * 1024 * 1024);
    origin.clear();
    let range = format!("bytes={first}-{last}");
    let part = get(proxy, &target, &[("Range", &range)])?;
    check(&part, 206, other, first, last)?;
    println!(
        "GET {target} Range: {range}\n  206, Content-Range: {}, {} bytes checked, {} slice requests: {}\n",
        part.header("content-range").unwrap_or("?"),
        part.body.len(),
        origin.request_count(),
        origin
            .requests()
            .iter()
            .filter_map(|r| r.range.clone())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let past = get(
        proxy,
        &target,
        &[("Range", &format!("bytes={}-", len + 10))],
    )?;
    println!(
        "GET past the end: {}, Content-Range: {}\n",
        past.status,
        past.header("content-range").unwrap_or("?")
    );

    // Restart on the same cache directory: the disk tier is recovered.
    server.shutdown();
    let server = Server::start(&config).context("restarting edgeslice")?;
    let recovery = server
        .cache()
        .map(|c| c.store.recovery_time())
        .unwrap_or_default();
    origin.clear();
    let after = get(
        server.local_addr(),
        &format!("/obj/{len}/{name}?delay_ms={delay_ms}"),
        &[],
    )?;
    check(&after, 200, name, 0, len - 1)?;
    println!(
        "restart (cache recovered in {:.0} ms), GET the first object: X-Cache: {}, {} origin requests",
        recovery.as_secs_f64() * 1e3,
        after.header("x-cache").unwrap_or("-"),
        origin.request_count()
    );
    server.shutdown();
    let _ = std::fs::remove_dir_all(&cache_dir);
    Ok(())
}

/// edgeslice on 127.0.0.1:0 in front of `origin`, 1 MiB slices, `window` in
/// flight, caching in `cache_dir` (no cache when `None`).
fn demo_config(
    origin: &DemoOrigin,
    workers: usize,
    window: usize,
    cache_dir: Option<&std::path::Path>,
) -> anyhow::Result<Config> {
    let cache = match cache_dir {
        Some(dir) => format!("dir = {:?}\ndisk_bytes = \"1GiB\"\n", dir),
        None => "enabled = false\n".to_string(),
    };
    Ok(Config::from_toml(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = {workers}\n\
         [origin]\naddress = \"{}\"\n\
         [slice]\nslice_size = \"1MiB\"\nmax_concurrent_subrequests = {window}\n\
         [cache]\n{cache}",
        origin.addr()
    ))?)
}

fn mib_per_s(len: u64, took: std::time::Duration) -> f64 {
    len as f64 / (1024.0 * 1024.0) / took.as_secs_f64()
}

fn check(
    resp: &HttpResponse,
    status: u16,
    name: &str,
    first: u64,
    last: u64,
) -> anyhow::Result<()> {
    ensure!(
        resp.status == status,
        "got status {}, expected {status}",
        resp.status
    );
    ensure!(resp.complete, "the body was cut short");
    ensure!(
        resp.body.len() as u64 == last - first + 1,
        "got {} bytes, expected {}",
        resp.body.len(),
        last - first + 1
    );
    ensure!(
        resp.body == object_bytes(name, first, last),
        "body bytes differ from the object's"
    );
    Ok(())
}

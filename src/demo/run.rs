//! `edgeslice demo`: built-in origin on 127.0.0.1, edgeslice in front of it,
//! a large object fetched through it, every byte checked, and a report.

use std::time::Instant;

use anyhow::{ensure, Context};

use crate::config::Config;
use crate::demo::client::{get, HttpResponse};
use crate::demo::origin::{object_bytes, DemoOrigin};
use crate::runtime::Server;

/// Run the demo: fetch a `size_mib` MiB object through edgeslice from a
/// built-in origin that waits `delay_ms` before each answer.
pub fn run(size_mib: u64, delay_ms: u64) -> anyhow::Result<()> {
    let origin = DemoOrigin::start().context("starting the built-in origin")?;
    let config = demo_config(&origin, 2, 4)?;
    let server = Server::start(&config).context("starting edgeslice")?;
    let proxy = server.local_addr();
    println!(
        "origin   http://{} (built in, {delay_ms} ms per answer)\nedgeslice http://{proxy} ({} workers, {:?} driver, 1 MiB slices, 4 concurrent subrequests)\n",
        origin.addr(),
        config.worker_count(),
        server.driver()
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
        "  200, {} bytes, every byte checked, in {:.0} ms ({:.0} MiB/s)",
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
    let one_at_a_time = demo_config(&origin, 1, 1)?;
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

    let (first, last) = (len / 3, len / 3 + 3 * 1024 * 1024);
    origin.clear();
    let range = format!("bytes={first}-{last}");
    let part = get(proxy, &target, &[("Range", &range)])?;
    check(&part, 206, name, first, last)?;
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
        "GET past the end: {}, Content-Range: {}",
        past.status,
        past.header("content-range").unwrap_or("?")
    );
    server.shutdown();
    Ok(())
}

/// edgeslice on 127.0.0.1:0 in front of `origin`, 1 MiB slices, `window` in flight.
fn demo_config(origin: &DemoOrigin, workers: usize, window: usize) -> anyhow::Result<Config> {
    Ok(Config::from_toml(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = {workers}\n\
         [origin]\naddress = \"{}\"\n\
         [slice]\nslice_size = \"1MiB\"\nmax_concurrent_subrequests = {window}\n",
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

//! Run the built-in demo origin as a process of its own, for tools that put
//! another proxy (nginx, a linter's target) in front of it.
//!
//! `cargo run --release --example demo_origin` starts
//! [`DemoOrigin`] on `127.0.0.1:0`, prints its address (`127.0.0.1:PORT`) on
//! stdout as one line, then serves until it is killed or its stdin closes, so
//! a parent that dies without cleaning up does not leave it behind. The URL
//! scheme is the one of `src/demo/origin.rs`: `/obj/<len>/<name>` serves a
//! generated object of `len` bytes with ETag, Last-Modified,
//! `Cache-Control: max-age=3600`, and honours Range and conditionals.

use std::io::{Read, Write};

#[path = "../src/demo/mod.rs"]
#[allow(dead_code, unused_imports)]
mod demo;

use demo::origin::DemoOrigin;

fn main() -> std::io::Result<()> {
    let origin = DemoOrigin::start()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", origin.addr())?;
    out.flush()?;
    drop(out);
    // Block until stdin reaches end of file (or fails), then stop.
    let mut sink = [0u8; 4096];
    let mut stdin = std::io::stdin().lock();
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    drop(origin);
    Ok(())
}

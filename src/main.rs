//! The edgeslice command: run the proxy, check a configuration, or run the demo.

// The built-in origin and client (test support, shared with the tests,
// which use parts of it the demo does not), and the demo's runs.
#[allow(dead_code, unused_imports)]
mod demo;
#[cfg(test)]
#[path = "demo/client_tests.rs"]
mod demo_client_tests;
#[cfg(test)]
#[path = "demo/origin_tests.rs"]
mod demo_origin_tests;
#[path = "demo/pop.rs"]
mod demo_pop;
#[path = "demo/run.rs"]
mod demo_run;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use edgeslice::config::Config;
use edgeslice::ops::{copies, service};
use edgeslice::proxy::route::RouteTable;
use edgeslice::server::runtime::Server;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing_subscriber::EnvFilter;

/// mimalloc, not glibc's malloc: a small-range hit allocates and frees a
/// few dozen small blocks, and glibc's bins and their consolidation were
/// 6-7% of the worker's time in bench (c) (perf, pinned cores); mimalloc's
/// per-thread free lists take less. Its version 2 (feature `v2`): version
/// 3 was as fast in a fresh process but no faster than glibc once the
/// worker had served other load (bench (i) after (g): 39.4 us per request,
/// glibc 37.8, version 2 36.3). Built without transparent huge pages
/// (feature `no_thp`): with them mimalloc 3 asked the kernel for 2 MiB pages
/// and peak RSS in (c) went from 19 to 41 MiB. It gives freed memory back
/// to the kernel after a short delay (its `purge_delay`), so the 1 MiB
/// slice buffers that churn through the cache do not stay resident (with
/// glibc that took `mallopt(M_MMAP_THRESHOLD)`, no longer needed).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A thread-per-core slicing reverse proxy for large objects.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Validate the configuration and resolve its origin addresses, print it
    /// with defaults filled in, and exit.
    #[arg(long, requires = "config")]
    check: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start a built-in origin on 127.0.0.1, edgeslice in front of it, fetch
    /// objects through it and print what happened.
    Demo {
        /// Size of the large object fetched, in MiB.
        #[arg(long, default_value_t = 64)]
        size_mib: u64,
        /// Delay of each origin answer in ms, emulating a remote origin.
        #[arg(long, default_value_t = 5)]
        origin_delay_ms: u64,
        /// Run this many nodes (2 to 16), first each on its own, then as one
        /// POP (`[cluster]`), and compare origin requests per slice.
        #[arg(long, default_value_t = 1)]
        nodes: usize,
    },
}

fn main() -> ExitCode {
    // First: on AMD it may execute this binary again (see its module).
    copies::prefer_vector_copies();
    let cli = Cli::parse();
    // The demo prints its own report; per-request log lines would drown it.
    let default_level = if cli.command.is_some() {
        "warn"
    } else {
        "info"
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgeslice: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What `systemctl status` shows while serving: where, on how many workers,
/// where the metrics are and how long the cache took to come back.
fn serving_status(server: &Server, config: &Config) -> String {
    let mut status = format!(
        "serving on {}, workers {} ({:?})",
        server.local_addr(),
        config.worker_count(),
        server.driver()
    );
    if let Some(tls) = server.tls_addr() {
        status.push_str(&format!(", TLS on {tls}"));
    }
    if let Some(admin) = server.admin_addr() {
        status.push_str(&format!(", admin on {admin}"));
    }
    if let Some(cache) = server.cache() {
        status.push_str(&format!(
            ", cache {} recovered in {} ms",
            config.cache.dir.display(),
            cache.store.recovery_time().as_millis()
        ));
    }
    status
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Demo {
        size_mib,
        origin_delay_ms,
        nodes,
    }) = cli.command
    {
        if nodes > 1 {
            return demo_pop::run(nodes, size_mib, origin_delay_ms);
        }
        return demo_run::run(size_mib, origin_delay_ms);
    }
    let Some(path) = cli.config else {
        anyhow::bail!("no configuration given: use --config PATH (or `edgeslice demo`)");
    };
    let config = Config::load(&path)?;
    // What the file asks for and cannot be had (an origin that does not
    // resolve, an unusable cache.dir) is reported after the file's name too.
    let in_file = || path.display().to_string();
    if cli.check {
        // Resolve every origin as the start does, so that --check fails where
        // the start would.
        RouteTable::try_from(&config).with_context(in_file)?;
        println!("# {}: valid; effective configuration:", path.display());
        print!("{}", config.to_toml_redacted());
        return Ok(());
    }
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let server = Server::start_with(&config, Some(&path)).with_context(in_file)?;
    tracing::info!(config = %path.display(), addr = %server.local_addr(), "serving");
    let serving = serving_status(&server, &config);
    service::ready(&serving);
    for signal in signals.forever() {
        if signal != SIGHUP {
            tracing::info!(
                signal,
                "stopping: no new connections, finishing in-flight responses"
            );
            service::stopping(&format!(
                "draining: no new connections, in-flight responses get up to {} ms",
                config.server.shutdown_timeout_ms
            ));
            break;
        }
        service::reloading();
        // Routes and limits change in place; a bad file changes nothing.
        let reloaded = Config::load(&path)
            .map_err(anyhow::Error::from)
            .and_then(|new| Ok(server.reload(&new)?));
        match reloaded {
            Ok(()) => {
                tracing::info!(config = %path.display(), "reloaded routes and limits");
                service::ready(&format!("{serving}; reloaded {}", path.display()));
            }
            Err(e) => {
                tracing::error!(
                    config = %path.display(),
                    error = %e,
                    "reload refused, keeping the running configuration"
                );
                service::ready(&format!(
                    "{serving}; reload refused, kept the running configuration: {e:#}"
                ));
            }
        }
    }
    server.shutdown();
    tracing::info!("stopped");
    Ok(())
}

//! Start-up and `--check` messages: each failure prints its information once,
//! naming the file, the key and the value, and `--check` fails wherever the
//! start would (an origin that does not resolve); on success it prints the
//! effective configuration, defaults included. Runs the real binary.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::process::{subprocess_config, Edgeslice};
use common::{get, DemoOrigin, TempDir};
use edgeslice::config::Config;
use edgeslice::ops::copies;

/// Runs `edgeslice --config CONF [extra]`, killing it if it is still running
/// after 20 s (a start that should have failed is serving instead).
fn edgeslice(conf: &Path, extra: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgeslice"))
        .arg("--config")
        .arg(conf)
        .args(extra)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("edgeslice runs");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after 20 s; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Asserts that the run failed and that its stderr holds `expected` exactly
/// once, on the `edgeslice:` line; returns stderr.
fn fails_once_with(out: &Output, expected: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "exited 0; stderr:\n{stderr}");
    assert_eq!(
        stderr.matches(expected).count(),
        1,
        "want {expected:?} once in:\n{stderr}"
    );
    let line = stderr
        .lines()
        .find(|l| l.starts_with("edgeslice: "))
        .unwrap_or_else(|| panic!("no `edgeslice:` line in:\n{stderr}"));
    assert!(line.contains(expected), "{expected:?} not on {line:?}");
    stderr
}

#[test]
fn toml_errors_name_the_file_line_key_and_value_once() {
    let dir = TempDir::new("toml");
    // (file text, what the message must hold once)
    let cases = [
        (
            "[origin]\naddress = \"127.0.0.1:9\"\n[slice]\nslice_size = \"abc\"\n",
            "line 4, column 14, `slice_size = \"abc\"`: invalid size \"abc\"",
        ),
        (
            "[origin]\naddress = \"127.0.0.1:9\"\nbogus = 1\n",
            "line 3, column 1, `bogus = 1`: unknown field `bogus`",
        ),
        (
            "[server]\nworkers = \"two\"\n[origin]\naddress = \"127.0.0.1:9\"\n",
            "line 2, column 11, `workers = \"two\"`: invalid type: string \"two\"",
        ),
        (
            "[origin]\naddress = \"127.0.0.1:9\n",
            "line 2, column 23, `address = \"127.0.0.1:9`: invalid basic string",
        ),
    ];
    for (text, expected) in cases {
        let conf = dir.config(text);
        let out = edgeslice(&conf, &["--check"]);
        let stderr = fails_once_with(&out, &format!("{}: {expected}", conf.display()));
        assert!(!stderr.contains("TOML parse error"), "{stderr}");
    }
}

#[test]
fn invalid_values_and_unreadable_files_are_reported_once_with_the_file() {
    let dir = TempDir::new("invalid");
    let conf = dir.config("[origin]\naddress = \"127.0.0.1:9\"\n[slice]\nmax_retries = 99\n");
    let out = edgeslice(&conf, &["--check"]);
    fails_once_with(
        &out,
        &format!(
            "{}: invalid slice.max_retries = 99: must be at most 20",
            conf.display()
        ),
    );

    let missing = dir.0.join("missing.toml");
    let out = edgeslice(&missing, &["--check"]);
    let stderr = fails_once_with(
        &out,
        &format!("cannot read config file {}", missing.display()),
    );
    assert_eq!(stderr.matches("No such file or directory").count(), 1);
}

#[test]
fn check_fails_on_an_origin_that_does_not_resolve_as_the_start_does() {
    let dir = TempDir::new("resolve");
    let server = "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n[cache]\nenabled = false\n";
    let default = dir.config(&format!(
        "{server}[origin]\naddress = \"no-such-host.invalid:80\"\n"
    ));
    let expected = format!(
        "{}: origin.address \"no-such-host.invalid:80\": cannot resolve",
        default.display()
    );
    for extra in [&["--check"][..], &[]] {
        let out = edgeslice(&default, extra);
        fails_once_with(&out, &expected);
        assert!(out.stdout.is_empty(), "{extra:?} printed a configuration");
    }

    let routes = dir.config(&format!(
        "{server}[origin]\naddress = \"127.0.0.1:9\"\n\
         [[route]]\nhost = \"a.test\"\norigin = \"127.0.0.1:9\"\n\
         [[route]]\nhost = \"b.test\"\norigin = \"route-origin.invalid:8080\"\n"
    ));
    let expected = format!(
        "{}: route[1].origin \"route-origin.invalid:8080\": cannot resolve",
        routes.display()
    );
    for extra in [&["--check"][..], &[]] {
        fails_once_with(&edgeslice(&routes, extra), &expected);
    }
}

#[test]
fn an_unusable_cache_dir_fails_the_start_naming_the_path_and_the_step() {
    let dir = TempDir::new("cache-dir");
    let file = dir.0.join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    // (cache.dir, what the message must hold once)
    let cases = [
        (
            file.join("cache"),
            format!(
                "cache.dir {:?}: cannot create directory: Not a directory (os error 20)",
                file.join("cache")
            ),
        ),
        (
            file.clone(),
            format!("cache.dir {file:?}: exists and is not a directory"),
        ),
    ];
    for (cache_dir, expected) in cases {
        let conf = dir.config(&format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n\
             [origin]\naddress = \"127.0.0.1:9\"\n\
             [cache]\ndir = {cache_dir:?}\nmemory_bytes = \"16MiB\"\ndisk_bytes = \"64MiB\"\n"
        ));
        let expected = format!("{}: {expected}", conf.display());
        let stderr = fails_once_with(&edgeslice(&conf, &[]), &expected);
        assert!(!stderr.contains("coding error"), "{stderr}");
    }
}

fn check(conf: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_edgeslice"))
        .arg("--config")
        .arg(conf)
        .arg("--check")
        .env("NO_COLOR", "1")
        .output()
        .expect("edgeslice --check runs")
}

#[test]
fn check_prints_the_effective_configuration_with_defaults() {
    let dir = TempDir::new("check");
    let conf = dir.path().join("edgeslice.toml");
    std::fs::write(&conf, "[origin]\naddress = \"127.0.0.1:8081\"\n").unwrap();
    let out = check(&conf);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "max_concurrent_subrequests = 4",
        "slice_size = 1048576",
        "address = \"127.0.0.1:8081\"",
        "access_log = true",
        "format = \"text\"",
        "shutdown_timeout_ms = 10000",
    ] {
        assert!(
            stdout.lines().any(|l| l.trim() == line),
            "missing {line:?} in:\n{stdout}"
        );
    }
    // What it prints is a configuration that loads to the same values.
    let body: String = stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let printed = Config::from_toml(&body).expect("printed configuration is valid");
    let original = Config::load(&conf).unwrap();
    assert_eq!(printed, original);

    std::fs::write(
        &conf,
        "[origin]\naddress = \"127.0.0.1:8081\"\n[slice]\nslice_size = 0\n",
    )
    .unwrap();
    let out = check(&conf);
    assert!(!out.status.success(), "slice_size = 0 was accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("slice.slice_size"), "{stderr}");

    std::fs::write(
        &conf,
        "[origin]\naddress = \"127.0.0.1:8081\"\n[[route]]\norigin = \"127.0.0.1:9\"\nmax_concurrent_subrequests = 0\n",
    )
    .unwrap();
    let out = check(&conf);
    assert!(!out.status.success(), "a route's window of 0 was accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("route[0].max_concurrent_subrequests"),
        "{stderr}"
    );
}

/// M1: `--check` (which the package's unit runs at every start, into the
/// journal) never prints a secret: the cluster token and the purge token
/// are shown as `<redacted>`. On f2b8ad1 both were printed in clear.
#[test]
fn check_never_prints_a_secret() {
    let dir = TempDir::new("check-secrets");
    let conf = dir.path().join("edgeslice.toml");
    std::fs::write(
        &conf,
        "[server]\nlisten = \"127.0.0.1:8080\"\n[origin]\naddress = \"127.0.0.1:8081\"\n\
         [cache]\npurge_token = \"purge-secret-value\"\n\
         [cluster]\nself = \"127.0.0.1:8080\"\npeers = [\"127.0.0.1:8080\"]\n\
         token = \"cluster-secret-value\"\n",
    )
    .unwrap();
    let out = check(&conf);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    for secret in ["purge-secret-value", "cluster-secret-value"] {
        assert!(
            !printed.contains(secret),
            "--check printed {secret}:\n{printed}"
        );
    }
    assert_eq!(printed.matches("\"<redacted>\"").count(), 2, "{printed}");
}

/// `GLIBC_TUNABLES` in the environment of the running process `pid`.
fn tunables_of(pid: u32) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    environ
        .split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"GLIBC_TUNABLES="))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// On an AMD CPU with glibc the serving process runs with glibc's
/// `rep movsb` threshold above any copy (`ops::copies`: its vector loops
/// copy each TLS record's plaintext at a fraction of the cost there); a
/// `GLIBC_TUNABLES` that names the threshold is the operator's and stays
/// as set; on any other CPU nothing is added.
#[test]
fn on_amd_glibc_copies_with_vector_loops_unless_the_operator_set_the_threshold() {
    let origin = DemoOrigin::start().unwrap();
    let dir = TempDir::new("copies");
    let conf = dir.path().join("edgeslice.toml");
    std::fs::write(&conf, subprocess_config(origin.addr(), None, "")).unwrap();
    let ours = format!("{}={}", copies::TUNABLE, copies::VALUE);
    let runner = std::env::var("GLIBC_TUNABLES").ok();
    let raised = copies::is_amd() && cfg!(target_env = "gnu");
    let want = match runner.as_deref() {
        Some(t) if t.contains("x86_rep_movsb_threshold") => Some(t.to_string()),
        Some(t) if raised => Some(format!("{t}:{ours}")),
        None if raised => Some(ours.clone()),
        other => other.map(str::to_string),
    };
    eprintln!(
        "AMD: {}, runner's GLIBC_TUNABLES: {runner:?}",
        copies::is_amd()
    );
    let proc = Edgeslice::start(&conf);
    assert_eq!(tunables_of(proc.pid()), want);
    // Run again as /proc/self/exe, it keeps its name (ps, the journal's _COMM).
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", proc.pid())).unwrap();
    assert_eq!(comm.trim_end(), "edgeslice");
    assert_eq!(get(proc.addr, "/obj/100/copies", &[]).unwrap().status, 200);
    drop(proc);

    let operator = "glibc.cpu.x86_rep_movsb_threshold=2048";
    let proc = Edgeslice::start_with_env(&conf, &[("GLIBC_TUNABLES", Path::new(operator))]);
    assert_eq!(tunables_of(proc.pid()).as_deref(), Some(operator));
    assert_eq!(get(proc.addr, "/obj/100/copies", &[]).unwrap().status, 200);
}

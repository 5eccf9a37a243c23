//! Start-up and `--check` messages: each failure prints its information once,
//! naming the file, the key and the value, and `--check` fails wherever the
//! start would (an origin that does not resolve). Runs the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A directory of its own under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "edgeslice-startup-{}-{name}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Writes `text` to `edgeslice.toml` in the directory and returns its path.
    fn config(&self, text: &str) -> PathBuf {
        let path = self.0.join("edgeslice.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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

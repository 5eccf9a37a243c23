//! What the Debian package installs agrees with itself and with the code:
//! the shipped config is `conf/edgeslice.toml` plus the node settings and
//! nothing else, and the unit names the paths the package installs, the
//! cache directory postinst creates, and a stop timeout longer than the
//! drain. `cargo deb` itself is not run here (minutes); tools/package is.

use std::path::{Path, PathBuf};

use edgeslice::config::{AdminConfig, CacheConfig, Config, OriginConfig, SliceSize};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// How `debian/edgeslice.toml` differs from `conf/edgeslice.toml`: each
/// reference text and what the packaged file has instead.
const NODE_EDITS: &[(&str, &str)] = &[
    (
        "# edgeslice configuration: every key, each set to its default.\n#\n",
        "# /etc/edgeslice/edgeslice.toml: the configuration of the edgeslice service.\n\
         #\n\
         # Installed by the edgeslice package as a conffile: removal keeps it (purge\n\
         # deletes it), and an upgrade asks before replacing an edited copy. It is\n\
         # conf/edgeslice.toml (also in /usr/share/doc/edgeslice/) with two node\n\
         # settings: the origin (a placeholder: set yours) and the admin listener\n\
         # (on, on loopback). Every other key is set to its default.\n\
         # Apply a change: `systemctl reload edgeslice` (routes, limits, TLS files);\n\
         # the listeners, workers, driver, cache and admin need a restart.\n",
    ),
    (
        "listen = \"127.0.0.1:8080\"\n",
        "# Loopback until you choose: \"0.0.0.0:80\" serves every interface (the\n\
         # service may bind ports below 1024: it keeps CAP_NET_BIND_SERVICE).\n\
         listen = \"127.0.0.1:8080\"\n",
    ),
    (
        "address = \"127.0.0.1:8081\"\n",
        "# CHANGE THIS to your origin: the placeholder only lets the service start\n\
         # (`--check` and the start resolve it); until then every miss fails.\n\
         address = \"127.0.0.1:8081\"\n",
    ),
    (
        "# Left out = no admin listener (the default); operators usually set:\n\
         # listen = \"127.0.0.1:9090\"\n",
        "# Left out = no admin listener (the default). On this node it is on, on\n\
         # loopback only: curl http://127.0.0.1:9090/status\n\
         listen = \"127.0.0.1:9090\"\n",
    ),
];

#[test]
fn packaged_config_is_the_reference_plus_the_node_settings() {
    let mut expected = read("conf/edgeslice.toml");
    for (reference, packaged) in NODE_EDITS {
        assert_eq!(
            expected.matches(reference).count(),
            1,
            "conf/edgeslice.toml should hold {reference:?} once: update NODE_EDITS"
        );
        expected = expected.replace(reference, packaged);
    }
    let packaged = read("debian/edgeslice.toml");
    let first_difference = expected
        .lines()
        .zip(packaged.lines())
        .position(|(e, p)| e != p)
        .unwrap_or(expected.lines().count().min(packaged.lines().count()));
    assert!(
        expected == packaged,
        "debian/edgeslice.toml line {}: got {:?}, expected {:?} (conf/edgeslice.toml \
         changed? apply the change to both files)",
        first_difference + 1,
        packaged.lines().nth(first_difference),
        expected.lines().nth(first_difference)
    );
}

#[test]
fn packaged_config_is_the_defaults_with_an_origin_and_the_admin_listener() {
    let config = Config::load(&repo("debian/edgeslice.toml")).unwrap();
    let expected = Config {
        origin: OriginConfig {
            address: "127.0.0.1:8081".into(),
            ..OriginConfig::default()
        },
        admin: AdminConfig {
            listen: Some("127.0.0.1:9090".parse().unwrap()),
            token: None,
        },
        ..Config::default()
    };
    assert_eq!(config, expected);
    assert_eq!(
        config.cache,
        CacheConfig {
            dir: "/var/cache/edgeslice".into(),
            ..CacheConfig::default()
        }
    );
}

/// Every `Key=value` of the unit, in file order (keys may repeat).
fn unit() -> Vec<(String, String)> {
    read("debian/edgeslice.service")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn unit_value(unit: &[(String, String)], key: &str) -> String {
    let values: Vec<&str> = unit
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        values.len(),
        1,
        "{key}= in debian/edgeslice.service: {values:?}"
    );
    values[0].to_string()
}

/// The `[package.metadata.deb]` assets as (source, destination) pairs.
fn assets() -> Vec<(String, String)> {
    let manifest: toml::Table = read("Cargo.toml").parse().unwrap();
    manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .expect("assets is a list")
        .iter()
        .map(|a| {
            let a = a.as_array().expect("an asset is [source, dest, mode]");
            let s = |i: usize| a[i].as_str().unwrap().to_string();
            (s(0), s(1))
        })
        .collect()
}

#[test]
fn unit_runs_what_the_package_installs() {
    let unit = unit();
    let assets = assets();
    let installed = |source: &str| {
        let (_, dest) = assets
            .iter()
            .find(|(s, _)| s == source)
            .unwrap_or_else(|| panic!("{source} is not an asset: {assets:?}"));
        let file = Path::new(source).file_name().unwrap().to_str().unwrap();
        let dest = dest
            .strip_suffix('/')
            .map_or(dest.clone(), |d| format!("{d}/{file}"));
        format!("/{dest}")
    };
    let binary = installed("target/release/edgeslice");
    let config = installed("debian/edgeslice.toml");
    assert_eq!(binary, "/usr/bin/edgeslice");
    assert_eq!(config, "/etc/edgeslice/edgeslice.toml");
    let start = format!("{binary} --config {config}");
    assert_eq!(unit_value(&unit, "ExecStart"), start);
    assert_eq!(
        unit_value(&unit, "ExecStartPre"),
        format!("{start} --check")
    );
    assert_eq!(unit_value(&unit, "Type"), "notify");
    assert_eq!(unit_value(&unit, "ExecReload"), "/bin/kill -HUP $MAINPID");

    // The user and the cache directory are the ones postinst makes.
    let postinst = read("debian/postinst");
    let user = unit_value(&unit, "User");
    assert!(
        postinst.contains(&format!("--quiet {user}\n")),
        "postinst adds {user}"
    );
    let packaged = Config::load(&repo("debian/edgeslice.toml")).unwrap();
    let cache_dir = packaged.cache.dir.display().to_string();
    assert_eq!(unit_value(&unit, "ReadWritePaths"), cache_dir);
    assert!(
        postinst.contains(&format!("-o {user} -g {user} -m 0750 {cache_dir}\n")),
        "postinst creates {cache_dir} owned by {user}"
    );
}

#[test]
fn unit_limits_fit_the_packaged_config() {
    let unit = unit();
    let config = Config::load(&repo("debian/edgeslice.toml")).unwrap();
    // systemd's SIGKILL must not cut the drain (and the flush after it).
    let stop_s: u64 = unit_value(&unit, "TimeoutStopSec")
        .strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .expect("TimeoutStopSec in seconds, e.g. 20s");
    assert!(
        stop_s * 1000 > config.server.shutdown_timeout_ms + 5000,
        "TimeoutStopSec={stop_s}s, expected at least 5 s above shutdown_timeout_ms = {}",
        config.server.shutdown_timeout_ms
    );
    // The unit's comment: per worker, a client and an origin socket per
    // connection, the slices in flight past one per request, idle origin
    // connections, and ~100 shared; enough for 32 workers at least.
    let SliceSize::Bytes(slice) = config.slice.slice_size else {
        panic!("the packaged config has a fixed slice size");
    };
    let per_worker = 2 * config.server.max_connections as u64
        + config.server.max_buffered_bytes / slice
        + config.origin.max_idle_per_host as u64;
    let nofile: u64 = unit_value(&unit, "LimitNOFILE").parse().unwrap();
    assert!(
        nofile >= 32 * per_worker + 100,
        "LimitNOFILE={nofile}: {per_worker} per worker covers only {} workers",
        (nofile - 100) / per_worker
    );
    // io_uring is allowed by name, whatever @system-service holds.
    let filters: Vec<&str> = unit
        .iter()
        .filter(|(k, _)| k == "SystemCallFilter")
        .flat_map(|(_, v)| v.split_whitespace())
        .collect();
    for call in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
        assert!(
            filters.contains(&call),
            "SystemCallFilter lacks {call}: {filters:?}"
        );
    }
}

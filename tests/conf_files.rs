//! Every file in `conf/` loads and validates, and the presets hold the values
//! their names promise.

use std::path::{Path, PathBuf};

use edgeslice::config::{Config, OriginConfig, SliceSize};

const MIB: u64 = 1024 * 1024;

fn conf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conf")
}

fn load(name: &str) -> Config {
    let path = conf_dir().join(name);
    Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_conf_file_loads_and_validates() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(conf_dir()).expect("conf/ is readable") {
        let path = entry.expect("conf/ entry is readable").path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            let config = Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            config.validate().expect("load validates");
            names.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    names.sort();
    for expected in ["edgeslice.toml", "high-throughput.toml", "low-memory.toml"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing, found {names:?}"
        );
    }
}

#[test]
fn edgeslice_toml_sets_exactly_the_defaults() {
    let expected = Config {
        origin: OriginConfig {
            address: "127.0.0.1:8081".into(),
            ..OriginConfig::default()
        },
        ..Config::default()
    };
    assert_eq!(load("edgeslice.toml"), expected);
}

#[test]
fn high_throughput_preset() {
    let config = load("high-throughput.toml");
    assert_eq!(config.origin.address, "127.0.0.1:8081");
    assert_eq!(config.slice.slice_size, SliceSize::Bytes(2 * MIB));
    assert_eq!(config.slice.max_concurrent_subrequests, 8);
    assert_eq!(config.slice.max_retries, 2);
    // No lifetime of the cache's own: the presets keep RFC 9111's default.
    assert_eq!(config.cache.cache_ttl, 0);
}

#[test]
fn low_memory_preset() {
    let config = load("low-memory.toml");
    assert_eq!(config.origin.address, "127.0.0.1:8081");
    assert_eq!(config.slice.slice_size, SliceSize::Bytes(512 * 1024));
    assert_eq!(config.slice.max_concurrent_subrequests, 4);
    assert_eq!(config.slice.max_retries, 3);
    assert_eq!(config.cache.cache_ttl, 0);
}

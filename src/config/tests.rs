//! Tests of configuration loading and validation.
use super::*;

const ORIGIN: &str = "[origin]\naddress = \"127.0.0.1:8081\"\n";

fn parse_err(text: &str) -> String {
    match Config::from_toml(text) {
        Ok(config) => panic!("accepted {text:?} as {config:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_fill_every_key_but_origin_address() {
    let config = Config::from_toml(ORIGIN).unwrap();
    let expected = Config {
        origin: OriginConfig {
            address: "127.0.0.1:8081".into(),
            ..OriginConfig::default()
        },
        ..Config::default()
    };
    assert_eq!(config, expected);
    assert_eq!(config.server.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(config.server.workers, 0);
    assert_eq!(config.server.driver, DriverChoice::Auto);
    assert_eq!(
        config.server.client_header_timeout(),
        Duration::from_secs(10)
    );
    assert_eq!(config.origin.connect_timeout(), Duration::from_secs(3));
    assert_eq!(config.origin.head_timeout(), Duration::from_secs(10));
    assert_eq!(config.origin.read_timeout(), Duration::from_secs(10));
    assert_eq!(config.origin.slice_timeout(), Duration::from_secs(30));
    assert_eq!(config.origin.max_idle_per_host, 10);
    assert_eq!(config.server.max_request_head_bytes, 65_536);
    assert_eq!(config.slice.slice_size, SliceSize::Bytes(1_048_576));
    assert_eq!(config.cache.memory_bytes, 268_435_456);
    assert_eq!(config.cache.disk_bytes, 10_737_418_240);
    assert_eq!(config.cache.cache_ttl, 0);
    assert_eq!(config.cache.heuristic_max_ttl, 86_400);
    assert_eq!(config.worker_count(), available_cores());
}

#[test]
fn origin_address_is_required() {
    assert_eq!(parse_err(""), "origin.address is required");
    assert_eq!(
        parse_err("[origin]\nconnect_timeout_ms = 5\n"),
        "origin.address is required"
    );
}

#[test]
fn bad_values_name_their_key() {
    // (dotted key, TOML value); the error must read `invalid {key} = {value}: ...`.
    let cases = [
        ("server.client_header_timeout_ms", "0"),
        ("server.pin_cores", "[]"),
        ("server.h2_max_concurrent_streams", "0"),
        ("server.h2_max_control_frames_per_sec", "0"),
        ("server.h2_stream_window", "1000"),
        ("server.h2_connection_window", "2147483648"),
        ("server.h2_max_header_list_size", "100"),
        ("server.pin_cores", "[0, 0]"),
        ("server.pin_cores", "[100000]"),
        ("origin.connect_timeout_ms", "0"),
        ("origin.read_timeout_ms", "0"),
        ("slice.slice_size", "0"),
        ("slice.slice_size", "67108865"),
        ("slice.max_concurrent_subrequests", "0"),
        ("slice.max_concurrent_subrequests", "257"),
        ("slice.max_retries", "21"),
        ("cache.memory_bytes", "0"),
    ];
    for (key, value) in cases {
        // Dotted keys only: a table set by dotted keys cannot be reopened by a header.
        let err = parse_err(&format!("{key} = {value}\norigin.address = \"o:80\""));
        let expected = format!("invalid {key} = {value}: ");
        assert!(err.starts_with(&expected), "{key} = {value} gave {err:?}");
    }
    let err = parse_err(&format!("{ORIGIN}[server]\nworkers = 2\npin_cores = [0]"));
    assert!(err.starts_with("invalid server.workers = 2: "), "{err}");
    let err = parse_err(&format!("{ORIGIN}[slice]\nmax_concurrent_subrequests = 0"));
    let expected = "invalid slice.max_concurrent_subrequests = 0: must be between 1 and 256";
    assert_eq!(err, expected);
}

#[test]
fn origin_address_must_be_host_port() {
    for good in [
        "127.0.0.1:8081",
        "origin.example:80",
        "[::1]:80",
        "localhost:65535",
        "http://origin.example",
        "https://origin.example:8443",
    ] {
        let config = Config::from_toml(&format!("[origin]\naddress = \"{good}\"")).unwrap();
        assert_eq!(config.origin.address, good);
    }
    for bad in [
        "127.0.0.1",
        ":80",
        "host:0",
        "host:65536",
        "host:http",
        "::1:80",
        "ftp://host:80",
        "https://host:80/path",
    ] {
        let err = parse_err(&format!("[origin]\naddress = \"{bad}\""));
        assert!(
            err.starts_with(&format!("invalid origin.address = {bad:?}: ")),
            "{err}"
        );
    }
}

#[test]
fn sizes_accept_bytes_or_unit_strings() {
    let cases: &[(&str, u64)] = &[
        ("2", 2),
        ("1048576", 1_048_576),
        ("\"1MiB\"", 1_048_576),
        ("\"512KiB\"", 524_288),
        ("\"512 KiB\"", 524_288),
        ("\"64MiB\"", 64 * MIB),
    ];
    for (value, bytes) in cases {
        let config = Config::from_toml(&format!("{ORIGIN}[slice]\nslice_size = {value}")).unwrap();
        let got = config.slice.slice_size;
        assert_eq!(got, SliceSize::Bytes(*bytes), "slice_size = {value}");
    }
    let text = format!("{ORIGIN}[cache]\nmemory_bytes = \"256MiB\"\ndisk_bytes = \"10 GiB\"");
    let cache = Config::from_toml(&text).unwrap().cache;
    assert_eq!(
        (cache.memory_bytes, cache.disk_bytes),
        (256 * MIB, 10 * GIB)
    );
}

#[test]
fn bad_size_names_key_and_value() {
    let err = parse_err(&format!("{ORIGIN}[slice]\nslice_size = \"12 parsecs\""));
    assert!(
        err.contains("slice_size") && err.contains("\"12 parsecs\""),
        "{err}"
    );
    let err = parse_err(&format!("{ORIGIN}[cache]\ndisk_bytes = -1"));
    assert!(err.contains("disk_bytes") && err.contains("-1"), "{err}");
    // A disk tier too small for the manifests' blocks hung the store's close.
    let err = parse_err(&format!("{ORIGIN}[cache]\ndisk_bytes = \"6MiB\""));
    assert!(
        err.contains("invalid cache.disk_bytes = 6291456") && err.contains("32MiB"),
        "{err}"
    );
}

#[test]
fn unknown_keys_are_rejected_by_name() {
    let err = parse_err(&format!("{ORIGIN}[slice]\nslise_size = 2"));
    assert!(err.contains("slise_size"), "{err}");
    let err = parse_err(&format!("{ORIGIN}[slise]\nslice_size = 2"));
    assert!(err.contains("slise"), "{err}");
}

#[test]
fn toml_errors_are_one_line_with_line_column_and_text() {
    for (text, expected) in [
        (
            format!("{ORIGIN}[slice]\nslice_size = \"abc\""),
            "line 4, column 14, `slice_size = \"abc\"`: invalid size \"abc\"",
        ),
        // Columns count characters, not bytes.
        (
            format!("{ORIGIN}host_header = \"é\" x"),
            "line 3, column 19, `host_header = \"é\" x`: expected newline",
        ),
        (
            "[origin]\naddress = \"127.0.0.1:9".to_string(),
            "line 2, column 23, `address = \"127.0.0.1:9`: invalid basic string",
        ),
    ] {
        let err = parse_err(&text);
        assert!(err.starts_with(expected), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}

#[test]
fn driver_names_are_snake_case() {
    for (name, driver) in [
        ("auto", DriverChoice::Auto),
        ("io_uring", DriverChoice::IoUring),
        ("legacy", DriverChoice::Legacy),
    ] {
        let config = Config::from_toml(&format!("{ORIGIN}[server]\ndriver = \"{name}\"")).unwrap();
        assert_eq!(config.server.driver, driver);
    }
    assert!(parse_err(&format!("{ORIGIN}[server]\ndriver = \"epoll\"")).contains("epoll"));
}

#[test]
fn worker_count_uses_workers_when_set() {
    let config = Config::from_toml(&format!("{ORIGIN}[server]\nworkers = 3")).unwrap();
    assert_eq!(config.worker_count(), 3);
    let config =
        Config::from_toml(&format!("{ORIGIN}[server]\nworkers = 1\npin_cores = [0]")).unwrap();
    assert_eq!(config.server.pin_cores, Some(vec![0]));
    // workers = 0 with pinned cores: one worker per pinned core.
    let config =
        Config::from_toml(&format!("{ORIGIN}[server]\nworkers = 0\npin_cores = [0]")).unwrap();
    assert_eq!(config.worker_count(), 1);
}

#[test]
fn to_toml_round_trips() {
    let text = format!(
        "{ORIGIN}host_header = \"cdn.example\"\n\
         [server]\nworkers = 1\npin_cores = [0]\ndriver = \"legacy\"\n\
         [slice]\nslice_size = \"2KiB\"\n[cache]\ndisk_bytes = 0\n"
    );
    for config in [
        Config::from_toml(ORIGIN).unwrap(),
        Config::from_toml(&text).unwrap(),
    ] {
        let written = config.to_toml();
        assert_eq!(Config::from_toml(&written).unwrap(), config, "{written}");
    }
    let written = Config::from_toml(ORIGIN).unwrap().to_toml();
    assert!(written.contains("slice_size = 1048576"), "{written}");
    assert!(!written.contains("pin_cores"), "{written}");
}

/// A config whose second `[[route]]` sets `key = value` (its `origin`, when
/// `key` is `origin`).
fn with_route_value(key: &str, value: &str) -> String {
    let own = match key {
        "origin" => format!("origin = {value}\n"),
        _ => format!("origin = \"127.0.0.1:9\"\n{key} = {value}\n"),
    };
    format!("{ORIGIN}[[route]]\norigin = \"127.0.0.1:9\"\n[[route]]\n{own}")
}

#[test]
fn route_values_are_refused_as_their_global_twins() {
    // (global key, route key, TOML value): the route's message must be the
    // global one with `route[1].key` for the key.
    let cases = [
        ("slice.slice_size", "slice_size", "0"),
        ("slice.slice_size", "slice_size", "67108865"),
        ("slice.slice_size", "slice_size", "\"65MiB\""),
        (
            "slice.max_concurrent_subrequests",
            "max_concurrent_subrequests",
            "0",
        ),
        (
            "slice.max_concurrent_subrequests",
            "max_concurrent_subrequests",
            "257",
        ),
        ("slice.prefetch_slices", "prefetch_slices", "65"),
        ("slice.min_slice_bytes", "min_slice_bytes", "67108865"),
        ("slice.max_ranges", "max_ranges", "17"),
        ("origin.host_header", "host_header", "\"a b\""),
        ("origin.host_header", "host_header", "\"\""),
        ("origin.address", "origin", "\"127.0.0.1\""),
        ("origin.address", "origin", "\"ftp://o:80\""),
        ("origin.address", "origin", "\"o:0\""),
    ];
    for (global, key, value) in cases {
        let global_text = match global {
            "origin.address" => format!("origin.address = {value}"),
            _ => format!("{global} = {value}\norigin.address = \"o:80\""),
        };
        let global_err = parse_err(&global_text);
        assert!(
            global_err.starts_with(&format!("invalid {global} = ")),
            "{global_err}"
        );
        let route_err = parse_err(&with_route_value(key, value));
        let want = global_err.replacen(global, &format!("route[1].{key}"), 1);
        assert_eq!(route_err, want, "{key} = {value}");
    }
}

#[test]
fn bad_route_values_name_the_route_key_and_value() {
    // (route key, TOML value, the whole message)
    let cases = [
        (
            "slice_size",
            "0",
            "invalid route[1].slice_size = 0: must be between 1 and 67108864 (64MiB) bytes, or \"auto\"",
        ),
        (
            "slice_size",
            "\"65MiB\"",
            "invalid route[1].slice_size = 68157440: must be between 1 and 67108864 (64MiB) bytes, or \"auto\"",
        ),
        (
            "max_concurrent_subrequests",
            "300",
            "invalid route[1].max_concurrent_subrequests = 300: must be between 1 and 256",
        ),
        (
            "prefetch_slices",
            "65",
            "invalid route[1].prefetch_slices = 65: must be at most 64",
        ),
        (
            "origin",
            "\"o\"",
            "invalid route[1].origin = \"o\": must be host:port",
        ),
        (
            "host",
            "\"a/b\"",
            "invalid route[1].host = \"a/b\": must be a host name or *.suffix",
        ),
        (
            "path_prefix",
            "\"v/\"",
            "invalid route[1].path_prefix = \"v/\": must start with /",
        ),
    ];
    for (key, value, want) in cases {
        assert_eq!(parse_err(&with_route_value(key, value)), want);
    }
}

#[test]
fn route_values_in_range_are_kept() {
    // (route key, TOML value): each accepted, as its global twin accepts it.
    let cases = [
        ("slice_size", "1"),
        ("slice_size", "\"64MiB\""),
        ("slice_size", "\"auto\""),
        ("max_concurrent_subrequests", "1"),
        ("max_concurrent_subrequests", "256"),
        ("prefetch_slices", "0"),
        ("prefetch_slices", "64"),
        ("min_slice_bytes", "\"3MiB\""),
        ("max_ranges", "0"),
        ("stale_while_revalidate", "0"),
        ("stale_if_error", "86400"),
    ];
    for (key, value) in cases {
        let text = with_route_value(key, value);
        let config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{key} = {value}: {e}"));
        let written = config.to_toml();
        assert_eq!(Config::from_toml(&written).unwrap(), config, "{written}");
    }
    let config = Config::from_toml(&with_route_value("slice_size", "\"auto\"")).unwrap();
    assert_eq!(config.routes[1].slice_size, Some(SliceSize::Auto));
    assert!(config.to_toml().contains("slice_size = \"auto\""));
}

#[test]
fn disk_reads_per_worker_bounds() {
    for bad in ["0", "1025"] {
        let err = parse_err(&format!("{ORIGIN}[cache]\ndisk_reads_per_worker = {bad}"));
        assert_eq!(
            err,
            format!("invalid cache.disk_reads_per_worker = {bad}: must be 1 to 1024")
        );
    }
    let config = Config::from_toml(ORIGIN).unwrap();
    assert_eq!(config.cache.disk_reads_per_worker, 2);
}

#[test]
fn global_prefetch_and_slice_size_bounds() {
    let err = parse_err(&format!("{ORIGIN}[slice]\nprefetch_slices = 65"));
    assert_eq!(
        err,
        "invalid slice.prefetch_slices = 65: must be at most 64"
    );
    let config = Config::from_toml(&format!("{ORIGIN}[slice]\nslice_size = \"AUTO\"")).unwrap();
    assert_eq!(config.slice.slice_size, SliceSize::Auto);
}

#[test]
fn tls_keys_apply_only_to_https_origins() {
    // (TOML, the whole message): a key that would be ignored is refused.
    let cases = [
        (
            "[origin]\naddress = \"o:80\"\ntls_verify = false\n",
            "invalid origin.tls_verify = false: applies only to an https:// origin, not \"o:80\"",
        ),
        (
            "[origin]\naddress = \"http://o\"\nca_file = \"/ca.pem\"\n",
            "invalid origin.ca_file = \"/ca.pem\": applies only to an https:// origin, not \"http://o\"",
        ),
        (
            "[origin]\nca_file = \"/ca.pem\"\n[[route]]\norigin = \"https://o\"\n",
            "invalid origin.ca_file = \"/ca.pem\": applies only to an https:// origin, and none is set",
        ),
        (
            "[[route]]\norigin = \"o:80\"\norigin_tls_verify = false\n",
            "invalid route[0].origin_tls_verify = false: applies only to an https:// origin, not \"o:80\"",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse_err(text), want);
    }
    let config =
        Config::from_toml("[origin]\naddress = \"https://o\"\ntls_verify = false\n").unwrap();
    assert!(!config.origin.tls_verify);
    assert!(Config::from_toml(ORIGIN).unwrap().origin.tls_verify);
    let written = config.to_toml();
    assert_eq!(Config::from_toml(&written).unwrap(), config, "{written}");
}

#[test]
fn a_bad_ca_file_is_refused_with_its_path() {
    let missing = "/nonexistent/edgeslice-ca.pem";
    for (text, key) in [
        (
            format!("[origin]\naddress = \"https://o\"\nca_file = \"{missing}\"\n"),
            "origin.ca_file",
        ),
        (
            format!("[[route]]\norigin = \"https://o\"\norigin_ca_file = \"{missing}\"\n"),
            "route[0].origin_ca_file",
        ),
    ] {
        let err = parse_err(&text);
        let want = format!("invalid {key} = \"{missing}\": cannot read it: No such file");
        assert!(err.starts_with(&want), "{err}");
    }
}

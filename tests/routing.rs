//! Routes: the origin picked by Host and path prefix, 404 without a default
//! origin, a route's own slice size, and per-route slicing rules (`exclude`,
//! `include`, `min_slice_bytes`).

mod common;

use common::*;
use edgeslice::server::runtime::Server;

// ---------------------------------------------------------------------------
// Route selection
// ---------------------------------------------------------------------------

/// The Host header of each request an origin saw, in arrival order.
fn origin_hosts(origin: &DemoOrigin) -> Vec<String> {
    origin
        .requests()
        .iter()
        .map(|r| r.header("host").unwrap_or("-").to_string())
        .collect()
}

#[test]
fn routes_pick_the_origin_by_host_and_path_prefix() {
    let a = DemoOrigin::start().unwrap();
    let b = DemoOrigin::start().unwrap();
    let setup = Setup {
        slice_size: 4,
        ..Setup::default()
    };
    let routes = format!(
        "[[route]]\nhost = \"*.b.test\"\norigin = \"{b}\"\n\
         [[route]]\npath_prefix = \"/c/\"\norigin = \"{b}\"\nhost_header = \"c-origin\"\n\
         [[route]]\nhost = \"exact.test\"\norigin = \"{b}\"\n",
        b = b.addr()
    );
    let server = start_server(&format!("{}{routes}", config_text(a.addr(), &setup)));
    let addr = server.local_addr();

    let resp = get_host(addr, "/obj/16/w", "x.b.test");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, object_bytes("w", 0, 15));
    assert_eq!(a.request_count(), 0, "A got {:?}", a.requests());
    assert_eq!(b.request_count(), 4, "{:?}", b.requests());
    assert_eq!(
        origin_hosts(&b),
        vec!["x.b.test"; 4],
        "the client's Host goes on"
    );
    b.clear();

    let resp = get_host(addr, "/obj/16/w", "deep.x.b.test:8080");
    assert_eq!(resp.status, 200);
    assert_eq!((a.request_count(), b.request_count()), (0, 4));
    b.clear();

    // *.b.test does not take b.test itself, nor other hosts.
    for host in ["other.test", "b.test", "xb.test"] {
        let resp = get_host(addr, "/obj/8/d", host);
        assert_eq!(resp.status, 200, "{host}");
        assert_eq!(resp.body, object_bytes("d", 0, 7), "{host}");
        assert_eq!(b.request_count(), 0, "{host} went to B: {:?}", b.requests());
        assert_eq!(a.request_count(), 2, "{host}: {:?}", a.requests());
        assert_eq!(origin_hosts(&a), vec![host; 2]);
        a.clear();
    }

    // The path prefix route, with its own Host header at the origin.
    let resp = get_host(addr, "/c/obj/8/c", "other.test");
    assert_eq!(resp.status, 404, "the demo origin has no /c/ mode");
    assert_eq!(a.request_count(), 0, "A got {:?}", a.requests());
    let reqs = b.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].target, "/c/obj/8/c");
    assert_eq!(reqs[0].header("host"), Some("c-origin"));
    b.clear();
    let resp = get_host(addr, "/cc/obj/8/c", "other.test");
    assert_eq!(resp.status, 404);
    assert_eq!(
        (a.request_count(), b.request_count()),
        (1, 0),
        "/cc/ is not /c/"
    );
    a.clear();

    // Exact host: that host only, with any port.
    let resp = get_host(addr, "/obj/8/e", "EXACT.test:81");
    assert_eq!(resp.status, 200);
    assert_eq!((a.request_count(), b.request_count()), (0, 2));
    b.clear();
    let resp = get_host(addr, "/obj/8/e", "x.exact.test");
    assert_eq!(resp.status, 200);
    assert_eq!((a.request_count(), b.request_count()), (2, 0));
}

#[test]
fn without_a_default_origin_an_unmatched_host_gets_404() {
    let b = DemoOrigin::start().unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n\
         [slice]\nslice_size = 4\n[cache]\nenabled = false\n\
         [[route]]\nhost = \"only.test\"\norigin = \"{}\"\n",
        b.addr()
    );
    let server = start_server(&text);
    let addr = server.local_addr();
    let resp = get_host(addr, "/obj/8/o", "only.test");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, object_bytes("o", 0, 7));
    assert_eq!(b.request_count(), 2);
    b.clear();
    let resp = get_host(addr, "/obj/8/o", "elsewhere.test");
    assert_eq!(resp.status, 404);
    assert_eq!(resp.body, b"no route for this host and path\n");
    assert_eq!(b.request_count(), 0, "{:?}", b.requests());
}

#[test]
fn a_route_slices_with_its_own_slice_size() {
    let a = DemoOrigin::start().unwrap();
    let b = DemoOrigin::start().unwrap();
    let setup = Setup {
        slice_size: 4,
        ..Setup::default()
    };
    let routes = format!(
        "[[route]]\nhost = \"eight.test\"\norigin = \"{}\"\nslice_size = 8\nmax_concurrent_subrequests = 1\n",
        b.addr()
    );
    let server = start_server(&format!("{}{routes}", config_text(a.addr(), &setup)));
    let resp = get_host(server.local_addr(), "/obj/20/s", "eight.test");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, object_bytes("s", 0, 19));
    let mut ranges: Vec<String> = b.requests().into_iter().filter_map(|r| r.range).collect();
    ranges.sort_by_key(|r| r[6..].split('-').next().unwrap().parse::<u64>().unwrap());
    assert_eq!(ranges, slice_ranges(0..3, 8));
    assert_eq!(a.request_count(), 0);
    // The default route keeps [slice]'s 4 bytes.
    let resp = get_host(server.local_addr(), "/obj/8/s", "other.test");
    assert_eq!(resp.body, object_bytes("s", 0, 7));
    let mut ranges: Vec<String> = a.requests().into_iter().filter_map(|r| r.range).collect();
    ranges.sort();
    assert_eq!(ranges, slice_ranges(0..2, 4));
}

// ---------------------------------------------------------------------------
// Per-route slicing rules
// ---------------------------------------------------------------------------

/// A server whose routes (all to `origin`) set one rule each, by Host.
fn rules_server(origin: &DemoOrigin) -> Server {
    let setup = Setup {
        slice_size: 4,
        ..Setup::default()
    };
    let o = origin.addr();
    let routes = format!(
        "[[route]]\nhost = \"exclude.test\"\norigin = \"{o}\"\nexclude = [\"*.m3u8\"]\n\
         [[route]]\nhost = \"include.test\"\norigin = \"{o}\"\ninclude = [\"/obj/*\"]\n\
         [[route]]\nhost = \"min.test\"\norigin = \"{o}\"\nmin_slice_bytes = 1000\n"
    );
    start_server(&format!("{}{routes}", config_text(o, &setup)))
}

#[test]
fn excluded_paths_reach_the_origin_once_with_the_clients_range() {
    let origin = DemoOrigin::start().unwrap();
    let server = rules_server(&origin);
    let addr = server.local_addr();
    let resp = get_host(addr, "/obj/100/x.m3u8", "exclude.test");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, object_bytes("x.m3u8", 0, 99));
    let reqs = origin.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].range, None, "an excluded path got a slice Range");
    origin.clear();

    let resp = get(
        addr,
        "/obj/100/x.m3u8",
        &[("Host", "exclude.test"), ("Range", "bytes=10-29")],
    )
    .unwrap();
    assert_eq!(resp.status, 206);
    assert_eq!(resp.header("content-range"), Some("bytes 10-29/100"));
    assert_eq!(resp.body, object_bytes("x.m3u8", 10, 29));
    let reqs = origin.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].range.as_deref(), Some("bytes=10-29"));
    origin.clear();

    // Other paths on that route are still sliced.
    let resp = get_host(addr, "/obj/8/x.ts", "exclude.test");
    assert_eq!(resp.body, object_bytes("x.ts", 0, 7));
    assert_eq!(origin.request_count(), 2);
}

#[test]
fn only_included_paths_are_sliced() {
    let origin = DemoOrigin::start().unwrap();
    let server = rules_server(&origin);
    let addr = server.local_addr();
    let resp = get_host(addr, "/obj/8/i", "include.test");
    assert_eq!(resp.body, object_bytes("i", 0, 7));
    let mut ranges: Vec<String> = origin
        .requests()
        .into_iter()
        .filter_map(|r| r.range)
        .collect();
    ranges.sort();
    assert_eq!(ranges, slice_ranges(0..2, 4));
    origin.clear();
    // `stall` without stall_ms serves like `obj`, on a path outside the pattern.
    let resp = get_host(addr, "/stall/8/i", "include.test");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, object_bytes("i", 0, 7));
    let reqs = origin.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].range, None);
}

#[test]
fn objects_under_min_slice_bytes_are_fetched_whole_as_one_slice() {
    let origin = DemoOrigin::start().unwrap();
    let server = rules_server(&origin);
    let resp = get_host(server.local_addr(), "/obj/100/small", "min.test");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, object_bytes("small", 0, 99));
    // The probe learns the length (100 < 1000); then the whole object is one
    // slice of min_slice_bytes: one request, cached whole when cacheable.
    let reqs = origin.requests();
    let ranges: Vec<Option<String>> = reqs.iter().map(|r| r.range.clone()).collect();
    assert_eq!(
        ranges,
        vec![
            Some("bytes=0-3".to_string()),
            Some("bytes=0-999".to_string())
        ],
        "{reqs:?}"
    );
    origin.clear();
    // The same object on the default route (min_slice_bytes = 0) is sliced.
    let resp = get_host(server.local_addr(), "/obj/100/small", "other.test");
    assert_eq!(resp.body, object_bytes("small", 0, 99));
    assert_eq!(origin.request_count(), 25);
}

//! Several ranges in one request: `multipart/byteranges` answers assembled
//! from slices, each part checked against the object, and `max_ranges = 1`
//! turning multipart off.

mod common;

use common::*;

/// Parse a multipart/byteranges body into (Content-Range, bytes) parts.
fn multipart_parts(resp: &HttpResponse) -> Vec<(String, Vec<u8>)> {
    let ctype = resp.header("content-type").expect("a content type");
    let boundary = ctype
        .split("boundary=")
        .nth(1)
        .expect("a boundary parameter");
    let delimiter = format!("--{boundary}");
    let body = &resp.body;
    let mut parts = Vec::new();
    let mut at = 0;
    let find = |from: usize, needle: &[u8]| {
        body[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    while let Some(start) = find(at, delimiter.as_bytes()) {
        let after = start + delimiter.len();
        if body[after..].starts_with(b"--") {
            assert_eq!(
                &body[after..],
                b"--\r\n",
                "the closing delimiter ends the body"
            );
            break;
        }
        let head_end = find(after, b"\r\n\r\n").expect("part headers end");
        let head = String::from_utf8_lossy(&body[after..head_end]).to_string();
        let range = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .expect("each part has a Content-Range")
            .to_string();
        let data_start = head_end + 4;
        let next = find(data_start, format!("\r\n{delimiter}").as_bytes()).expect("next delimiter");
        parts.push((range, body[data_start..next].to_vec()));
        at = next + 2;
    }
    parts
}

#[test]
fn several_ranges_answer_multipart_byteranges_assembled_from_slices() {
    const S: u64 = 2;
    let h = Harness::with_slices(S);
    // (Range, expected parts as (first, last)), all of a 16-byte object.
    let cases: &[(&str, &[(u64, u64)])] = &[
        ("bytes=0-1,4-5", &[(0, 1), (4, 5)]),
        ("bytes=10-12, 1-2", &[(1, 2), (10, 12)]),
        ("bytes=0-3,2-5,9-", &[(0, 5), (9, 15)]),
        ("bytes=-2,0-0", &[(0, 0), (14, 15)]),
    ];
    for (range, want) in cases {
        h.origin.clear();
        let resp = h.get("/obj/16/m", &[("Range", range)]);
        assert_eq!(resp.status, 206, "{range}");
        assert!(resp.complete, "{range}");
        assert_eq!(
            resp.header("content-length").map(str::to_string),
            Some(resp.body.len().to_string()),
            "{range}"
        );
        let parts = multipart_parts(&resp);
        assert_eq!(parts.len(), want.len(), "{range}");
        for ((cr, bytes), (a, b)) in parts.iter().zip(want.iter()) {
            assert_eq!(cr, &format!("bytes {a}-{b}/16"), "{range}");
            assert_eq!(bytes, &object_bytes("m", *a, *b), "{range}");
        }
    }
    // Ranges that coalesce into one are a plain 206.
    let one = h.get("/obj/16/m", &[("Range", "bytes=0-1,2-3")]);
    assert_eq!(one.status, 206);
    assert_eq!(one.header("content-range"), Some("bytes 0-3/16"));
    assert_eq!(one.body, object_bytes("m", 0, 3));
    // All unsatisfiable: 416.
    let none = h.get("/obj/16/m", &[("Range", "bytes=20-30,40-")]);
    assert_eq!(none.status, 416);
    assert_eq!(none.header("content-range"), Some("bytes */16"));
    // More than 16 parts: the whole object.
    let many = format!(
        "bytes={}",
        (0..17)
            .map(|i| format!("{}-{}", 40 + i * 2, 40 + i * 2))
            .collect::<Vec<_>>()
            .join(",")
    );
    let big = h.get("/obj/100/m2", &[("Range", many.as_str())]);
    assert_eq!(big.status, 200);
    assert_eq!(big.body, object_bytes("m2", 0, 99));
}

/// `max_ranges` bounds multipart answers: with 1, several ranges get the whole object.
#[test]
fn max_ranges_of_one_turns_multipart_off() {
    let origin = DemoOrigin::start().unwrap();
    let text = config_text(origin.addr(), &Setup::default())
        .replace("[slice]\n", "[slice]\nmax_ranges = 1\n");
    let config = edgeslice::config::Config::from_toml(&text).unwrap();
    let server = edgeslice::server::runtime::Server::start(&config).unwrap();
    let resp = get(
        server.local_addr(),
        "/obj/16/mr",
        &[("Range", "bytes=0-1,4-5")],
    )
    .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, object_bytes("mr", 0, 15));
    server.shutdown();
}

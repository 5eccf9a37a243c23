//! Property tests of everything that parses bytes a peer chose: the client's
//! `Range`, the origin's `Content-Range`, request and response heads, the
//! framing headers, and the slice plan built from what they yield.
//!
//! cargo-fuzz needs a nightly toolchain, so these run under proptest in CI,
//! 2000 cases per property by default (the file runs in seconds).
//! Longer run: `PROPTEST_CASES=1000000 cargo test --release --test fuzz`.
//!
//! Failing inputs are not persisted to `proptest-regressions/`: a case that
//! ever fails is kept below as a plain `#[test]` instead.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use bytes::BytesMut;
use edgeslice::http::h1::{content_length, request_framing, BodyFraming, HeadError, LimitedHead};
use edgeslice::http::range::{
    parse_content_range, parse_range, ByteRangeSpec, ContentRange, RangeRequest,
};
use edgeslice::slice::plan::SlicePlan;
use http::{HeaderMap, HeaderName, HeaderValue};
use monoio_codec::{Decoded, Decoder};
use monoio_http::h1::codec::decoder::{RequestHeadDecoder, ResponseHeadDecoder};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

use common::{object_bytes, Harness};

/// Cases per property: `PROPTEST_CASES`, else a CI-friendly 2000.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The server's default `max_request_head_bytes`.
const HEAD_LIMIT: usize = 64 * 1024;

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// Bytes drawn mostly from `alphabet`, sometimes from anywhere.
fn bytes_from(alphabet: &'static [u8], max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        8 => proptest::sample::select(alphabet),
        1 => any::<u8>(),
    ];
    proptest::collection::vec(byte, 0..max_len)
}

/// Anything, or something that looks like a Range header.
fn range_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        bytes_from(b"0123456789-,= \tbytesBYTES", 64),
        bytes_from(b"0123456789-, \t", 64).prop_map(|tail| [&b"bytes="[..], &tail].concat()),
    ]
}

/// Anything, or something that looks like a Content-Range header.
fn content_range_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        bytes_from(b"0123456789-/* \tbytesBYTES", 64),
        bytes_from(b"0123456789-/*", 48).prop_map(|tail| [&b"bytes "[..], &tail].concat()),
    ]
}

/// Numbers around the edges as well as anywhere.
fn edgy_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..1024,
        (0u64..1024).prop_map(|d| u64::MAX - d),
    ]
}

fn valid_spec() -> impl Strategy<Value = ByteRangeSpec> {
    prop_oneof![
        (edgy_u64(), edgy_u64()).prop_map(|(x, y)| ByteRangeSpec::FromTo(x.min(y), x.max(y))),
        edgy_u64().prop_map(ByteRangeSpec::From),
        edgy_u64().prop_map(ByteRangeSpec::Suffix),
    ]
}

fn spec_text(spec: ByteRangeSpec) -> String {
    match spec {
        ByteRangeSpec::FromTo(a, b) => format!("{a}-{b}"),
        ByteRangeSpec::From(a) => format!("{a}-"),
        ByteRangeSpec::Suffix(n) => format!("-{n}"),
    }
}

const TCHAR: &[u8] =
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const PATH_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/";
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "PURGE",
];

fn token() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(TCHAR), 1..24)
        .prop_map(|b| String::from_utf8(b).expect("tchars are ASCII"))
}

/// Visible ASCII with inner spaces; no leading or trailing whitespace, which
/// the parser is allowed to strip.
fn field_value() -> impl Strategy<Value = String> {
    let inner: Vec<u8> = (0x20..=0x7e).collect();
    let visible: Vec<u8> = (0x21..=0x7e).collect();
    prop_oneof![
        1 => Just(String::new()),
        8 => (
            proptest::sample::select(visible.clone()),
            proptest::collection::vec(proptest::sample::select(inner), 0..40),
            proptest::sample::select(visible),
        )
            .prop_map(|(first, middle, last)| {
                let mut v = vec![first];
                v.extend(middle);
                v.push(last);
                String::from_utf8(v).expect("visible ASCII")
            }),
    ]
}

#[derive(Debug, Clone)]
struct Head {
    method: &'static str,
    target: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn wire(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

fn valid_head() -> impl Strategy<Value = Head> {
    (
        proptest::sample::select(METHODS),
        proptest::collection::vec(proptest::sample::select(PATH_CHARS), 0..60),
        proptest::collection::vec((token(), field_value()), 0..20),
    )
        .prop_map(|(method, path, headers)| Head {
            method,
            target: format!("/{}", String::from_utf8(path).expect("ASCII")),
            headers,
        })
}

/// Anything, or a head-shaped message whose lines are drawn from the bytes
/// that matter to an HTTP/1 parser.
fn head_like(start_line: &'static str) -> impl Strategy<Value = Vec<u8>> {
    const HEADISH: &[u8] = b"aZ09-_!~:;, \t\r\n\r\n/?=%\x00\x7f\x80\xff";
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        bytes_from(HEADISH, 512)
            .prop_map(move |middle| { [start_line.as_bytes(), &middle, b"\r\n\r\n"].concat() }),
        (bytes_from(HEADISH, 64), bytes_from(HEADISH, 64)).prop_map(move |(name, value)| {
            [start_line.as_bytes(), &name, b": ", &value, b"\r\n\r\n"].concat()
        }),
    ]
}

/// Header values as httparse hands them on: HTAB, SP..~ and obs-text.
fn header_value_bytes() -> impl Strategy<Value = Vec<u8>> {
    let allowed = |b: &u8| *b == b'\t' || (0x20..=0x7e).contains(b) || *b >= 0x80;
    prop_oneof![
        proptest::collection::vec(
            proptest::sample::select((0..=255).filter(allowed).collect::<Vec<u8>>()),
            0..32
        ),
        bytes_from(b"0123456789, \t+-chunkedCHUNKEDgzip", 32)
            .prop_map(move |v| v.into_iter().filter(allowed).collect()),
    ]
}

/// Decode `wire` in two reads split at `split`, as a socket may deliver it.
fn decode_in_two<D: Decoder>(
    decoder: &mut D,
    wire: &[u8],
    split: usize,
) -> Result<Decoded<D::Item>, D::Error> {
    let split = split.min(wire.len());
    let mut buf = BytesMut::from(&wire[..split]);
    match decoder.decode(&mut buf)? {
        Decoded::Some(item) => return Ok(Decoded::Some(item)),
        Decoded::Insufficient | Decoded::InsufficientAtLeast(_) => {}
    }
    buf.extend_from_slice(&wire[split..]);
    decoder.decode(&mut buf)
}

// ---------------------------------------------------------------------------
// range::parse_range
// ---------------------------------------------------------------------------

fn lengths_to_try(spec: ByteRangeSpec) -> Vec<u64> {
    let mut lens = vec![0, 1, 2, 3, 10, 1 << 20, u64::MAX - 1, u64::MAX];
    let numbers = match spec {
        ByteRangeSpec::FromTo(a, b) => vec![a, b],
        ByteRangeSpec::From(a) | ByteRangeSpec::Suffix(a) => vec![a],
    };
    for n in numbers {
        lens.extend([n.saturating_sub(1), n, n.saturating_add(1)]);
    }
    lens
}

fn assert_resolves_inside(spec: ByteRangeSpec) -> Result<(), TestCaseError> {
    for len in lengths_to_try(spec) {
        if let Some((a, b)) = spec.resolve(len) {
            prop_assert!(
                a <= b && b < len,
                "{spec:?} resolved against {len} to {a}-{b}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parse_range_never_panics_and_resolves_inside(value in range_like()) {
        match parse_range(&value) {
            RangeRequest::Full => {}
            RangeRequest::Single(spec) => assert_resolves_inside(spec)?,
            RangeRequest::Multi(specs) => {
                prop_assert!(specs.len() >= 2 && specs.len() <= edgeslice::http::range::MAX_RANGES);
                for spec in specs {
                    assert_resolves_inside(spec)?;
                }
            }
        }
    }

    #[test]
    fn resolve_stays_inside_any_length(spec in valid_spec(), len in edgy_u64()) {
        if let Some((a, b)) = spec.resolve(len) {
            prop_assert!(a <= b && b < len, "{spec:?} resolved against {len} to {a}-{b}");
        }
    }

    #[test]
    fn parse_range_round_trips_one_spec(
        spec in valid_spec(),
        unit in proptest::sample::select(&["bytes", "BYTES", "Bytes"][..]),
        pad in proptest::sample::select(&["", " ", "\t", " \t "][..]),
    ) {
        let header = format!("{pad}{unit}={pad}{}{pad}", spec_text(spec));
        prop_assert_eq!(parse_range(header.as_bytes()), RangeRequest::Single(spec), "{:?}", header);
    }

    #[test]
    fn parse_range_round_trips_many_specs(
        specs in proptest::collection::vec(valid_spec(), 2..=edgeslice::http::range::MAX_RANGES),
    ) {
        let list: Vec<String> = specs.iter().copied().map(spec_text).collect();
        let header = format!("bytes={}", list.join(","));
        prop_assert_eq!(parse_range(header.as_bytes()), RangeRequest::Multi(specs));
    }

    #[test]
    fn parse_range_ignores_other_units(
        unit in "[a-zA-Z][a-zA-Z0-9_-]{0,11}",
        spec in valid_spec(),
    ) {
        prop_assume!(!unit.eq_ignore_ascii_case("bytes"));
        let header = format!("{unit}={}", spec_text(spec));
        prop_assert_eq!(parse_range(header.as_bytes()), RangeRequest::Full);
    }
}

// ---------------------------------------------------------------------------
// range::parse_content_range
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parse_content_range_never_panics_and_displays_back(value in content_range_like()) {
        if let Ok(got) = parse_content_range(&value) {
            let text = got.to_string();
            prop_assert_eq!(parse_content_range(text.as_bytes()), Ok(got), "{:?}", text);
            if let ContentRange::Bytes { first, last, total } = got {
                prop_assert!(first <= last);
                prop_assert!(total.is_none_or(|total| last < total));
            }
        }
    }

    #[test]
    fn parse_content_range_reads_back_what_is_written(
        x in edgy_u64(),
        y in edgy_u64(),
        z in edgy_u64(),
        known_total in any::<bool>(),
    ) {
        let mut sorted = [x, y, z];
        sorted.sort_unstable();
        let [first, last, total] = sorted;
        prop_assume!(last < total || !known_total);
        let want = ContentRange::Bytes { first, last, total: known_total.then_some(total) };
        let header = match want {
            ContentRange::Bytes { total: Some(total), .. } => format!("bytes {first}-{last}/{total}"),
            _ => format!("bytes {first}-{last}/*"),
        };
        prop_assert_eq!(parse_content_range(header.as_bytes()), Ok(want));
        prop_assert_eq!(want.to_string(), header);
        let unsatisfied = format!("bytes */{total}");
        prop_assert_eq!(
            parse_content_range(unsatisfied.as_bytes()),
            Ok(ContentRange::Unsatisfied { total })
        );
    }
}

// ---------------------------------------------------------------------------
// Request and response heads (monoio-http's decoders behind LimitedHead)
// ---------------------------------------------------------------------------

/// Run `decode` on `wire`, turning a panic into a test failure with the input.
fn no_panic<T>(what: &str, wire: &[u8], decode: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    catch_unwind(AssertUnwindSafe(decode)).map_err(|_| {
        TestCaseError::fail(format!(
            "{what} panicked on {:?}",
            String::from_utf8_lossy(wire)
        ))
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn request_head_decoder_never_panics(wire in head_like("GET / HTTP/1.1\r\n"), split in 0usize..600) {
        no_panic("LimitedHead<RequestHeadDecoder>", &wire, || {
            let mut decoder = LimitedHead::new(RequestHeadDecoder, HEAD_LIMIT);
            let _ = decode_in_two(&mut decoder, &wire, split);
        })?;
    }

    #[test]
    fn response_head_decoder_never_panics(wire in head_like("HTTP/1.1 206 Partial Content\r\n"), split in 0usize..600) {
        no_panic("ResponseHeadDecoder", &wire, || {
            let _ = decode_in_two(&mut ResponseHeadDecoder, &wire, split);
            let mut limited = LimitedHead::new(ResponseHeadDecoder, HEAD_LIMIT);
            let _ = decode_in_two(&mut limited, &wire, split);
        })?;
    }

    #[test]
    fn valid_request_head_decodes_to_itself(head in valid_head(), split in 0usize..2048, trailing in "[a-z]{0,8}") {
        let wire = head.wire();
        let mut with_next = wire.clone();
        with_next.extend_from_slice(trailing.as_bytes());
        let mut decoder = LimitedHead::new(RequestHeadDecoder, HEAD_LIMIT);
        let split = split.min(wire.len());
        let mut buf = BytesMut::from(&with_next[..split]);
        let first = decoder.decode(&mut buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
        buf.extend_from_slice(&with_next[split..]);
        let got = match first {
            Decoded::Some(got) => got,
            _ => match decoder.decode(&mut buf) {
                Ok(Decoded::Some(got)) => got,
                Ok(_) => return Err(TestCaseError::fail("a complete head decoded as insufficient")),
                Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
            },
        };
        // The bytes after the head (the next request) stay in the buffer.
        prop_assert_eq!(&buf[..], trailing.as_bytes());
        prop_assert_eq!(got.method.as_str(), head.method);
        prop_assert_eq!(got.uri.to_string(), head.target.clone());
        prop_assert_eq!(got.version, http::Version::HTTP_11);
        let mut want = HeaderMap::new();
        for (name, value) in &head.headers {
            want.append(
                HeaderName::from_bytes(name.as_bytes()).expect("token"),
                HeaderValue::from_str(value).expect("visible ASCII"),
            );
        }
        prop_assert_eq!(got.headers, want);
    }

    #[test]
    fn request_head_over_the_limit_is_too_large(head in valid_head(), cut in 1usize..4096) {
        let wire = head.wire();
        let limit = wire.len().saturating_sub(cut).max(1);
        prop_assume!(limit < wire.len());
        let mut decoder = LimitedHead::new(RequestHeadDecoder, limit);
        let got = decoder.decode(&mut BytesMut::from(&wire[..]));
        prop_assert!(matches!(got, Err(HeadError::TooLarge(l)) if l == limit), "{:?}", got.map(|_| ()));
        // An unfinished head already past the limit is refused too.
        let unfinished = &wire[..wire.len() - 2];
        let mut decoder = LimitedHead::new(RequestHeadDecoder, unfinished.len() - 1);
        let got = decoder.decode(&mut BytesMut::from(unfinished));
        prop_assert!(matches!(got, Err(HeadError::TooLarge(_))), "{:?}", got.map(|_| ()));
        // At exactly its length, the same head is accepted.
        let mut decoder = LimitedHead::new(RequestHeadDecoder, wire.len());
        prop_assert!(matches!(decoder.decode(&mut BytesMut::from(&wire[..])), Ok(Decoded::Some(_))));
    }
}

/// A head whose one header name is 65,536 bytes: one past what
/// `http::HeaderName` accepts, while the whole head still fits the server's
/// default 64 KiB limit plus one read.
fn long_name_head() -> Vec<u8> {
    let name = "a".repeat(1 << 16);
    format!("GET / HTTP/1.1\r\n{name}: x\r\n\r\n").into_bytes()
}

// monoio-http 0.3.12 decoder.rs:149 (request) and :210 (response):
// `HeaderName::from_bytes(..).unwrap()`. httparse accepts a token name of any
// length, `http` refuses one over 65,535 bytes, so the unwrap panics. The
// size check in `LimitedHead::decode` runs only after the inner decoder.
#[test]
fn request_head_with_a_64k_header_name_is_an_error_not_a_panic() {
    let wire = long_name_head();
    let got = catch_unwind(|| {
        let mut decoder = LimitedHead::new(RequestHeadDecoder, HEAD_LIMIT);
        decoder.decode(&mut BytesMut::from(&wire[..])).map(|_| ())
    });
    assert!(got.is_ok(), "LimitedHead<RequestHeadDecoder> panicked");
    assert!(got.unwrap().is_err());
}

#[test]
fn response_head_with_a_64k_header_name_is_an_error_not_a_panic() {
    let name = "a".repeat(1 << 16);
    let wire = format!("HTTP/1.1 200 OK\r\n{name}: x\r\n\r\n").into_bytes();
    let got = catch_unwind(|| {
        let mut decoder = LimitedHead::new(ResponseHeadDecoder, HEAD_LIMIT);
        decoder.decode(&mut BytesMut::from(&wire[..])).map(|_| ())
    });
    assert!(got.is_ok(), "LimitedHead<ResponseHeadDecoder> panicked");
    assert!(got.unwrap().is_err());
}

/// The same head over a socket: the first 60,000 bytes, a pause, then the
/// rest in one write. Every read before the last leaves the buffer under the
/// 64 KiB limit and without a blank line, so the decoder only runs on the
/// whole head, and panics.
#[test]
fn server_survives_a_64k_header_name() {
    let h = Harness::start(common::Setup {
        slice_size: 1024,
        workers: 1,
        ..Default::default()
    });
    let wire = long_name_head();
    let mut stream = TcpStream::connect(h.addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(&wire[..60_000]).expect("first part");
    std::thread::sleep(Duration::from_millis(200));
    stream.write_all(&wire[60_000..]).expect("rest");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let status = String::from_utf8_lossy(answer.get(..12).unwrap_or_default()).into_owned();
    assert!(
        status.starts_with("HTTP/1.1 4"),
        "got {status:?}, expected a 4xx for an oversized header name"
    );
    let resp = common::get(h.addr(), "/obj/3000/after", &[]).expect("the worker still serves");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, object_bytes("after", 0, 2999));
}

// ---------------------------------------------------------------------------
// http1::request_framing and content_length
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn framing_never_panics_on_any_values(
        lengths in proptest::collection::vec(header_value_bytes(), 0..3),
        codings in proptest::collection::vec(header_value_bytes(), 0..3),
    ) {
        let mut headers = HeaderMap::new();
        for value in &lengths {
            headers.append(http::header::CONTENT_LENGTH, HeaderValue::from_bytes(value).expect("allowed bytes"));
        }
        for value in &codings {
            headers.append(http::header::TRANSFER_ENCODING, HeaderValue::from_bytes(value).expect("allowed bytes"));
        }
        let length = content_length(&headers);
        let framing = request_framing(&headers);
        if lengths.is_empty() {
            prop_assert_eq!(length.clone(), Ok(None));
        }
        match framing {
            Ok(BodyFraming::Length(n)) => {
                prop_assert!(n > 0);
                prop_assert_eq!(length, Ok(Some(n)));
                prop_assert!(codings.is_empty());
            }
            Ok(BodyFraming::Chunked) => prop_assert_eq!(length, Ok(None)),
            Ok(BodyFraming::Empty) => prop_assert!(matches!(length, Ok(None | Some(0)))),
            Ok(BodyFraming::UntilClose) => prop_assert!(false, "a request body never runs until close"),
            Err(_) => {}
        }
    }

    #[test]
    fn content_length_reads_back_any_number(n in edgy_u64(), repeats in 1usize..4, fields in 1usize..3) {
        let value = vec![n.to_string(); repeats].join(", ");
        let mut headers = HeaderMap::new();
        for _ in 0..fields {
            headers.append(http::header::CONTENT_LENGTH, HeaderValue::from_str(&value).expect("digits"));
        }
        prop_assert_eq!(content_length(&headers), Ok(Some(n)));
        let want = if n == 0 { BodyFraming::Empty } else { BodyFraming::Length(n) };
        prop_assert_eq!(request_framing(&headers).ok(), Some(want));
    }
}

// ---------------------------------------------------------------------------
// plan::SlicePlan
// ---------------------------------------------------------------------------

/// Slices walked one by one; longer plans are checked at both ends and at
/// random slices in between, with the middle counted arithmetically.
const WALK: u64 = 4096;

fn plan_input() -> impl Strategy<Value = (u64, u64, u64, u64)> {
    let sizes = prop_oneof![
        (1u64..=1_000_000_000_000, 1u64..(1 << 26)),
        (1u64..10_000, 1u64..64),
        (1u64..(1 << 30), 1u64..(1 << 20)),
    ];
    (sizes, any::<u64>(), any::<u64>()).prop_map(|((len, size), x, y)| {
        let (x, y) = (x % len, y % len);
        (len, size, x.min(y), x.max(y))
    })
}

/// The part of slice `k` the client gets, as absolute inclusive bytes.
fn part(plan: &SlicePlan, k: u64) -> Result<(u64, u64), TestCaseError> {
    let (start, end) = plan.slice_bounds(k);
    let (offset, len) = plan.client_part(k);
    prop_assert!(len >= 1, "slice {k} hands on nothing: {plan:?}");
    prop_assert!(start <= end && end < plan.object_len);
    prop_assert!(
        offset + len <= end - start + 1,
        "slice {k} part ({offset}, {len}) overruns the slice {start}-{end}"
    );
    Ok((start + offset, start + offset + len - 1))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn slice_plan_parts_cover_the_range_exactly(
        (len, size, a, b) in plan_input(),
        samples in proptest::collection::vec(any::<u64>(), 8),
    ) {
        let plan = SlicePlan::new(a, b, len, size);
        let count = plan.slice_count();
        prop_assert_eq!(plan.first_slice, a / size);
        prop_assert_eq!(plan.last_slice, b / size);
        prop_assert_eq!(plan.content_length(), b - a + 1);
        if count <= WALK {
            let mut next = a;
            for k in plan.slices() {
                let (lo, hi) = part(&plan, k)?;
                prop_assert_eq!(lo, next, "slice {} starts at {}, expected {}", k, lo, next);
                next = hi + 1;
            }
            prop_assert_eq!(next, b + 1);
        } else {
            // Both ends walked; every middle slice is whole, so the parts
            // add up to the range when the ends meet the middle.
            let (first_lo, first_hi) = part(&plan, plan.first_slice)?;
            let (last_lo, last_hi) = part(&plan, plan.last_slice)?;
            prop_assert_eq!(first_lo, a);
            prop_assert_eq!(last_hi, b);
            prop_assert_eq!(first_hi + 1, (plan.first_slice + 1) * size);
            prop_assert_eq!(last_lo, plan.last_slice * size);
            let middle = (count - 2) * size;
            prop_assert_eq!((first_hi - first_lo + 1) + middle + (last_hi - last_lo + 1), b - a + 1);
            let inner = plan.first_slice + 1..plan.last_slice;
            let picks = samples
                .iter()
                .map(|s| inner.start + s % (inner.end - inner.start))
                .chain([inner.start, inner.end - 1]);
            for k in picks {
                prop_assert_eq!(plan.client_part(k), (0, size), "middle slice {} is not whole", k);
                prop_assert_eq!(part(&plan, k)?, (k * size, (k + 1) * size - 1));
            }
        }
    }
}

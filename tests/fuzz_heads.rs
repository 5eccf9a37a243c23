//! Property tests of the heads a peer chose: request and response heads
//! (monoio-http's decoders behind `LimitedHead`) and the framing headers
//! (`request_framing`, `content_length`).
//!
//! cargo-fuzz needs a nightly toolchain, so these run under proptest in CI,
//! 2000 cases per property by default (the file runs in seconds).
//! Longer run: `PROPTEST_CASES=1000000 cargo test --release --test fuzz_heads`.
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
use http::{HeaderMap, HeaderName, HeaderValue};
use monoio_codec::{Decoded, Decoder};
use monoio_http::h1::codec::decoder::{RequestHeadDecoder, ResponseHeadDecoder};
use proptest::prelude::*;

use common::strategies::{bytes_from, config, edgy_u64};
use common::{object_bytes, Harness};

/// The server's default `max_request_head_bytes`.
const HEAD_LIMIT: usize = 64 * 1024;

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

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

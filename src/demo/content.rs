//! Deterministic object content and the small formats the built-in origin speaks.
//!
//! Every object's bytes are a pure function of its name and offset, so tests
//! can check any range a proxy hands on without storing the object.

/// Byte at `offset` of the object named `name`.
///
/// A splitmix64 of `fnv1a(name) ^ offset / 8`, taking byte `offset % 8`.
pub fn object_byte(name: &str, offset: u64) -> u8 {
    let word = splitmix64(fnv1a(name) ^ (offset / 8));
    word.to_le_bytes()[(offset % 8) as usize]
}

/// Bytes `[first, last]` inclusive of the object named `name`; empty if `last < first`.
pub fn object_bytes(name: &str, first: u64, last: u64) -> Vec<u8> {
    if last < first {
        return Vec::new();
    }
    let mut out = vec![0; (last - first + 1) as usize];
    fill_object(fnv1a(name), first, &mut out);
    out
}

/// Fills `out` with the object bytes starting at `offset`, eight at a time.
pub(crate) fn fill_object(name_hash: u64, mut offset: u64, out: &mut [u8]) {
    let mut i = 0;
    while i < out.len() {
        let word = splitmix64(name_hash ^ (offset / 8)).to_le_bytes();
        let within = (offset % 8) as usize;
        let take = (8 - within).min(out.len() - i);
        out[i..i + take].copy_from_slice(&word[within..within + take]);
        i += take;
        offset += take as u64;
    }
}

pub(crate) fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The name whose bytes version `version` of a `mut` object carries:
/// version 0 is the plain name, later ones `name#vN`.
pub fn versioned_name(name: &str, version: u64) -> String {
    if version == 0 {
        name.to_string()
    } else {
        format!("{name}#v{version}")
    }
}

/// A single `Range: bytes=` spec; anything else is ignored (answered 200).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RangeSpec {
    /// `a-b` or `a-`.
    From(u64, Option<u64>),
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl RangeSpec {
    pub(crate) fn parse(value: &str) -> Option<RangeSpec> {
        let (unit, spec) = value.trim().split_once('=')?;
        if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
            return None;
        }
        let (first, last) = spec.trim().split_once('-')?;
        let number = |s: &str| {
            let s = s.trim();
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        match (first.trim().is_empty(), last.trim().is_empty()) {
            (true, _) => number(last).map(RangeSpec::Suffix),
            (false, true) => number(first).map(|a| RangeSpec::From(a, None)),
            (false, false) => {
                let (a, b) = (number(first)?, number(last)?);
                (a <= b).then_some(RangeSpec::From(a, Some(b)))
            }
        }
    }

    /// Inclusive `(first, last)` within `len`, or `None` when unsatisfiable (416).
    pub(crate) fn resolve(self, len: u64) -> Option<(u64, u64)> {
        match self {
            _ if len == 0 => None,
            RangeSpec::From(first, _) if first >= len => None,
            RangeSpec::From(first, last) => Some((first, last.unwrap_or(u64::MAX).min(len - 1))),
            RangeSpec::Suffix(0) => None,
            RangeSpec::Suffix(n) => Some((len - n.min(len), len - 1)),
        }
    }
}

/// Unix seconds as an IMF-fixdate, e.g. `Tue, 15 Nov 1994 08:12:31 GMT`.
pub(crate) fn imf_fixdate(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, secs) = (unix / 86_400, unix % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The reason phrase of `status`.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

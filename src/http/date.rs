//! HTTP-dates (RFC 9110 5.6.7), read as robustly as that section
//! encourages: what `Date`, `Expires`, `Last-Modified` say, for the cache's
//! freshness rules ([`crate::cache::freshness`]). Pure.

use std::time::{Duration, SystemTime};

use http::{header, HeaderMap};

/// A date header's value, when it is one (RFC 9110 5.6.7).
pub fn date_field(headers: &HeaderMap, name: header::HeaderName) -> Option<SystemTime> {
    parse_date(headers.get(name)?.to_str().ok()?)
}

/// An HTTP-date (RFC 9110 5.6.7) in any of its three forms (IMF-fixdate,
/// RFC 850, asctime), read as robustly as that section encourages but no
/// further: the day and month names in any case, and a weekday that does
/// not match the date ignored; the layout exact (the suite's invalid forms,
/// a UTC zone, no comma, doubled spaces, a one-digit hour, stay invalid).
/// An RFC 850 two-digit year more than 50 years ahead is the century before.
pub fn parse_date(text: &str) -> Option<SystemTime> {
    if let Ok(at) = httpdate::parse_http_date(text) {
        return Some(at);
    }
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let short_day = |t: &str| DAYS.iter().any(|d| d[..3].eq_ignore_ascii_case(t));
    let long_day = |t: &str| DAYS.iter().any(|d| d.eq_ignore_ascii_case(t));
    let month = |t: &str| {
        MONTHS
            .iter()
            .position(|m| m.eq_ignore_ascii_case(t))
            .map(|i| i as u64 + 1)
    };
    let number = |t: &str| {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse::<u64>().ok())
            .flatten()
    };
    // "08:49:37"
    let clock = |t: &str| {
        let b = t.as_bytes();
        (b.len() == 8 && b[2] == b':' && b[5] == b':')
            .then(|| Some((number(&t[..2])?, number(&t[3..5])?, number(&t[6..])?)))
            .flatten()
    };
    let at = |i: usize| text.as_bytes().get(i).copied();
    let gmt = |t: &str| t.eq_ignore_ascii_case("GMT");
    let (day, mon, mut year, (h, m, sec), two_digit_year) = if text.len() == 29
        && text.is_ascii()
        && at(3) == Some(b',')
        && [4, 7, 11, 16, 25].iter().all(|&i| at(i) == Some(b' '))
        && short_day(&text[..3])
        && gmt(&text[26..])
    {
        // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
        let fields = (
            number(&text[5..7]),
            month(&text[8..11]),
            number(&text[12..16]),
        );
        (
            fields.0?,
            fields.1?,
            fields.2?,
            clock(&text[17..25])?,
            false,
        )
    } else if text.len() == 24
        && text.is_ascii()
        && [3, 7, 10, 19].iter().all(|&i| at(i) == Some(b' '))
        && short_day(&text[..3])
    {
        // asctime: "Sun Nov  6 08:49:37 1994"
        let day = text[8..10].strip_prefix(' ').unwrap_or(&text[8..10]);
        let fields = (number(day), month(&text[4..7]), number(&text[20..]));
        (
            fields.0?,
            fields.1?,
            fields.2?,
            clock(&text[11..19])?,
            false,
        )
    } else {
        // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
        let (weekday, rest) = text.split_once(", ")?;
        let b = rest.as_bytes();
        let layout = rest.is_ascii()
            && b.len() == 22
            && b[2] == b'-'
            && b[6] == b'-'
            && b[9] == b' '
            && b[18] == b' ';
        if !layout || !long_day(weekday) || !gmt(&rest[19..]) {
            return None;
        }
        let fields = (number(&rest[..2]), month(&rest[3..6]), number(&rest[7..9]));
        (fields.0?, fields.1?, fields.2?, clock(&rest[10..18])?, true)
    };
    if two_digit_year {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()?;
        let this_year = 1970 + now.as_secs() / 31_556_952;
        year += 2000;
        if year > this_year + 50 {
            year -= 100;
        }
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=month_days[mon as usize - 1]).contains(&day)
        || h > 23
        || m > 59
        || sec > 60
        || year < 1970
    {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
    let (y, mo) = if mon <= 2 {
        (year - 1, mon + 9)
    } else {
        (year, mon - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    let secs = days * 86_400 + h * 3_600 + m * 60 + sec;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9110 5.6.7: the three forms, names in any case, a weekday that
    /// does not match ignored, GMT or no zone only; 2-digit years. Before
    /// 7686c4b+7 only exact IMF-fixdate, RFC 850 and asctime with the right
    /// weekday were read, so `Expires: THU, 18 Aug 2050 ...` made an answer
    /// stale.
    #[test]
    fn dates_are_read_robustly() {
        let at = |t: &str| {
            parse_date(t).map(|d| d.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs())
        };
        let nov_1994 = Some(784_111_777);
        assert_eq!(at("Sun, 06 Nov 1994 08:49:37 GMT"), nov_1994);
        assert_eq!(at("Sunday, 06-Nov-94 08:49:37 GMT"), nov_1994);
        assert_eq!(at("Sun Nov  6 08:49:37 1994"), nov_1994);
        assert_eq!(at("SUN, 06 NOV 1994 08:49:37 gmt"), nov_1994);
        assert_eq!(at("Wed Nov  6 08:49:37 1994"), nov_1994, "a wrong weekday");
        assert_eq!(at("Thu Aug  8 02:01:18 2050"), Some(2_543_536_878));
        assert_eq!(at("Sun, 06 Nov 1994 08:49:37 PST"), None);
        assert_eq!(at("Sun, 06 Nov 1994 08:49:37 +0100"), None);
        assert_eq!(at("Sun, 06 Nov 1994 08:49:37 UTC"), None);
        assert_eq!(at("Sun 06 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(at("Sun,  06 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(at("Sun, 06-Nov-1994 08:49:37 GMT"), None);
        assert_eq!(at("Sun, 06 Nov 1994 8:49:37 GMT"), None);
        assert_eq!(at("0"), None);
        assert_eq!(at("Sun, 32 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(at("sun, 31 nov 1994 08:49:37 GMT"), None);
        assert_eq!(at("Thu, 29 feb 2024 00:00:00 GMT"), Some(1_709_164_800));
        assert_eq!(at("Thu, 29 feb 2023 00:00:00 GMT"), None);
        assert_eq!(at("Sun, 06 Nov 1994 24:49:37 GMT"), None);
        assert_eq!(at("06 Nov 1994"), None);
        assert_eq!(at("Sun, 06 Nov 1994 08:49:37 GMT, x"), None);
    }
}

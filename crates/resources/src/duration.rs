//! Go's `time.ParseDuration` syntax, which Dapr uses for every duration in its resources.

use std::time::Duration;

use crate::Invalid;

/// Units Go accepts, with their length in nanoseconds. Go takes both the micro sign (U+00B5)
/// and the Greek letter mu (U+03BC) for microseconds.
const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Go stores durations as signed 64-bit nanoseconds; longer ones are refused there, so they
/// are refused here too.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Fraction digits beyond this many cannot change the result by a nanosecond even in hours.
const FRACTION_DIGITS_KEPT: usize = 18;

/// Parses a duration written the way Go's `time.ParseDuration` reads it: a sequence of
/// decimal numbers, each with an optional fraction and a unit (`ns`, `us`/`µs`, `ms`, `s`,
/// `m`, `h`), such as `300ms`, `1.5h` or `2h45m`. A bare `0` is allowed; negative durations
/// are not.
pub fn parse_go_duration(text: &str) -> Result<Duration, Invalid> {
    let invalid =
        |why: &str| Invalid::new(format!("'{text}' is not a duration ({why}); write it like 5s, 1m30s or 250ms"));
    if text.starts_with('-') {
        return Err(Invalid::new(format!("'{text}' is negative; durations must be zero or more")));
    }
    let body = text.strip_prefix('+').unwrap_or(text);
    if body == "0" {
        return Ok(Duration::ZERO);
    }
    if body.is_empty() {
        return Err(invalid("it is empty"));
    }
    let mut rest = body;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (whole, after_whole) = split_digits(rest);
        let (fraction, after_number) = match after_whole.strip_prefix('.') {
            Some(after_dot) => split_digits(after_dot),
            None => ("", after_whole),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(invalid("expected a number"));
        }
        let unit_len = after_number.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_len);
        let unit_nanos = match UNITS.iter().find(|(name, _)| *name == unit) {
            Some((_, nanos)) => *nanos,
            None if unit.is_empty() => return Err(invalid("a number has no unit")),
            None => return Err(invalid(&format!("unknown unit '{unit}'"))),
        };
        total = whole_nanos(whole, unit_nanos)
            .and_then(|nanos| total.checked_add(nanos))
            .map(|sum| sum + fraction_nanos(fraction, unit_nanos))
            .filter(|sum| *sum <= MAX_NANOS)
            .ok_or_else(|| invalid("it is longer than Go allows, about 292 years"))?;
        rest = after_unit;
    }
    let seconds = u64::try_from(total / 1_000_000_000).expect("bounded by MAX_NANOS");
    let nanos = u32::try_from(total % 1_000_000_000).expect("below one second");
    Ok(Duration::new(seconds, nanos))
}

/// A duration as some of daprd's component fields read it (a state store's `cleanupInterval`, say): a Go
/// duration, or a bare whole number counting `unit`s; a negative value, which those fields take as "off",
/// is zero.
pub fn parse_go_duration_or_count(text: &str, unit: Duration) -> Result<Duration, Invalid> {
    if let Ok(count) = text.parse::<i64>() {
        let count = u32::try_from(count.max(0))
            .map_err(|_| Invalid::new(format!("'{text}' is too long a duration; write it like 1h or 30m")))?;
        return unit
            .checked_mul(count)
            .ok_or_else(|| Invalid::new(format!("'{text}' is too long a duration; write it like 1h or 30m")));
    }
    match text.strip_prefix('-') {
        Some(positive) => parse_go_duration(positive).map(|_| Duration::ZERO),
        None => parse_go_duration(text),
    }
}

fn split_digits(text: &str) -> (&str, &str) {
    let len = text.bytes().take_while(u8::is_ascii_digit).count();
    text.split_at(len)
}

/// `digits` whole units in nanoseconds, or `None` if that cannot be a Go duration.
fn whole_nanos(digits: &str, unit_nanos: u128) -> Option<u128> {
    digits
        .bytes()
        .try_fold(0u128, |acc, digit| {
            acc.checked_mul(10)
                .and_then(|acc| acc.checked_add(u128::from(digit - b'0')))
                .filter(|acc| acc.saturating_mul(unit_nanos) <= MAX_NANOS)
        })
        .map(|count| count * unit_nanos)
}

/// The fraction `0.<digits>` of a unit in nanoseconds, rounded down as Go does.
fn fraction_nanos(digits: &str, unit_nanos: u128) -> u128 {
    let kept = &digits[..digits.len().min(FRACTION_DIGITS_KEPT)];
    let numerator = kept.bytes().fold(0u128, |acc, digit| acc * 10 + u128::from(digit - b'0'));
    let scale = 10u128.pow(u32::try_from(kept.len()).expect("at most 18 digits"));
    numerator * unit_nanos / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_fields_also_take_counts_and_negatives_as_off() {
        let second = Duration::from_secs(1);
        assert_eq!(parse_go_duration_or_count("3600", second), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_go_duration_or_count("1h30m", second), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration_or_count("-1", second), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration_or_count("-5m", second), Ok(Duration::ZERO));
        assert!(parse_go_duration_or_count("soon", second).is_err());
        assert!(parse_go_duration_or_count("-soon", second).is_err());
        assert!(parse_go_duration_or_count("99999999999", second).is_err());
    }

    #[test]
    fn accepts_go_syntax() {
        let cases = [
            ("0", Duration::ZERO),
            ("+5s", Duration::from_secs(5)),
            ("5s", Duration::from_secs(5)),
            ("1m30s", Duration::from_secs(90)),
            ("100ms", Duration::from_millis(100)),
            ("1.5h", Duration::from_secs(5400)),
            (".5s", Duration::from_millis(500)),
            ("5.s", Duration::from_secs(5)),
            ("300us", Duration::from_micros(300)),
            ("300\u{b5}s", Duration::from_micros(300)),
            ("300\u{3bc}s", Duration::from_micros(300)),
            ("42ns", Duration::from_nanos(42)),
            ("2h45m0.5s", Duration::from_millis(9_900_500)),
            ("1.000000001s", Duration::new(1, 1)),
            ("0.0000000019s", Duration::new(0, 1)),
            ("0s", Duration::ZERO),
            ("2562047h", Duration::from_secs(2_562_047 * 3600)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_go_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn refuses_what_go_refuses() {
        let cases = [
            ("", "empty"),
            ("5", "no unit"),
            ("10", "no unit"),
            ("5x", "unknown unit 'x'"),
            ("5 s", "unknown unit ' s'"),
            ("1h30", "no unit"),
            (".s", "expected a number"),
            ("s", "expected a number"),
            ("-5s", "negative"),
            ("2562048h", "longer than Go allows"),
            ("99999999999999999999999999999999999999999s", "longer than Go allows"),
        ];
        for (text, expected) in cases {
            let error = parse_go_duration(text).expect_err(text);
            assert!(error.reason.contains(expected), "{text}: {error}");
        }
    }
}

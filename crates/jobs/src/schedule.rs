//! A job's `schedule` as Dapr's scheduler reads it: six cron fields with seconds (robfig/cron's grammar, Sunday
//! = 0), the descriptors `@yearly` … `@hourly`, and `@every <Go duration>`; and `dueTime` / `ttl`, each an RFC 3339
//! time or a Go duration from now.
//!
//! The `cron` crate does the cron arithmetic; only what differs from its grammar is translated here: its
//! days of the week count from Sunday = 1, robfig's from Sunday = 0.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// When a job's occurrences fall.
#[derive(Clone, Debug)]
pub enum Schedule {
    /// A cron expression (descriptors included).
    Cron(Box<cron::Schedule>),
    /// `@every <duration>`: the first occurrence one period after the start, then every period.
    Every(Duration),
}

/// robfig/cron's descriptors, as six-field expressions.
const DESCRIPTORS: [(&str, &str); 7] = [
    ("@yearly", "0 0 0 1 1 *"),
    ("@annually", "0 0 0 1 1 *"),
    ("@monthly", "0 0 0 1 * *"),
    ("@weekly", "0 0 0 * * 0"),
    ("@daily", "0 0 0 * * *"),
    ("@midnight", "0 0 0 * * *"),
    ("@hourly", "0 0 * * * *"),
];

impl Schedule {
    /// Reads a `schedule`, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        if let Some(period) = text.strip_prefix("@every ") {
            let period = outrigger_resources::parse_go_duration(period.trim())
                .map_err(|_| format!("'{text}': @every takes a Go duration such as 10s, 5m or 1h30m"))?;
            if period.is_zero() {
                return Err(format!("'{text}': the period of @every must be more than zero"));
            }
            return Ok(Schedule::Every(period));
        }
        let expression = match DESCRIPTORS.iter().find(|(name, _)| name.eq_ignore_ascii_case(text)) {
            Some((_, expression)) => (*expression).to_owned(),
            None if text.starts_with('@') => {
                return Err(format!(
                    "'{text}' is not a descriptor: use @yearly, @monthly, @weekly, @daily, @hourly or @every <duration>"
                ))
            }
            None => text.to_owned(),
        };
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let [second, minute, hour, day, month, weekday] = fields[..] else {
            return Err(format!(
                "'{text}' has {} fields; a schedule has six (second minute hour day-of-month month day-of-week), \
                 e.g. '0 30 * * * *' for every hour at half past",
                fields.len()
            ));
        };
        let weekday = sunday_is_one(weekday)?;
        let translated = format!("{second} {minute} {hour} {day} {month} {weekday}");
        let schedule = cron::Schedule::from_str(&translated).map_err(|err| format!("'{text}': {err}"))?;
        Ok(Schedule::Cron(Box::new(schedule)))
    }

    /// The first occurrence strictly after `after`, if there is one.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron(schedule) => schedule.after(&after).next(),
            Schedule::Every(period) => {
                chrono::Duration::from_std(*period).ok().and_then(|period| after.checked_add_signed(period))
            }
        }
    }
}

/// A day-of-week field with robfig's numbers (Sunday = 0 … Saturday = 6) in the `cron` crate's (Sunday = 1 …
/// Saturday = 7). Step values (after `/`) are counts, not days, and stay.
fn sunday_is_one(field: &str) -> Result<String, String> {
    let mut translated = String::with_capacity(field.len() + 2);
    let mut chars = field.chars().peekable();
    let mut after_slash = false;
    while let Some(next) = chars.next() {
        if next.is_ascii_digit() {
            let mut number = String::from(next);
            while let Some(digit) = chars.next_if(char::is_ascii_digit) {
                number.push(digit);
            }
            if after_slash {
                translated.push_str(&number);
            } else {
                let day: u32 = number.parse().map_err(|_| format!("day of week '{number}' is not a number"))?;
                // robfig reads 7 as Sunday too.
                let day = if day == 7 { 0 } else { day };
                if day > 6 {
                    return Err(format!("day of week {day} is out of range: use 0-6 (Sunday = 0) or SUN-SAT"));
                }
                translated.push_str(&(day + 1).to_string());
            }
            after_slash = false;
        } else {
            after_slash = next == '/';
            translated.push(next);
        }
    }
    Ok(translated)
}

/// A point in time given as an RFC 3339 time or as a Go duration from `now` (`dueTime`, `ttl`).
pub fn time_or_delay(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let delay = outrigger_resources::parse_go_duration(text)
        .map_err(|_| format!("'{text}' is neither an RFC 3339 time nor a Go duration such as 10s or 1h"))?;
    chrono::Duration::from_std(delay)
        .ok()
        .and_then(|delay| now.checked_add_signed(delay))
        .ok_or_else(|| format!("'{text}' is too far in the future"))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn cron_fields_count_seconds_and_sunday_is_zero() {
        let every_ten_seconds = Schedule::parse("*/10 * * * * *").unwrap();
        assert_eq!(every_ten_seconds.next_after(at("2026-12-04T10:00:03Z")), Some(at("2026-12-04T10:00:10Z")));
        // 2026-12-06 is a Sunday.
        let sundays = Schedule::parse("0 0 9 * * 0").unwrap();
        assert_eq!(sundays.next_after(at("2026-12-04T10:00:00Z")), Some(at("2026-12-06T09:00:00Z")));
        let weekdays = Schedule::parse("0 0 9 * * 1-5").unwrap();
        assert_eq!(weekdays.next_after(at("2026-12-05T10:00:00Z")), Some(at("2026-12-07T09:00:00Z")));
        let named = Schedule::parse("0 0 9 * * MON").unwrap();
        assert_eq!(named.next_after(at("2026-12-05T10:00:00Z")), Some(at("2026-12-07T09:00:00Z")));
        assert!(Schedule::parse("0 0 9 * * 8").is_err());
    }

    #[test]
    fn descriptors_and_every() {
        let hourly = Schedule::parse("@hourly").unwrap();
        assert_eq!(hourly.next_after(at("2026-12-04T10:20:00Z")), Some(at("2026-12-04T11:00:00Z")));
        let weekly = Schedule::parse("@weekly").unwrap();
        assert_eq!(weekly.next_after(at("2026-12-04T10:20:00Z")), Some(at("2026-12-06T00:00:00Z")));
        let every = Schedule::parse("@every 1m30s").unwrap();
        assert_eq!(every.next_after(at("2026-12-04T10:20:00Z")), Some(at("2026-12-04T10:21:30Z")));
        for bad in ["@every", "@every soon", "@every 0s", "@sometimes", "* * * * *", "", "61 * * * * *"] {
            assert!(Schedule::parse(bad).is_err(), "{bad} was accepted");
        }
        assert!(Schedule::parse("* * * * *").unwrap_err().contains("six"));
    }

    #[test]
    fn times_are_rfc3339_or_delays() {
        let now = Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap();
        assert_eq!(time_or_delay("2026-12-05T00:00:00+01:00", now).unwrap(), at("2026-12-04T23:00:00Z"));
        assert_eq!(time_or_delay("90s", now).unwrap(), at("2026-12-04T10:01:30Z"));
        assert_eq!(time_or_delay("0s", now).unwrap(), now);
        assert!(time_or_delay("tomorrow", now).is_err());
    }
}

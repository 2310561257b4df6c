//! Cron schedules of cron triggers: five fields (minute hour day-of-month month day-of-week),
//! lists, ranges, steps, month and weekday names, `@hourly`-style macros and an optional
//! `TZ=UTC ` prefix. Schedules are evaluated in UTC.

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CronError {
    #[error("expected 5 fields, found {0}")]
    FieldCount(usize),
    #[error("invalid {field} field `{value}`")]
    Field { field: &'static str, value: String },
    #[error("only UTC schedules are supported, got time zone `{0}`")]
    TimeZone(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_restricted: bool,
    weekdays_restricted: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Schedule {
    pub fn parse(input: &str) -> Result<Schedule, CronError> {
        let mut s = input.trim();
        for prefix in ["TZ=", "CRON_TZ="] {
            if let Some(rest) = s.strip_prefix(prefix) {
                let (tz, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                if !matches!(tz, "UTC" | "Etc/UTC" | "GMT" | "Etc/GMT") {
                    return Err(CronError::TimeZone(tz.to_string()));
                }
                s = rest.trim();
            }
        }
        let expanded = match s {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(CronError::FieldCount(fields.len()));
        }
        let minutes = parse_field(fields[0], "minute", 0, 59, &[])?;
        let hours = parse_field(fields[1], "hour", 0, 23, &[])?;
        let days = parse_field(fields[2], "day-of-month", 1, 31, &[])?;
        let months = parse_field(fields[3], "month", 1, 12, &MONTHS)?;
        let mut weekdays = parse_field(fields[4], "day-of-week", 0, 7, &WEEKDAYS)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & !(1 << 7);
        }
        Ok(Schedule {
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_restricted: !is_wildcard(fields[2]),
            weekdays_restricted: !is_wildcard(fields[4]),
        })
    }

    /// The first fire time strictly after `after`, or `None` if none comes within ten years
    /// (e.g. `0 0 31 2 *`).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = after.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        let limit = start + Duration::days(3660);
        let mut t = start;
        while t < limit {
            if !bit(self.months, t.month()) {
                let (y, m) = if t.month() == 12 {
                    (t.year() + 1, 1)
                } else {
                    (t.year(), t.month() + 1)
                };
                t = Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single()?;
                continue;
            }
            if !self.day_matches(t) {
                t = (t + Duration::days(1)).with_hour(0)?.with_minute(0)?;
                continue;
            }
            if !bit(self.hours, t.hour()) {
                t = (t + Duration::hours(1)).with_minute(0)?;
                continue;
            }
            if !bit(self.minutes, t.minute()) {
                t += Duration::minutes(1);
                continue;
            }
            return Some(t);
        }
        None
    }

    fn day_matches(&self, t: DateTime<Utc>) -> bool {
        let dom = bit(self.days, t.day());
        let dow = bit(self.weekdays, t.weekday().num_days_from_sunday());
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }
}

fn bit(set: u64, n: u32) -> bool {
    set & (1u64 << n) != 0
}

fn is_wildcard(field: &str) -> bool {
    field == "*" || field == "?"
}

fn parse_field(
    field: &str,
    name: &'static str,
    min: u32,
    max: u32,
    names: &[&str],
) -> Result<u64, CronError> {
    let bad = || CronError::Field {
        field: name,
        value: field.to_string(),
    };
    let value = |s: &str| -> Result<u32, CronError> {
        let upper = s.to_ascii_uppercase();
        if let Some(i) = names.iter().position(|n| *n == upper) {
            // Month names start at 1, weekday names at 0.
            return Ok(i as u32 + min);
        }
        let n: u32 = s.parse().map_err(|_| bad())?;
        if n < min || n > max {
            return Err(bad());
        }
        Ok(n)
    };
    let mut set = 0u64;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| bad())?;
                if step == 0 {
                    return Err(bad());
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if is_wildcard(range) {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            // `5/15` means "from 5 to the end, every 15".
            if part.contains('/') { (v, max) } else { (v, v) }
        };
        if lo > hi {
            return Err(bad());
        }
        let mut n = lo;
        while n <= hi {
            set |= 1u64 << n;
            n += step;
        }
    }
    if set == 0 {
        return Err(bad());
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("BUG: literal")
            .with_timezone(&Utc)
    }

    fn next(expr: &str, after: &str) -> Option<DateTime<Utc>> {
        Schedule::parse(expr)
            .expect("valid schedule")
            .next_after(at(after))
    }

    #[test]
    fn hourly_fires_at_the_top_of_the_next_hour() {
        assert_eq!(
            next("0 * * * *", "2026-03-01T10:15:30Z"),
            Some(at("2026-03-01T11:00:00Z"))
        );
        assert_eq!(
            next("@hourly", "2026-03-01T10:00:00Z"),
            Some(at("2026-03-01T11:00:00Z"))
        );
    }

    #[test]
    fn steps_ranges_and_lists() {
        assert_eq!(
            next("*/15 * * * *", "2026-03-01T10:16:00Z"),
            Some(at("2026-03-01T10:30:00Z"))
        );
        assert_eq!(
            next("5,10 9-17 * * *", "2026-03-01T17:10:00Z"),
            Some(at("2026-03-02T09:05:00Z"))
        );
        assert_eq!(
            next("TZ=UTC 30 2 1 JAN *", "2026-03-01T00:00:00Z"),
            Some(at("2027-01-01T02:30:00Z"))
        );
    }

    #[test]
    fn weekdays_and_day_of_month_combine_with_or() {
        // 2026-03-01 is a Sunday.
        assert_eq!(
            next("0 0 * * MON", "2026-03-01T00:00:00Z"),
            Some(at("2026-03-02T00:00:00Z"))
        );
        assert_eq!(
            next("0 0 * * 7", "2026-03-02T00:00:00Z"),
            Some(at("2026-03-08T00:00:00Z"))
        );
        assert_eq!(
            next("0 0 15 * 3", "2026-03-01T00:00:00Z"),
            Some(at("2026-03-04T00:00:00Z"))
        );
    }

    #[test]
    fn impossible_dates_never_fire() {
        assert_eq!(next("0 0 31 2 *", "2026-01-01T00:00:00Z"), None);
    }

    #[test]
    fn rejects_bad_schedules() {
        for bad in [
            "",
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "*/0 * * * *",
            "5-1 * * * *",
            "* * * FOO *",
            "TZ=Europe/Paris 0 * * * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }
}

//! Time strings as Inngest reads them: `300ms`, `2h45m`, `1d`, `1w` (Go `str2duration` syntax),
//! instants for sleep-until, and `Retry-After` header values.

use chrono::{DateTime, Duration, Utc};

/// Longest sleep or wait Inngest accepts.
pub const MAX_DURATION: Duration = Duration::days(366);

/// Parses a Go-style duration string (`1m0s`, `1.5h`, `2d`). `None` if it is not one.
pub fn parse_duration(input: &str) -> Option<Duration> {
    let s = input.trim();
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(Duration::zero());
    }
    let mut total_ns: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_ns: f64 = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86_400e9,
            "w" => 604_800e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total_ns += value * unit_ns;
    }
    if !total_ns.is_finite() || total_ns > 1e19 {
        return None;
    }
    // The cast saturates, and the bound above keeps it far from i64::MAX.
    Some(Duration::nanoseconds(total_ns as i64))
}

/// Parses an instant given instead of a duration (RFC 3339, or a bare date).
pub fn parse_instant(input: &str) -> Option<DateTime<Utc>> {
    let s = input.trim();
    if s.len() < 10 {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_rfc2822(s) {
        return Some(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

/// When a sleep given as a duration or an instant ends. `None` if the value is neither.
pub fn sleep_until(value: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Some(d) = parse_duration(value) {
        return Some(now + d.min(MAX_DURATION));
    }
    parse_instant(value).map(|t| t.max(now).min(now + MAX_DURATION))
}

/// Reads a `Retry-After` value the way the Inngest server does: seven characters or fewer are
/// seconds, anything else is a date. Clamped to 1 s … 24 h.
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let v = value.trim();
    let delay = if v.len() <= 7 {
        let secs: f64 = v.parse().ok()?;
        if !secs.is_finite() {
            return None;
        }
        Duration::milliseconds((secs * 1000.0) as i64)
    } else {
        parse_instant(v)? - now
    };
    Some(now + delay.clamp(Duration::seconds(1), Duration::hours(24)))
}

/// Formats a duration as an Inngest time string, e.g. for the default invoke timeout.
pub fn format_secs(d: Duration) -> String {
    format!("{}s", d.num_seconds().max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("BUG: literal")
            .with_timezone(&Utc)
    }

    #[test]
    fn go_style_durations() {
        assert_eq!(parse_duration("1m"), Some(Duration::minutes(1)));
        assert_eq!(parse_duration("1m0s"), Some(Duration::minutes(1)));
        assert_eq!(
            parse_duration("2h45m"),
            Some(Duration::minutes(2 * 60 + 45))
        );
        assert_eq!(parse_duration("300ms"), Some(Duration::milliseconds(300)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::minutes(90)));
        assert_eq!(parse_duration("1d"), Some(Duration::days(1)));
        assert_eq!(parse_duration("1w"), Some(Duration::days(7)));
        assert_eq!(parse_duration("0"), Some(Duration::zero()));
    }

    #[test]
    fn rejects_garbage_durations() {
        for bad in ["", "m", "10", "1x", "abc", "1h-2m", "s1"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn sleep_until_accepts_durations_and_instants() {
        let n = now();
        assert_eq!(sleep_until("10s", n), Some(n + Duration::seconds(10)));
        assert_eq!(
            sleep_until("2026-01-02T00:00:00Z", n),
            Some(n + Duration::days(1))
        );
        assert_eq!(sleep_until("2020-01-01T00:00:00Z", n), Some(n));
        assert_eq!(sleep_until("9999d", n), Some(n + MAX_DURATION));
        assert_eq!(sleep_until("soon", n), None);
    }

    #[test]
    fn retry_after_seconds_and_dates_are_clamped() {
        let n = now();
        assert_eq!(retry_after("30", n), Some(n + Duration::seconds(30)));
        assert_eq!(retry_after("0", n), Some(n + Duration::seconds(1)));
        assert_eq!(retry_after("9999999", n), Some(n + Duration::hours(24)));
        assert_eq!(
            retry_after("2026-01-01T00:10:00Z", n),
            Some(n + Duration::minutes(10))
        );
        assert_eq!(
            retry_after("Thu, 01 Jan 2026 00:02:00 GMT", n),
            Some(n + Duration::minutes(2))
        );
        assert_eq!(retry_after("later", n), None);
    }
}

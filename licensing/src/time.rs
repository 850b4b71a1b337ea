//! License dates: UTC days and Unix seconds, no time zones. The calendar itself is the `time`
//! crate's (the one date library of the workspace); this module only fixes ferry's formats.

use ::time::{Date, Month, OffsetDateTime};

/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// The calendar date and time of a Unix time, or `None` outside years 1 to 9999.
fn utc(t: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(t).ok()
}

/// Parses `YYYY-MM-DD` (years 1970 to 9999) into the Unix time of that day's first second (UTC).
/// A day that does not exist (2027-02-29, 2027-04-31) is refused.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut parts = s.trim().splitn(3, '-');
    let y: i32 = parts.next()?.parse().ok()?;
    let m: u8 = parts.next()?.parse().ok()?;
    let d: u8 = parts.next()?.parse().ok()?;
    if !(1970..=9999).contains(&y) {
        return None;
    }
    let date = Date::from_calendar_date(y, Month::try_from(m).ok()?, d).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp())
}

/// Formats a Unix time as `YYYY-MM-DD` (UTC); a time outside years 1 to 9999 (only a crafted
/// file can hold one) is shown as its number of seconds.
pub fn format_date(t: i64) -> String {
    match utc(t) {
        Some(dt) => format!(
            "{:04}-{:02}-{:02}",
            dt.year(),
            u8::from(dt.month()),
            dt.day()
        ),
        None => format!("{t} (seconds since 1970)"),
    }
}

/// Formats a Unix time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_time(t: i64) -> String {
    match utc(t) {
        Some(dt) => format!(
            "{}T{:02}:{:02}:{:02}Z",
            format_date(t),
            dt.hour(),
            dt.minute(),
            dt.second()
        ),
        None => format_date(t),
    }
}

/// The first second of the UTC day containing `t`.
pub fn start_of_day(t: i64) -> i64 {
    t.div_euclid(DAY) * DAY
}

/// The current time as Unix seconds.
pub fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_dates() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2027-12-31"), Some(1_830_211_200));
        assert_eq!(parse_date(" 2027-12-31\n"), Some(1_830_211_200));
        assert_eq!(format_date(1_830_211_200), "2027-12-31");
        assert_eq!(
            parse_date("2028-02-29").map(format_date).as_deref(),
            Some("2028-02-29")
        );
        assert_eq!(parse_date("2027-02-29"), None);
        assert_eq!(parse_date("2027-04-31"), None);
        assert_eq!(parse_date("2027-13-01"), None);
        assert_eq!(parse_date("2027-00-01"), None);
        assert_eq!(parse_date("1969-12-31"), None);
        assert_eq!(parse_date("tomorrow"), None);
        assert_eq!(format_time(1_830_211_200 + 3661), "2027-12-31T01:01:01Z");
        assert_eq!(format_date(-1), "1969-12-31");
    }

    #[test]
    fn formats_a_crafted_time_outside_the_calendar_without_panicking() {
        assert_eq!(
            format_date(i64::MAX),
            format!("{} (seconds since 1970)", i64::MAX)
        );
        assert!(format_time(i64::MIN).contains("seconds since 1970"));
    }
}

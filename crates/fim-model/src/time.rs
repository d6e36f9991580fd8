//! Millisecond UTC timestamps and the tolerant parsing of the API's formats.
//!
//! The Qualys FIM API spells times in several ways, sometimes differently for
//! the same field in two records: `2019-02-26T10:16:28.163+0000`,
//! `2019-02-14T07:35:23.000Z`, epoch milliseconds as a JSON number or as a
//! string, and date-only `2019-02-13`. All of them parse to a [`Timestamp`].
//! The calendar arithmetic is done here (proleptic Gregorian, no leap
//! seconds) so formatting on the encoders' hot path allocates nothing.

use std::fmt;

use crate::json::JsonValue;

const MS_PER_DAY: i64 = 86_400_000;

/// An instant in UTC with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    unix_ms: i64,
}

/// The calendar fields of a [`Timestamp`] in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: u16,
    /// 1 to 12.
    pub month: u8,
    /// 1 to 31.
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub millisecond: u16,
}

impl Timestamp {
    /// Creates a timestamp from milliseconds since 1970-01-01T00:00:00Z.
    pub const fn from_unix_ms(unix_ms: i64) -> Self {
        Self { unix_ms }
    }

    /// Returns the current wall-clock time (0 if the clock is before 1970).
    pub fn now() -> Self {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| {
                i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
            });
        Self { unix_ms }
    }

    /// Returns milliseconds since 1970-01-01T00:00:00Z.
    pub const fn unix_ms(self) -> i64 {
        self.unix_ms
    }

    /// Parses any time format the API sends, from a JSON value: a number is
    /// epoch milliseconds, a string is parsed by [`Timestamp::parse`].
    pub fn from_json(value: &JsonValue) -> Option<Self> {
        match value {
            JsonValue::Number(_) => value.as_i64().map(Self::from_unix_ms),
            JsonValue::String(text) => Self::parse(text),
            _ => None,
        }
    }

    /// Parses epoch milliseconds written as digits, RFC 3339 / ISO 8601
    /// date-times (`Z`, `+0000` or `+00:00` offsets, any number of fraction
    /// digits, no offset meaning UTC) and date-only `YYYY-MM-DD` (midnight
    /// UTC). Fraction digits past the millisecond are dropped.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let bytes = text.as_bytes();

        let all_digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
        let epoch_digits = match bytes.first() {
            Some(b'-') => all_digits(&bytes[1..]),
            _ => all_digits(bytes),
        };
        if epoch_digits {
            return text.parse::<i64>().ok().map(Self::from_unix_ms);
        }

        parse_iso8601(bytes)
    }

    /// Returns the calendar fields, or `None` outside the years 0000 to 9999
    /// that RFC 3339 can spell.
    pub fn civil(self) -> Option<Civil> {
        let days = self.unix_ms.div_euclid(MS_PER_DAY);
        let ms_of_day = self.unix_ms.rem_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        if !(0..=9999).contains(&year) {
            return None;
        }

        // Every cast below is bounded by the divisions above.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(Civil {
            year: year as u16,
            month: month as u8,
            day: day as u8,
            hour: (ms_of_day / 3_600_000) as u8,
            minute: (ms_of_day / 60_000 % 60) as u8,
            second: (ms_of_day / 1000 % 60) as u8,
            millisecond: (ms_of_day % 1000) as u16,
        })
    }

    /// Appends the RFC 3339 form with exactly three fraction digits and `Z`,
    /// e.g. `2024-05-01T10:16:28.163Z`. Returns `false` and appends nothing
    /// when the year is outside 0000 to 9999.
    pub fn write_rfc3339(self, out: &mut Vec<u8>) -> bool {
        let Some(civil) = self.civil() else {
            return false;
        };
        push_padded(out, u32::from(civil.year), 4);
        out.push(b'-');
        push_padded(out, u32::from(civil.month), 2);
        out.push(b'-');
        push_padded(out, u32::from(civil.day), 2);
        out.push(b'T');
        push_padded(out, u32::from(civil.hour), 2);
        out.push(b':');
        push_padded(out, u32::from(civil.minute), 2);
        out.push(b':');
        push_padded(out, u32::from(civil.second), 2);
        out.push(b'.');
        push_padded(out, u32::from(civil.millisecond), 3);
        out.push(b'Z');
        true
    }
}

impl fmt::Display for Timestamp {
    /// Shows the RFC 3339 form, or the epoch milliseconds when the year
    /// cannot be spelled in four digits.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = Vec::with_capacity(24);
        if self.write_rfc3339(&mut text) {
            formatter.write_str(&String::from_utf8_lossy(&text))
        } else {
            write!(formatter, "{}ms", self.unix_ms)
        }
    }
}

/// Appends `value` in decimal, left-padded with zeros to `width` digits.
pub fn push_padded(out: &mut Vec<u8>, value: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut rest = value;
    let mut start = digits.len();
    while rest > 0 || start == digits.len() {
        start -= 1;
        // `rest % 10` is a single digit.
        #[allow(clippy::cast_possible_truncation)]
        let digit = (rest % 10) as u8;
        digits[start] = b'0' + digit;
        rest /= 10;
    }
    let len = digits.len() - start;
    for _ in len..width {
        out.push(b'0');
    }
    out.extend_from_slice(&digits[start..]);
}

fn parse_iso8601(bytes: &[u8]) -> Option<Timestamp> {
    let year = digits(bytes, 0, 4)?;
    expect(bytes, 4, b'-')?;
    let month = digits(bytes, 5, 2)?;
    expect(bytes, 7, b'-')?;
    let day = digits(bytes, 8, 2)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);

    if bytes.len() == 10 {
        return Some(Timestamp::from_unix_ms(days * MS_PER_DAY));
    }
    if !matches!(bytes.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }

    let hour = digits(bytes, 11, 2)?;
    expect(bytes, 13, b':')?;
    let minute = digits(bytes, 14, 2)?;
    expect(bytes, 16, b':')?;
    // 60 is accepted for a leap second and folded into the next minute.
    let second = digits(bytes, 17, 2)?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }

    let mut index = 19;
    let mut millisecond = 0;
    if bytes.get(index) == Some(&b'.') {
        index += 1;
        let start = index;
        while bytes.get(index).is_some_and(u8::is_ascii_digit) {
            if index - start < 3 {
                millisecond = millisecond * 10 + u32::from(bytes[index] - b'0');
            }
            index += 1;
        }
        let fraction_digits = index - start;
        if fraction_digits == 0 {
            return None;
        }
        for _ in fraction_digits..3 {
            millisecond *= 10;
        }
    }

    let offset_minutes = parse_offset(&bytes[index..])?;
    let ms_of_day = i64::from(hour) * 3_600_000
        + i64::from(minute) * 60_000
        + i64::from(second) * 1000
        + i64::from(millisecond);
    let unix_ms = days * MS_PER_DAY + ms_of_day - offset_minutes * 60_000;
    Some(Timestamp::from_unix_ms(unix_ms))
}

/// Parses `""` (UTC), `Z`, `+HH`, `+HHMM` or `+HH:MM` into minutes east of
/// UTC.
fn parse_offset(bytes: &[u8]) -> Option<i64> {
    let sign = match bytes.first() {
        None => return Some(0),
        Some(b'Z' | b'z') if bytes.len() == 1 => return Some(0),
        Some(b'+') => 1,
        Some(b'-') => -1,
        Some(_) => return None,
    };
    let hours = digits(bytes, 1, 2)?;
    let minutes = match bytes.len() {
        3 => 0,
        5 => digits(bytes, 3, 2)?,
        6 if bytes[3] == b':' => digits(bytes, 4, 2)?,
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * i64::from(hours * 60 + minutes))
}

fn digits(bytes: &[u8], start: usize, len: usize) -> Option<u32> {
    let slice = bytes.get(start..start + len)?;
    slice.iter().try_fold(0u32, |acc, byte| {
        byte.is_ascii_digit()
            .then(|| acc * 10 + u32::from(byte - b'0'))
    })
}

fn expect(bytes: &[u8], index: usize, wanted: u8) -> Option<()> {
    (bytes.get(index) == Some(&wanted)).then_some(())
}

fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Converts days since 1970-01-01 to (year, month, day), the inverse of
/// [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(text: &str) -> Option<i64> {
        Timestamp::parse(text).map(Timestamp::unix_ms)
    }

    #[test]
    fn parses_qualys_offset_without_colon() {
        assert_eq!(ms("2024-05-01T10:16:28.163+0000"), Some(1_714_558_588_163));
    }

    #[test]
    fn parses_zulu_suffix() {
        assert_eq!(ms("2024-05-01T10:17:02.004Z"), Some(1_714_558_622_004));
    }

    #[test]
    fn applies_non_zero_offsets() {
        assert_eq!(
            ms("2024-05-01T12:16:28.163+02:00"),
            ms("2024-05-01T10:16:28.163Z")
        );
    }

    #[test]
    fn parses_epoch_millisecond_strings() {
        assert_eq!(ms("1714552981681"), Some(1_714_552_981_681));
    }

    #[test]
    fn parses_date_only_as_midnight() {
        assert_eq!(ms("2024-04-30"), Some(1_714_435_200_000));
    }

    #[test]
    fn drops_fraction_digits_past_milliseconds() {
        assert_eq!(ms("2024-05-01T10:16:28.163999Z"), Some(1_714_558_588_163));
    }

    #[test]
    fn rejects_impossible_dates() {
        assert_eq!(ms("2023-02-29"), None);
    }

    #[test]
    fn rejects_trailing_garbage() {
        assert_eq!(ms("2024-05-01T10:16:28Zjunk"), None);
    }

    #[test]
    fn formats_rfc3339_with_milliseconds() {
        let time = Timestamp::from_unix_ms(1_714_558_588_163);
        assert_eq!(time.to_string(), "2024-05-01T10:16:28.163Z");
    }

    #[test]
    fn refuses_to_format_five_digit_years() {
        let mut out = Vec::new();
        assert!(!Timestamp::from_unix_ms(i64::MAX).write_rfc3339(&mut out));
    }

    proptest! {
        #[test]
        fn formatted_times_parse_back(unix_ms in -62_167_219_200_000i64..253_402_300_799_999) {
            let time = Timestamp::from_unix_ms(unix_ms);
            prop_assert_eq!(Timestamp::parse(&time.to_string()), Some(time));
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,40}") {
            let _ = Timestamp::parse(&text);
        }
    }
}

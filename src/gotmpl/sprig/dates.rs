//! Go's `time` as templates use it: `time.Time` values with Go's layout
//! formatting and parsing, `time.Duration`, and Sprig's date functions.
//!
//! The clock and the local zone come from the host ([`Host`]). Named zones
//! other than `UTC`, `Local` and `Etc/GMT±N` need a zone database, which
//! the core does not carry: they read as UTC, as Go reads an unknown zone.
//!
//! [`Host`]: crate::gotmpl::Host

use std::rc::Rc;

use super::{f, fh, s};
use crate::gotmpl::funcs::FuncMap;
use crate::gotmpl::gofmt;
use crate::gotmpl::value::{Member, MethodSig, Object, Ty, Value};
use crate::gotmpl::Env;

const NANOS: i64 = 1_000_000_000;
/// Seconds from 0001-01-01 to 1970-01-01.
const UNIX_TO_INTERNAL: i64 = 62_135_596_800;

/// A Go `time.Time`: an instant and the zone it is shown in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoTime {
    /// Seconds since the Unix epoch.
    pub unix: i64,
    /// Nanoseconds within the second.
    pub nanos: u32,
    /// Zone offset east of UTC, in seconds.
    pub offset: i32,
    /// Zone abbreviation (`UTC`, `CET`, ...).
    pub zone: String,
}

/// A Go `time.Duration` (nanoseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Duration(pub i64);

impl GoTime {
    /// Go's zero time, `0001-01-01 00:00:00 +0000 UTC`.
    pub fn zero() -> GoTime {
        GoTime {
            unix: -UNIX_TO_INTERNAL,
            nanos: 0,
            offset: 0,
            zone: "UTC".into(),
        }
    }

    fn local_secs(&self) -> i64 {
        self.unix + self.offset as i64
    }

    /// (year, month 1-12, day, hour, minute, second) in the time's zone.
    pub fn civil(&self) -> (i64, u32, u32, u32, u32, u32) {
        let secs = self.local_secs();
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        (
            y,
            m,
            d,
            (rem / 3600) as u32,
            (rem % 3600 / 60) as u32,
            (rem % 60) as u32,
        )
    }

    fn weekday(&self) -> u32 {
        let days = self.local_secs().div_euclid(86_400);
        ((days + 4).rem_euclid(7)) as u32
    }

    fn yday(&self) -> u32 {
        let (y, m, d, ..) = self.civil();
        (days_from_civil(y, m, d) - days_from_civil(y, 1, 1) + 1) as u32
    }

    fn in_zone(&self, offset: i32, zone: &str) -> GoTime {
        GoTime {
            unix: self.unix,
            nanos: self.nanos,
            offset,
            zone: zone.to_string(),
        }
    }

    fn add(&self, d: Duration) -> GoTime {
        let total = self.nanos as i64 + d.0.rem_euclid(NANOS);
        let mut t = self.clone();
        t.unix += d.0.div_euclid(NANOS) + total / NANOS;
        t.nanos = (total % NANOS) as u32;
        t
    }

    fn sub(&self, u: &GoTime) -> Duration {
        let secs = self.unix - u.unix;
        let n = self.nanos as i64 - u.nanos as i64;
        Duration(secs.saturating_mul(NANOS).saturating_add(n))
    }

    /// Go's `Time.Format`.
    pub fn format(&self, layout: &str) -> String {
        format_time(self, layout)
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    TZ,
    ISO8601TZ,
    ISO8601SecondsTZ,
    ISO8601ShortTZ,
    ISO8601ColonTZ,
    ISO8601ColonSecondsTZ,
    NumTZ,
    NumSecondsTz,
    NumShortTZ,
    NumColonTZ,
    NumColonSecondsTZ,
    FracSecond0(usize, char),
    FracSecond9(usize, char),
}

fn starts_with_lower(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
}

/// Go's `nextStdChunk`: (prefix, std, suffix).
fn next_std_chunk(layout: &str) -> (&str, Option<Std>, &str) {
    let b = layout.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let rest = &layout[i..];
        let hit = |len: usize, std: Std| Some((&layout[..i], Some(std), &layout[i + len..]));
        let r = match c {
            b'J' => {
                if let Some(after) = rest.strip_prefix("Jan") {
                    if rest.starts_with("January") {
                        hit(7, Std::LongMonth)
                    } else if !starts_with_lower(after) {
                        hit(3, Std::Month)
                    } else {
                        None
                    }
                } else {
                    None
                }
            }
            b'M' => {
                if let Some(after) = rest.strip_prefix("Mon") {
                    if rest.starts_with("Monday") {
                        hit(6, Std::LongWeekDay)
                    } else if !starts_with_lower(after) {
                        hit(3, Std::WeekDay)
                    } else {
                        None
                    }
                } else if rest.starts_with("MST") {
                    hit(3, Std::TZ)
                } else {
                    None
                }
            }
            b'0' => {
                if b.len() >= i + 2 && (b'1'..=b'6').contains(&b[i + 1]) {
                    let std = match b[i + 1] {
                        b'1' => Std::ZeroMonth,
                        b'2' => Std::ZeroDay,
                        b'3' => Std::ZeroHour12,
                        b'4' => Std::ZeroMinute,
                        b'5' => Std::ZeroSecond,
                        _ => Std::Year,
                    };
                    hit(2, std)
                } else if rest.starts_with("002") {
                    hit(3, Std::ZeroYearDay)
                } else {
                    None
                }
            }
            b'1' => {
                if b.len() >= i + 2 && b[i + 1] == b'5' {
                    hit(2, Std::Hour)
                } else {
                    hit(1, Std::NumMonth)
                }
            }
            b'2' => {
                if rest.starts_with("2006") {
                    hit(4, Std::LongYear)
                } else {
                    hit(1, Std::Day)
                }
            }
            b'_' => {
                if rest.starts_with("_2") {
                    if rest.starts_with("_2006") {
                        // _2006 is really a literal _, followed by stdLongYear
                        return (&layout[..i + 1], Some(Std::LongYear), &layout[i + 5..]);
                    }
                    hit(2, Std::UnderDay)
                } else if rest.starts_with("__2") {
                    hit(3, Std::UnderYearDay)
                } else {
                    None
                }
            }
            b'3' => hit(1, Std::Hour12),
            b'4' => hit(1, Std::Minute),
            b'5' => hit(1, Std::Second),
            b'P' => {
                if rest.starts_with("PM") {
                    hit(2, Std::PM)
                } else {
                    None
                }
            }
            b'p' => {
                if rest.starts_with("pm") {
                    hit(2, Std::Pm)
                } else {
                    None
                }
            }
            b'-' => {
                if rest.starts_with("-07:00:00") {
                    hit(9, Std::NumColonSecondsTZ)
                } else if rest.starts_with("-070000") {
                    hit(7, Std::NumSecondsTz)
                } else if rest.starts_with("-07:00") {
                    hit(6, Std::NumColonTZ)
                } else if rest.starts_with("-0700") {
                    hit(5, Std::NumTZ)
                } else if rest.starts_with("-07") {
                    hit(3, Std::NumShortTZ)
                } else {
                    None
                }
            }
            b'Z' => {
                if rest.starts_with("Z07:00:00") {
                    hit(9, Std::ISO8601ColonSecondsTZ)
                } else if rest.starts_with("Z070000") {
                    hit(7, Std::ISO8601SecondsTZ)
                } else if rest.starts_with("Z07:00") {
                    hit(6, Std::ISO8601ColonTZ)
                } else if rest.starts_with("Z0700") {
                    hit(5, Std::ISO8601TZ)
                } else if rest.starts_with("Z07") {
                    hit(3, Std::ISO8601ShortTZ)
                } else {
                    None
                }
            }
            b'.' | b',' => {
                if i + 1 < b.len() && (b[i + 1] == b'0' || b[i + 1] == b'9') {
                    let ch = b[i + 1];
                    let mut j = i + 1;
                    while j < b.len() && b[j] == ch {
                        j += 1;
                    }
                    if !(j < b.len() && b[j].is_ascii_digit()) {
                        let n = j - (i + 1);
                        let std = if ch == b'0' {
                            Std::FracSecond0(n, c as char)
                        } else {
                            Std::FracSecond9(n, c as char)
                        };
                        return (&layout[..i], Some(std), &layout[j..]);
                    }
                }
                None
            }
            _ => None,
        };
        if let Some(r) = r {
            return r;
        }
        i += 1;
    }
    (layout, None, "")
}

fn pad(n: i64, width: usize) -> String {
    if n < 0 {
        return format!("-{:0width$}", -n, width = width);
    }
    format!("{:0width$}", n, width = width)
}

fn format_time(t: &GoTime, layout: &str) -> String {
    let (year, month, day, hour, min, sec) = t.civil();
    let mut out = String::new();
    let mut layout = layout;
    loop {
        let (prefix, std, suffix) = next_std_chunk(layout);
        out.push_str(prefix);
        let Some(std) = std else { break };
        layout = suffix;
        match std {
            Std::Year => out.push_str(&pad(year.rem_euclid(100), 2)),
            Std::LongYear => out.push_str(&pad(year, 4)),
            Std::Month => out.push_str(&MONTHS[month as usize - 1][..3]),
            Std::LongMonth => out.push_str(MONTHS[month as usize - 1]),
            Std::NumMonth => out.push_str(&month.to_string()),
            Std::ZeroMonth => out.push_str(&pad(month as i64, 2)),
            Std::WeekDay => out.push_str(&DAYS[t.weekday() as usize][..3]),
            Std::LongWeekDay => out.push_str(DAYS[t.weekday() as usize]),
            Std::Day => out.push_str(&day.to_string()),
            Std::UnderDay => out.push_str(&format!("{day:>2}")),
            Std::ZeroDay => out.push_str(&pad(day as i64, 2)),
            Std::UnderYearDay => out.push_str(&format!("{:>3}", t.yday())),
            Std::ZeroYearDay => out.push_str(&pad(t.yday() as i64, 3)),
            Std::Hour => out.push_str(&pad(hour as i64, 2)),
            Std::Hour12 => {
                let h = if hour % 12 == 0 { 12 } else { hour % 12 };
                out.push_str(&h.to_string())
            }
            Std::ZeroHour12 => {
                let h = if hour % 12 == 0 { 12 } else { hour % 12 };
                out.push_str(&pad(h as i64, 2))
            }
            Std::Minute => out.push_str(&min.to_string()),
            Std::ZeroMinute => out.push_str(&pad(min as i64, 2)),
            Std::Second => out.push_str(&sec.to_string()),
            Std::ZeroSecond => out.push_str(&pad(sec as i64, 2)),
            Std::PM => out.push_str(if hour >= 12 { "PM" } else { "AM" }),
            Std::Pm => out.push_str(if hour >= 12 { "pm" } else { "am" }),
            Std::TZ => {
                if !t.zone.is_empty() {
                    out.push_str(&t.zone);
                } else {
                    let z = t.offset / 60;
                    let (sign, z) = if z < 0 { ('-', -z) } else { ('+', z) };
                    out.push(sign);
                    out.push_str(&pad((z / 60) as i64, 2));
                    if z % 60 != 0 {
                        out.push_str(&pad((z % 60) as i64, 2));
                    }
                }
            }
            Std::ISO8601TZ
            | Std::ISO8601SecondsTZ
            | Std::ISO8601ShortTZ
            | Std::ISO8601ColonTZ
            | Std::ISO8601ColonSecondsTZ
            | Std::NumTZ
            | Std::NumSecondsTz
            | Std::NumShortTZ
            | Std::NumColonTZ
            | Std::NumColonSecondsTZ => {
                let iso = matches!(
                    std,
                    Std::ISO8601TZ
                        | Std::ISO8601SecondsTZ
                        | Std::ISO8601ShortTZ
                        | Std::ISO8601ColonTZ
                        | Std::ISO8601ColonSecondsTZ
                );
                if iso && t.offset == 0 {
                    out.push('Z');
                    continue;
                }
                let mut zone = t.offset / 60;
                let mut absoffset = t.offset;
                if zone < 0 {
                    out.push('-');
                    zone = -zone;
                    absoffset = -absoffset;
                } else {
                    out.push('+');
                }
                out.push_str(&pad((zone / 60) as i64, 2));
                let colon = matches!(
                    std,
                    Std::ISO8601ColonTZ
                        | Std::NumColonTZ
                        | Std::ISO8601ColonSecondsTZ
                        | Std::NumColonSecondsTZ
                );
                if colon {
                    out.push(':');
                }
                if !matches!(std, Std::NumShortTZ | Std::ISO8601ShortTZ) {
                    out.push_str(&pad((zone % 60) as i64, 2));
                }
                if matches!(
                    std,
                    Std::ISO8601SecondsTZ
                        | Std::NumSecondsTz
                        | Std::NumColonSecondsTZ
                        | Std::ISO8601ColonSecondsTZ
                ) {
                    if colon {
                        out.push(':');
                    }
                    out.push_str(&pad((absoffset % 60) as i64, 2));
                }
            }
            Std::FracSecond0(n, sep) => {
                out.push(sep);
                let digits = format!("{:09}", t.nanos);
                out.push_str(&digits[..n.min(9)]);
            }
            Std::FracSecond9(n, sep) => {
                let digits = format!("{:09}", t.nanos);
                let d = digits[..n.min(9)].trim_end_matches('0');
                if !d.is_empty() {
                    out.push(sep);
                    out.push_str(d);
                }
            }
        }
    }
    out
}

fn parse_err(value: &str, layout: &str, elem: &str, velem: &str) -> String {
    format!(
        "parsing time {} as {}: cannot parse {} as {}",
        gofmt::quote(value),
        gofmt::quote(layout),
        gofmt::quote(velem),
        gofmt::quote(elem)
    )
}

/// Go's `skip`: removes `prefix` from `value`, runs of spaces matching
/// runs of spaces.
fn skip<'a>(mut value: &'a str, mut prefix: &str) -> Option<&'a str> {
    while !prefix.is_empty() {
        if prefix.starts_with(' ') {
            if !value.is_empty() && !value.starts_with(' ') {
                return None;
            }
            prefix = prefix.trim_start_matches(' ');
            value = value.trim_start_matches(' ');
            continue;
        }
        let c = prefix.chars().next()?;
        if !value.starts_with(c) {
            return None;
        }
        prefix = &prefix[c.len_utf8()..];
        value = &value[c.len_utf8()..];
    }
    Some(value)
}

fn get_num(v: &str, fixed: bool) -> Option<(i64, &str)> {
    let b = v.as_bytes();
    if b.is_empty() || !b[0].is_ascii_digit() {
        return None;
    }
    if b.len() < 2 || !b[1].is_ascii_digit() {
        if fixed {
            return None;
        }
        return Some(((b[0] - b'0') as i64, &v[1..]));
    }
    Some((((b[0] - b'0') * 10 + (b[1] - b'0')) as i64, &v[2..]))
}

fn lookup_name<'a>(names: &[&str], v: &'a str, len: Option<usize>) -> Option<(usize, &'a str)> {
    for (i, n) in names.iter().enumerate() {
        let n = match len {
            Some(l) => &n[..l],
            None => n,
        };
        if v.len() >= n.len() && v[..n.len()].eq_ignore_ascii_case(n) {
            return Some((i, &v[n.len()..]));
        }
    }
    None
}

/// Go's `time.ParseInLocation` for the layouts charts use; `local` is the
/// zone used when the value has no zone of its own.
pub fn parse_in_location(layout: &str, value: &str, local: (i32, &str)) -> Result<GoTime, String> {
    let (alayout, avalue) = (layout, value);
    let mut layout = layout;
    let mut v = value;
    let (mut year, mut month, mut day) = (1i64, 1u32, 1u32);
    let (mut hour, mut min, mut sec, mut nsec) = (0u32, 0u32, 0u32, 0u32);
    let mut pm_set = false;
    let mut am_set = false;
    let mut z_offset: Option<i32> = None;
    let mut z_name: Option<String> = None;
    loop {
        let (prefix, std, suffix) = next_std_chunk(layout);
        let stdstr = &layout[prefix.len()..layout.len() - suffix.len()];
        v = match skip(v, prefix) {
            Some(r) => r,
            None => return Err(parse_err(avalue, alayout, prefix, v)),
        };
        let Some(std) = std else {
            if !v.is_empty() {
                return Err(format!(
                    "parsing time {}: extra text: {}",
                    gofmt::quote(avalue),
                    gofmt::quote(v)
                ));
            }
            break;
        };
        layout = suffix;
        let hold = v;
        let bad = || parse_err(avalue, alayout, stdstr, hold);
        match std {
            Std::Year => {
                let (n, r) = get_num(v, true).ok_or_else(bad)?;
                year = if n >= 69 { n + 1900 } else { n + 2000 };
                v = r;
            }
            Std::LongYear => {
                if v.len() < 4 || !v.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
                    return Err(bad());
                }
                year = v[..4].parse().map_err(|_| bad())?;
                v = &v[4..];
            }
            Std::Month | Std::LongMonth => {
                let (i, r) = if std == Std::Month {
                    lookup_name(&MONTHS, v, Some(3))
                } else {
                    lookup_name(&MONTHS, v, None)
                }
                .ok_or_else(bad)?;
                month = i as u32 + 1;
                v = r;
            }
            Std::NumMonth | Std::ZeroMonth => {
                let (n, r) = get_num(v, std == Std::ZeroMonth).ok_or_else(bad)?;
                if !(1..=12).contains(&n) {
                    return Err(format!(
                        "parsing time {}: month out of range",
                        gofmt::quote(avalue)
                    ));
                }
                month = n as u32;
                v = r;
            }
            Std::WeekDay | Std::LongWeekDay => {
                let (_, r) = if std == Std::WeekDay {
                    lookup_name(&DAYS, v, Some(3))
                } else {
                    lookup_name(&DAYS, v, None)
                }
                .ok_or_else(bad)?;
                v = r;
            }
            Std::Day | Std::UnderDay | Std::ZeroDay => {
                if std == Std::UnderDay && v.starts_with(' ') {
                    v = &v[1..];
                }
                let (n, r) = get_num(v, std == Std::ZeroDay).ok_or_else(bad)?;
                day = n as u32;
                v = r;
            }
            Std::Hour => {
                let (n, r) = get_num(v, false).ok_or_else(bad)?;
                if n >= 24 {
                    return Err(format!(
                        "parsing time {}: hour out of range",
                        gofmt::quote(avalue)
                    ));
                }
                hour = n as u32;
                v = r;
            }
            Std::Hour12 | Std::ZeroHour12 => {
                let (n, r) = get_num(v, std == Std::ZeroHour12).ok_or_else(bad)?;
                if n > 12 {
                    return Err(format!(
                        "parsing time {}: hour out of range",
                        gofmt::quote(avalue)
                    ));
                }
                hour = n as u32;
                v = r;
            }
            Std::Minute | Std::ZeroMinute => {
                let (n, r) = get_num(v, std == Std::ZeroMinute).ok_or_else(bad)?;
                if n >= 60 {
                    return Err(format!(
                        "parsing time {}: minute out of range",
                        gofmt::quote(avalue)
                    ));
                }
                min = n as u32;
                v = r;
            }
            Std::Second | Std::ZeroSecond => {
                let (n, r) = get_num(v, std == Std::ZeroSecond).ok_or_else(bad)?;
                if n >= 60 {
                    return Err(format!(
                        "parsing time {}: second out of range",
                        gofmt::quote(avalue)
                    ));
                }
                sec = n as u32;
                v = r;
                // a fractional second may follow even if the layout has none
                if v.len() >= 2
                    && (v.starts_with('.') || v.starts_with(','))
                    && v.as_bytes()[1].is_ascii_digit()
                    && !matches!(
                        next_std_chunk(layout).1,
                        Some(Std::FracSecond0(..) | Std::FracSecond9(..))
                    )
                {
                    let digits: String = v[1..].chars().take_while(char::is_ascii_digit).collect();
                    let frac = format!("{:0<9}", &digits[..digits.len().min(9)]);
                    nsec = frac.parse().unwrap_or(0);
                    v = &v[1 + digits.len()..];
                }
            }
            Std::PM | Std::Pm => {
                if v.len() < 2 {
                    return Err(bad());
                }
                match &v[..2] {
                    "PM" | "pm" => pm_set = true,
                    "AM" | "am" => am_set = true,
                    _ => return Err(bad()),
                }
                v = &v[2..];
            }
            Std::ISO8601TZ
            | Std::ISO8601ColonTZ
            | Std::ISO8601SecondsTZ
            | Std::ISO8601ShortTZ
            | Std::ISO8601ColonSecondsTZ
            | Std::NumTZ
            | Std::NumShortTZ
            | Std::NumColonTZ
            | Std::NumSecondsTz
            | Std::NumColonSecondsTZ => {
                let iso = matches!(
                    std,
                    Std::ISO8601TZ
                        | Std::ISO8601ColonTZ
                        | Std::ISO8601SecondsTZ
                        | Std::ISO8601ShortTZ
                        | Std::ISO8601ColonSecondsTZ
                );
                if iso && v.starts_with('Z') {
                    v = &v[1..];
                    z_offset = Some(0);
                    z_name = Some("UTC".into());
                    continue;
                }
                let sign = match v.as_bytes().first() {
                    Some(b'+') => 1,
                    Some(b'-') => -1,
                    _ => return Err(bad()),
                };
                let body = &v[1..];
                let digits = |s: &str, i: usize| -> Option<i32> {
                    s.get(i..i + 2).and_then(|x| {
                        if x.bytes().all(|b| b.is_ascii_digit()) {
                            x.parse().ok()
                        } else {
                            None
                        }
                    })
                };
                let colon = matches!(
                    std,
                    Std::ISO8601ColonTZ
                        | Std::NumColonTZ
                        | Std::ISO8601ColonSecondsTZ
                        | Std::NumColonSecondsTZ
                );
                let hh = digits(body, 0).ok_or_else(bad)?;
                let mut used = 2;
                let mut mm = 0;
                let mut ss = 0;
                if !matches!(std, Std::NumShortTZ | Std::ISO8601ShortTZ) {
                    if colon {
                        if body.as_bytes().get(2) != Some(&b':') {
                            return Err(bad());
                        }
                        used += 1;
                    }
                    mm = digits(body, used).ok_or_else(bad)?;
                    used += 2;
                    if matches!(
                        std,
                        Std::ISO8601SecondsTZ
                            | Std::NumSecondsTz
                            | Std::NumColonSecondsTZ
                            | Std::ISO8601ColonSecondsTZ
                    ) {
                        if colon {
                            used += 1;
                        }
                        ss = digits(body, used).ok_or_else(bad)?;
                        used += 2;
                    }
                }
                z_offset = Some(sign * (hh * 3600 + mm * 60 + ss));
                v = &body[used..];
            }
            Std::TZ => {
                if v.starts_with("UTC") {
                    z_name = Some("UTC".into());
                    z_offset = Some(0);
                    v = &v[3..];
                    continue;
                }
                let n: usize = v.chars().take_while(|c| c.is_ascii_uppercase()).count();
                if n < 3 {
                    return Err(bad());
                }
                z_name = Some(v[..n].to_string());
                v = &v[n..];
            }
            Std::FracSecond0(n, sep) => {
                if v.len() < n + 1 || !v.starts_with(sep) && !v.starts_with(['.', ',']) {
                    return Err(bad());
                }
                let digits = &v[1..1 + n];
                if !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                nsec = format!("{:0<9}", &digits[..n.min(9)]).parse().unwrap_or(0);
                v = &v[1 + n..];
            }
            Std::FracSecond9(..) => {
                if v.len() < 2
                    || !(v.starts_with('.') || v.starts_with(','))
                    || !v.as_bytes()[1].is_ascii_digit()
                {
                    continue;
                }
                let digits: String = v[1..].chars().take_while(char::is_ascii_digit).collect();
                nsec = format!("{:0<9}", &digits[..digits.len().min(9)])
                    .parse()
                    .unwrap_or(0);
                v = &v[1 + digits.len()..];
            }
            Std::UnderYearDay | Std::ZeroYearDay => {
                let digits: String = v.chars().take(3).take_while(char::is_ascii_digit).collect();
                if digits.is_empty() {
                    return Err(bad());
                }
                v = &v[digits.len()..];
            }
        }
    }
    if pm_set && hour < 12 {
        hour += 12;
    } else if am_set && hour == 12 {
        hour = 0;
    }
    let days_in = days_in_month(year, month);
    if day < 1 || day > days_in {
        return Err(format!(
            "parsing time {}: day out of range",
            gofmt::quote(avalue)
        ));
    }
    let local_secs = days_from_civil(year, month, day) * 86_400
        + hour as i64 * 3600
        + min as i64 * 60
        + sec as i64;
    let (offset, zone) = match (z_offset, z_name) {
        (Some(o), Some(n)) => (o, n),
        (Some(o), None) => {
            if o == local.0 {
                (o, local.1.to_string())
            } else {
                (o, String::new())
            }
        }
        (None, Some(n)) => {
            if n == local.1 {
                (local.0, n)
            } else {
                (0, n)
            }
        }
        (None, None) => (local.0, local.1.to_string()),
    };
    Ok(GoTime {
        unix: local_secs - offset as i64,
        nanos: nsec,
        offset,
        zone,
    })
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) {
                29
            } else {
                28
            }
        }
    }
}

/// Go's `time.ParseDuration`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let orig = s;
    let err = || format!("time: invalid duration {}", gofmt::quote(orig));
    let mut s = s;
    let mut neg = false;
    if let Some(r) = s.strip_prefix('-') {
        neg = true;
        s = r;
    } else if let Some(r) = s.strip_prefix('+') {
        s = r;
    }
    if s == "0" {
        return Ok(Duration(0));
    }
    if s.is_empty() {
        return Err(err());
    }
    let mut total: f64 = 0.0;
    let mut exact: i128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if let Some(r) = s.strip_prefix('.') {
            let fl = r.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &r[..fl];
            s = &r[fl..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(err());
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map(|(i, _)| i)
            .unwrap_or(s.len());
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let scale: i64 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS,
            "m" => 60 * NANOS,
            "h" => 3600 * NANOS,
            "" => {
                return Err(format!(
                    "time: missing unit in duration {}",
                    gofmt::quote(orig)
                ))
            }
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    gofmt::quote(unit),
                    gofmt::quote(orig)
                ))
            }
        };
        let iv: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| err())?
        };
        exact += iv * scale as i128;
        if !frac_part.is_empty() {
            let fv: f64 = format!("0.{frac_part}").parse().unwrap_or(0.0);
            total += fv * scale as f64;
        }
        if exact > i64::MAX as i128 {
            return Err(err());
        }
    }
    let v = exact + total as i128;
    if v > i64::MAX as i128 {
        return Err(err());
    }
    Ok(Duration(if neg { -(v as i64) } else { v as i64 }))
}

fn fmt_frac(u: u64, prec: usize) -> (String, u64) {
    let mut v = u;
    let mut digits = Vec::new();
    let mut print = false;
    for _ in 0..prec {
        let digit = v % 10;
        print = print || digit != 0;
        if print {
            digits.push((b'0' + digit as u8) as char);
        }
        v /= 10;
    }
    let mut s = String::new();
    if print {
        s.push('.');
        s.extend(digits.iter().rev());
    }
    (s, v)
}

impl Duration {
    /// Go's `Duration.String`.
    pub fn to_go_string(self) -> String {
        let neg = self.0 < 0;
        let mut u = self.0.unsigned_abs();
        let mut out;
        if u < NANOS as u64 {
            if u == 0 {
                return "0s".into();
            }
            let (prec, unit) = if u < 1_000 {
                (0, "ns")
            } else if u < 1_000_000 {
                (3, "µs")
            } else {
                (6, "ms")
            };
            let (frac, v) = fmt_frac(u, prec);
            out = format!("{v}{frac}{unit}");
        } else {
            let (frac, v) = fmt_frac(u, 9);
            u = v;
            out = format!("{}{frac}s", u % 60);
            u /= 60;
            if u > 0 {
                out = format!("{}m{out}", u % 60);
                u /= 60;
                if u > 0 {
                    out = format!("{u}h{out}");
                }
            }
        }
        if neg {
            out.insert(0, '-');
        }
        out
    }

    /// Go's `Duration.Round`.
    pub fn round(self, m: i64) -> Duration {
        if m <= 0 {
            return self;
        }
        let mut r = self.0 % m;
        if self.0 < 0 {
            r = -r;
            if r + r < m {
                return Duration(self.0 + r);
            }
            return Duration(self.0 - m + r);
        }
        if r + r < m {
            return Duration(self.0 - r);
        }
        Duration(self.0 + m - r)
    }
}

impl Object for GoTime {
    fn type_name(&self) -> String {
        "time.Time".into()
    }

    fn member(&self, name: &str) -> Option<Member> {
        let (y, mo, d, h, mi, s) = self.civil();
        Some(Member::Field(match name {
            "Year" => Value::Int(y),
            "Month" => Value::object(Month(mo)),
            "Day" => Value::Int(d as i64),
            "Hour" => Value::Int(h as i64),
            "Minute" => Value::Int(mi as i64),
            "Second" => Value::Int(s as i64),
            "Nanosecond" => Value::Int(self.nanos as i64),
            "YearDay" => Value::Int(self.yday() as i64),
            "Weekday" => Value::object(Weekday(self.weekday())),
            "Unix" => Value::Int64(self.unix),
            "UnixMilli" => Value::Int64(self.unix * 1000 + self.nanos as i64 / 1_000_000),
            "UnixNano" => Value::Int64(self.unix.saturating_mul(NANOS) + self.nanos as i64),
            "UTC" => Value::object(self.in_zone(0, "UTC")),
            "IsZero" => Value::Bool(self.unix == -UNIX_TO_INTERNAL && self.nanos == 0),
            "String" => Value::str(self.stringer().unwrap_or_default()),
            "Format" | "Add" | "Sub" | "Before" | "After" | "Equal" | "AddDate" => {
                let params = match name {
                    "Format" => vec![Ty::String],
                    "Add" => vec![Ty::Int64],
                    "AddDate" => vec![Ty::Int, Ty::Int, Ty::Int],
                    _ => vec![Ty::Object("time.Time")],
                };
                return Some(Member::Method(MethodSig {
                    params,
                    variadic: None,
                }));
            }
            _ => return None,
        }))
    }

    fn call(&self, name: &str, args: Vec<Value>) -> Result<Value, String> {
        let other = || -> Option<GoTime> {
            match args.first() {
                Some(Value::Object(o)) => o.as_any().downcast_ref::<GoTime>().cloned(),
                _ => None,
            }
        };
        Ok(match name {
            "Format" => Value::str(self.format(args.first().and_then(Value::as_str).unwrap_or(""))),
            "Add" => Value::object(self.add(Duration(super::to_int64(&args[0])))),
            "AddDate" => {
                let (y, m, d, ..) = self.civil();
                let ny = y + super::to_int64(&args[0]);
                let nm = m as i64 - 1 + super::to_int64(&args[1]);
                let (ny, nm) = (ny + nm.div_euclid(12), nm.rem_euclid(12) as u32 + 1);
                let days = days_from_civil(ny, nm, 1) + d as i64 - 1 + super::to_int64(&args[2]);
                let secs_in_day = self.local_secs().rem_euclid(86_400);
                let local = days * 86_400 + secs_in_day;
                let mut t = self.clone();
                t.unix = local - self.offset as i64;
                Value::object(t)
            }
            "Sub" => Value::Int64(other().map(|o| self.sub(&o).0).unwrap_or(0)),
            "Before" => {
                Value::Bool(other().is_some_and(|o| (self.unix, self.nanos) < (o.unix, o.nanos)))
            }
            "After" => {
                Value::Bool(other().is_some_and(|o| (self.unix, self.nanos) > (o.unix, o.nanos)))
            }
            "Equal" => {
                Value::Bool(other().is_some_and(|o| (self.unix, self.nanos) == (o.unix, o.nanos)))
            }
            _ => return Err(format!("can't call method {name}")),
        })
    }

    fn format(&self, _plus: bool) -> String {
        self.stringer().unwrap_or_default()
    }

    fn stringer(&self) -> Option<String> {
        let mut s = self.format("2006-01-02 15:04:05.999999999 -0700 MST");
        if self.zone.is_empty() {
            s = s.trim_end().to_string();
        }
        Some(s)
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::Value::String(self.format("2006-01-02T15:04:05.999999999Z07:00"))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[derive(Debug)]
struct Month(u32);

impl Object for Month {
    fn type_name(&self) -> String {
        "time.Month".into()
    }
    fn kind(&self) -> &'static str {
        "int"
    }
    fn member(&self, _: &str) -> Option<Member> {
        None
    }
    fn format(&self, _: bool) -> String {
        MONTHS[(self.0 as usize).clamp(1, 12) - 1].into()
    }
    fn stringer(&self) -> Option<String> {
        Some(self.format(false))
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::Value::from(self.0)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[derive(Debug)]
struct Weekday(u32);

impl Object for Weekday {
    fn type_name(&self) -> String {
        "time.Weekday".into()
    }
    fn kind(&self) -> &'static str {
        "int"
    }
    fn member(&self, _: &str) -> Option<Member> {
        None
    }
    fn format(&self, _: bool) -> String {
        DAYS[(self.0 as usize) % 7].into()
    }
    fn stringer(&self) -> Option<String> {
        Some(self.format(false))
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::Value::from(self.0)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn as_time(v: &Value) -> Option<GoTime> {
    match v {
        Value::Object(o) => o.as_any().downcast_ref::<GoTime>().cloned(),
        _ => None,
    }
}

fn now(env: &mut Env<'_>) -> GoTime {
    let i = env.host.now();
    let (offset, zone) = env.host.local_zone();
    GoTime {
        unix: i.unix,
        nanos: i.nanos,
        offset,
        zone,
    }
}

fn zone_offset(env: &mut Env<'_>, zone: &str) -> (i32, String) {
    match zone {
        "Local" => env.host.local_zone(),
        "UTC" | "" => (0, "UTC".into()),
        z => {
            if let Some(h) = z.strip_prefix("Etc/GMT") {
                if let Ok(n) = h.parse::<i32>() {
                    let name = if n == 0 {
                        "GMT".to_string()
                    } else {
                        format!("{}{:02}", if n > 0 { '-' } else { '+' }, n.abs())
                    };
                    return (-n * 3600, name);
                }
            }
            (0, "UTC".into())
        }
    }
}

fn date_in_zone(env: &mut Env<'_>, layout: &str, date: &Value, zone: &str) -> String {
    let t = match date {
        Value::Int(i) | Value::Int64(i) => GoTime {
            unix: *i,
            nanos: 0,
            offset: 0,
            zone: "UTC".into(),
        },
        other => as_time(other).unwrap_or_else(|| now(env)),
    };
    let (off, name) = zone_offset(env, zone);
    t.in_zone(off, &name).format(layout)
}

fn time_value(t: GoTime) -> Value {
    Value::Object(Rc::new(t))
}

pub(super) fn register(m: &mut FuncMap) {
    use Ty::*;
    m.insert("now", fh(&[], |e, _| Ok(time_value(now(e)))));
    m.insert(
        "date",
        fh(&[String, Any], |e, a| {
            Ok(Value::str(date_in_zone(e, s(&a, 0), &a[1], "Local")))
        }),
    );
    for name in ["dateInZone", "date_in_zone"] {
        m.insert(
            name,
            fh(&[String, Any, String], |e, a| {
                Ok(Value::str(date_in_zone(e, s(&a, 0), &a[1], s(&a, 2))))
            }),
        );
    }
    m.insert(
        "htmlDate",
        fh(&[Any], |e, a| {
            Ok(Value::str(date_in_zone(e, "2006-01-02", &a[0], "Local")))
        }),
    );
    m.insert(
        "htmlDateInZone",
        fh(&[Any, String], |e, a| {
            Ok(Value::str(date_in_zone(e, "2006-01-02", &a[0], s(&a, 1))))
        }),
    );
    for name in ["dateModify", "date_modify"] {
        m.insert(
            name,
            f(&[String, Object("time.Time")], |a| {
                let t = as_time(&a[1]).unwrap_or_else(GoTime::zero);
                Ok(time_value(match parse_duration(s(&a, 0)) {
                    Ok(d) => t.add(d),
                    Err(_) => t,
                }))
            }),
        );
    }
    for name in ["mustDateModify", "must_date_modify"] {
        m.insert(
            name,
            f(&[String, Object("time.Time")], |a| {
                let t = as_time(&a[1]).unwrap_or_else(GoTime::zero);
                let d = parse_duration(s(&a, 0))?;
                Ok(time_value(t.add(d)))
            }),
        );
    }
    m.insert(
        "ago",
        fh(&[Any], |e, a| {
            let n = now(e);
            let t = match &a[0] {
                Value::Int(i) | Value::Int64(i) => GoTime {
                    unix: *i,
                    nanos: 0,
                    offset: 0,
                    zone: "UTC".into(),
                },
                other => as_time(other).unwrap_or_else(|| n.clone()),
            };
            Ok(Value::str(n.sub(&t).round(NANOS).to_go_string()))
        }),
    );
    m.insert(
        "duration",
        f(&[Any], |a| {
            let n = match &a[0] {
                Value::Str(s) => s.parse::<i64>().unwrap_or(0),
                Value::Int64(i) => *i,
                _ => 0,
            };
            Ok(Value::str(Duration(n.saturating_mul(NANOS)).to_go_string()))
        }),
    );
    m.insert(
        "durationRound",
        fh(&[Any], |e, a| {
            let d = match &a[0] {
                Value::Str(s) => parse_duration(s).map(|d| d.0).unwrap_or(0),
                Value::Int64(i) => *i,
                other => match as_time(other) {
                    Some(t) => now(e).sub(&t).0,
                    None => 0,
                },
            };
            let u = d.unsigned_abs();
            const H: u64 = 3_600_000_000_000;
            let (year, month, day, hour, minute, second) =
                (H * 24 * 365, H * 24 * 30, H * 24, H, H / 60, H / 3600);
            Ok(Value::str(if u > year {
                format!("{}y", u / year)
            } else if u > month {
                format!("{}mo", u / month)
            } else if u > day {
                format!("{}d", u / day)
            } else if u > hour {
                format!("{}h", u / hour)
            } else if u > minute {
                format!("{}m", u / minute)
            } else if u > second {
                format!("{}s", u / second)
            } else {
                "0s".into()
            }))
        }),
    );
    m.insert(
        "toDate",
        fh(&[String, String], |e, a| {
            let (off, zone) = e.host.local_zone();
            Ok(time_value(
                parse_in_location(s(&a, 0), s(&a, 1), (off, &zone))
                    .unwrap_or_else(|_| GoTime::zero()),
            ))
        }),
    );
    m.insert(
        "mustToDate",
        fh(&[String, String], |e, a| {
            let (off, zone) = e.host.local_zone();
            Ok(time_value(parse_in_location(
                s(&a, 0),
                s(&a, 1),
                (off, &zone),
            )?))
        }),
    );
    m.insert(
        "unixEpoch",
        f(&[Object("time.Time")], |a| {
            Ok(Value::str(
                as_time(&a[0]).unwrap_or_else(GoTime::zero).unix.to_string(),
            ))
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_parse() {
        let t = parse_in_location("2006-01-02", "2024-02-28", (0, "UTC")).unwrap();
        assert_eq!(t.format("Jan 2, 2006 (Mon)"), "Feb 28, 2024 (Wed)");
        assert_eq!(
            t.add(parse_duration("+48h").unwrap()).format("2006-01-02"),
            "2024-03-01"
        );
        assert_eq!(
            t.add(parse_duration("-1.5h").unwrap())
                .format("2006-01-02 15:04"),
            "2024-02-27 22:30"
        );
        let u = parse_in_location(
            "2006-01-02T15:04:05Z07:00",
            "2020-01-01T00:00:00Z",
            (0, "UTC"),
        )
        .unwrap();
        assert_eq!(u.unix, 1_577_836_800);
        assert_eq!(GoTime::zero().civil().0, 1);
        assert_eq!(t.stringer().unwrap(), "2024-02-28 00:00:00 +0000 UTC");
        assert!(parse_in_location("2006-01-02", "garbage", (0, "UTC")).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2h10m5s").unwrap().to_go_string(), "2h10m5s");
        assert_eq!(Duration(95 * NANOS).to_go_string(), "1m35s");
        assert_eq!(Duration(1_500_000).to_go_string(), "1.5ms");
        assert_eq!(Duration(0).to_go_string(), "0s");
        assert!(parse_duration("x").is_err());
    }
}

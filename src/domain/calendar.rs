//! Working time (DESIGN.md "SLA clocks"): which days are working days and when a clock falls due.
//!
//! Working days are Monday to Friday, less Chinese public holidays, plus make-up working days
//! (调休), from the holiday-cn data set (<https://github.com/NateScarlet/holiday-cn>), one
//! `YYYY.json` per year. An admin may override single days; an override beats the data set. A
//! year without data falls back to Monday to Friday: [`Calendar::has_data`] tells the caller so
//! it can say so loudly. Everything is in Asia/Shanghai, a fixed UTC+08:00 with no daylight
//! saving ([`SHANGHAI`]).
//!
//! Durations ([`SlaDuration`]) are wall-clock minutes and hours, working days, or working hours.
//! N working days count from the day after the clock starts and fall due at the end (24:00) of
//! the Nth working day, whatever kind of day the clock started on. N working hours are N hours of
//! office time ([`OfficeHours`]: by default 08:30–12:00 and 13:30–17:30 of each working day),
//! counted from the start.
//!
//! Pure: no I/O, no storage, no gRPC. Loops over days are bounded by [`MAX_SPAN_DAYS`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveTime, TimeDelta, Utc, Weekday};

/// Asia/Shanghai: UTC+08:00 all year (China has had no daylight saving since 1991).
pub const SHANGHAI: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+08:00 is a valid offset"),
};

/// How far any day-by-day search looks ahead: ten years of days. A working-day clock that
/// cannot find its Nth working day within this window (only possible with absurd overrides,
/// e.g. every day off, or an absurd N) is clamped to the end of the window instead of
/// searching on: see [`Calendar::due`].
pub const MAX_SPAN_DAYS: i64 = 3653;

/// The largest working-day duration [`SlaDuration`] accepts.
pub const MAX_WORKING_DAYS: u32 = 365;

/// The largest wall-clock duration [`SlaDuration`] accepts, in minutes: one (365-day) year.
pub const MAX_MINUTES: u32 = 365 * 24 * 60;

/// The largest working-hour duration [`SlaDuration`] accepts: [`MAX_WORKING_DAYS`] days of eight
/// office hours.
pub const MAX_WORKING_HOURS: u32 = MAX_WORKING_DAYS * 8;

/// The office hours when none are configured, as written in the settings.
pub const DEFAULT_OFFICE_HOURS: [&str; 2] = ["08:30-12:00", "13:30-17:30"];

/// The shipped holiday-cn files, by year: the source of [`Calendar::builtin`], also handy for
/// seeding storage.
pub const BUILTIN_DATA: [(i32, &str); 3] = [
    (2024, include_str!("../../data/calendar/2024.json")),
    (2025, include_str!("../../data/calendar/2025.json")),
    (2026, include_str!("../../data/calendar/2026.json")),
];

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;
const DAY_MINUTES: u32 = 24 * 60;

/// The periods of each working day that count as office hours: what `Nwh` durations
/// ([`SlaDuration::WorkingHours`]) and [`Calendar::office_seconds_between`] count.
///
/// One or more daily periods in Asia/Shanghai local time, each written `HH:MM-HH:MM` (a period
/// includes its start and excludes its end; `24:00` may end one), ascending and not
/// overlapping (one may begin where the one before ends). The same periods hold on every
/// working day of the [`Calendar`], make-up working days (调休) included; days off have none.
/// The default is [`DEFAULT_OFFICE_HOURS`]: 08:30–12:00 and 13:30–17:30.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OfficeHours {
    /// (start, end) in minutes after local midnight: `start < end <= 24 × 60`, ascending,
    /// not overlapping, never empty.
    periods: Vec<(u32, u32)>,
}

impl Default for OfficeHours {
    /// 08:30–12:00 and 13:30–17:30.
    fn default() -> Self {
        OfficeHours {
            periods: vec![(8 * 60 + 30, 12 * 60), (13 * 60 + 30, 17 * 60 + 30)],
        }
    }
}

impl OfficeHours {
    /// Office hours from their periods, each `HH:MM-HH:MM` (surrounding whitespace ignored):
    /// well-formed, within a day, each ending after it starts, in order and not overlapping,
    /// at least one. The error is one line naming the period at fault.
    pub fn parse<S: AsRef<str>>(periods: &[S]) -> Result<OfficeHours, String> {
        if periods.is_empty() {
            return Err("no periods: at least one is needed, e.g. 08:30-12:00".into());
        }
        let mut parsed: Vec<(u32, u32)> = Vec::with_capacity(periods.len());
        for text in periods {
            let text = text.as_ref().trim();
            let bounds = text
                .split_once('-')
                .and_then(|(a, b)| Some((parse_clock(a.trim())?, parse_clock(b.trim())?)));
            let Some((start, end)) = bounds else {
                return Err(format!(
                    "period {text:?} is not HH:MM-HH:MM (00:00 to 24:00), e.g. 08:30-12:00"
                ));
            };
            if end <= start {
                return Err(format!("period {text:?} does not end after it starts"));
            }
            if let Some(&(before_start, before_end)) = parsed.last()
                && start < before_end
            {
                return Err(format!(
                    "period {text:?} begins before {} ends: periods must be in order and not overlap",
                    period_text(before_start, before_end)
                ));
            }
            parsed.push((start, end));
        }
        Ok(OfficeHours { periods: parsed })
    }

    /// Office time in one working day, in minutes.
    pub fn daily_minutes(&self) -> u32 {
        self.periods.iter().map(|(start, end)| end - start).sum()
    }
}

impl FromStr for OfficeHours {
    type Err = String;

    /// Periods separated by commas, as the environment gives them: `08:30-12:00,13:30-17:30`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let periods: Vec<&str> = s.split(',').filter(|p| !p.trim().is_empty()).collect();
        OfficeHours::parse(&periods)
    }
}

impl fmt::Display for OfficeHours {
    /// The periods separated by commas, as [`FromStr`] reads them: `08:30-12:00,13:30-17:30`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(start, end)) in self.periods.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(&period_text(start, end))?;
        }
        Ok(())
    }
}

/// `HH:MM` → minutes after midnight; `24:00` is the end of the day.
fn parse_clock(s: &str) -> Option<u32> {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' || !b[..2].iter().chain(&b[3..]).all(u8::is_ascii_digit) {
        return None;
    }
    let hours: u32 = s[..2].parse().ok()?;
    let minutes: u32 = s[3..].parse().ok()?;
    let total = hours * 60 + minutes;
    (minutes < 60 && total <= DAY_MINUTES).then_some(total)
}

fn period_text(start: u32, end: u32) -> String {
    format!(
        "{:02}:{:02}-{:02}:{:02}",
        start / 60,
        start % 60,
        end / 60,
        end % 60
    )
}

/// Whether a day is worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DayKind {
    Working,
    Off,
}

impl DayKind {
    /// `"working"` or `"off"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DayKind::Working => "working",
            DayKind::Off => "off",
        }
    }
}

impl fmt::Display for DayKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DayKind {
    type Err = String;

    /// `"working"` or `"off"`, exactly.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "working" => Ok(DayKind::Working),
            "off" => Ok(DayKind::Off),
            other => Err(format!(
                "unknown day kind {other:?}: expected \"working\" or \"off\""
            )),
        }
    }
}

/// One day the data set or an admin names: a holiday, a make-up working day, or an override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarDay {
    pub date: NaiveDate,
    pub kind: DayKind,
    /// The holiday it belongs to (`春节`, `国庆节、中秋节`), or the admin's reason.
    pub name: String,
    /// Set by an admin, not the data set.
    pub is_override: bool,
}

/// The working-day calendar: data-set days and override days by date, the years the data set
/// covers, and the office hours of its working days (by default [`DEFAULT_OFFICE_HOURS`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    data: BTreeMap<NaiveDate, CalendarDay>,
    overrides: BTreeMap<NaiveDate, CalendarDay>,
    years: BTreeSet<i32>,
    office_hours: OfficeHours,
}

impl Calendar {
    /// The shipped data (2024–2026, [`BUILTIN_DATA`]), no overrides. A shipped file that failed
    /// to parse would be left out; the module's tests make sure none does.
    pub fn builtin() -> Calendar {
        let mut years = BTreeSet::new();
        let mut days = Vec::new();
        for (_, json) in BUILTIN_DATA {
            if let Ok((year, year_days)) = parse_holiday_cn_json(json.as_bytes()) {
                years.insert(year);
                days.extend(year_days);
            }
        }
        Calendar::from_parts(years, days, Vec::new())
    }

    /// A calendar from stored parts: the years the data set covers, its days (which may include
    /// a few days of an adjoining year, as holiday-cn's files do), and admin overrides.
    /// `is_override` is set from the list a day comes in, whatever it said. When a date repeats
    /// within a list the later entry wins.
    pub fn from_parts(
        years: BTreeSet<i32>,
        data_days: Vec<CalendarDay>,
        overrides: Vec<CalendarDay>,
    ) -> Calendar {
        let data = data_days
            .into_iter()
            .map(|d| {
                (
                    d.date,
                    CalendarDay {
                        is_override: false,
                        ..d
                    },
                )
            })
            .collect();
        let overrides = overrides
            .into_iter()
            .map(|d| {
                (
                    d.date,
                    CalendarDay {
                        is_override: true,
                        ..d
                    },
                )
            })
            .collect();
        Calendar {
            data,
            overrides,
            years,
            office_hours: OfficeHours::default(),
        }
    }

    /// The same calendar with other office hours.
    pub fn with_office_hours(self, office_hours: OfficeHours) -> Calendar {
        Calendar {
            office_hours,
            ..self
        }
    }

    /// The office hours `Nwh` durations and [`Calendar::office_seconds_between`] count.
    pub fn office_hours(&self) -> &OfficeHours {
        &self.office_hours
    }

    /// Whether the data set covers `year`. Without data the year is plain Monday to Friday
    /// (plus any overrides), and the caller should warn.
    pub fn has_data(&self, year: i32) -> bool {
        self.years.contains(&year)
    }

    /// The years the data set covers, ascending.
    pub fn years(&self) -> impl Iterator<Item = i32> + '_ {
        self.years.iter().copied()
    }

    /// Whether `date` is a working day: the override if any, else the data set's entry, else
    /// Monday to Friday.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        match self.day(date) {
            Some(day) => day.kind == DayKind::Working,
            None => !matches!(date.weekday(), Weekday::Sat | Weekday::Sun),
        }
    }

    /// The entry that decides `date` (the override, else the data-set entry), if any.
    pub fn day(&self, date: NaiveDate) -> Option<&CalendarDay> {
        self.overrides.get(&date).or_else(|| self.data.get(&date))
    }

    /// The named days dated in `year` (holidays, make-up working days, overrides; the data
    /// set's weekend days inside a holiday period included), overrides applied, by date.
    pub fn exceptions(&self, year: i32) -> Vec<CalendarDay> {
        let (Some(first), Some(last)) = (
            NaiveDate::from_ymd_opt(year, 1, 1),
            NaiveDate::from_ymd_opt(year, 12, 31),
        ) else {
            return Vec::new();
        };
        let mut days: BTreeMap<NaiveDate, &CalendarDay> = self
            .data
            .range(first..=last)
            .map(|(d, day)| (*d, day))
            .collect();
        days.extend(self.overrides.range(first..=last).map(|(d, day)| (*d, day)));
        days.into_values().cloned().collect()
    }

    /// When a clock started at `start` with duration `d` falls due.
    ///
    /// Minutes and hours are wall-clock: `start + d`. N working days: 00:00 (Asia/Shanghai) of
    /// the day after the Nth working day strictly after the start's date, whatever kind of day
    /// that was. N working hours: the instant by which N hours of office time
    /// ([`Calendar::office_hours`] of working days) have passed since `start`: a start inside
    /// office hours counts from that instant, one outside them (at lunch, at night, on a day off,
    /// or exactly at a period's end) from the start of the next period. A clock whose time runs
    /// out exactly at the end of a period falls due at that end (12:00, not 13:30 or the next
    /// morning). Zero of any unit is `start`. If the Nth working day (or the Nth office hour) is
    /// not within [`MAX_SPAN_DAYS`] after the start's date, the result is clamped to 00:00 of the
    /// day after that window: about ten years out, which callers may treat as never.
    pub fn due(&self, start: DateTime<Utc>, d: SlaDuration) -> DateTime<Utc> {
        match d {
            SlaDuration::Minutes(m) => add_ms(start, i64::from(m) * MINUTE_MS),
            SlaDuration::WorkingHours(n) => self.after_office_time(start, i64::from(n) * HOUR_MS),
            SlaDuration::WorkingDays(0) => start,
            SlaDuration::WorkingDays(n) => {
                let from = local_date(start);
                let mut seen = 0u32;
                let mut day = from;
                for _ in 0..MAX_SPAN_DAYS {
                    let Some(next) = day.succ_opt() else {
                        return DateTime::<Utc>::MAX_UTC;
                    };
                    day = next;
                    if self.is_working_day(day) {
                        seen += 1;
                        if seen == n {
                            return midnight_after(day);
                        }
                    }
                }
                window_end(from)
            }
        }
    }

    /// The instant when `fraction` of the duration has passed (0.8 warns, 1.0 is [`due`],
    /// 1.5 escalates, 2.0 escalates again).
    ///
    /// Wall-clock durations scale linearly: `start + fraction × d`, to the millisecond.
    /// Working days: `fraction × n` days of working time (the full 24 h of each working day,
    /// Asia/Shanghai) counted from 00:00 of the day after the start's date; so 1.0 equals
    /// [`due`] and 1.5 × 7wd is 12:00 of the 11th working day. Working hours scale the office
    /// time linearly: `fraction × n` hours of office time counted as [`due`] counts them (0.8 ×
    /// 4wh is 3 h 12 min of office time), falling at a period's end when they run out there;
    /// so 1.0 equals [`due`]. A fraction that is not positive (or NaN) gives `start`; the same
    /// [`MAX_SPAN_DAYS`] clamp as [`due`] applies.
    ///
    /// [`due`]: Calendar::due
    pub fn at_fraction(
        &self,
        start: DateTime<Utc>,
        d: SlaDuration,
        fraction: f64,
    ) -> DateTime<Utc> {
        if fraction.is_nan() || fraction <= 0.0 {
            return start;
        }
        let cap = (MAX_SPAN_DAYS + 1) * DAY_MS;
        let scaled = |unit_ms: f64, n: u32| -> i64 {
            let ms = (fraction * f64::from(n) * unit_ms).round();
            if ms >= cap as f64 { cap } else { ms as i64 }
        };
        match d {
            SlaDuration::Minutes(m) => add_ms(start, scaled(MINUTE_MS as f64, m)),
            SlaDuration::WorkingHours(n) => {
                self.after_office_time(start, scaled(HOUR_MS as f64, n))
            }
            SlaDuration::WorkingDays(0) => start,
            SlaDuration::WorkingDays(n) => {
                let from = local_date(start);
                let mut remaining = scaled(DAY_MS as f64, n);
                let mut day = from;
                for _ in 0..MAX_SPAN_DAYS {
                    let Some(next) = day.succ_opt() else {
                        return DateTime::<Utc>::MAX_UTC;
                    };
                    day = next;
                    if self.is_working_day(day) {
                        if remaining <= DAY_MS {
                            return add_ms(midnight(day), remaining);
                        }
                        remaining -= DAY_MS;
                    }
                }
                window_end(from)
            }
        }
    }

    /// Working time between two instants, in whole seconds: the parts of `[a, b)` that fall on
    /// working days (whole 24 h days, Asia/Shanghai). 0 when `b <= a`. Walks the days of the
    /// span once, so it takes time linear in the number of days, not seconds.
    pub fn working_seconds_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
        self.seconds_within(a, b, |day| {
            self.is_working_day(day)
                .then(|| (midnight(day), midnight_after(day)))
        })
    }

    /// Office time between two instants, in whole seconds: the parts of `[a, b)` that fall in
    /// [`Calendar::office_hours`] of working days (nothing at lunch, at night or on days off).
    /// 0 when `b <= a`. From a clock's start to its due time under `Nwh` it is exactly N hours.
    /// Walks the days of the span once, so it takes time linear in the number of days.
    pub fn office_seconds_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
        self.seconds_within(a, b, |day| self.office_periods(day))
    }

    /// The parts of `[a, b)` that fall in the periods `periods` gives for each local day of the
    /// span, in whole seconds; 0 when `b <= a`.
    fn seconds_within<I>(
        &self,
        a: DateTime<Utc>,
        b: DateTime<Utc>,
        periods: impl Fn(NaiveDate) -> I,
    ) -> i64
    where
        I: IntoIterator<Item = (DateTime<Utc>, DateTime<Utc>)>,
    {
        if b <= a {
            return 0;
        }
        let last = local_date(b);
        let mut day = local_date(a);
        let mut total = TimeDelta::zero();
        loop {
            for (open, close) in periods(day) {
                let from = open.max(a);
                let to = close.min(b);
                if to > from {
                    total += to - from;
                }
            }
            if day >= last {
                break;
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        total.num_seconds()
    }

    /// The office periods of `date` as instants: none on a day off.
    fn office_periods(
        &self,
        date: NaiveDate,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        let periods: &[(u32, u32)] = if self.is_working_day(date) {
            &self.office_hours.periods
        } else {
            &[]
        };
        let base = midnight(date);
        periods.iter().map(move |&(start, end)| {
            (
                add_ms(base, i64::from(start) * MINUTE_MS),
                add_ms(base, i64::from(end) * MINUTE_MS),
            )
        })
    }

    /// The instant by which `ms` milliseconds of office time have passed since `start`: the end
    /// of the period where they run out, when they run out exactly there. `start` itself when
    /// `ms` is not positive; clamped as [`Calendar::due`] says.
    fn after_office_time(&self, start: DateTime<Utc>, ms: i64) -> DateTime<Utc> {
        if ms <= 0 {
            return start;
        }
        let from = local_date(start);
        let mut remaining = ms;
        let mut day = from;
        for _ in 0..=MAX_SPAN_DAYS {
            for (open, close) in self.office_periods(day) {
                let open = open.max(start);
                if close <= open {
                    continue;
                }
                let available = (close - open).num_milliseconds();
                if remaining <= available {
                    return add_ms(open, remaining);
                }
                remaining -= available;
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => return DateTime::<Utc>::MAX_UTC,
            }
        }
        window_end(from)
    }
}

/// The local (Asia/Shanghai) date of an instant.
fn local_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&SHANGHAI).date_naive()
}

/// 00:00 Asia/Shanghai at the start of `date`.
fn midnight(date: NaiveDate) -> DateTime<Utc> {
    let utc_midnight = date.and_time(NaiveTime::MIN).and_utc();
    utc_midnight
        .checked_sub_signed(TimeDelta::seconds(i64::from(SHANGHAI.local_minus_utc())))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// 24:00 Asia/Shanghai at the end of `date`.
fn midnight_after(date: NaiveDate) -> DateTime<Utc> {
    add_ms(midnight(date), DAY_MS)
}

/// The end of the search window that starts after `from`.
fn window_end(from: NaiveDate) -> DateTime<Utc> {
    add_ms(midnight_after(from), MAX_SPAN_DAYS * DAY_MS)
}

fn add_ms(t: DateTime<Utc>, ms: i64) -> DateTime<Utc> {
    t.checked_add_signed(TimeDelta::milliseconds(ms))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// An SLA clock's length: wall-clock minutes (hours are stored as minutes), working days, or
/// working hours (hours of office time, [`OfficeHours`]).
///
/// Parsed from `15m`, `90m`, `1h`, `24h`, `7wd`, `4wh`: a whole positive number and a unit,
/// `m`, `h`, `wd` or `wh`, lower case, surrounding whitespace ignored. At most [`MAX_MINUTES`]
/// (one year), [`MAX_WORKING_DAYS`] or [`MAX_WORKING_HOURS`]. Displayed canonically: whole
/// hours as `h`, other minutes as `m`, so `"120m"` displays `"2h"` and `"90m"` stays `"90m"`;
/// working days as `wd`, working hours as `wh`. What [`Calendar::due`] makes of each is
/// documented there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlaDuration {
    Minutes(u32),
    WorkingDays(u32),
    WorkingHours(u32),
}

impl fmt::Display for SlaDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SlaDuration::Minutes(m) if m > 0 && m % 60 == 0 => write!(f, "{}h", m / 60),
            SlaDuration::Minutes(m) => write!(f, "{m}m"),
            SlaDuration::WorkingDays(n) => write!(f, "{n}wd"),
            SlaDuration::WorkingHours(n) => write!(f, "{n}wh"),
        }
    }
}

/// Stored and exchanged as its text (`3wd`), as the policy and the command line write it.
impl serde::Serialize for SlaDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SlaDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for SlaDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const HINT: &str = "write a whole number and a unit: 15m, 24h, 7wd or 4wh";
        let t = s.trim();
        if t.is_empty() {
            return Err(format!("empty duration: {HINT}"));
        }
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(digits);
        if number.is_empty() {
            return Err(format!(
                "duration {s:?} does not start with a whole number: {HINT}"
            ));
        }
        let (per_unit, max, unit_name) = match unit {
            "m" => (1, MAX_MINUTES, "minutes"),
            "h" => (60, MAX_MINUTES / 60, "hours"),
            "wd" => (1, MAX_WORKING_DAYS, "working days"),
            "wh" => (1, MAX_WORKING_HOURS, "working hours"),
            "" => return Err(format!("duration {s:?} has no unit: {HINT}")),
            u if u.starts_with(['.', ',']) => {
                return Err(format!(
                    "duration {s:?} is not a whole number: {HINT} (90m, not 1.5h)"
                ));
            }
            u => {
                return Err(format!(
                    "duration {s:?} has unknown unit {u:?}: use m (minutes), h (hours), wd (working days) or wh (working hours)"
                ));
            }
        };
        let n: u32 = number
            .parse()
            .map_err(|_| format!("duration {s:?} is too large: at most {max} {unit_name}"))?;
        if n == 0 {
            return Err(format!("duration {s:?} must be positive"));
        }
        if n > max {
            return Err(format!(
                "duration {s:?} is too large: at most {max} {unit_name}"
            ));
        }
        Ok(match unit {
            "wd" => SlaDuration::WorkingDays(n),
            "wh" => SlaDuration::WorkingHours(n),
            _ => SlaDuration::Minutes(n * per_unit),
        })
    }
}

/// Parses one holiday-cn `YYYY.json` file: `{"year": 2025, "papers": [...], "days": [{"name":
/// "元旦", "date": "2025-01-01", "isOffDay": true}, ...]}`; other top-level keys (`$schema`,
/// `$id`) are ignored. Returns the year and its days by date, none marked as override.
///
/// Every day must be dated in the year, or in the December before or the January after it:
/// holiday-cn keeps a notice's days together, and the New Year notice may reach into the old
/// year (`2012.json` holds the make-up day 2011-12-31; `2019.json` holds 2018-12-29..31).
/// Names must be non-empty and dates unique; errors name the index and the field.
pub fn parse_holiday_cn_json(data: &[u8]) -> Result<(i32, Vec<CalendarDay>), String> {
    let value: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| format!("not valid JSON: {e}"))?;
    let top = value
        .as_object()
        .ok_or("the top level must be a JSON object")?;
    let year = top
        .get("year")
        .ok_or("missing field \"year\"")?
        .as_i64()
        .filter(|y| (1900..=9999).contains(y))
        .and_then(|y| i32::try_from(y).ok())
        .ok_or("\"year\" must be a whole number from 1900 to 9999")?;
    if let Some(papers) = top.get("papers") {
        let papers = papers
            .as_array()
            .ok_or("\"papers\" must be a list of strings")?;
        if let Some(i) = papers.iter().position(|p| !p.is_string()) {
            return Err(format!("papers[{i}] must be a string"));
        }
    }
    let list = top
        .get("days")
        .ok_or("missing field \"days\"")?
        .as_array()
        .ok_or("\"days\" must be a list")?;
    let mut seen: HashMap<NaiveDate, usize> = HashMap::new();
    let mut days = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let obj = entry
            .as_object()
            .ok_or_else(|| format!("days[{i}] must be an object"))?;
        let name = obj
            .get("name")
            .and_then(|n| n.as_str())
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("days[{i}].name must be a non-empty string"))?;
        let date_text = obj
            .get("date")
            .and_then(|d| d.as_str())
            .ok_or_else(|| format!("days[{i}].date must be a string (YYYY-MM-DD)"))?;
        let date = parse_iso_date(date_text).ok_or_else(|| {
            format!("days[{i}].date {date_text:?} is not a valid YYYY-MM-DD date")
        })?;
        if !belongs_to_year(date, year) {
            return Err(format!(
                "days[{i}].date {date} is outside {year} (only {year}, December {} and January {} may appear)",
                year - 1,
                year + 1
            ));
        }
        let off = obj
            .get("isOffDay")
            .and_then(|o| o.as_bool())
            .ok_or_else(|| format!("days[{i}].isOffDay must be true or false"))?;
        if let Some(first) = seen.insert(date, i) {
            return Err(format!("days[{i}].date {date} repeats days[{first}]"));
        }
        days.push(CalendarDay {
            date,
            kind: if off { DayKind::Off } else { DayKind::Working },
            name: name.to_owned(),
            is_override: false,
        });
    }
    days.sort_by_key(|d| d.date);
    Ok((year, days))
}

/// Strict `YYYY-MM-DD`.
fn parse_iso_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !digits(0..4)
        || !digits(5..7)
        || !digits(8..10)
    {
        return None;
    }
    let y = s[0..4].parse().ok()?;
    let m = s[5..7].parse().ok()?;
    let d = s[8..10].parse().ok()?;
    NaiveDate::from_ymd_opt(y, m, d)
}

fn belongs_to_year(date: NaiveDate, year: i32) -> bool {
    date.year() == year
        || (date.year() == year - 1 && date.month() == 12)
        || (date.year() == year + 1 && date.month() == 1)
}

/// Parses holiday-cn's iCalendar export (`YYYY.ics`, `holiday-cn.ics`) into per-year day
/// lists, ascending by year, each day list by date.
///
/// holiday-cn writes one all-day VEVENT per run of consecutive days of one kind:
/// `DTSTART;VALUE=DATE:20251001`, `DTEND;VALUE=DATE:20251009` (exclusive; missing means one
/// day) and `SUMMARY:国庆节、中秋节假期` for days off or `SUMMARY:上班(补国庆节、中秋节假期)` for
/// make-up working days. Other calendars' wording is accepted too: a summary with 上班, 补班,
/// 调班 or a trailing 班 is a working day, else one with 假 or 休 is a day off; the name is the
/// summary without those words. Folded lines (at any byte) and CRLF or LF line ends are handled;
/// nested components (VALARM) and other properties are ignored.
///
/// A day belongs to the year of its date, except the December days of a 元旦 event, which
/// belong to the next year's schedule (as in holiday-cn's `2019.json`). Overlapping events that
/// disagree about a day, a date-time DTSTART, an event longer than 366 days or a summary that is
/// neither are errors naming the event's line.
pub fn parse_ics(data: &[u8]) -> Result<Vec<(i32, Vec<CalendarDay>)>, String> {
    struct Event {
        line: usize,
        summary: Option<String>,
        start: Option<NaiveDate>,
        end: Option<NaiveDate>,
    }

    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut years: BTreeMap<i32, BTreeMap<NaiveDate, (CalendarDay, usize)>> = BTreeMap::new();
    let mut stack: Vec<String> = Vec::new();
    let mut event: Option<Event> = None;
    let mut saw_calendar = false;

    for (line_no, raw) in unfold(data) {
        let line = String::from_utf8(raw).map_err(|_| format!("line {line_no}: not UTF-8"))?;
        if line.trim().is_empty() {
            continue;
        }
        let (name, params, value) = split_property(&line)
            .ok_or_else(|| format!("line {line_no}: not a property line: {line:?}"))?;
        match name.as_str() {
            "BEGIN" => {
                let component = value.trim().to_ascii_uppercase();
                if component == "VCALENDAR" {
                    saw_calendar = true;
                }
                if component == "VEVENT" {
                    if event.is_some() {
                        return Err(format!("line {line_no}: VEVENT inside a VEVENT"));
                    }
                    event = Some(Event {
                        line: line_no,
                        summary: None,
                        start: None,
                        end: None,
                    });
                }
                stack.push(component);
            }
            "END" => {
                let component = value.trim().to_ascii_uppercase();
                if stack.pop().as_deref() != Some(component.as_str()) {
                    return Err(format!(
                        "line {line_no}: END:{component} closes nothing open"
                    ));
                }
                if component == "VEVENT" {
                    let Some(ev) = event.take() else {
                        return Err(format!("line {line_no}: END:VEVENT without BEGIN"));
                    };
                    let at = ev.line;
                    let summary = ev
                        .summary
                        .ok_or_else(|| format!("event at line {at}: no SUMMARY"))?;
                    let start = ev
                        .start
                        .ok_or_else(|| format!("event at line {at}: no DTSTART"))?;
                    let end = match ev.end {
                        Some(end) => end,
                        None => start
                            .succ_opt()
                            .ok_or_else(|| format!("event at line {at}: DTSTART out of range"))?,
                    };
                    let span = (end - start).num_days();
                    if span <= 0 {
                        return Err(format!(
                            "event at line {at}: DTEND {end} is not after DTSTART {start}"
                        ));
                    }
                    if span > 366 {
                        return Err(format!(
                            "event at line {at}: {span} days long, more than a year"
                        ));
                    }
                    let (kind, holiday) = classify_summary(&summary).ok_or_else(|| {
                        format!(
                            "event at line {at}: cannot tell from SUMMARY {summary:?} whether it is a holiday (假/休) or a make-up working day (班)"
                        )
                    })?;
                    for date in start.iter_days().take_while(|d| *d < end) {
                        let year = if date.month() == 12 && holiday.contains("元旦") {
                            date.year() + 1
                        } else {
                            date.year()
                        };
                        let days = years.entry(year).or_default();
                        if let Some((existing, other)) = days.get(&date) {
                            if existing.kind != kind {
                                return Err(format!(
                                    "events at lines {other} and {at} disagree about {date}"
                                ));
                            }
                            continue;
                        }
                        let day = CalendarDay {
                            date,
                            kind,
                            name: holiday.clone(),
                            is_override: false,
                        };
                        days.insert(date, (day, at));
                    }
                }
            }
            _ => {
                let Some(ev) = event.as_mut() else {
                    continue;
                };
                if stack.last().map(String::as_str) != Some("VEVENT") {
                    continue;
                }
                match name.as_str() {
                    "SUMMARY" => ev.summary = Some(unescape_text(&value)),
                    "DTSTART" => {
                        ev.start = Some(parse_ics_date(&params, &value, "DTSTART", line_no)?)
                    }
                    "DTEND" => ev.end = Some(parse_ics_date(&params, &value, "DTEND", line_no)?),
                    _ => {}
                }
            }
        }
    }
    if !saw_calendar {
        return Err("not an iCalendar file: no BEGIN:VCALENDAR".into());
    }
    if let Some(ev) = event {
        return Err(format!("event at line {} has no END:VEVENT", ev.line));
    }
    Ok(years
        .into_iter()
        .map(|(year, days)| (year, days.into_values().map(|(day, _)| day).collect()))
        .collect())
}

/// Logical lines with the physical line number each starts on: line ends are LF or CRLF, and a
/// line starting with a space or tab continues the previous one (RFC 5545 §3.1). Works on bytes,
/// so a fold inside a UTF-8 sequence joins back correctly.
fn unfold(data: &[u8]) -> Vec<(usize, Vec<u8>)> {
    let mut lines: Vec<(usize, Vec<u8>)> = Vec::new();
    for (i, physical) in data.split(|b| *b == b'\n').enumerate() {
        let physical = physical.strip_suffix(b"\r").unwrap_or(physical);
        match (physical.first(), lines.last_mut()) {
            (Some(b' ' | b'\t'), Some((_, last))) => last.extend_from_slice(&physical[1..]),
            _ => lines.push((i + 1, physical.to_vec())),
        }
    }
    lines
}

/// `NAME;PARAM=x:value` → (upper-case name, params text, value). The value starts at the first
/// colon outside double quotes.
fn split_property(line: &str) -> Option<(String, String, String)> {
    let mut quoted = false;
    let colon = line.char_indices().find_map(|(i, c)| match c {
        '"' => {
            quoted = !quoted;
            None
        }
        ':' if !quoted => Some(i),
        _ => None,
    })?;
    let (head, value) = (&line[..colon], &line[colon + 1..]);
    let (name, params) = head.split_once(';').unwrap_or((head, ""));
    if name.is_empty() {
        return None;
    }
    Some((
        name.trim().to_ascii_uppercase(),
        params.to_ascii_uppercase(),
        value.to_owned(),
    ))
}

/// An all-day date value, `YYYYMMDD`.
fn parse_ics_date(params: &str, value: &str, what: &str, line: usize) -> Result<NaiveDate, String> {
    let v = value.trim();
    if params.contains("VALUE=DATE-TIME") || v.contains('T') {
        return Err(format!(
            "line {line}: {what} {v:?} is a date-time; holiday events are all-day dates (VALUE=DATE)"
        ));
    }
    if v.len() != 8 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("line {line}: {what} {v:?} is not a YYYYMMDD date"));
    }
    let (y, m, d) = (v[0..4].parse(), v[4..6].parse(), v[6..8].parse());
    match (y, m, d) {
        (Ok(y), Ok(m), Ok(d)) => NaiveDate::from_ymd_opt(y, m, d),
        _ => None,
    }
    .ok_or_else(|| format!("line {line}: {what} {v:?} is not a valid date"))
}

/// RFC 5545 TEXT unescaping: `\,` `\;` `\\` `\n`.
fn unescape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// A holiday event's summary → whether the days are worked, and the holiday's name.
fn classify_summary(summary: &str) -> Option<(DayKind, String)> {
    let s = summary.trim();
    // holiday-cn's own form: "上班(补春节假期)" / "春节假期".
    for (open, close) in [("上班(补", ")"), ("上班（补", "）")] {
        if let Some(inner) = s.strip_prefix(open).and_then(|r| r.strip_suffix(close)) {
            let name = inner.strip_suffix("假期").unwrap_or(inner).trim();
            if !name.is_empty() {
                return Some((DayKind::Working, name.to_owned()));
            }
        }
    }
    let working = ["上班", "补班", "调班"].iter().any(|w| s.contains(w))
        || s.trim_end_matches([')', '）', ']', '】']).ends_with('班');
    let kind = if working {
        DayKind::Working
    } else if s.contains('假') || s.contains('休') {
        DayKind::Off
    } else {
        return None;
    };
    let mut name = s.to_owned();
    for word in [
        "上班",
        "补班",
        "调班",
        "放假",
        "假期",
        "休息",
        "补休",
        "(班)",
        "（班）",
        "(休)",
        "（休）",
        "班",
        "休",
        "假",
    ] {
        name = name.replace(word, "");
    }
    let name = name
        .trim_matches(|c: char| c.is_whitespace() || "()（）[]【】『』-–—·:：,，".contains(c))
        .to_owned();
    Some((kind, if name.is_empty() { s.to_owned() } else { name }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An instant written in Asia/Shanghai local time.
    fn sh(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn date(s: &str) -> NaiveDate {
        parse_iso_date(s).unwrap()
    }

    fn wd(n: u32) -> SlaDuration {
        SlaDuration::WorkingDays(n)
    }

    fn wh(n: u32) -> SlaDuration {
        SlaDuration::WorkingHours(n)
    }

    fn day(d: &str, kind: DayKind, name: &str) -> CalendarDay {
        CalendarDay {
            date: date(d),
            kind,
            name: name.into(),
            is_override: false,
        }
    }

    #[test]
    fn shanghai_is_utc_plus_eight() {
        assert_eq!(SHANGHAI.local_minus_utc(), 8 * 3600);
        // 00:00 in Shanghai is 16:00 UTC the day before.
        assert_eq!(midnight(date("2025-10-14")), sh("2025-10-13T16:00:00Z"));
        assert_eq!(local_date(sh("2025-10-13T16:00:00Z")), date("2025-10-14"));
        assert_eq!(local_date(sh("2025-10-13T15:59:59Z")), date("2025-10-13"));
    }

    #[test]
    fn national_day_2025_seven_working_days() {
        // Started Friday 2025-09-26 10:00. The days after it:
        //   09-27 Sat off; 09-28 Sun make-up → 1; 09-29 Mon → 2; 09-30 Tue → 3;
        //   10-01 … 10-08 国庆节、中秋节 off; 10-09 Thu → 4; 10-10 Fri → 5;
        //   10-11 Sat make-up → 6; 10-12 Sun off; 10-13 Mon → 7.
        // Due at the end of 10-13: 2025-10-14 00:00 +08:00.
        let cal = Calendar::builtin();
        let start = sh("2025-09-26T10:00:00+08:00");
        assert_eq!(cal.due(start, wd(7)), sh("2025-10-14T00:00:00+08:00"));
        // Each step of the count, so an off-by-one anywhere shows.
        let ends = [
            "2025-09-29",
            "2025-09-30",
            "2025-10-01",
            "2025-10-10",
            "2025-10-11",
            "2025-10-12",
            "2025-10-14",
        ];
        for (n, end) in (1..=7).zip(ends) {
            assert_eq!(
                cal.due(start, wd(n)),
                sh(&format!("{end}T00:00:00+08:00")),
                "{n}wd"
            );
        }
    }

    #[test]
    fn spring_festival_2026_make_up_saturdays() {
        // Started Thu 2026-02-12 09:00: 02-13 Fri → 1; 02-14 Sat make-up → 2;
        // 02-15 … 02-23 春节 off; 02-24 … 02-27 Tue–Fri → 3 … 6; 02-28 Sat make-up → 7.
        let cal = Calendar::builtin();
        let start = sh("2026-02-12T09:00:00+08:00");
        assert_eq!(cal.due(start, wd(2)), sh("2026-02-15T00:00:00+08:00"));
        assert_eq!(cal.due(start, wd(3)), sh("2026-02-25T00:00:00+08:00"));
        assert_eq!(cal.due(start, wd(7)), sh("2026-03-01T00:00:00+08:00"));
        assert!(cal.is_working_day(date("2026-02-14")));
        assert!(cal.is_working_day(date("2026-02-28")));
        assert!(!cal.is_working_day(date("2026-02-23"))); // a Monday inside the holiday
        assert!(!cal.is_working_day(date("2026-03-01"))); // a plain Sunday
    }

    #[test]
    fn spring_festival_2025_make_up_sunday_and_saturday() {
        // Started Fri 2025-01-24 16:00: 01-25 Sat off; 01-26 Sun make-up → 1; 01-27 Mon → 2;
        // 01-28 … 02-04 春节 off; 02-05 … 02-07 Wed–Fri → 3 … 5; 02-08 Sat make-up → 6;
        // 02-09 Sun off; 02-10 Mon → 7.
        let cal = Calendar::builtin();
        let start = sh("2025-01-24T16:00:00+08:00");
        assert_eq!(cal.due(start, wd(1)), sh("2025-01-27T00:00:00+08:00"));
        assert_eq!(cal.due(start, wd(3)), sh("2025-02-06T00:00:00+08:00"));
        assert_eq!(cal.due(start, wd(6)), sh("2025-02-09T00:00:00+08:00"));
        assert_eq!(cal.due(start, wd(7)), sh("2025-02-11T00:00:00+08:00"));
    }

    #[test]
    fn clock_started_on_a_holiday_or_weekend() {
        let cal = Calendar::builtin();
        // On a holiday: 10-04 … 10-08 off, 10-09 Thu is the first working day after.
        assert_eq!(
            cal.due(sh("2025-10-03T15:00:00+08:00"), wd(1)),
            sh("2025-10-10T00:00:00+08:00")
        );
        // On a Saturday and on a Sunday: Monday 03-17 is the first working day after.
        for start in ["2025-03-15T11:00:00+08:00", "2025-03-16T23:00:00+08:00"] {
            assert_eq!(
                cal.due(sh(start), wd(1)),
                sh("2025-03-18T00:00:00+08:00"),
                "{start}"
            );
        }
    }

    #[test]
    fn working_days_count_from_the_day_after_in_shanghai() {
        let cal = Calendar::builtin();
        // The last second of Wednesday 2025-03-12: Thursday is day 1.
        assert_eq!(
            cal.due(sh("2025-03-12T23:59:59+08:00"), wd(1)),
            sh("2025-03-14T00:00:00+08:00")
        );
        // 00:00 of Wednesday is already Wednesday (16:00 UTC on Tuesday): Thursday again.
        assert_eq!(
            cal.due(sh("2025-03-12T00:00:00+08:00"), wd(1)),
            sh("2025-03-14T00:00:00+08:00")
        );
        // One second earlier is Tuesday: Wednesday is day 1.
        assert_eq!(
            cal.due(sh("2025-03-11T23:59:59+08:00"), wd(1)),
            sh("2025-03-13T00:00:00+08:00")
        );
    }

    #[test]
    fn hours_and_minutes_are_wall_clock() {
        let cal = Calendar::builtin();
        let start = sh("2025-09-30T18:00:00+08:00");
        assert_eq!(
            cal.due(start, "24h".parse().unwrap()),
            sh("2025-10-01T18:00:00+08:00")
        );
        assert_eq!(
            cal.due(start, "90m".parse().unwrap()),
            sh("2025-09-30T19:30:00+08:00")
        );
        assert_eq!(
            cal.due(start, "15m".parse().unwrap()),
            sh("2025-09-30T18:15:00+08:00")
        );
        assert_eq!(cal.due(start, SlaDuration::Minutes(0)), start);
        assert_eq!(cal.due(start, wd(0)), start);
    }

    #[test]
    fn year_without_data_falls_back_to_monday_to_friday() {
        let cal = Calendar::builtin();
        assert_eq!(cal.years().collect::<Vec<_>>(), [2024, 2025, 2026]);
        assert!(cal.has_data(2025));
        assert!(!cal.has_data(2027));
        assert!(!cal.has_data(2023));
        // 2027-01-01 is a Friday: without data it is worked (the real schedule would say
        // otherwise; that is what the caller's warning is for).
        assert!(cal.is_working_day(date("2027-01-01")));
        assert!(!cal.is_working_day(date("2027-01-02")));
        assert!(cal.day(date("2027-01-01")).is_none());
        assert!(cal.exceptions(2027).is_empty());
        // Thu 2026-12-31 → Fri 2027-01-01 (1), Mon 01-04 (2), Tue 01-05 (3).
        assert_eq!(
            cal.due(sh("2026-12-31T09:00:00+08:00"), wd(3)),
            sh("2027-01-06T00:00:00+08:00")
        );
        // A calendar with no data at all is Monday to Friday.
        let empty = Calendar::default();
        assert!(!empty.has_data(2025));
        assert!(empty.is_working_day(date("2025-10-01"))); // a Wednesday
        assert_eq!(
            empty.due(sh("2025-09-26T10:00:00+08:00"), wd(7)),
            sh("2025-10-08T00:00:00+08:00")
        );
    }

    #[test]
    fn overrides_beat_the_data_set_and_the_weekday_rule() {
        let builtin = Calendar::builtin();
        let data: Vec<CalendarDay> = builtin.data.values().cloned().collect();
        let years: BTreeSet<i32> = builtin.years().collect();
        let overrides = vec![
            day("2025-03-15", DayKind::Working, "Saturday duty"),
            day("2025-03-18", DayKind::Off, "typhoon"),
            day("2025-10-08", DayKind::Working, "back early"),
            day("2025-09-28", DayKind::Off, "make-up cancelled"),
        ];
        let cal = Calendar::from_parts(years, data, overrides);
        assert!(cal.is_working_day(date("2025-03-15")));
        assert!(!cal.is_working_day(date("2025-03-18")));
        assert!(cal.is_working_day(date("2025-10-08")));
        assert!(!cal.is_working_day(date("2025-09-28")));
        let decided = cal.day(date("2025-10-08")).unwrap();
        assert!(decided.is_override);
        assert_eq!(decided.name, "back early");
        assert!(!cal.day(date("2025-10-07")).unwrap().is_override);

        // From Fri 2025-03-14 10:00, 2wd: plainly Mon 03-17 and Tue 03-18, due Wed 00:00;
        // with Saturday worked and Tuesday off: Sat 03-15 and Mon 03-17, due Tue 00:00.
        let start = sh("2025-03-14T10:00:00+08:00");
        assert_eq!(builtin.due(start, wd(2)), sh("2025-03-19T00:00:00+08:00"));
        assert_eq!(cal.due(start, wd(2)), sh("2025-03-18T00:00:00+08:00"));
        // Only Tuesday off, nothing else: Mon 03-17, Wed 03-19 → Thu 03-20 00:00.
        let tuesday_off = Calendar::from_parts(
            BTreeSet::new(),
            Vec::new(),
            vec![day("2025-03-18", DayKind::Off, "typhoon")],
        );
        assert_eq!(
            tuesday_off.due(start, wd(2)),
            sh("2025-03-20T00:00:00+08:00")
        );
        // National Day with the make-up Sunday cancelled and 10-08 worked, from Fri 09-26:
        // 09-29 (1), 09-30 (2), 10-08 (3), 10-09 (4), 10-10 (5), 10-11 (6), 10-13 (7).
        assert_eq!(
            cal.due(sh("2025-09-26T10:00:00+08:00"), wd(3)),
            sh("2025-10-09T00:00:00+08:00")
        );
        assert_eq!(
            cal.due(sh("2025-09-26T10:00:00+08:00"), wd(7)),
            sh("2025-10-14T00:00:00+08:00")
        );

        // exceptions: overrides applied, sorted, data days kept.
        let ex = cal.exceptions(2025);
        assert!(ex.windows(2).all(|w| w[0].date < w[1].date));
        assert_eq!(ex.len(), builtin.exceptions(2025).len() + 2); // 03-15 and 03-18 are new
        let sept28 = ex.iter().find(|d| d.date == date("2025-09-28")).unwrap();
        assert_eq!((sept28.kind, sept28.is_override), (DayKind::Off, true));
    }

    #[test]
    fn loops_are_bounded_when_every_day_is_off() {
        let start = sh("2025-01-01T10:00:00+08:00");
        let mut off = Vec::new();
        let mut d = date("2025-01-01");
        for _ in 0..(MAX_SPAN_DAYS + 400) {
            off.push(day(&d.to_string(), DayKind::Off, "closed"));
            d = d.succ_opt().unwrap();
        }
        let cal = Calendar::from_parts(BTreeSet::new(), Vec::new(), off);
        // Clamped to 00:00 after the ten-year window that starts 2025-01-02.
        let end = window_end(date("2025-01-01"));
        assert_eq!(
            end,
            midnight(date("2025-01-02") + TimeDelta::days(MAX_SPAN_DAYS))
        );
        assert_eq!(cal.due(start, wd(1)), end);
        assert_eq!(cal.at_fraction(start, wd(1), 0.8), end);
        // An absurd N on the builtin calendar is clamped the same way, and quickly.
        let builtin = Calendar::builtin();
        assert_eq!(builtin.due(start, wd(u32::MAX)), end);
        assert_eq!(builtin.at_fraction(start, wd(u32::MAX), 2.0), end);
        assert_eq!(cal.working_seconds_between(start, end), 0);
        // Working hours: the same window (from the start's own date), the same clamp.
        assert_eq!(cal.due(start, wh(1)), end);
        assert_eq!(cal.at_fraction(start, wh(1), 0.8), end);
        assert_eq!(builtin.due(start, wh(u32::MAX)), end);
        assert_eq!(builtin.at_fraction(start, wh(u32::MAX), 2.0), end);
        assert_eq!(cal.office_seconds_between(start, end), 0);
    }

    #[test]
    fn at_fraction_of_wall_clock_durations() {
        let cal = Calendar::builtin();
        let start = sh("2025-09-30T18:00:00+08:00");
        let hour = SlaDuration::Minutes(60);
        for (fraction, at) in [
            (0.8, "2025-09-30T18:48:00+08:00"),
            (1.0, "2025-09-30T19:00:00+08:00"),
            (1.5, "2025-09-30T19:30:00+08:00"),
            (2.0, "2025-09-30T20:00:00+08:00"),
        ] {
            assert_eq!(cal.at_fraction(start, hour, fraction), sh(at), "{fraction}");
        }
        assert_eq!(cal.at_fraction(start, hour, 1.0), cal.due(start, hour));
        // 0.8 of 24h crosses into the holiday regardless: wall clock.
        assert_eq!(
            cal.at_fraction(start, SlaDuration::Minutes(24 * 60), 0.8),
            sh("2025-10-01T13:12:00+08:00")
        );
        assert_eq!(cal.at_fraction(start, hour, 0.0), start);
        assert_eq!(cal.at_fraction(start, hour, -1.0), start);
        assert_eq!(cal.at_fraction(start, hour, f64::NAN), start);
    }

    #[test]
    fn at_fraction_of_working_days_across_national_day() {
        // From Fri 2025-09-26 10:00 the working days are W1 09-28, W2 09-29, W3 09-30,
        // W4 10-09, W5 10-10, W6 10-11, W7 10-13, W8 10-14, W9 10-15, W10 10-16, W11 10-17,
        // W12 10-20, W13 10-21, W14 10-22.
        let cal = Calendar::builtin();
        let start = sh("2025-09-26T10:00:00+08:00");
        // 0.8 × 7 = 5.6 days: W1–W5 whole, then 0.6 × 24 h = 14 h 24 min into W6.
        assert_eq!(
            cal.at_fraction(start, wd(7), 0.8),
            sh("2025-10-11T14:24:00+08:00")
        );
        // 1.0 is the due time: the end of W7.
        assert_eq!(
            cal.at_fraction(start, wd(7), 1.0),
            sh("2025-10-14T00:00:00+08:00")
        );
        assert_eq!(cal.at_fraction(start, wd(7), 1.0), cal.due(start, wd(7)));
        // 1.5 × 7 = 10.5 days: W1–W10 whole, then noon of W11.
        assert_eq!(
            cal.at_fraction(start, wd(7), 1.5),
            sh("2025-10-17T12:00:00+08:00")
        );
        // 2.0 × 7 = 14 days: the end of W14, the same as 14wd.
        assert_eq!(
            cal.at_fraction(start, wd(7), 2.0),
            sh("2025-10-23T00:00:00+08:00")
        );
        assert_eq!(cal.at_fraction(start, wd(7), 2.0), cal.due(start, wd(14)));
        // A small fraction lands in the first working day (the make-up Sunday), not before.
        assert_eq!(
            cal.at_fraction(start, wd(1), 0.5),
            sh("2025-09-28T12:00:00+08:00")
        );
        assert_eq!(cal.at_fraction(start, wd(7), 0.0), start);
    }

    #[test]
    fn working_seconds_between_skips_weekends_and_holidays() {
        let cal = Calendar::builtin();
        let secs = |a: &str, b: &str| cal.working_seconds_between(sh(a), sh(b));
        // Friday noon to Monday noon: half of Friday and half of Monday.
        assert_eq!(
            secs("2025-03-14T12:00:00+08:00", "2025-03-17T12:00:00+08:00"),
            86_400
        );
        // Across National Day: half of 09-30, nothing 10-01 … 10-08, half of 10-09.
        assert_eq!(
            secs("2025-09-30T12:00:00+08:00", "2025-10-09T12:00:00+08:00"),
            86_400
        );
        // A make-up Sunday counts; the Saturday before it does not.
        assert_eq!(
            secs("2025-09-27T00:00:00+08:00", "2025-09-29T00:00:00+08:00"),
            86_400
        );
        // Within one working day, to the second; and in a holiday, nothing.
        assert_eq!(
            secs("2025-03-12T09:00:00+08:00", "2025-03-12T09:00:30+08:00"),
            30
        );
        assert_eq!(
            secs("2025-10-02T09:00:00+08:00", "2025-10-05T09:00:00+08:00"),
            0
        );
        // Empty and reversed spans.
        assert_eq!(
            secs("2025-03-12T09:00:00+08:00", "2025-03-12T09:00:00+08:00"),
            0
        );
        assert_eq!(
            secs("2025-03-13T09:00:00+08:00", "2025-03-12T09:00:00+08:00"),
            0
        );
        // All of 2025: 261 weekdays − 18 weekday holidays + 5 make-up days = 248 working days.
        assert_eq!(
            secs("2025-01-01T00:00:00+08:00", "2026-01-01T00:00:00+08:00"),
            248 * 86_400
        );
        // From a clock's start to its due time: N working days, plus the rest of the start
        // day when that was worked (Friday 09-26 from 10:00: 14 h).
        let start = sh("2025-09-26T10:00:00+08:00");
        assert_eq!(
            cal.working_seconds_between(start, cal.due(start, wd(7))),
            7 * 86_400 + 14 * 3600
        );
    }

    /// `Nwh` from the shipped calendar with the default office hours, 08:30–12:00 (3 h 30) and
    /// 13:30–17:30 (4 h): 7 h 30 a working day. Each row worked out by hand; "Wed 03-12" is an
    /// ordinary week of March 2025.
    const WORKING_HOURS_TABLE: [(&str, u32, &str, &str); 23] = [
        (
            "2025-03-12T09:00:00+08:00",
            2,
            "2025-03-12T11:00:00+08:00",
            "within a morning",
        ),
        (
            "2025-03-12T11:00:00+08:00",
            2,
            "2025-03-12T14:30:00+08:00",
            "across lunch: 1 h before it, 1 h after",
        ),
        (
            "2025-03-12T16:00:00+08:00",
            4,
            "2025-03-13T11:00:00+08:00",
            "across the evening: 1 h 30 on Wednesday, 2 h 30 on Thursday",
        ),
        (
            "2025-03-12T08:30:00+08:00",
            15,
            "2025-03-13T17:30:00+08:00",
            "two whole working days",
        ),
        (
            "2025-03-14T15:00:00+08:00",
            4,
            "2025-03-17T10:00:00+08:00",
            "across a weekend: 2 h 30 on Friday, 1 h 30 on Monday",
        ),
        (
            "2025-09-30T16:00:00+08:00",
            4,
            "2025-10-09T11:00:00+08:00",
            "across National Day: 1 h 30 on 09-30, 10-01 … 10-08 off, 2 h 30 on 10-09",
        ),
        (
            "2025-09-26T16:30:00+08:00",
            4,
            "2025-09-28T11:30:00+08:00",
            "onto the make-up Sunday 09-28: 1 h on Friday, Saturday off, 3 h on Sunday",
        ),
        (
            "2025-10-10T17:00:00+08:00",
            1,
            "2025-10-11T09:00:00+08:00",
            "onto the make-up Saturday 10-11: 30 min on Friday, 30 min on Saturday",
        ),
        (
            "2025-12-31T16:00:00+08:00",
            4,
            "2026-01-04T11:00:00+08:00",
            "across New Year 2026 (01-01 … 01-03 off) onto the make-up Sunday 01-04",
        ),
        (
            "2026-02-12T09:00:00+08:00",
            16,
            "2026-02-14T10:00:00+08:00",
            "7 h on Thu 02-12, 7 h 30 on Fri 02-13, 1 h 30 on the make-up Saturday 02-14",
        ),
        (
            "2026-02-13T17:00:00+08:00",
            9,
            "2026-02-24T09:30:00+08:00",
            "30 min Fri, 7 h 30 on Sat 02-14, Spring Festival 02-15 … 02-23 off, 1 h Tue 02-24",
        ),
        (
            "2025-03-12T12:30:00+08:00",
            1,
            "2025-03-12T14:30:00+08:00",
            "a start at lunch counts from 13:30",
        ),
        (
            "2025-03-12T22:00:00+08:00",
            1,
            "2025-03-13T09:30:00+08:00",
            "a start at night counts from 08:30 of the next working day",
        ),
        (
            "2025-03-13T06:00:00+08:00",
            1,
            "2025-03-13T09:30:00+08:00",
            "a start before office hours counts from 08:30",
        ),
        (
            "2025-03-15T10:00:00+08:00",
            1,
            "2025-03-17T09:30:00+08:00",
            "a start on a Saturday counts from Monday 08:30",
        ),
        (
            "2025-10-03T15:00:00+08:00",
            4,
            "2025-10-09T14:00:00+08:00",
            "a start on a holiday: 3 h 30 on the morning of 10-09, 30 min after lunch",
        ),
        (
            "2025-03-12T09:00:00+08:00",
            3,
            "2025-03-12T12:00:00+08:00",
            "running out at the end of the morning: due at 12:00, not 13:30",
        ),
        (
            "2025-03-12T13:30:00+08:00",
            4,
            "2025-03-12T17:30:00+08:00",
            "running out at the end of the day: due at 17:30, not next morning",
        ),
        (
            "2026-02-13T17:00:00+08:00",
            8,
            "2026-02-14T17:30:00+08:00",
            "running out at the end of the make-up Saturday: 02-14 17:30, not 02-24",
        ),
        (
            "2025-03-12T08:30:00+08:00",
            1,
            "2025-03-12T09:30:00+08:00",
            "a start at a period's start counts from it",
        ),
        (
            "2025-03-12T12:00:00+08:00",
            1,
            "2025-03-12T14:30:00+08:00",
            "a start at a period's end counts from the next period",
        ),
        (
            "2025-03-12T17:30:00+08:00",
            1,
            "2025-03-13T09:30:00+08:00",
            "a start at the end of the day counts from the next morning",
        ),
        (
            "2025-03-14T17:30:00+08:00",
            1,
            "2025-03-17T09:30:00+08:00",
            "a start at Friday's end counts from Monday",
        ),
    ];

    #[test]
    fn working_hours_by_a_table_written_from_the_calendar() {
        let cal = Calendar::builtin();
        assert_eq!(cal.office_hours(), &OfficeHours::default());
        for (start, n, due, why) in WORKING_HOURS_TABLE {
            let (start, due) = (sh(start), sh(due));
            assert_eq!(cal.due(start, wh(n)), due, "{start} {n}wh: {why}");
            assert_eq!(
                cal.at_fraction(start, wh(n), 1.0),
                due,
                "{start} {n}wh: {why}"
            );
            // From the start to the due time lie exactly N office hours, and a second less
            // before the due time is not yet enough.
            assert_eq!(
                cal.office_seconds_between(start, due),
                i64::from(n) * 3600,
                "{start} {n}wh: {why}"
            );
            assert_eq!(
                cal.office_seconds_between(start, due - TimeDelta::seconds(1)),
                i64::from(n) * 3600 - 1,
                "{start} {n}wh: {why}"
            );
        }
        // Zero is the start, wherever it falls.
        let night = sh("2025-03-12T22:00:00+08:00");
        assert_eq!(cal.due(night, wh(0)), night);
        assert_eq!(cal.at_fraction(night, wh(0), 2.0), night);
    }

    #[test]
    fn at_fraction_of_working_hours_scales_the_office_time() {
        let cal = Calendar::builtin();
        for (start, fractions) in [
            // Friday 15:00: 2 h 30 that day, then Monday 03-17.
            (
                "2025-03-14T15:00:00+08:00",
                [
                    // 3 h 12: 2 h 30 on Friday, 42 min on Monday.
                    (0.8, "2025-03-17T09:12:00+08:00"),
                    (1.0, "2025-03-17T10:00:00+08:00"),
                    // 6 h: 2 h 30 on Friday, the whole Monday morning: 12:00, not 13:30.
                    (1.5, "2025-03-17T12:00:00+08:00"),
                    // 8 h: 2 h 30, 3 h 30, then 2 h of Monday afternoon.
                    (2.0, "2025-03-17T15:30:00+08:00"),
                ],
            ),
            // Wednesday 09:00: 3 h of morning, 4 h of afternoon.
            (
                "2025-03-12T09:00:00+08:00",
                [
                    // 3 h 12: across lunch.
                    (0.8, "2025-03-12T13:42:00+08:00"),
                    (1.0, "2025-03-12T14:30:00+08:00"),
                    (1.5, "2025-03-12T16:30:00+08:00"),
                    // 8 h: 7 h on Wednesday, 1 h on Thursday.
                    (2.0, "2025-03-13T09:30:00+08:00"),
                ],
            ),
            // Tuesday 09-30 16:00: 1 h 30, then National Day, then 10-09.
            (
                "2025-09-30T16:00:00+08:00",
                [
                    (0.8, "2025-10-09T10:12:00+08:00"),
                    (1.0, "2025-10-09T11:00:00+08:00"),
                    (1.5, "2025-10-09T14:30:00+08:00"),
                    (2.0, "2025-10-09T16:30:00+08:00"),
                ],
            ),
        ] {
            let start = sh(start);
            for (fraction, at) in fractions {
                let at = sh(at);
                assert_eq!(
                    cal.at_fraction(start, wh(4), fraction),
                    at,
                    "{start} {fraction}"
                );
                assert_eq!(
                    cal.office_seconds_between(start, at),
                    (fraction * 4.0 * 3600.0).round() as i64,
                    "{start} {fraction}"
                );
            }
            assert_eq!(cal.at_fraction(start, wh(4), 1.0), cal.due(start, wh(4)));
            assert_eq!(cal.at_fraction(start, wh(4), 2.0), cal.due(start, wh(8)));
            assert_eq!(cal.at_fraction(start, wh(4), 0.0), start);
            assert_eq!(cal.at_fraction(start, wh(4), -1.0), start);
            assert_eq!(cal.at_fraction(start, wh(4), f64::NAN), start);
        }
        // A fraction of an hour lands to the millisecond: 0.8 × 1wh is 48 min.
        assert_eq!(
            cal.at_fraction(sh("2025-03-12T11:30:00+08:00"), wh(1), 0.8),
            sh("2025-03-12T13:48:00+08:00")
        );
    }

    #[test]
    fn office_seconds_between_counts_office_hours_of_working_days() {
        let cal = Calendar::builtin();
        let secs = |a: &str, b: &str| cal.office_seconds_between(sh(a), sh(b));
        // Friday noon to Monday noon: Friday afternoon (4 h) and Monday morning (3 h 30).
        assert_eq!(
            secs("2025-03-14T12:00:00+08:00", "2025-03-17T12:00:00+08:00"),
            27_000
        );
        // Across National Day: the afternoon of 09-30, the morning of 10-09.
        assert_eq!(
            secs("2025-09-30T12:00:00+08:00", "2025-10-09T12:00:00+08:00"),
            27_000
        );
        // A make-up Sunday counts a whole office day; the Saturday before it nothing.
        assert_eq!(
            secs("2025-09-27T00:00:00+08:00", "2025-09-29T00:00:00+08:00"),
            27_000
        );
        // Spring Festival 2026 from Thu 02-12 09:00 to Wed 02-25 09:00: 7 h, 7 h 30 (Fri),
        // 7 h 30 (make-up Sat 02-14), nothing 02-15 … 02-23, 7 h 30 (Tue), 30 min (Wed).
        assert_eq!(
            secs("2026-02-12T09:00:00+08:00", "2026-02-25T09:00:00+08:00"),
            30 * 3600
        );
        // Lunch, a night, a holiday: nothing.
        assert_eq!(
            secs("2025-03-12T12:00:00+08:00", "2025-03-12T13:30:00+08:00"),
            0
        );
        assert_eq!(
            secs("2025-03-12T17:30:00+08:00", "2025-03-13T08:30:00+08:00"),
            0
        );
        assert_eq!(
            secs("2025-10-02T09:00:00+08:00", "2025-10-05T09:00:00+08:00"),
            0
        );
        // To the second, and either side of lunch.
        assert_eq!(
            secs("2025-03-12T09:00:00+08:00", "2025-03-12T09:00:30+08:00"),
            30
        );
        assert_eq!(
            secs("2025-03-12T11:59:30+08:00", "2025-03-12T13:30:30+08:00"),
            60
        );
        // Empty and reversed spans.
        assert_eq!(
            secs("2025-03-12T09:00:00+08:00", "2025-03-12T09:00:00+08:00"),
            0
        );
        assert_eq!(
            secs("2025-03-13T09:00:00+08:00", "2025-03-12T09:00:00+08:00"),
            0
        );
        // All of 2025: 248 working days of 7 h 30.
        assert_eq!(
            secs("2025-01-01T00:00:00+08:00", "2026-01-01T00:00:00+08:00"),
            248 * 27_000
        );
    }

    #[test]
    fn configured_office_hours_are_what_working_hours_count() {
        let builtin = Calendar::builtin();
        // One period without a lunch break.
        let cal = builtin
            .clone()
            .with_office_hours(OfficeHours::parse(&["09:00-17:00"]).unwrap());
        // Wednesday 15:00: 2 h that day, 2 h on Thursday.
        assert_eq!(
            cal.due(sh("2025-03-12T15:00:00+08:00"), wh(4)),
            sh("2025-03-13T11:00:00+08:00")
        );
        // 12:30 is office time now.
        assert_eq!(
            cal.due(sh("2025-03-12T12:30:00+08:00"), wh(1)),
            sh("2025-03-12T13:30:00+08:00")
        );
        assert_eq!(
            cal.office_seconds_between(
                sh("2025-03-14T12:00:00+08:00"),
                sh("2025-03-17T12:00:00+08:00")
            ),
            8 * 3600
        );
        // Periods that touch: 08:00–10:00 and 10:00–12:00 count as one morning.
        let touching = builtin.clone().with_office_hours(
            OfficeHours::parse(&["08:00-10:00", "10:00-12:00", "14:00-18:00"]).unwrap(),
        );
        assert_eq!(
            touching.due(sh("2025-03-12T09:00:00+08:00"), wh(3)),
            sh("2025-03-12T12:00:00+08:00")
        );
        assert_eq!(
            touching.due(sh("2025-03-12T09:00:00+08:00"), wh(4)),
            sh("2025-03-12T15:00:00+08:00")
        );
        // The whole day: working hours are the hours of working days, as the statistics used
        // to count them.
        let whole = builtin.with_office_hours(OfficeHours::parse(&["00:00-24:00"]).unwrap());
        // Friday 09-26 10:00: 14 h that day, Saturday off, 10 h of the make-up Sunday.
        assert_eq!(
            whole.due(sh("2025-09-26T10:00:00+08:00"), wh(24)),
            sh("2025-09-28T10:00:00+08:00")
        );
        for (a, b) in [
            ("2025-01-01T00:00:00+08:00", "2026-01-01T00:00:00+08:00"),
            ("2025-09-26T10:00:00+08:00", "2025-10-14T00:00:00+08:00"),
            ("2026-02-12T09:00:00+08:00", "2026-02-25T09:00:00+08:00"),
        ] {
            assert_eq!(
                whole.office_seconds_between(sh(a), sh(b)),
                whole.working_seconds_between(sh(a), sh(b)),
                "{a} {b}"
            );
        }
    }

    #[test]
    fn office_hours_parse_and_display() {
        let default = OfficeHours::parse(&DEFAULT_OFFICE_HOURS).unwrap();
        assert_eq!(default, OfficeHours::default());
        assert_eq!(default.daily_minutes(), 7 * 60 + 30);
        assert_eq!(default.to_string(), "08:30-12:00,13:30-17:30");
        assert_eq!(
            "08:30-12:00,13:30-17:30".parse::<OfficeHours>().unwrap(),
            default
        );
        assert_eq!(
            " 08:30 - 12:00 , 13:30-17:30 "
                .parse::<OfficeHours>()
                .unwrap(),
            default
        );
        let whole = OfficeHours::parse(&["00:00-24:00"]).unwrap();
        assert_eq!(whole.daily_minutes(), 24 * 60);
        assert_eq!(whole.to_string(), "00:00-24:00");
        for text in ["09:00-17:00", "07:00-09:00,10:00-10:01,23:59-24:00"] {
            let hours: OfficeHours = text.parse().unwrap();
            assert_eq!(hours.to_string(), text);
        }
        let none: [&str; 0] = [];
        for (err, says) in [
            (OfficeHours::parse(&none).unwrap_err(), "no periods"),
            ("".parse::<OfficeHours>().unwrap_err(), "no periods"),
            (" , ".parse::<OfficeHours>().unwrap_err(), "no periods"),
        ] {
            assert!(err.contains(says), "{err}");
        }
        for (periods, says) in [
            (&["8:30-12:00"][..], "\"8:30-12:00\" is not HH:MM-HH:MM"),
            (&["08:30-12:60"][..], "not HH:MM-HH:MM"),
            (&["08:30–12:00"][..], "not HH:MM-HH:MM"),
            (&["08:30"][..], "not HH:MM-HH:MM"),
            (&["08:30-12:00-13:00"][..], "not HH:MM-HH:MM"),
            (&["25:00-26:00"][..], "not HH:MM-HH:MM"),
            (&["08:30-24:01"][..], "not HH:MM-HH:MM"),
            (&["+8:30-12:00"][..], "not HH:MM-HH:MM"),
            (&["12:00-08:30"][..], "does not end after it starts"),
            (&["08:30-08:30"][..], "does not end after it starts"),
            (&["24:00-24:00"][..], "does not end after it starts"),
            (
                &["13:30-17:30", "08:30-12:00"][..],
                "begins before 13:30-17:30 ends",
            ),
            (&["08:30-12:30", "12:00-17:30"][..], "not overlap"),
            (&["08:30-12:00", "08:30-12:00"][..], "not overlap"),
        ] {
            let err = OfficeHours::parse(periods).unwrap_err();
            assert!(err.contains(says), "{periods:?}: {err}");
            assert!(!err.contains('\n'), "{periods:?}: {err}");
        }
    }

    #[test]
    fn shipped_files_parse_and_match_the_builtin_calendar() {
        let mut years = BTreeSet::new();
        let mut days = Vec::new();
        for (file_year, json) in BUILTIN_DATA {
            let (year, parsed) = parse_holiday_cn_json(json.as_bytes()).unwrap();
            assert_eq!(year, file_year);
            // Make-up working days are all weekend days; every named day is in its year.
            for d in &parsed {
                assert_eq!(d.date.year(), year, "{d:?}");
                assert!(!d.is_override);
                if d.kind == DayKind::Working {
                    assert!(
                        matches!(d.date.weekday(), Weekday::Sat | Weekday::Sun),
                        "{d:?}"
                    );
                }
            }
            assert_eq!(parsed, Calendar::builtin().exceptions(year));
            years.insert(year);
            days.extend(parsed);
        }
        assert_eq!(days.len(), 36 + 33 + 39);
        assert_eq!(
            Calendar::from_parts(years, days, Vec::new()),
            Calendar::builtin()
        );
        // Spot checks against the State Council notices.
        let cal = Calendar::builtin();
        let check = |d: &str, kind: DayKind, name: &str| {
            let entry = cal.day(date(d)).unwrap();
            assert_eq!((entry.kind, entry.name.as_str()), (kind, name), "{d}");
        };
        check("2024-02-04", DayKind::Working, "春节");
        check("2024-04-07", DayKind::Working, "清明节");
        check("2024-05-11", DayKind::Working, "劳动节");
        check("2024-09-14", DayKind::Working, "中秋节");
        check("2024-10-12", DayKind::Working, "国庆节");
        check("2025-10-08", DayKind::Off, "国庆节、中秋节");
        check("2025-06-02", DayKind::Off, "端午节");
        check("2026-01-04", DayKind::Working, "元旦");
        check("2026-09-20", DayKind::Working, "国庆节");
        check("2026-06-19", DayKind::Off, "端午节");
    }

    #[test]
    fn json_errors_name_the_problem() {
        let err = |s: &str| parse_holiday_cn_json(s.as_bytes()).unwrap_err();
        assert!(err("{\"year\": 2025, \"days\": [").contains("not valid JSON"));
        assert!(err("[]").contains("object"));
        assert!(err("{\"days\": []}").contains("\"year\""));
        assert!(err("{\"year\": 2025.5, \"days\": []}").contains("\"year\""));
        assert!(err("{\"year\": 2025}").contains("\"days\""));
        assert!(err("{\"year\": 2025, \"papers\": [1], \"days\": []}").contains("papers[0]"));
        let e = err(r#"{"year": 2025, "days": [
                {"name": "元旦", "date": "2025-01-01", "isOffDay": true},
                {"name": "春节", "date": "2025-02-30", "isOffDay": true}]}"#);
        assert!(
            e.contains("days[1].date") && e.contains("2025-02-30"),
            "{e}"
        );
        let e = err(
            r#"{"year": 2025, "days": [{"name": "春节", "date": "2025-2-3", "isOffDay": true}]}"#,
        );
        assert!(e.contains("days[0].date"), "{e}");
        let e = err(
            r#"{"year": 2025, "days": [{"name": "端午节", "date": "2024-06-10", "isOffDay": true}]}"#,
        );
        assert!(
            e.contains("days[0].date") && e.contains("outside 2025"),
            "{e}"
        );
        let e = err(
            r#"{"year": 2025, "days": [{"name": " ", "date": "2025-01-01", "isOffDay": true}]}"#,
        );
        assert!(e.contains("days[0].name"), "{e}");
        let e = err(r#"{"year": 2025, "days": [{"name": "元旦", "date": "2025-01-01"}]}"#);
        assert!(e.contains("days[0].isOffDay"), "{e}");
        let e = err(
            r#"{"year": 2025, "days": [{"name": "元旦", "date": "2025-01-01", "isOffDay": "yes"}]}"#,
        );
        assert!(e.contains("days[0].isOffDay"), "{e}");
        let e = err(r#"{"year": 2025, "days": [
                {"name": "元旦", "date": "2025-01-01", "isOffDay": true},
                {"name": "元旦", "date": "2025-01-01", "isOffDay": false}]}"#);
        assert!(e.contains("days[1].date") && e.contains("days[0]"), "{e}");
        assert!(err(r#"{"year": 2025, "days": [7]}"#).contains("days[0]"));
    }

    #[test]
    fn json_accepts_holiday_cn_extras_and_the_adjoining_new_year_days() {
        // As holiday-cn's 2019.json: the New Year holiday starts in December 2018.
        let (year, days) = parse_holiday_cn_json(
            r#"{
                "$schema": "https://raw.githubusercontent.com/NateScarlet/holiday-cn/master/schema.json",
                "$id": "https://raw.githubusercontent.com/NateScarlet/holiday-cn/master/2019.json",
                "year": 2019,
                "papers": ["http://www.gov.cn/zhengce/content/2018-12/06/content_5346276.htm"],
                "days": [
                    {"name": "元旦", "date": "2018-12-30", "isOffDay": true},
                    {"name": "元旦", "date": "2018-12-29", "isOffDay": false},
                    {"name": "元旦", "date": "2018-12-31", "isOffDay": true},
                    {"name": "元旦", "date": "2019-01-01", "isOffDay": true}
                ]
            }"#
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(year, 2019);
        assert_eq!(
            days,
            [
                day("2018-12-29", DayKind::Working, "元旦"),
                day("2018-12-30", DayKind::Off, "元旦"),
                day("2018-12-31", DayKind::Off, "元旦"),
                day("2019-01-01", DayKind::Off, "元旦"),
            ]
        );
        // Such a day decides its date, though its own year has no data.
        let cal = Calendar::from_parts(BTreeSet::from([2019]), days, Vec::new());
        assert!(!cal.has_data(2018));
        assert!(cal.is_working_day(date("2018-12-29"))); // a Saturday
        assert!(!cal.is_working_day(date("2018-12-31"))); // a Monday
        assert_eq!(cal.exceptions(2018).len(), 3);
    }

    /// holiday-cn's 2025.ics, as its generator writes it (icalendar: CRLF, 75-octet folding),
    /// with one SUMMARY folded by hand.
    const ICS_2025: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:PUBLISH\r\nCLASS:PUBLIC\r\n\
X-WR-CALDESC:中国法定节假日数据，自动每日抓取国务院公\r\n 告。\r\n\
X-WR-CALNAME:中国法定节假日\r\n\
BEGIN:VTIMEZONE\r\nTZID:Asia/Shanghai\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n\
TZOFFSETFROM:+0800\r\nTZOFFSETTO:+0800\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nSUMMARY:元旦假期\r\nDTSTART;VALUE=DATE:20250101\r\nDTEND;VALUE=DATE:20250102\r\n\
DTSTAMP;VALUE=DATE:20250101\r\nUID:2025-01-01/2025-01-02/NateScarlet/holiday-cn\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nSUMMARY:上班(补春节假期)\r\nDTSTART;VALUE=DATE:20250126\r\nDTEND;VALUE=DATE:20250127\r\n\
DTSTAMP;VALUE=DATE:20250126\r\nUID:2025-01-26/2025-01-27/NateScarlet/holiday-cn\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nSUMMARY:春节假期\r\nDTSTART;VALUE=DATE:20250128\r\nDTEND;VALUE=DATE:20250205\r\n\
DTSTAMP;VALUE=DATE:20250128\r\nUID:2025-01-28/2025-02-05/NateScarlet/holiday-cn\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nSUMMARY:上班(补春节假期)\r\nDTSTART;VALUE=DATE:20250208\r\nDTEND;VALUE=DATE:20250209\r\n\
DTSTAMP;VALUE=DATE:20250208\r\nUID:2025-02-08/2025-02-09/NateScarlet/holiday-cn\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nSUMMARY:清明节假期\r\nDTSTART;VALUE=DATE:20250404\r\nDTEND;VALUE=DATE:20250407\r\n\
DTSTAMP;VALUE=DATE:20250404\r\nUID:2025-04-04/2025-04-07/NateScarlet/holiday-cn\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nSUMMARY:上班(补劳动节假期)\r\nDTSTART;VALUE=DATE:20250427\r\nDTEND;VALUE=DATE:20250428\r\n\
DTSTAMP;VALUE=DATE:20250427\r\nUID:2025-04-27/2025-04-28/NateScarlet/holiday-cn\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nSUMMARY:劳动节假期\r\nDTSTART;VALUE=DATE:20250501\r\nDTEND;VALUE=DATE:20250506\r\n\
DTSTAMP;VALUE=DATE:20250501\r\nUID:2025-05-01/2025-05-06/NateScarlet/holiday-cn\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nSUMMARY:端午节假期\r\nDTSTART;VALUE=DATE:20250531\r\nDTEND;VALUE=DATE:20250603\r\n\
DTSTAMP;VALUE=DATE:20250531\r\nUID:2025-05-31/2025-06-03/NateScarlet/holiday-cn\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nSUMMARY:上班(补国庆节、中秋节假期)\r\nDTSTART;VALUE=DATE:20250928\r\nDTEND;VALUE=DATE:20250929\r\n\
DTSTAMP;VALUE=DATE:20250928\r\nUID:2025-09-28/2025-09-29/NateScarlet/holiday-cn\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nSUMMARY:国庆节、中秋\r\n 节假期\r\nDTSTART;VALUE=DATE:20251001\r\nDTEND;VALUE=DATE:20251009\r\n\
DTSTAMP;VALUE=DATE:20251001\r\nUID:2025-10-01/2025-10-09/NateScarlet/holiday-cn\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nSUMMARY:上班(补国庆节、中秋节假期)\r\nDTSTART;VALUE=DATE:20251011\r\nDTEND;VALUE=DATE:20251012\r\n\
DTSTAMP;VALUE=DATE:20251011\r\nUID:2025-10-11/2025-10-12/NateScarlet/holiday-cn\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

    #[test]
    fn holiday_cn_ics_parses_to_the_same_days_as_the_json() {
        let parsed = parse_ics(ICS_2025.as_bytes()).unwrap();
        let (_, json_days) = parse_holiday_cn_json(BUILTIN_DATA[1].1.as_bytes()).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].0, 2025);
        assert_eq!(parsed[0].1, json_days);
        // LF line ends parse the same.
        let lf = ICS_2025.replace("\r\n", "\n");
        assert_eq!(parse_ics(lf.as_bytes()).unwrap(), parsed);
    }

    #[test]
    fn ics_folds_anywhere_crosses_new_year_and_reads_other_wording() {
        // A fold splitting the UTF-8 bytes of 节 (E8 8A 82), a TZID-style quoted parameter,
        // an event with no DTEND, a nested VALARM, and holiday-cn's 2019 New Year: the
        // December days belong to 2019's schedule.
        let mut ics = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n".to_vec();
        ics.extend_from_slice("BEGIN:VEVENT\r\nSUMMARY:上班(补元旦假期)\r\n".as_bytes());
        ics.extend_from_slice(
            b"DTSTART;VALUE=DATE:20181229\r\nDTEND;VALUE=DATE:20181230\r\nEND:VEVENT\r\n",
        );
        ics.extend_from_slice("BEGIN:VEVENT\r\nSUMMARY:元旦假期\r\n".as_bytes());
        ics.extend_from_slice(
            b"DTSTART;VALUE=DATE:20181230\r\nDTEND;VALUE=DATE:20190102\r\nEND:VEVENT\r\n",
        );
        ics.extend_from_slice("BEGIN:VEVENT\r\nSUMMARY:劳动".as_bytes());
        ics.extend_from_slice(b"\xE8\x8A\r\n \x82");
        ics.extend_from_slice("假期\r\nDTSTART;X-NOTE=\"a:b\";VALUE=DATE:20190501\r\n".as_bytes());
        ics.extend_from_slice(b"DTEND;VALUE=DATE:20190505\r\nBEGIN:VALARM\r\nSUMMARY:ignored\r\n");
        ics.extend_from_slice(b"END:VALARM\r\nEND:VEVENT\r\n");
        ics.extend_from_slice("BEGIN:VEVENT\r\nSUMMARY:劳动节 补班\r\n".as_bytes());
        ics.extend_from_slice(b"DTSTART;VALUE=DATE:20190505\r\nEND:VEVENT\r\n");
        ics.extend_from_slice("BEGIN:VEVENT\r\nSUMMARY:端午节（休）\r\n".as_bytes());
        ics.extend_from_slice(b"DTSTART:20190607\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n");
        let parsed = parse_ics(&ics).unwrap();
        let expected = vec![
            day("2018-12-29", DayKind::Working, "元旦"),
            day("2018-12-30", DayKind::Off, "元旦"),
            day("2018-12-31", DayKind::Off, "元旦"),
            day("2019-01-01", DayKind::Off, "元旦"),
            day("2019-05-01", DayKind::Off, "劳动节"),
            day("2019-05-02", DayKind::Off, "劳动节"),
            day("2019-05-03", DayKind::Off, "劳动节"),
            day("2019-05-04", DayKind::Off, "劳动节"),
            day("2019-05-05", DayKind::Working, "劳动节"),
            day("2019-06-07", DayKind::Off, "端午节"),
        ];
        assert_eq!(parsed, vec![(2019, expected)]);
    }

    #[test]
    fn ics_errors_name_the_event() {
        let wrap = |body: &str| format!("BEGIN:VCALENDAR\r\n{body}END:VCALENDAR\r\n");
        let err = |body: &str| parse_ics(wrap(body).as_bytes()).unwrap_err();
        let e = err(
            "BEGIN:VEVENT\r\nSUMMARY:春节假期\r\nDTSTART;VALUE=DATE:20250205\r\nDTEND;VALUE=DATE:20250128\r\nEND:VEVENT\r\n",
        );
        assert!(e.contains("line 2") && e.contains("DTEND"), "{e}");
        let e = err("BEGIN:VEVENT\r\nSUMMARY:春节假期\r\nEND:VEVENT\r\n");
        assert!(e.contains("no DTSTART"), "{e}");
        let e = err(
            "BEGIN:VEVENT\r\nSUMMARY:Team offsite\r\nDTSTART;VALUE=DATE:20250205\r\nEND:VEVENT\r\n",
        );
        assert!(e.contains("Team offsite"), "{e}");
        let e =
            err("BEGIN:VEVENT\r\nSUMMARY:春节假期\r\nDTSTART:20250205T090000\r\nEND:VEVENT\r\n");
        assert!(e.contains("line 4") && e.contains("date-time"), "{e}");
        let e = err(
            "BEGIN:VEVENT\r\nSUMMARY:春节假期\r\nDTSTART;VALUE=DATE:20250230\r\nEND:VEVENT\r\n",
        );
        assert!(e.contains("20250230"), "{e}");
        let e = err(
            "BEGIN:VEVENT\r\nSUMMARY:春节假期\r\nDTSTART;VALUE=DATE:20250128\r\nDTEND;VALUE=DATE:20250205\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nSUMMARY:上班(补春节假期)\r\nDTSTART;VALUE=DATE:20250201\r\nEND:VEVENT\r\n",
        );
        assert!(e.contains("disagree") && e.contains("2025-02-01"), "{e}");
        let e = parse_ics(b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:x\r\n").unwrap_err();
        assert!(e.contains("END:VEVENT"), "{e}");
        let e = parse_ics("{\"year\": 2025}".as_bytes()).unwrap_err();
        assert!(e.contains("line 1") || e.contains("VCALENDAR"), "{e}");
        assert!(parse_ics(b"").unwrap_err().contains("VCALENDAR"));
    }

    #[test]
    fn duration_parsing() {
        use SlaDuration::{Minutes, WorkingDays, WorkingHours};
        for (text, parsed, shown) in [
            ("15m", Minutes(15), "15m"),
            ("90m", Minutes(90), "90m"),
            ("1h", Minutes(60), "1h"),
            ("24h", Minutes(24 * 60), "24h"),
            ("120m", Minutes(120), "2h"),
            ("60m", Minutes(60), "1h"),
            ("7wd", WorkingDays(7), "7wd"),
            ("15wd", WorkingDays(15), "15wd"),
            ("365wd", WorkingDays(365), "365wd"),
            ("8760h", Minutes(MAX_MINUTES), "8760h"),
            ("525600m", Minutes(MAX_MINUTES), "8760h"),
            (" 30m ", Minutes(30), "30m"),
            ("007wd", WorkingDays(7), "7wd"),
            ("4wh", WorkingHours(4), "4wh"),
            ("1wh", WorkingHours(1), "1wh"),
            ("60wh", WorkingHours(60), "60wh"),
            ("2920wh", WorkingHours(MAX_WORKING_HOURS), "2920wh"),
            (" 04wh ", WorkingHours(4), "4wh"),
        ] {
            let d: SlaDuration = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(d, parsed, "{text}");
            assert_eq!(d.to_string(), shown, "{text}");
            // Display gives back something that parses to the same duration.
            assert_eq!(shown.parse::<SlaDuration>().unwrap(), d, "{text}");
        }
        for (text, says) in [
            ("", "empty"),
            ("   ", "empty"),
            ("0h", "positive"),
            ("0wd", "positive"),
            ("-1h", "whole number"),
            ("+1h", "whole number"),
            ("1.5h", "not a whole number"),
            ("7d", "unknown unit \"d\""),
            ("7H", "unknown unit"),
            ("7 wd", "unknown unit"),
            ("h", "whole number"),
            ("wd", "whole number"),
            ("15", "no unit"),
            ("99999999999h", "too large"),
            ("4294967296m", "too large"),
            ("366wd", "too large"),
            ("8761h", "too large"),
            ("525601m", "too large"),
            ("0wh", "positive"),
            ("1.5wh", "not a whole number"),
            ("wh", "whole number"),
            ("4WH", "unknown unit"),
            ("4w", "unknown unit"),
            ("4 wh", "unknown unit"),
            ("2921wh", "at most 2920 working hours"),
        ] {
            let e = text.parse::<SlaDuration>().unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
        }
        // Every message says what may be written, wh included.
        for text in ["", "15", "7d", "h", "1.5h"] {
            let e = text.parse::<SlaDuration>().unwrap_err();
            assert!(e.contains("wh"), "{text:?}: {e}");
        }
        assert!(
            "7d".parse::<SlaDuration>()
                .unwrap_err()
                .contains("wh (working hours)")
        );
    }

    #[test]
    fn day_kind_round_trips() {
        for kind in [DayKind::Working, DayKind::Off] {
            assert_eq!(kind.as_str().parse::<DayKind>().unwrap(), kind);
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert!(
            "holiday"
                .parse::<DayKind>()
                .unwrap_err()
                .contains("holiday")
        );
        assert!("Working".parse::<DayKind>().is_err());
    }
}

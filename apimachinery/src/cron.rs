//! CronJob schedules as upstream reads them: robfig/cron v3's standard parser
//! (five fields, names, ranges, steps, lists, `*`/`?`, `@daily`-style
//! descriptors and `@every <duration>`), Kubernetes' refusal of `TZ=` and
//! `CRON_TZ=` prefixes, and IANA names for `spec.timeZone`.
//!
//! Matching is [`croner`]'s; this module only brings the accepted syntax and
//! the day-of-month/day-of-week rule in line with robfig's:
//! - croner's extensions robfig refuses (`L`, `W`, `#`, a `+` on the
//!   weekday field, a seconds or a year field) are refused;
//! - robfig's weekday range is 0-6, so `7` is refused;
//! - `N/step` means `N-max/step` as in robfig, and `?` is `*` in any field;
//! - a day field of `*`, `?` or `*/1` counts as unrestricted, so when only
//!   one of the two day fields is restricted it alone decides, and when both
//!   are, either may match.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
/// The zones `spec.timeZone` names; re-exported so callers share one version.
pub use chrono_tz::Tz;

/// Why a schedule or a time zone was refused. Each message is robfig's or
/// Kubernetes' where they have one: the `<error>` in
/// `spec.schedule: Invalid value: "x": <error>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("empty spec string")]
    Empty,
    #[error("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")]
    TimeZoneInSchedule,
    #[error("expected exactly 5 fields, found {found}: [{}]", fields.join(" "))]
    FieldCount { found: usize, fields: Vec<String> },
    #[error("unrecognized descriptor: {0}")]
    UnknownDescriptor(String),
    #[error("failed to parse duration {descriptor}: {source}")]
    EveryDuration {
        descriptor: String,
        #[source]
        source: crate::duration::DurationError,
    },
    /// A token robfig reads as a number and cannot (croner's `L`, `W`, `#`,
    /// a missing range start, an unknown name).
    #[error("failed to parse int from {0}: strconv.Atoi: parsing {0:?}: invalid syntax")]
    NotANumber(String),
    #[error("negative number ({0}) not allowed: {0}")]
    Negative(String),
    #[error("failed to parse int from {0}: strconv.Atoi: parsing {0:?}: value out of range")]
    OutOfRange(String),
    #[error("too many hyphens: {0}")]
    TooManyHyphens(String),
    #[error("too many slashes: {0}")]
    TooManySlashes(String),
    #[error("beginning of range ({start}) below minimum ({min}): {expr}")]
    BelowMinimum { start: u32, min: u32, expr: String },
    #[error("end of range ({end}) above maximum ({max}): {expr}")]
    AboveMaximum { end: u32, max: u32, expr: String },
    #[error("beginning of range ({start}) beyond end of range ({end}): {expr}")]
    BeyondEnd { start: u32, end: u32, expr: String },
    #[error("step of range should be a positive number: {0}")]
    ZeroStep(String),
    /// Croner's own refusal of a field (bounds, reversed ranges, zero steps).
    #[error("{0}")]
    Invalid(String),
    #[error("timeZone must be nil or non-empty string")]
    EmptyTimeZone,
    #[error("timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones")]
    LocalTimeZone,
    #[error("unknown time zone {0}")]
    UnknownTimeZone(String),
}

/// A parsed schedule; cheap to clone.
#[derive(Debug, Clone)]
pub struct Schedule(Kind);

#[derive(Debug, Clone)]
enum Kind {
    Cron(Box<croner::Cron>),
    /// `@every d`: robfig runs it `d` (whole seconds, at least one) after
    /// the second it is asked about.
    Every(Duration),
}

const DESCRIPTORS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Parses a `spec.schedule` as upstream's CronJob validation and controller do.
pub fn parse_schedule(spec: &str) -> Result<Schedule, CronError> {
    if spec.is_empty() {
        return Err(CronError::Empty);
    }
    // Upstream's validation refuses "TZ" anywhere, not only as a prefix.
    if spec.contains("TZ") {
        return Err(CronError::TimeZoneInSchedule);
    }
    if spec.starts_with('@') {
        return parse_descriptor(spec);
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(CronError::FieldCount { found: fields.len(), fields: fields.iter().map(|f| f.to_string()).collect() });
    }
    let normalized: Vec<String> = fields.iter().enumerate().map(|(i, f)| normalize_field(i, f)).collect::<Result<_, _>>()?;
    compile(&normalized.join(" "))
}

/// Parses a `spec.timeZone` as upstream's validation does: an IANA name,
/// exact case, never `Local`, no path tricks.
pub fn parse_time_zone(s: &str) -> Result<Tz, CronError> {
    if s.is_empty() {
        return Err(CronError::EmptyTimeZone);
    }
    // Go's LoadLocation reads files, so upstream first refuses anything that
    // could walk the zone directory; 0-9 and + serve legacy names (Etc/GMT+5).
    let part_ok = |p: &str| {
        p != "." && p != ".." && !p.starts_with('-') && (1..=14).contains(&p.len())
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+'))
    };
    if !s.split('/').all(part_ok) {
        return Err(CronError::UnknownTimeZone(s.to_string()));
    }
    if s.eq_ignore_ascii_case("Local") {
        return Err(CronError::LocalTimeZone);
    }
    Tz::from_str(s).map_err(|_| CronError::UnknownTimeZone(s.to_string()))
}

impl Schedule {
    /// The first scheduled time strictly after `t`, evaluated on the wall
    /// clock of `tz` (UTC when `None`). `None` when the schedule never fires
    /// again (e.g. `0 0 30 2 *`).
    pub fn next_after(&self, t: DateTime<Utc>, tz: Option<Tz>) -> Option<DateTime<Utc>> {
        match &self.0 {
            Kind::Every(d) => Some(truncate_to_second(t) + chrono::Duration::from_std(*d).ok()?),
            Kind::Cron(cron) => {
                let mut at = t.with_timezone(&tz.unwrap_or(Tz::UTC));
                // Croner runs a start that falls in a spring-forward gap at
                // the gap's end; robfig skips it. Skip what does not match.
                for _ in 0..MAX_GAP_SKIPS {
                    at = cron.find_next_occurrence(&at, false).ok()?;
                    if cron.is_time_matching(&at).ok()? {
                        return Some(at.with_timezone(&Utc));
                    }
                }
                None
            }
        }
    }

    /// The latest scheduled time in `(after, upto]`, where the series of an
    /// `@every` schedule starts from `after`. This is how the CronJob
    /// controller finds the one missed start worth running without walking
    /// every start it missed.
    pub fn latest_in(&self, after: DateTime<Utc>, upto: DateTime<Utc>, tz: Option<Tz>) -> Option<DateTime<Utc>> {
        match &self.0 {
            Kind::Every(d) => {
                let first = self.next_after(after, tz)?;
                if first > upto {
                    return None;
                }
                let step = d.as_secs() as i64;
                let steps = (upto - first).num_seconds() / step;
                Some(first + chrono::Duration::seconds(steps * step))
            }
            Kind::Cron(cron) => {
                let mut at = upto.with_timezone(&tz.unwrap_or(Tz::UTC));
                let mut inclusive = true;
                for _ in 0..MAX_GAP_SKIPS {
                    at = cron.find_previous_occurrence(&at, inclusive).ok()?;
                    if at.with_timezone(&Utc) <= after {
                        return None;
                    }
                    if cron.is_time_matching(&at).ok()? {
                        return Some(at.with_timezone(&Utc));
                    }
                    inclusive = false;
                }
                None
            }
        }
    }
}

/// How many shifted gap starts in a row are skipped before giving up; one
/// gap a year at most, so a handful covers any real zone.
const MAX_GAP_SKIPS: usize = 8;

fn truncate_to_second(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0).unwrap_or(t)
}

fn parse_descriptor(spec: &str) -> Result<Schedule, CronError> {
    if let Some(rest) = spec.strip_prefix("@every ") {
        let d = crate::duration::parse_nanos(rest)
            .map_err(|source| CronError::EveryDuration { descriptor: spec.to_string(), source })?;
        // robfig: at least one second, rounded down to whole seconds.
        let secs = (d.max(0) as u64 / 1_000_000_000).max(1);
        return Ok(Schedule(Kind::Every(Duration::from_secs(secs))));
    }
    match DESCRIPTORS.iter().find(|(name, _)| *name == spec) {
        Some((_, pattern)) => compile(pattern),
        None => Err(CronError::UnknownDescriptor(spec.to_string())),
    }
}

/// Field bounds as robfig has them (weekdays 0-6, Sunday 0).
struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// Whether a `*` here decides how the two day fields combine.
    day: bool,
}

const FIELDS: [Bounds; 5] = [
    Bounds { min: 0, max: 59, names: &[], day: false },
    Bounds { min: 0, max: 23, names: &[], day: false },
    Bounds { min: 1, max: 31, names: &[], day: true },
    Bounds { min: 1, max: 12, names: &MONTHS, day: false },
    Bounds { min: 0, max: 6, names: &WEEKDAYS, day: true },
];

/// Checks one robfig field with robfig's errors and rewrites it into croner
/// syntax that croner reads the same way.
fn normalize_field(index: usize, field: &str) -> Result<String, CronError> {
    let r = &FIELDS[index];
    let mut parts = Vec::new();
    // robfig skips empty list items ("1,,2").
    for expr in field.split(',').filter(|p| !p.is_empty()) {
        let range_and_step: Vec<&str> = expr.split('/').collect();
        let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
        let star = matches!(low_and_high[0], "*" | "?");
        let (start, mut end) = if star {
            (r.min, r.max)
        } else {
            let start = int_or_name(low_and_high[0], r.names, index)?;
            match low_and_high.len() {
                1 => (start, start),
                2 => (start, int_or_name(low_and_high[1], r.names, index)?),
                _ => return Err(CronError::TooManyHyphens(expr.to_string())),
            }
        };
        let step = match range_and_step.len() {
            1 => 1,
            2 => {
                let step = parse_int(range_and_step[1])?;
                // robfig reads `N/step` as `N-max/step`.
                if low_and_high.len() == 1 {
                    end = r.max;
                }
                step
            }
            _ => return Err(CronError::TooManySlashes(expr.to_string())),
        };
        let expr_s = expr.to_string();
        if start < r.min {
            return Err(CronError::BelowMinimum { start, min: r.min, expr: expr_s });
        }
        if end > r.max {
            return Err(CronError::AboveMaximum { end, max: r.max, expr: expr_s });
        }
        if start > end {
            return Err(CronError::BeyondEnd { start, end, expr: expr_s });
        }
        if step == 0 {
            return Err(CronError::ZeroStep(expr_s));
        }
        // robfig marks `*` with a step of one as unrestricted, which decides
        // how the two day fields combine; croner only looks for a bare `*`.
        if r.day && star && step == 1 {
            return Ok("*".to_string());
        }
        parts.push(format!("{start}-{end}/{step}"));
    }
    Ok(parts.join(","))
}

/// A number, or a month/weekday name (any case) in a field that has them.
fn int_or_name(token: &str, names: &[&str], index: usize) -> Result<u32, CronError> {
    let lower = token.to_ascii_lowercase();
    match names.iter().position(|n| *n == lower) {
        // Months count from 1, weekdays from 0 (Sunday).
        Some(i) => Ok(i as u32 + u32::from(index == 3)),
        None => parse_int(token),
    }
}

/// Go's strconv.Atoi as robfig uses it: an optional sign, then digits.
fn parse_int(token: &str) -> Result<u32, CronError> {
    let digits = token.strip_prefix(['+', '-']).unwrap_or(token);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CronError::NotANumber(token.to_string()));
    }
    if token.starts_with('-') && digits.bytes().any(|b| b != b'0') {
        return Err(CronError::Negative(token.to_string()));
    }
    digits.parse::<u32>().map_err(|_| CronError::OutOfRange(token.to_string()))
}

fn compile(pattern: &str) -> Result<Schedule, CronError> {
    let cron = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(pattern)
        .map_err(|e| CronError::Invalid(e.to_string()))?;
    Ok(Schedule(Kind::Cron(Box::new(cron))))
}

#[cfg(test)]
#[path = "cron_tests.rs"]
mod tests;

//! Cases from robfig/cron v3's spec and parser tests (turned into five-field
//! patterns) and from upstream's CronJob validation tests.

use super::*;
use chrono::TimeZone;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn next(spec: &str, from: &str) -> Option<DateTime<Utc>> {
    parse_schedule(spec).unwrap_or_else(|e| panic!("{spec}: {e}")).next_after(utc(from), None)
}

fn err(spec: &str) -> String {
    parse_schedule(spec).expect_err(spec).to_string()
}

#[test]
fn next_wraps_minutes_hours_days_months_and_years() {
    let cases = [
        ("0/15 * * * *", "2012-07-09T14:45:00Z", "2012-07-09T15:00:00Z"),
        ("0/15 * * * *", "2012-07-09T14:59:00Z", "2012-07-09T15:00:00Z"),
        ("0/15 * * * *", "2012-07-09T14:59:59Z", "2012-07-09T15:00:00Z"),
        ("20-35/15 * * * *", "2012-07-09T15:45:00Z", "2012-07-09T16:20:00Z"),
        ("*/15 * * * *", "2012-07-09T23:46:00Z", "2012-07-10T00:00:00Z"),
        ("20-35/15 * * * *", "2012-07-09T23:45:00Z", "2012-07-10T00:20:00Z"),
        ("20-35/15 1/2 * * *", "2012-07-09T23:35:51Z", "2012-07-10T01:20:00Z"),
        ("20-35/15 10-12 * * *", "2012-07-09T23:35:51Z", "2012-07-10T10:20:00Z"),
        ("20-35/15 1/2 */2 * *", "2012-07-09T23:35:51Z", "2012-07-11T01:20:00Z"),
        ("20-35/15 * 9-20 Jul *", "2012-07-09T23:35:51Z", "2012-07-10T00:20:00Z"),
        ("0 0 9 Apr-Oct ?", "2012-07-09T23:35:00Z", "2012-08-09T00:00:00Z"),
        ("0 0 * Feb Mon", "2012-07-09T23:35:00Z", "2013-02-04T00:00:00Z"),
        ("0 0 * Feb Mon/2", "2012-07-09T23:35:00Z", "2013-02-01T00:00:00Z"),
        ("* * * * *", "2012-12-31T23:59:45Z", "2013-01-01T00:00:00Z"),
        ("0 0 29 Feb ?", "2012-07-09T23:35:00Z", "2016-02-29T00:00:00Z"),
    ];
    for (spec, from, want) in cases {
        assert_eq!(next(spec, from), Some(utc(want)), "{spec} after {from}");
    }
}

#[test]
fn next_is_strictly_after() {
    assert_eq!(next("*/5 * * * *", "2024-01-01T00:05:00Z"), Some(utc("2024-01-01T00:10:00Z")));
    assert_eq!(next("*/1 * * * *", "2024-01-01T00:05:00.5Z"), Some(utc("2024-01-01T00:06:00Z")));
}

#[test]
fn both_day_fields_restricted_match_either() {
    // robfig v3: OR when both are restricted, AND when either is a star.
    let fires = |spec: &str, day: &str| {
        let at = utc(day);
        parse_schedule(spec).unwrap().next_after(at - chrono::Duration::seconds(1), None) == Some(at)
    };
    assert!(fires("0 0 1,15 * Sun", "2012-07-15T00:00:00Z")); // Sunday the 15th
    assert!(fires("0 0 1,15 * Sun", "2012-06-15T00:00:00Z")); // Friday the 15th
    assert!(fires("0 0 1,15 * Sun", "2012-08-01T00:00:00Z")); // Wednesday the 1st
    assert!(fires("0 0 1,15 * Sun", "2012-07-22T00:00:00Z")); // a Sunday
    assert!(!fires("0 0 * * Mon", "2012-07-15T00:00:00Z"));
    assert!(!fires("0 0 1,15 * *", "2012-07-09T00:00:00Z"));
    assert!(fires("0 0 1,15 * *", "2012-07-15T00:00:00Z"));
    // */10 has a step above one, so it is a restriction: OR with Sunday.
    assert!(fires("0 0 */10 * Sun", "2012-07-15T00:00:00Z"));
    assert!(fires("0 0 */10 * Mon", "2012-07-11T00:00:00Z"));
    // */1 and ? stay stars: AND.
    assert!(!fires("0 0 */1 * Mon", "2012-07-15T00:00:00Z"));
    assert!(!fires("0 0 ? * Mon", "2012-07-15T00:00:00Z"));
    assert!(fires("30 08 ? Jul Sun", "2012-07-15T08:30:00Z"));
    assert!(fires("30 08 15 Jul ?", "2012-07-15T08:30:00Z"));
    assert!(!fires("30 08 ? Jul Sun", "2012-07-16T08:30:00Z"));
}

#[test]
fn descriptors() {
    let cases = [
        ("@hourly", "2012-07-09T15:04:00Z", "2012-07-09T16:00:00Z"),
        ("@daily", "2012-07-09T15:00:00Z", "2012-07-10T00:00:00Z"),
        ("@midnight", "2012-07-09T15:00:00Z", "2012-07-10T00:00:00Z"),
        ("@weekly", "2012-07-09T00:00:00Z", "2012-07-15T00:00:00Z"),
        ("@monthly", "2012-07-09T00:00:00Z", "2012-08-01T00:00:00Z"),
        ("@yearly", "2012-07-09T00:00:00Z", "2013-01-01T00:00:00Z"),
        ("@annually", "2012-07-09T00:00:00Z", "2013-01-01T00:00:00Z"),
    ];
    for (spec, from, want) in cases {
        assert_eq!(next(spec, from), Some(utc(want)), "{spec}");
    }
    assert_eq!(err("@fortnightly"), "unrecognized descriptor: @fortnightly");
    // robfig matches descriptors exactly.
    assert_eq!(err("@Daily"), "unrecognized descriptor: @Daily");
}

#[test]
fn every_counts_from_the_whole_second() {
    assert_eq!(next("@every 1h30m", "2024-01-01T00:00:10.7Z"), Some(utc("2024-01-01T01:30:10Z")));
    // Less than a second is a second; fractions are dropped.
    assert_eq!(next("@every 10ms", "2024-01-01T00:00:00Z"), Some(utc("2024-01-01T00:00:01Z")));
    assert_eq!(next("@every 2.5s", "2024-01-01T00:00:00Z"), Some(utc("2024-01-01T00:00:02Z")));
    assert_eq!(err("@every 5"), "failed to parse duration @every 5: time: missing unit in duration \"5\"");
    let every = parse_schedule("@every 10m").unwrap();
    assert_eq!(
        every.latest_in(utc("2024-01-01T00:00:00Z"), utc("2024-01-01T00:35:00Z"), None),
        Some(utc("2024-01-01T00:30:00Z"))
    );
    assert_eq!(every.latest_in(utc("2024-01-01T00:00:00Z"), utc("2024-01-01T00:09:00Z"), None), None);
}

#[test]
fn unsatisfiable_schedules_never_fire() {
    assert_eq!(next("0 0 30 Feb ?", "2012-07-09T23:35:00Z"), None);
    assert_eq!(next("0 0 31 Apr ?", "2012-07-09T23:35:00Z"), None);
}

#[test]
fn names_are_case_insensitive_and_field_specific() {
    assert_eq!(next("0 0 * JAN-mar sun", "2024-03-30T00:00:00Z"), Some(utc("2024-03-31T00:00:00Z")));
    assert_eq!(next("0 0 1 DEC *", "2024-03-30T00:00:00Z"), Some(utc("2024-12-01T00:00:00Z")));
    assert_eq!(err("0 0 * * Jan"), "failed to parse int from Jan: strconv.Atoi: parsing \"Jan\": invalid syntax");
    assert_eq!(err("0 0 * Mon *"), "failed to parse int from Mon: strconv.Atoi: parsing \"Mon\": invalid syntax");
}

#[test]
fn robfig_errors() {
    assert_eq!(err(""), "empty spec string");
    assert_eq!(err("* * * * * *"), "expected exactly 5 fields, found 6: [* * * * * *]");
    assert_eq!(err("* * * *"), "expected exactly 5 fields, found 4: [* * * *]");
    assert_eq!(err("   "), "expected exactly 5 fields, found 0: []");
    assert_eq!(err("60 * * * *"), "end of range (60) above maximum (59): 60");
    assert_eq!(err("* 24 * * *"), "end of range (24) above maximum (23): 24");
    assert_eq!(err("* * 0 * *"), "beginning of range (0) below minimum (1): 0");
    assert_eq!(err("* * * 13 *"), "end of range (13) above maximum (12): 13");
    assert_eq!(err("* * * * 7"), "end of range (7) above maximum (6): 7");
    assert_eq!(err("5-1 * * * *"), "beginning of range (5) beyond end of range (1): 5-1");
    assert_eq!(err("*/0 * * * *"), "step of range should be a positive number: */0");
    assert_eq!(err("1-2-3 * * * *"), "too many hyphens: 1-2-3");
    assert_eq!(err("*/2/3 * * * *"), "too many slashes: */2/3");
    assert_eq!(err("*/-5 * * * *"), "negative number (-5) not allowed: -5");
    assert_eq!(err("x * * * *"), "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax");
    assert_eq!(err("/5 * * * *"), "failed to parse int from : strconv.Atoi: parsing \"\": invalid syntax");
}

#[test]
fn croner_extensions_are_refused() {
    assert_eq!(err("0 0 L * *"), "failed to parse int from L: strconv.Atoi: parsing \"L\": invalid syntax");
    assert_eq!(err("0 0 15W * *"), "failed to parse int from 15W: strconv.Atoi: parsing \"15W\": invalid syntax");
    assert_eq!(err("0 0 * * 5#2"), "failed to parse int from 5#2: strconv.Atoi: parsing \"5#2\": invalid syntax");
    assert_eq!(err("0 0 1 * +MON"), "failed to parse int from +MON: strconv.Atoi: parsing \"+MON\": invalid syntax");
}

#[test]
fn lists_tolerate_empty_items() {
    assert_eq!(next("1,,31 * * * *", "2024-01-01T00:02:00Z"), Some(utc("2024-01-01T00:31:00Z")));
}

#[test]
fn tz_in_schedule_is_refused() {
    let want = "cannot use TZ or CRON_TZ in schedule, use timeZone field instead";
    assert_eq!(err("TZ=UTC 0 * * * *"), want);
    assert_eq!(err("CRON_TZ=Europe/Berlin 0 * * * *"), want);
}

#[test]
fn time_zones_as_upstream_validates_them() {
    assert_eq!(parse_time_zone("America/New_York"), Ok(chrono_tz::America::New_York));
    assert_eq!(parse_time_zone("UTC"), Ok(chrono_tz::UTC));
    assert_eq!(parse_time_zone("Etc/GMT+5"), Ok(chrono_tz::Etc::GMTPlus5));
    let msg = |s: &str| parse_time_zone(s).unwrap_err().to_string();
    assert_eq!(msg(""), "timeZone must be nil or non-empty string");
    assert_eq!(msg("Local"), "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones");
    assert_eq!(msg("AMERICA/new_york"), "unknown time zone AMERICA/new_york");
    assert_eq!(msg(" Continent/Zone"), "unknown time zone  Continent/Zone");
    assert_eq!(msg("../etc/passwd"), "unknown time zone ../etc/passwd");
    assert_eq!(msg("Continent/Zone"), "unknown time zone Continent/Zone");
}

#[test]
fn next_is_evaluated_on_the_zone_wall_clock() {
    let ny = Some(chrono_tz::America::New_York);
    let s = parse_schedule("0 9 * * *").unwrap();
    // 09:00 in New York is 14:00 UTC in winter and 13:00 UTC in summer.
    assert_eq!(s.next_after(utc("2024-01-15T12:00:00Z"), ny), Some(utc("2024-01-15T14:00:00Z")));
    assert_eq!(s.next_after(utc("2024-07-15T12:00:00Z"), ny), Some(utc("2024-07-15T13:00:00Z")));
    let tokyo = Some(chrono_tz::Asia::Tokyo);
    assert_eq!(s.next_after(utc("2024-07-15T12:00:00Z"), tokyo), Some(utc("2024-07-16T00:00:00Z")));
}

#[test]
fn daylight_saving_transitions() {
    let ny = chrono_tz::America::New_York;
    let at = |y, mo, d, h, mi| ny.with_ymd_and_hms(y, mo, d, h, mi, 0).earliest().unwrap().with_timezone(&Utc);
    // 02:30 does not exist on 2012-03-11; the next day that has it is a year on.
    let spring = parse_schedule("30 2 11 Mar ?").unwrap();
    assert_eq!(spring.next_after(at(2012, 3, 11, 0, 0), Some(ny)), Some(at(2013, 3, 11, 2, 30)));
    // 01:30 happens twice on 2012-11-04; the first one is the match.
    let fall = parse_schedule("30 1 04 Nov ?").unwrap();
    assert_eq!(fall.next_after(at(2012, 11, 4, 0, 0), Some(ny)), Some(utc("2012-11-04T05:30:00Z")));
}

#[test]
fn latest_in_finds_the_most_recent_start() {
    let s = parse_schedule("*/10 * * * *").unwrap();
    let after = utc("2024-01-01T00:00:00Z");
    assert_eq!(s.latest_in(after, utc("2024-01-01T01:05:00Z"), None), Some(utc("2024-01-01T01:00:00Z")));
    assert_eq!(s.latest_in(after, utc("2024-01-01T01:00:00Z"), None), Some(utc("2024-01-01T01:00:00Z")));
    assert_eq!(s.latest_in(after, utc("2024-01-01T00:05:00Z"), None), None);
    // `after` itself is not in the window.
    assert_eq!(s.latest_in(after, after, None), None);
}

//! Conversions between chrono (used inside the kubelet) and the jiff
//! timestamps k8s-openapi carries.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;

pub fn ts(d: DateTime<Utc>) -> Timestamp {
    Timestamp::new(d.timestamp(), d.timestamp_subsec_nanos() as i32)
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

pub fn time(d: DateTime<Utc>) -> Time {
    // Time is serialized at second precision; keep it that way so that equal statuses compare equal.
    Time(Timestamp::new(d.timestamp(), 0).unwrap_or(Timestamp::UNIX_EPOCH))
}

pub fn micro(d: DateTime<Utc>) -> MicroTime {
    MicroTime(ts(d))
}

pub fn chrono(t: &Time) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
        .unwrap_or_default()
}

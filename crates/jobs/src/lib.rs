//! Dapr jobs as the platform keeps them: what an app scheduled ([`JobSpec`]), when each occurrence falls
//! ([`JobSpec::first_due`], [`JobSpec::next_due`]) and what a failed trigger does ([`FailurePolicy`]). The
//! gateway checks a job with these rules when it is scheduled; the worker's scheduler follows them when it fires.

mod schedule;

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use schedule::{time_or_delay, Schedule};

/// What a job does after a trigger the app did not accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FailurePolicy {
    /// The occurrence is not tried again.
    Drop,
    /// The occurrence is tried again every `interval`, at most `max_retries` times (without end when `None`).
    Constant {
        /// Between two tries.
        #[serde(with = "millis")]
        interval: Duration,
        /// How many times it is tried again.
        max_retries: Option<u32>,
    },
}

impl Default for FailurePolicy {
    /// Dapr's policy when a job names none: three more tries, a second apart.
    fn default() -> FailurePolicy {
        FailurePolicy::Constant { interval: Duration::from_secs(1), max_retries: Some(3) }
    }
}

impl FailurePolicy {
    /// When to try an occurrence again after its `tries`-th try failed at `now`; `None` to give it up.
    pub fn retry_at(&self, tries: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            FailurePolicy::Drop => None,
            FailurePolicy::Constant { interval, max_retries } => {
                if max_retries.is_some_and(|max| tries > max) {
                    return None;
                }
                now.checked_add_signed(chrono::Duration::from_std(*interval).ok()?)
            }
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(duration.as_millis().try_into().unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// A job's data: JSON (from the HTTP API, or a `google.protobuf.Value` from gRPC), or any other protobuf `Any`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JobData {
    /// JSON, delivered as JSON.
    Json(serde_json::Value),
    /// A packed message, delivered as its bytes.
    Any {
        /// The `Any`'s type URL.
        type_url: String,
        /// The `Any`'s bytes, base64 in storage.
        #[serde(with = "base64_bytes")]
        value: Vec<u8>,
    },
}

impl JobData {
    /// The body the app receives at `POST /job/{name}`, as daprd sends it: JSON as JSON, other data as its bytes
    /// with surrounding white space trimmed.
    pub fn body(&self) -> Vec<u8> {
        match self {
            JobData::Json(value) => serde_json::to_vec(value).expect("a JSON value serializes"),
            JobData::Any { value, .. } => value.trim_ascii().to_vec(),
        }
    }
}

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// A job as an app scheduled it, with the times its text fields named resolved when it was scheduled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    /// `schedule`, as given.
    pub schedule: Option<String>,
    /// `dueTime`, as given.
    pub due_time: Option<String>,
    /// `repeats`: how many occurrences at most.
    pub repeats: Option<u32>,
    /// `ttl`, as given.
    pub ttl: Option<String>,
    /// `data`.
    pub data: Option<JobData>,
    /// `failurePolicy`; Dapr's default when absent.
    pub failure_policy: Option<FailurePolicy>,
    /// When it was scheduled (Unix milliseconds): relative `dueTime` and `ttl` count from here.
    pub scheduled_at: i64,
}

/// Why a job cannot be scheduled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JobError {
    /// Neither `schedule` nor `dueTime`.
    #[error("a job needs a schedule or a dueTime")]
    NoSchedule,
    /// A field that cannot be read.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, as Dapr names it.
        field: &'static str,
        /// What is wrong, and what would be right.
        reason: String,
    },
    /// It has no occurrence at all (its ttl ends before the first, or `repeats` is 0).
    #[error("the job would never fire: {0}")]
    NeverFires(String),
}

fn millis_to_time(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap_or_default()
}

impl JobSpec {
    fn scheduled(&self) -> DateTime<Utc> {
        millis_to_time(self.scheduled_at)
    }

    fn parsed_schedule(&self) -> Result<Option<Schedule>, JobError> {
        let schedule = self.schedule.as_deref().filter(|text| !text.trim().is_empty());
        schedule.map(Schedule::parse).transpose().map_err(|reason| JobError::Invalid { field: "schedule", reason })
    }

    /// When the job stops, from `ttl`.
    pub fn expires_at(&self) -> Result<Option<DateTime<Utc>>, JobError> {
        let ttl = self.ttl.as_deref().filter(|text| !text.trim().is_empty());
        ttl.map(|ttl| time_or_delay(ttl, self.scheduled()))
            .transpose()
            .map_err(|reason| JobError::Invalid { field: "ttl", reason })
    }

    /// The most occurrences: `repeats`, else one for a job with only a `dueTime`, else no limit.
    pub fn occurrences(&self) -> Option<u32> {
        match (self.repeats, self.parsed_schedule()) {
            (Some(repeats), _) => Some(repeats),
            (None, Ok(None)) => Some(1),
            (None, _) => None,
        }
    }

    /// The failure policy in force.
    pub fn failure_policy(&self) -> FailurePolicy {
        self.failure_policy.unwrap_or_default()
    }

    /// Checks every field and answers the first occurrence: `dueTime`, else the schedule's first after the
    /// moment it was scheduled.
    pub fn first_due(&self) -> Result<DateTime<Utc>, JobError> {
        let schedule = self.parsed_schedule()?;
        let due_time = self.due_time.as_deref().filter(|text| !text.trim().is_empty());
        let first = match (due_time, &schedule) {
            (Some(due), _) => {
                time_or_delay(due, self.scheduled()).map_err(|reason| JobError::Invalid { field: "dueTime", reason })?
            }
            (None, Some(schedule)) => schedule.next_after(self.scheduled()).ok_or_else(|| {
                JobError::NeverFires(format!(
                    "schedule '{}' has no occurrence",
                    self.schedule.as_deref().unwrap_or_default()
                ))
            })?,
            (None, None) => return Err(JobError::NoSchedule),
        };
        let expires = self.expires_at()?;
        if self.occurrences() == Some(0) {
            return Err(JobError::NeverFires("repeats is 0".to_owned()));
        }
        if expires.is_some_and(|expires| expires < first) {
            return Err(JobError::NeverFires(format!(
                "its ttl ends before its first occurrence at {}",
                first.to_rfc3339()
            )));
        }
        Ok(first)
    }

    /// The occurrence after the one due at `fired_due`, now that `fired` occurrences are done; `None` when the
    /// job is over.
    pub fn next_due(&self, fired_due: DateTime<Utc>, fired: u32) -> Option<DateTime<Utc>> {
        if self.occurrences().is_some_and(|most| fired >= most) {
            return None;
        }
        let next = self.parsed_schedule().ok().flatten()?.next_after(fired_due)?;
        match self.expires_at() {
            Ok(Some(expires)) if next > expires => None,
            _ => Some(next),
        }
    }
}

/// The Dapr component type whose input the scheduler serves: a `bindings.cron` component fires at its `schedule`.
pub const CRON_BINDING_TYPE: &str = "bindings.cron";

/// The job that fires a `bindings.cron` component scheduled at `now`: its `schedule` as daprd's cron binding reads
/// it (five fields, or six with seconds first, or a descriptor), every occurrence tried once (a failed delivery
/// is not retried, as daprd ignores its app's answer), with no end.
pub fn cron_binding_job(schedule: &str, now: DateTime<Utc>) -> Result<JobSpec, JobError> {
    let text = schedule.trim();
    if text.starts_with("TZ=") || text.starts_with("CRON_TZ=") {
        return Err(JobError::Invalid {
            field: "schedule",
            reason: format!("'{text}': time zone prefixes are not served; schedules run in UTC"),
        });
    }
    // robfig's optional seconds field: five fields mean second 0.
    let with_seconds = if !text.starts_with('@') && text.split_whitespace().count() == 5 {
        format!("0 {text}")
    } else {
        text.to_owned()
    };
    let spec = JobSpec {
        schedule: Some(with_seconds),
        due_time: None,
        repeats: None,
        ttl: None,
        data: None,
        failure_policy: Some(FailurePolicy::Drop),
        scheduled_at: now.timestamp_millis(),
    };
    spec.first_due()?;
    Ok(spec)
}

/// The data as the stored JSON of the HTTP API shows it: `{"@type": ..., "value": ...}`, as protojson renders
/// the `Any` daprd keeps.
pub fn data_as_protojson(data: &JobData) -> serde_json::Value {
    match data {
        JobData::Json(value) => {
            serde_json::json!({"@type": "type.googleapis.com/google.protobuf.Value", "value": value})
        }
        JobData::Any { type_url, value } => serde_json::json!({
            "@type": type_url,
            "value": base64::engine::general_purpose::STANDARD.encode(value),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_bindings_take_five_or_six_fields_and_fire_once_per_occurrence() {
        let now = at("2026-12-04T08:00:00Z");
        let five = cron_binding_job("*/15 * * * *", now).unwrap();
        assert_eq!(five.schedule.as_deref(), Some("0 */15 * * * *"));
        assert_eq!(five.first_due().unwrap(), at("2026-12-04T08:15:00Z"));
        let six = cron_binding_job("30 * * * * *", now).unwrap();
        assert_eq!(six.first_due().unwrap(), at("2026-12-04T08:00:30Z"));
        let every = cron_binding_job("@every 15m", now).unwrap();
        assert_eq!(every.first_due().unwrap(), at("2026-12-04T08:15:00Z"));
        assert_eq!(every.failure_policy(), FailurePolicy::Drop);
        assert_eq!(every.occurrences(), None);
        let zoned = cron_binding_job("TZ=Europe/Paris 0 * * * *", now).unwrap_err();
        assert!(zoned.to_string().contains("UTC"), "{zoned}");
        assert!(cron_binding_job("every minute", now).is_err());
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn spec(schedule: Option<&str>, due_time: Option<&str>, repeats: Option<u32>, ttl: Option<&str>) -> JobSpec {
        JobSpec {
            schedule: schedule.map(str::to_owned),
            due_time: due_time.map(str::to_owned),
            repeats,
            ttl: ttl.map(str::to_owned),
            data: None,
            failure_policy: None,
            scheduled_at: at("2026-12-04T10:00:00Z").timestamp_millis(),
        }
    }

    #[test]
    fn a_due_time_alone_fires_once() {
        let job = spec(None, Some("5s"), None, None);
        assert_eq!(job.first_due().unwrap(), at("2026-12-04T10:00:05Z"));
        assert_eq!(job.next_due(at("2026-12-04T10:00:05Z"), 1), None);
    }

    #[test]
    fn schedules_repeat_until_repeats_or_ttl() {
        let job = spec(Some("@every 10s"), None, Some(3), None);
        assert_eq!(job.first_due().unwrap(), at("2026-12-04T10:00:10Z"));
        assert_eq!(job.next_due(at("2026-12-04T10:00:10Z"), 1), Some(at("2026-12-04T10:00:20Z")));
        assert_eq!(job.next_due(at("2026-12-04T10:00:30Z"), 3), None);
        let bounded = spec(Some("@every 10s"), Some("0s"), None, Some("25s"));
        assert_eq!(bounded.first_due().unwrap(), at("2026-12-04T10:00:00Z"));
        assert_eq!(bounded.next_due(at("2026-12-04T10:00:20Z"), 3), None, "past the ttl");
        assert_eq!(bounded.next_due(at("2026-12-04T10:00:10Z"), 2), Some(at("2026-12-04T10:00:20Z")));
    }

    #[test]
    fn bad_jobs_are_refused_with_the_field() {
        assert_eq!(spec(None, None, None, None).first_due(), Err(JobError::NoSchedule));
        let bad = spec(Some("every minute"), None, None, None).first_due().unwrap_err();
        assert!(matches!(bad, JobError::Invalid { field: "schedule", .. }), "{bad}");
        let bad = spec(None, Some("later"), None, None).first_due().unwrap_err();
        assert!(matches!(bad, JobError::Invalid { field: "dueTime", .. }), "{bad}");
        let bad = spec(Some("@every 1m"), None, None, Some("10s")).first_due().unwrap_err();
        assert!(matches!(bad, JobError::NeverFires(_)), "{bad}");
        assert!(matches!(spec(Some("@hourly"), None, Some(0), None).first_due(), Err(JobError::NeverFires(_))));
    }

    #[test]
    fn failure_policies_follow_dapr() {
        let now = at("2026-12-04T10:00:00Z");
        let default = FailurePolicy::default();
        assert_eq!(default.retry_at(1, now), Some(at("2026-12-04T10:00:01Z")));
        assert_eq!(default.retry_at(3, now), Some(at("2026-12-04T10:00:01Z")));
        assert_eq!(default.retry_at(4, now), None, "four tries in all");
        assert_eq!(FailurePolicy::Drop.retry_at(1, now), None);
        let forever = FailurePolicy::Constant { interval: Duration::from_secs(5), max_retries: None };
        assert_eq!(forever.retry_at(100, now), Some(at("2026-12-04T10:00:05Z")));
    }

    #[test]
    fn data_reaches_the_app_as_daprd_sends_it() {
        assert_eq!(JobData::Json(serde_json::json!({"a": 1})).body(), br#"{"a":1}"#);
        let raw = JobData::Any {
            type_url: "type.googleapis.com/google.protobuf.StringValue".into(),
            value: b" hi \n".to_vec(),
        };
        assert_eq!(raw.body(), b"hi");
        let stored = serde_json::to_string(&raw).unwrap();
        assert_eq!(serde_json::from_str::<JobData>(&stored).unwrap(), raw);
    }
}

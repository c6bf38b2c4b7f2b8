//! Where "now" comes from. The service reads the system clock; tests drive a manual one, so
//! deadlines days away can be reached in a test without waiting for them.

use std::{fmt::Debug, sync::Mutex};

use chrono::{DateTime, Utc};

/// A source of the current time, to the microsecond (what both databases store exactly).
pub trait TimeSource: Send + Sync + Debug {
    fn now(&self) -> DateTime<Utc>;
}

fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemTime;

impl TimeSource for SystemTime {
    fn now(&self) -> DateTime<Utc> {
        micros(Utc::now())
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualTime(Mutex<DateTime<Utc>>);

impl ManualTime {
    pub fn new(at: DateTime<Utc>) -> ManualTime {
        ManualTime(Mutex::new(micros(at)))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = micros(at);
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += by;
    }
}

impl TimeSource for ManualTime {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

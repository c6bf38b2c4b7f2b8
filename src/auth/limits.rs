//! Overload protection: per-subject rate limits (by role) and a ceiling on requests in flight.
//! Both refuse at once with RESOURCE_EXHAUSTED and a retry hint, never queue: a gateway
//! replaying a day of tickets is slowed down alone, and a flood never turns into a hang or an
//! INTERNAL for everyone else.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::Arc,
    time::{Duration, Instant},
};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{
    config::{LimitSettings, Rate},
    domain::{Caller, Role},
};

/// Why a request was refused, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The subject sends faster than its role's rate.
    TooFast { retry_after: Duration },
    /// The server has as many requests in flight as it takes.
    Busy,
}

impl Refusal {
    /// How long a client should wait before trying again.
    pub fn retry_after(&self) -> Duration {
        match self {
            Refusal::TooFast { retry_after } => *retry_after,
            Refusal::Busy => Duration::from_millis(100),
        }
    }

    pub fn message(&self, sub: &str) -> String {
        match self {
            Refusal::TooFast { retry_after } => format!(
                "{sub} sends more requests than its role's limit; retry in {} ms",
                retry_after.as_millis().max(1)
            ),
            Refusal::Busy => {
                "the server is at its limit of requests in flight; retry in 100 ms".to_owned()
            }
        }
    }
}

/// The limits of one server.
pub struct Limits {
    by_role: HashMap<Role, DefaultKeyedRateLimiter<String>>,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    swept: std::sync::Mutex<Instant>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

fn quota(rate: Rate) -> Option<Quota> {
    let per_second = NonZeroU32::new(rate.per_second)?;
    let burst = NonZeroU32::new(rate.burst.max(rate.per_second)).unwrap_or(per_second);
    Some(Quota::per_second(per_second).allow_burst(burst))
}

impl Limits {
    pub fn new(settings: &LimitSettings) -> Limits {
        let by_role = Role::ALL
            .into_iter()
            .filter_map(|role| {
                let rate = settings.rate(role);
                quota(rate).map(|q| (role, RateLimiter::keyed(q)))
            })
            .collect();
        Limits {
            by_role,
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight)),
            max_in_flight: settings.max_in_flight,
            swept: std::sync::Mutex::new(Instant::now()),
        }
    }

    /// Admits one request of `caller`, or says why not.
    pub fn admit(&self, caller: &Caller) -> Result<(), Refusal> {
        self.sweep();
        let Some(limiter) = self.by_role.get(&caller.role) else {
            return Ok(());
        };
        limiter
            .check_key(&caller.sub)
            .map_err(|not_until| Refusal::TooFast {
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            })
    }

    /// A place among the requests in flight, held until the answer is sent; `Busy` at once when
    /// there is none.
    pub fn enter(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        self.in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Busy)
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.max_in_flight - self.in_flight.available_permits()
    }

    /// Forgets subjects not seen for a while, once a minute: the keyed state would otherwise
    /// grow with every subject ever seen.
    fn sweep(&self) {
        let Ok(mut last) = self.swept.try_lock() else {
            return;
        };
        if last.elapsed() < Duration::from_secs(60) {
            return;
        }
        *last = Instant::now();
        for limiter in self.by_role.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(per_second: u32, burst: u32, max_in_flight: usize) -> LimitSettings {
        let mut s = LimitSettings {
            max_in_flight,
            ..LimitSettings::default()
        };
        s.rates.insert("gateway".into(), Rate { per_second, burst });
        s
    }

    #[test]
    fn a_subject_past_its_burst_is_refused_with_a_hint_and_others_are_not() {
        let limits = Limits::new(&settings(1, 3, 10));
        let flood = Caller {
            sub: "gw-flood".into(),
            role: Role::Gateway,
        };
        let other = Caller {
            sub: "gw-calm".into(),
            role: Role::Gateway,
        };
        for _ in 0..3 {
            limits.admit(&flood).expect("within the burst");
        }
        let refused = limits.admit(&flood).expect_err("past the burst");
        assert!(
            matches!(refused, Refusal::TooFast { retry_after } if retry_after > Duration::ZERO
            && retry_after <= Duration::from_secs(1))
        );
        limits
            .admit(&other)
            .expect("another subject has its own allowance");
    }

    #[test]
    fn no_place_in_flight_is_busy_at_once() {
        let limits = Limits::new(&settings(100, 100, 2));
        let a = limits.enter().unwrap();
        let _b = limits.enter().unwrap();
        assert_eq!(limits.in_flight(), 2);
        assert_eq!(limits.enter().unwrap_err(), Refusal::Busy);
        drop(a);
        let _again = limits.enter().expect("a place again");
    }
}

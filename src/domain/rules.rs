//! The rules an admin changes without a release, in one immutable version: the working-time
//! calendar, the SLA policy and the routing overrides.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Utc};

use super::{
    calendar::{self, Calendar, CalendarDay, OfficeHours},
    sla::{Policy, PolicyRule},
};

/// A region's override of a category's routing: such cases in its subtree go to `unit_code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingOverride {
    pub region_code: String,
    pub category_code: String,
    pub unit_code: String,
}

/// Everything stored, as storage reads it; [`Rules::build`] makes the snapshot.
#[derive(Debug, Default, Clone)]
pub struct RulesParts {
    pub version: i64,
    /// Years with an imported schedule.
    pub years: Vec<i32>,
    /// The imported schedules' days.
    pub data_days: Vec<CalendarDay>,
    pub overrides: Vec<CalendarDay>,
    pub policies: Vec<PolicyRule>,
    pub routing: Vec<RoutingOverride>,
}

/// One immutable version of the rules.
#[derive(Debug)]
pub struct Rules {
    pub version: i64,
    pub calendar: Calendar,
    pub policy: Policy,
    /// category code → region code → the unit that leads such cases in that region's subtree.
    pub routing: HashMap<String, HashMap<String, String>>,
}

impl Rules {
    /// The shipped schedules, with the stored ones laid over them year by year; working hours
    /// count `office_hours` (configuration, not stored: every replica is given its own).
    pub fn build(parts: RulesParts, office_hours: &OfficeHours) -> Rules {
        let builtin = Calendar::builtin();
        let stored: BTreeSet<i32> = parts.years.iter().copied().collect();
        let mut years: BTreeSet<i32> = builtin.years().collect();
        years.extend(stored.iter().copied());
        let mut data_days: Vec<CalendarDay> = builtin
            .years()
            .filter(|y| !stored.contains(y))
            .flat_map(|y| builtin.exceptions(y))
            .collect();
        data_days.extend(parts.data_days);
        let calendar = Calendar::from_parts(years, data_days, parts.overrides)
            .with_office_hours(office_hours.clone());
        let mut routing: HashMap<String, HashMap<String, String>> = HashMap::new();
        for r in parts.routing {
            routing
                .entry(r.category_code)
                .or_default()
                .insert(r.region_code, r.unit_code);
        }
        Rules {
            version: parts.version,
            calendar,
            policy: Policy::with_rules(parts.policies),
            routing,
        }
    }

    /// The override for a category at a place: the first region of `lowest_first` (the place's
    /// region chain, lowest first) that has one.
    pub fn routing_override<'a>(
        &self,
        lowest_first: impl IntoIterator<Item = &'a str>,
        category: &str,
    ) -> Option<&str> {
        let by_region = self.routing.get(category)?;
        lowest_first
            .into_iter()
            .find_map(|region| by_region.get(region).map(String::as_str))
    }

    /// Every routing override, by category, then region code.
    pub fn routing_overrides(&self) -> Vec<RoutingOverride> {
        let mut overrides: Vec<RoutingOverride> = self
            .routing
            .iter()
            .flat_map(|(category, by_region)| {
                by_region.iter().map(|(region, unit)| RoutingOverride {
                    region_code: region.clone(),
                    category_code: category.clone(),
                    unit_code: unit.clone(),
                })
            })
            .collect();
        overrides.sort_by(|a, b| {
            (&a.category_code, &a.region_code).cmp(&(&b.category_code, &b.region_code))
        });
        overrides
    }

    /// Years that deadlines computed now may reach but that have no published schedule: this
    /// year, and from November the next (clocks then run into it).
    pub fn missing_years(&self, now: DateTime<Utc>) -> Vec<i32> {
        let today = now.with_timezone(&calendar::SHANGHAI).date_naive();
        let mut years = vec![today.year()];
        if today.month() >= 11 {
            years.push(today.year() + 1);
        }
        years
            .into_iter()
            .filter(|y| !self.calendar.has_data(*y))
            .collect()
    }
}

//! The figures the centers are judged by (DESIGN.md "Statistics"), over a cohort: the cases
//! received in a period (merged duplicates left out), with what has become of them so far.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{calendar::Calendar, case::CaseStatus, directory::Tier, sla::local_tier};

/// One case of a cohort, as statistics see it.
#[derive(Debug, Clone, PartialEq)]
pub struct CohortCase {
    pub status: CaseStatus,
    pub received_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub tier: Tier,
    pub escalation_level: i32,
    /// The last evaluation: satisfied (满意 or 基本满意) or not; `None` when not evaluated.
    pub satisfied: Option<bool>,
    /// The last evaluation was recorded after a callback (回访).
    pub by_callback: bool,
    pub reopen_count: i32,
    /// A clock of the case passed its due time (running past it, or stopped after it); an
    /// extended clock's due time is the extended one.
    pub overdue: bool,
    /// A clock of the case was extended (延期).
    pub extended: bool,
    /// A clock of the case passed the due time it had before its extension: the case is on
    /// time (when not `overdue`) only by the extension.
    pub late_but_for_extension: bool,
    /// Escalations (manual and SLA) and returns in the case's log.
    pub escalations: i64,
    pub returns: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub received: i64,
    pub resolved: i64,
    pub resolution_rate: f64,
    pub on_time_rate: f64,
    pub overdue: i64,
    /// The mean over the resolved cases of the office hours (of working days) from receipt to
    /// resolution, as a center reads "working hours": nothing at lunch, at night or on days
    /// off ([`Calendar::office_seconds_between`]).
    pub mean_handling_working_hours: f64,
    pub evaluated: i64,
    pub satisfaction_rate: f64,
    pub local_resolution_rate: f64,
    pub escalations: i64,
    pub returns: i64,
    pub reopens: i64,
    /// Evaluated cases whose (last) evaluation was recorded after a callback (回访), and their
    /// share of the evaluated. Snapshots stored before callbacks existed read 0.
    #[serde(default)]
    pub evaluated_by_callback: i64,
    #[serde(default)]
    pub callback_evaluation_rate: f64,
    /// Cases with an extension (延期) granted. On time is judged against the extended due
    /// time: `resolved_on_time_by_extension` of the resolved cases on time were so only by
    /// their extension. Snapshots stored before extensions existed read 0.
    #[serde(default)]
    pub extended: i64,
    #[serde(default)]
    pub resolved_on_time_by_extension: i64,
}

/// Sums a cohort case by case; `finish` turns the sums into rates.
#[derive(Debug, Clone, Default)]
pub struct Accumulator {
    received: i64,
    resolved: i64,
    resolved_on_time: i64,
    overdue: i64,
    handled: i64,
    handling_seconds: i64,
    evaluated: i64,
    satisfied: i64,
    by_callback: i64,
    extended: i64,
    on_time_by_extension: i64,
    local: i64,
    escalations: i64,
    returns: i64,
    reopens: i64,
}

fn rate(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl Accumulator {
    pub fn add(&mut self, c: &CohortCase, calendar: &Calendar) {
        self.received += 1;
        let resolved = matches!(c.status, CaseStatus::Resolved | CaseStatus::Closed);
        if resolved {
            self.resolved += 1;
            if !c.overdue {
                self.resolved_on_time += 1;
                self.on_time_by_extension += i64::from(c.late_but_for_extension);
            }
            // 就地化解: settled at township tier or below without escalation.
            if local_tier(c.tier) && c.escalation_level == 0 {
                self.local += 1;
            }
            if let Some(at) = c.resolved_at {
                self.handled += 1;
                self.handling_seconds += calendar.office_seconds_between(c.received_at, at);
            }
        }
        if c.overdue {
            self.overdue += 1;
        }
        self.extended += i64::from(c.extended);
        if let Some(satisfied) = c.satisfied {
            self.evaluated += 1;
            self.satisfied += i64::from(satisfied);
            self.by_callback += i64::from(c.by_callback);
        }
        self.escalations += c.escalations;
        self.returns += c.returns;
        self.reopens += i64::from(c.reopen_count);
    }

    pub fn finish(&self) -> Stats {
        Stats {
            received: self.received,
            resolved: self.resolved,
            resolution_rate: rate(self.resolved, self.received),
            on_time_rate: rate(self.resolved_on_time, self.resolved),
            overdue: self.overdue,
            mean_handling_working_hours: if self.handled == 0 {
                0.0
            } else {
                self.handling_seconds as f64 / 3600.0 / self.handled as f64
            },
            evaluated: self.evaluated,
            satisfaction_rate: rate(self.satisfied, self.evaluated),
            evaluated_by_callback: self.by_callback,
            callback_evaluation_rate: rate(self.by_callback, self.evaluated),
            extended: self.extended,
            resolved_on_time_by_extension: self.on_time_by_extension,
            local_resolution_rate: rate(self.local, self.resolved),
            escalations: self.escalations,
            returns: self.returns,
            reopens: self.reopens,
        }
    }
}

/// A figure units and regions are ranked by (季通报).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    OnTimeRate,
    SatisfactionRate,
    ResolutionRate,
    /// Fewest first.
    Overdue,
}

impl Figure {
    /// The figure's value in `stats`.
    pub fn of(self, stats: &Stats) -> f64 {
        match self {
            Figure::OnTimeRate => stats.on_time_rate,
            Figure::SatisfactionRate => stats.satisfaction_rate,
            Figure::ResolutionRate => stats.resolution_rate,
            Figure::Overdue => stats.overdue as f64,
        }
    }
}

/// One of the practice's targets (DESIGN.md "Statistics") held against a figure.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetCheck {
    /// `satisfaction_rate`, `resolution_rate` or `local_resolution_rate`.
    pub figure: &'static str,
    pub target: f64,
    pub value: f64,
    pub met: bool,
}

/// The practice's targets that apply to figures of a region (or a unit) at `tier`:
/// satisfaction ≥ 90 % once anything was evaluated; resolution ≥ 95 / 93 / 90 % at city /
/// district / township (the township's 90 % below it) once anything was received; local
/// resolution ≥ 85 % once anything was resolved.
pub fn targets(stats: &Stats, tier: Tier) -> Vec<TargetCheck> {
    let check = |figure, target, value: f64| TargetCheck {
        figure,
        target,
        value,
        met: value >= target,
    };
    let mut out = Vec::new();
    if stats.evaluated > 0 {
        out.push(check("satisfaction_rate", 0.90, stats.satisfaction_rate));
    }
    if stats.received > 0 {
        let target = match tier {
            Tier::City => 0.95,
            Tier::District => 0.93,
            Tier::Township | Tier::Community | Tier::Grid => 0.90,
        };
        out.push(check("resolution_rate", target, stats.resolution_rate));
    }
    if stats.resolved > 0 {
        out.push(check(
            "local_resolution_rate",
            0.85,
            stats.local_resolution_rate,
        ));
    }
    out
}

/// Ranks `entries` (a code and its figures) by `figure`: the highest rate first, the fewest
/// overdue first; entries that received nothing come last, since they have no figures to
/// judge; ties share a rank (1, 1, 3) and are listed by code.
pub fn rank<T>(
    mut entries: Vec<(T, Stats)>,
    figure: Figure,
    code: impl Fn(&T) -> &str,
) -> Vec<(u32, T, Stats)> {
    let key = |s: &Stats| {
        let v = figure.of(s);
        if figure == Figure::Overdue { v } else { -v }
    };
    entries.sort_by(|(a, sa), (b, sb)| {
        (sa.received == 0)
            .cmp(&(sb.received == 0))
            .then(key(sa).total_cmp(&key(sb)))
            .then_with(|| code(a).cmp(code(b)))
    });
    let mut out: Vec<(u32, T, Stats)> = Vec::with_capacity(entries.len());
    for (i, (item, stats)) in entries.into_iter().enumerate() {
        let position = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let rank = match out.last() {
            Some((r, _, last))
                if (last.received == 0) == (stats.received == 0)
                    && key(last).total_cmp(&key(&stats)).is_eq() =>
            {
                *r
            }
            _ => position,
        };
        out.push((rank, item, stats));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn resolved(received: &str, resolved: &str) -> CohortCase {
        CohortCase {
            status: CaseStatus::Resolved,
            received_at: sh(received),
            resolved_at: Some(sh(resolved)),
            tier: Tier::Community,
            escalation_level: 0,
            satisfied: None,
            by_callback: false,
            reopen_count: 0,
            overdue: false,
            extended: false,
            late_but_for_extension: false,
            escalations: 0,
            returns: 0,
        }
    }

    #[test]
    fn on_time_counts_the_extended_due_time_and_says_how_many_needed_it() {
        let calendar = Calendar::builtin();
        let plain = resolved("2026-11-02T09:00:00+08:00", "2026-11-03T09:00:00+08:00");
        let saved = CohortCase {
            extended: true,
            late_but_for_extension: true,
            ..plain.clone()
        };
        let late_even_so = CohortCase {
            overdue: true,
            ..saved.clone()
        };
        let extended_early = CohortCase {
            extended: true,
            ..plain.clone()
        };
        let mut acc = Accumulator::default();
        for c in [&plain, &saved, &late_even_so, &extended_early] {
            acc.add(c, &calendar);
        }
        let stats = acc.finish();
        assert_eq!(stats.resolved, 4);
        assert_eq!(stats.on_time_rate, 0.75);
        assert_eq!(stats.extended, 3);
        assert_eq!(stats.resolved_on_time_by_extension, 1);
        assert_eq!(stats.overdue, 1);
    }

    fn with(received: i64, resolved: i64, on_time: f64, overdue: i64) -> Stats {
        Stats {
            received,
            resolved,
            resolution_rate: rate(resolved, received),
            on_time_rate: on_time,
            overdue,
            ..Stats::default()
        }
    }

    #[test]
    fn ranks_put_the_best_first_share_ties_and_leave_the_empty_last() {
        let entries = vec![
            ("b", with(10, 9, 0.8, 2)),
            ("empty", with(0, 0, 0.0, 0)),
            ("a", with(10, 9, 0.8, 1)),
            ("c", with(5, 5, 1.0, 3)),
        ];
        let ranked = rank(entries.clone(), Figure::OnTimeRate, |c| c);
        let order: Vec<(u32, &str)> = ranked.iter().map(|(r, c, _)| (*r, *c)).collect();
        assert_eq!(order, [(1, "c"), (2, "a"), (2, "b"), (4, "empty")]);
        let ranked = rank(entries, Figure::Overdue, |c| c);
        let order: Vec<(u32, &str)> = ranked.iter().map(|(r, c, _)| (*r, *c)).collect();
        assert_eq!(order, [(1, "a"), (2, "b"), (3, "c"), (4, "empty")]);
    }

    #[test]
    fn targets_follow_the_practice_by_tier_and_only_where_there_are_figures() {
        let mut s = with(100, 94, 0.9, 0);
        s.evaluated = 10;
        s.satisfaction_rate = 0.9;
        s.local_resolution_rate = 0.8;
        let by_figure = |tier| -> Vec<(&'static str, f64, bool)> {
            targets(&s, tier)
                .into_iter()
                .map(|t| (t.figure, t.target, t.met))
                .collect()
        };
        assert_eq!(
            by_figure(Tier::City),
            [
                ("satisfaction_rate", 0.90, true),
                ("resolution_rate", 0.95, false),
                ("local_resolution_rate", 0.85, false),
            ]
        );
        assert_eq!(
            by_figure(Tier::District)[1],
            ("resolution_rate", 0.93, true)
        );
        assert_eq!(by_figure(Tier::Grid)[1], ("resolution_rate", 0.90, true));
        assert!(targets(&Stats::default(), Tier::City).is_empty());
    }

    #[test]
    fn handling_time_counts_office_hours_of_working_days() {
        let calendar = Calendar::builtin();
        let mut acc = Accumulator::default();
        // Across lunch: 11:00–12:00 and 13:30–14:00, 1 h 30.
        acc.add(
            &resolved("2025-03-12T11:00:00+08:00", "2025-03-12T14:00:00+08:00"),
            &calendar,
        );
        // Friday 16:00 to Monday 10:00: 1 h 30 on Friday, nothing at the weekend, 1 h 30 on
        // Monday (as whole working days it would have been 18 h).
        acc.add(
            &resolved("2025-03-14T16:00:00+08:00", "2025-03-17T10:00:00+08:00"),
            &calendar,
        );
        // Received on a Saturday night, resolved on the Sunday before Monday: no office time.
        acc.add(
            &resolved("2025-03-15T22:00:00+08:00", "2025-03-16T10:00:00+08:00"),
            &calendar,
        );
        let stats = acc.finish();
        assert_eq!(stats.resolved, 3);
        assert!(
            (stats.mean_handling_working_hours - (1.5 + 3.0 + 0.0) / 3.0).abs() < 1e-9,
            "{}",
            stats.mean_handling_working_hours
        );
    }
}

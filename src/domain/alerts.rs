//! Early warning (研判预警): which alerts a newly received case raises.
//!
//! - **Hotspot.** Cases of one category class piling up in one community or township: at least
//!   the class's threshold for that tier within its window (by default 5 in 72 hours, 3 for the
//!   disputes class `dispute`). The window of a count ending at a case received at `t` is
//!   `(t − window, t]`.
//! - **One alert per region.** A cluster inside one community raises the community's alert,
//!   not also its township's. A township counts only the cases of its communities that hold no
//!   cluster: a community *holds a cluster* of a class at `t` when its own count reaches its own
//!   threshold, or when an alert of it for that class is still open at `t`. Cases located to the
//!   township only (no community) always count for it. So a township alerts for a pile spread
//!   over its communities (or outside them), never for one that one community already raised.
//! - **Repeat reporter.** One citizen's phone on at least 3 cases within 30 days: a person the
//!   center should call back. Only cases that carry a citizen's phone count (tickets from the
//!   hotline and the other gateways); grid members' handset reports are their job, not a
//!   citizen calling again, and carry no phone.
//! - **Once per window.** An alert of (kind, region, subject) at a case received at `t` is
//!   open over `[t, t + window)`: no alert of the same kind, region and subject is raised for a
//!   case received before its end. After it, the count starts afresh from the cases in the
//!   new case's own window (which may include cases of the earlier alert's: a pile that goes on
//!   growing is raised again once per window).
//! - **Not after the fact.** A case looked at only after its window has passed (a replica was
//!   down, or alerts were just turned on) raises nothing: the pile it would have announced is
//!   history.
//!
//! Storage claims each alert with a compare-and-set on its (kind, region, subject) row's end of
//! window, in the transaction that stores it: whichever replica decides first raises it, the
//! others' claims fail.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};

use super::directory::Tier;

/// The kinds of alert; the strings are the contract (`Alert.kind`, the event kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertKind {
    Hotspot,
    RepeatReporter,
}

impl AlertKind {
    pub const ALL: [AlertKind; 2] = [AlertKind::Hotspot, AlertKind::RepeatReporter];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Hotspot => "hotspot",
            AlertKind::RepeatReporter => "repeat_reporter",
        }
    }
}

impl std::str::FromStr for AlertKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AlertKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown alert kind {s:?} (hotspot or repeat_reporter)"))
    }
}

/// How many cases within how long raise an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    pub count: u32,
    pub window: Duration,
}

impl Threshold {
    pub const fn new(count: u32, hours: i64) -> Threshold {
        Threshold {
            count,
            window: Duration::hours(hours),
        }
    }
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hours = self.window.num_hours();
        if hours % 24 == 0 {
            write!(f, "{}/{}d", self.count, hours / 24)
        } else {
            write!(f, "{}/{}h", self.count, hours)
        }
    }
}

impl std::str::FromStr for Threshold {
    type Err = String;
    /// `COUNT/WINDOW`: `5/72h`, `3/30d`. At least 2 cases; a window of whole hours from 1 hour
    /// to 366 days.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            |why: &str| format!("{s:?}: {why} (expected COUNT/WINDOW such as 5/72h or 3/30d)");
        let (count, window) = s.split_once('/').ok_or_else(|| bad("no '/'"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| bad("the count is not a whole number"))?;
        if !(2..=10_000).contains(&count) {
            return Err(bad("the count must be from 2 to 10000"));
        }
        let window = window.trim();
        let (number, unit) = window.split_at(window.len().saturating_sub(1));
        let n: i64 = number
            .parse()
            .map_err(|_| bad("the window is not a number of hours (h) or days (d)"))?;
        let hours = match unit {
            "h" => n,
            "d" => n.saturating_mul(24),
            _ => return Err(bad("the window is not a number of hours (h) or days (d)")),
        };
        if !(1..=366 * 24).contains(&hours) {
            return Err(bad("the window must be from 1h to 366d"));
        }
        Ok(Threshold::new(count, hours))
    }
}

/// The class whose threshold is lower by default: 矛盾纠纷.
pub const DISPUTES_CLASS: &str = "dispute";
/// The key of the thresholds of every class not named.
pub const ANY_CLASS: &str = "*";

/// A class's hotspot thresholds, per tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierThresholds {
    pub community: Threshold,
    pub township: Threshold,
}

impl TierThresholds {
    /// 5 in 72 hours.
    pub const DEFAULT: TierThresholds = TierThresholds {
        community: Threshold::new(5, 72),
        township: Threshold::new(5, 72),
    };
}

/// The thresholds in force (the `alerts` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRules {
    /// Whether the watcher looks at all (`[alerts] enabled`, `GRIDCASE_ALERTS=off`).
    pub enabled: bool,
    /// By class code; [`ANY_CLASS`] for every class not named.
    pub hotspot: BTreeMap<String, TierThresholds>,
    pub repeat_reporter: Threshold,
}

impl Default for AlertRules {
    /// 5 in 72 hours, 3 for disputes, in communities and townships alike; a phone on 3 cases
    /// in 30 days.
    fn default() -> Self {
        let three = Threshold::new(3, 72);
        AlertRules {
            enabled: true,
            hotspot: BTreeMap::from([
                (ANY_CLASS.to_owned(), TierThresholds::DEFAULT),
                (
                    DISPUTES_CLASS.to_owned(),
                    TierThresholds {
                        community: three,
                        township: three,
                    },
                ),
            ]),
            repeat_reporter: Threshold::new(3, 30 * 24),
        }
    }
}

impl AlertRules {
    /// A class's threshold at a tier (community or township; any other tier reads the
    /// township's).
    pub fn hotspot(&self, class_code: &str, tier: Tier) -> Threshold {
        let t = self
            .hotspot
            .get(class_code)
            .or_else(|| self.hotspot.get(ANY_CLASS))
            .copied()
            .unwrap_or(TierThresholds::DEFAULT);
        if tier == Tier::Community {
            t.community
        } else {
            t.township
        }
    }

    /// The longest window of any class and tier: how far back the hotspot counts read.
    pub fn longest_hotspot_window(&self) -> Duration {
        self.hotspot
            .values()
            .flat_map(|t| [t.community.window, t.township.window])
            .max()
            .unwrap_or(Duration::hours(72))
    }

    /// The longest window of all: how far back the watcher looks when it first starts.
    pub fn longest_window(&self) -> Duration {
        self.longest_hotspot_window()
            .max(self.repeat_reporter.window)
    }
}

/// The key of a citizen's phone: its digits, with a leading `+86`, `0086` or `86` before an
/// 11-digit mobile number left off, so one person's calls meet however a gateway spelled the
/// number. `None` when it has fewer than 5 digits (nothing a person can be called back on).
pub fn phone_key(phone: &str) -> Option<String> {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    let digits = ["0086", "86"]
        .iter()
        .find_map(|p| {
            digits
                .strip_prefix(p)
                .filter(|rest| rest.len() == 11 && rest.starts_with('1'))
        })
        .unwrap_or(&digits)
        .to_owned();
    (digits.len() >= 5).then_some(digits)
}

/// What the watcher knows of a case received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub case_id: String,
    pub case_code: String,
    pub received_at: DateTime<Utc>,
    /// The sequence of the case's `submitted` event: the order of cases received at the same
    /// moment (a case counts what was received before it or with it, never after it).
    pub seq: i64,
    pub class_code: String,
    pub township: Option<String>,
    pub community: Option<String>,
    /// The region whose center holds the case when it is seen.
    pub region_code: String,
    /// [`phone_key`] of a citizen's phone; `None` for staff reports and tickets without one.
    pub phone_key: Option<String>,
}

/// The end of the window of the last alert of (kind, region, subject).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub kind: AlertKind,
    pub region_code: String,
    /// The class code of a hotspot, the phone key of a repeat reporter.
    pub subject: String,
    pub until: DateTime<Utc>,
}

/// An alert raised, as stored and listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub id: String,
    pub kind: AlertKind,
    /// The community or township of a hotspot; the region holding the latest case of a repeat
    /// reporter.
    pub region_code: String,
    pub tier: Tier,
    /// The region's chain (city, district, township, community) down to its own tier: what a
    /// scope is matched against.
    pub chain: [Option<String>; 5],
    /// The center it is addressed to (`{region_code}.center`).
    pub center: String,
    pub class_code: Option<String>,
    /// Filled from the directory when listed.
    pub class_name: Option<String>,
    /// A repeat reporter's phone key (the whole number: shown masked to all but the holding
    /// center).
    pub phone: Option<String>,
    /// The cases counted, oldest first; the last is the one that crossed the threshold.
    pub case_ids: Vec<String>,
    pub case_codes: Vec<String>,
    /// The case whose chain carries the alert's event.
    pub case_id: String,
    pub raised_at: DateTime<Utc>,
    /// The window counted, `(from, received]`, and the end of the alert's own window.
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// An alert to raise (if its claim holds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub kind: AlertKind,
    /// The community or township of a hotspot; the region holding the latest case of a repeat
    /// reporter.
    pub region_code: String,
    /// A hotspot's tier; `None` for a repeat reporter (the holding region's tier is the
    /// directory's to say).
    pub tier: Option<Tier>,
    pub subject: String,
    /// The case that crossed the threshold: the alert's event is appended to its chain.
    pub case_id: String,
    /// The cases counted, oldest first (the crossing case last).
    pub cases: Vec<(String, String)>,
    /// When the crossing case was received: the claim holds if no window is open then.
    pub at: DateTime<Utc>,
    pub from: DateTime<Utc>,
    /// The end of the alert's window: no alert of the same region and subject before it.
    pub until: DateTime<Utc>,
}

impl Draft {
    pub fn count(&self) -> usize {
        self.cases.len()
    }

    /// The claim this alert takes if it is raised.
    pub fn claim(&self) -> Claim {
        Claim {
            kind: self.kind,
            region_code: match self.kind {
                AlertKind::Hotspot => self.region_code.clone(),
                AlertKind::RepeatReporter => REPEAT_REGION.to_owned(),
            },
            subject: self.subject.clone(),
            until: self.until,
        }
    }
}

fn open(claims: &[Claim], kind: AlertKind, region: &str, subject: &str, at: DateTime<Utc>) -> bool {
    claims
        .iter()
        .any(|c| c.kind == kind && c.region_code == region && c.subject == subject && c.until > at)
}

/// Whether `c` counts at `case`: received within the window `(t − window, t]` ending at
/// `case`'s receipt `t`, and not after `case` (cases received at the same moment in the order
/// of their `submitted` events).
fn within(c: &Seen, case: &Seen, window: Duration) -> bool {
    c.received_at > case.received_at - window
        && (c.received_at, c.seq) <= (case.received_at, case.seq)
}

fn ordered(mut cases: Vec<&Seen>) -> Vec<&Seen> {
    cases.sort_by_key(|c| (c.received_at, c.seq));
    cases
}

fn draft(
    kind: AlertKind,
    region_code: &str,
    tier: Option<Tier>,
    subject: &str,
    case: &Seen,
    counted: Vec<&Seen>,
    t: Threshold,
) -> Draft {
    let counted = ordered(counted);
    Draft {
        kind,
        region_code: region_code.to_owned(),
        tier,
        subject: subject.to_owned(),
        case_id: case.case_id.clone(),
        at: case.received_at,
        from: case.received_at - t.window,
        until: case.received_at + t.window,
        cases: counted
            .into_iter()
            .map(|c| (c.case_id.clone(), c.case_code.clone()))
            .collect(),
    }
}

/// The hotspot alerts `case` raises, at most one for its community and one for its township.
/// `township_cases`: the cases of its class seen in its township (or, without a township, in
/// its community), `case` among them; `claims`: the claims of the regions concerned; `now`:
/// when it is looked at.
pub fn hotspots(
    case: &Seen,
    township_cases: &[Seen],
    claims: &[Claim],
    rules: &AlertRules,
    now: DateTime<Utc>,
) -> Vec<Draft> {
    let t = case.received_at;
    let class = case.class_code.as_str();
    let kind = AlertKind::Hotspot;
    let c_rule = rules.hotspot(class, Tier::Community);
    let p_rule = rules.hotspot(class, Tier::Township);
    let same_class = || township_cases.iter().filter(|c| c.class_code == class);
    let in_community = |k: &str| {
        same_class()
            .filter(|c| c.community.as_deref() == Some(k) && within(c, case, c_rule.window))
            .collect::<Vec<_>>()
    };
    let mut out = Vec::new();
    if let Some(k) = case.community.as_deref()
        && now - t < c_rule.window
    {
        let counted = in_community(k);
        if counted.len() >= c_rule.count as usize && !open(claims, kind, k, class, t) {
            out.push(draft(
                kind,
                k,
                Some(Tier::Community),
                class,
                case,
                counted,
                c_rule,
            ));
        }
    }
    let Some(p) = case.township.as_deref() else {
        return out;
    };
    if now - t >= p_rule.window {
        return out;
    }
    // Communities holding a cluster of the class at `t`.
    let communities: BTreeSet<&str> = same_class()
        .filter_map(|c| c.community.as_deref())
        .collect();
    let holding: BTreeSet<&str> = communities
        .into_iter()
        .filter(|k| {
            open(claims, kind, k, class, t)
                || out.iter().any(|d| d.region_code == *k)
                || in_community(k).len() >= c_rule.count as usize
        })
        .collect();
    let held = |c: &Seen| c.community.as_deref().is_some_and(|k| holding.contains(k));
    if held(case) {
        return out;
    }
    let counted: Vec<&Seen> = same_class()
        .filter(|c| c.township.as_deref() == Some(p) && within(c, case, p_rule.window) && !held(c))
        .collect();
    if counted.len() >= p_rule.count as usize && !open(claims, kind, p, class, t) {
        out.push(draft(
            kind,
            p,
            Some(Tier::Township),
            class,
            case,
            counted,
            p_rule,
        ));
    }
    out
}

/// The repeat-reporter alert `case` raises, if any. `same_phone`: the cases seen with its phone
/// key, `case` among them. The alert goes to the center holding `case`, the latest.
pub fn repeat_reporter(
    case: &Seen,
    same_phone: &[Seen],
    claims: &[Claim],
    rules: &AlertRules,
    now: DateTime<Utc>,
) -> Option<Draft> {
    let key = case.phone_key.as_deref()?;
    let rule = rules.repeat_reporter;
    let t = case.received_at;
    if now - t >= rule.window {
        return None;
    }
    let counted: Vec<&Seen> = same_phone
        .iter()
        .filter(|c| c.phone_key.as_deref() == Some(key) && within(c, case, rule.window))
        .collect();
    // One person per window, whichever center holds their latest case.
    let claimed = claims
        .iter()
        .any(|c| c.kind == AlertKind::RepeatReporter && c.subject == key && c.until > t);
    (counted.len() >= rule.count as usize && !claimed).then(|| {
        draft(
            AlertKind::RepeatReporter,
            &case.region_code,
            None,
            key,
            case,
            counted,
            rule,
        )
    })
}

/// The region a repeat reporter's claim is held under: one per phone, wherever its cases are.
pub const REPEAT_REGION: &str = "*";

/// 138****1234: the first three and last four digits kept; what a viewer who may not see a
/// reporter's phone sees of it (and what an alert's event records).
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const P: &str = "371102001";
    const A: &str = "371102001001";
    const B: &str = "371102001002";
    const C: &str = "371102001003";

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 2, 2, 0, 0).unwrap()
    }

    fn seen(n: usize, class: &str, community: Option<&str>, hours: i64) -> Seen {
        Seen {
            case_id: format!("c{n:03}"),
            case_code: format!("code{n:03}"),
            received_at: t0() + Duration::hours(hours),
            seq: i64::try_from(n).unwrap(),
            class_code: class.into(),
            township: Some(P.into()),
            community: community.map(Into::into),
            region_code: P.into(),
            phone_key: None,
        }
    }

    /// Plays cases in order as the watcher does: each sees the ones before it and itself, and
    /// the claims of the alerts raised so far. Returns (case index, region) of each alert.
    fn play(cases: &[Seen], rules: &AlertRules) -> Vec<(usize, String)> {
        let mut claims: Vec<Claim> = Vec::new();
        let mut raised = Vec::new();
        for (i, c) in cases.iter().enumerate() {
            let so_far = &cases[..=i];
            let mut drafts = hotspots(c, so_far, &claims, rules, c.received_at);
            drafts.extend(repeat_reporter(c, so_far, &claims, rules, c.received_at));
            for d in drafts {
                raised.push((i, d.region_code.clone()));
                // The claim's compare-and-set: the row holds the latest window.
                let claim = d.claim();
                claims.retain(|x| {
                    !(x.kind == claim.kind
                        && x.region_code == claim.region_code
                        && x.subject == claim.subject)
                });
                claims.push(claim);
            }
        }
        raised
    }

    #[test]
    fn disputes_alert_their_community_at_three_not_at_two_and_once_per_window() {
        let rules = AlertRules::default();
        let mut cases: Vec<Seen> = (0..2)
            .map(|i| seen(i, "dispute", Some(A), i as i64))
            .collect();
        assert!(
            play(&cases, &rules).is_empty(),
            "2 disputes: below the threshold"
        );
        cases.push(seen(2, "dispute", Some(A), 2));
        assert_eq!(
            play(&cases, &rules),
            [(2, A.to_owned())],
            "the third raises"
        );
        // A fourth and fifth in the same window: nothing more, not the township either.
        cases.push(seen(3, "dispute", Some(A), 10));
        cases.push(seen(4, "dispute", Some(A), 70));
        assert_eq!(play(&cases, &rules), [(2, A.to_owned())]);
        // 72 hours after the alert (case 2 at +2h) its window has closed: the case then counts
        // what its own window holds (cases 3 to 6) and alerts again; case 5, an hour before
        // the end, did not.
        cases.push(seen(5, "dispute", Some(A), 73));
        cases.push(seen(6, "dispute", Some(A), 74));
        assert_eq!(play(&cases, &rules), [(2, A.to_owned()), (6, A.to_owned())]);
    }

    #[test]
    fn other_classes_take_five_and_each_class_counts_alone() {
        let rules = AlertRules::default();
        let mut cases: Vec<Seen> = (0..4)
            .map(|i| seen(i, "environment", Some(A), i as i64))
            .collect();
        // Disputes do not add to the environment's count (2 of them stay under 3).
        cases.push(seen(10, "dispute", Some(A), 4));
        cases.push(seen(11, "dispute", Some(B), 4));
        assert!(play(&cases, &rules).is_empty());
        cases.push(seen(4, "environment", Some(A), 5));
        assert_eq!(play(&cases, &rules), [(6, A.to_owned())]);
    }

    #[test]
    fn cases_received_at_the_same_moment_count_in_the_order_they_came() {
        let rules = AlertRules::default();
        let same = |n: usize| seen(n, "dispute", Some(A), 0);
        let cases = vec![same(0), same(1), same(2)];
        // Looked at once all three are stored: the first two see only what came before them.
        assert!(hotspots(&cases[1], &cases, &[], &rules, t0()).is_empty());
        let drafts = hotspots(&cases[2], &cases, &[], &rules, t0());
        assert_eq!(drafts.len(), 1);
        assert_eq!(drafts[0].case_id, "c002");
    }

    #[test]
    fn a_window_is_72_hours_back_from_the_case() {
        let rules = AlertRules::default();
        // Two disputes, then a third just over 72 hours after the first: only two in window.
        let cases = vec![
            seen(0, "dispute", Some(A), 0),
            seen(1, "dispute", Some(A), 1),
            Seen {
                received_at: t0() + Duration::hours(72),
                ..seen(2, "dispute", Some(A), 0)
            },
        ];
        assert!(
            play(&cases, &rules).is_empty(),
            "the first is out of window"
        );
    }

    #[test]
    fn a_pile_spread_over_communities_alerts_the_township_once() {
        let rules = AlertRules::default();
        // 4 in A (no cluster of its own: 5 needed), then one in B: the township has 5.
        let mut cases: Vec<Seen> = (0..4)
            .map(|i| seen(i, "environment", Some(A), i as i64))
            .collect();
        cases.push(seen(4, "environment", Some(B), 5));
        assert_eq!(play(&cases, &rules), [(4, P.to_owned())]);
        // A's fifth now makes A's own cluster: A alerts; the township's window is still open.
        cases.push(seen(5, "environment", Some(A), 6));
        assert_eq!(play(&cases, &rules), [(4, P.to_owned()), (5, A.to_owned())]);
    }

    #[test]
    fn a_cluster_in_one_community_does_not_raise_its_township() {
        let rules = AlertRules::default();
        let mut cases: Vec<Seen> = (0..5)
            .map(|i| seen(i, "environment", Some(A), i as i64))
            .collect();
        assert_eq!(play(&cases, &rules), [(4, A.to_owned())]);
        // More in A and 4 elsewhere: A holds its cluster, the others make only 4.
        cases.push(seen(5, "environment", Some(A), 6));
        for i in 0..4 {
            cases.push(seen(
                6 + i,
                "environment",
                Some(if i % 2 == 0 { B } else { C }),
                7,
            ));
        }
        // A case located to the township only also counts for it: the fifth outside A.
        assert_eq!(play(&cases, &rules), [(4, A.to_owned())]);
        cases.push(seen(10, "environment", None, 8));
        assert_eq!(
            play(&cases, &rules),
            [(4, A.to_owned()), (10, P.to_owned())]
        );
    }

    #[test]
    fn thresholds_are_per_class_and_tier() {
        let mut rules = AlertRules::default();
        rules.hotspot.insert(
            "environment".into(),
            TierThresholds {
                community: Threshold::new(2, 24),
                township: Threshold::new(4, 24),
            },
        );
        let cases = vec![
            seen(0, "environment", Some(A), 0),
            seen(1, "environment", Some(B), 1),
            seen(2, "environment", Some(C), 2),
            seen(3, "environment", None, 3),
        ];
        assert_eq!(play(&cases, &rules), [(3, P.to_owned())]);
        let cases = vec![
            seen(0, "environment", Some(A), 0),
            seen(1, "environment", Some(A), 1),
        ];
        assert_eq!(play(&cases, &rules), [(1, A.to_owned())]);
        // Past its 24 h window the community's count starts over.
        let cases = vec![
            seen(0, "environment", Some(A), 0),
            seen(1, "environment", Some(A), 25),
        ];
        assert!(play(&cases, &rules).is_empty());
    }

    #[test]
    fn nothing_is_raised_for_a_case_seen_after_its_window() {
        let rules = AlertRules::default();
        let cases: Vec<Seen> = (0..3)
            .map(|i| seen(i, "dispute", Some(A), i as i64))
            .collect();
        let late = cases[2].received_at + Duration::hours(72);
        assert!(hotspots(&cases[2], &cases, &[], &rules, late).is_empty());
        let in_time = cases[2].received_at + Duration::hours(71);
        assert_eq!(hotspots(&cases[2], &cases, &[], &rules, in_time).len(), 1);
    }

    fn call(n: usize, phone: &str, region: &str, days: i64) -> Seen {
        Seen {
            phone_key: phone_key(phone),
            region_code: region.into(),
            ..seen(n, "environment", Some(format!("x{n}").as_str()), days * 24)
        }
    }

    #[test]
    fn a_phone_on_three_cases_in_30_days_is_a_repeat_reporter_once_per_window() {
        let rules = AlertRules::default();
        let mut cases = vec![
            call(0, "13812341234", A, 0),
            call(1, "+86 138-1234-1234", B, 10),
        ];
        // Another number does not count.
        cases.push(call(2, "13900000000", B, 11));
        let repeats = |cases: &[Seen]| {
            let mut claims = Vec::new();
            let mut out = Vec::new();
            for (i, c) in cases.iter().enumerate() {
                if let Some(d) = repeat_reporter(c, &cases[..=i], &claims, &rules, c.received_at) {
                    claims.push(d.claim());
                    out.push((i, d.region_code.clone(), d.count()));
                }
            }
            out
        };
        assert!(repeats(&cases).is_empty(), "two calls are not a repeat");
        cases.push(call(3, "008613812341234", C, 20));
        // The third, to the center holding it, naming all three.
        assert_eq!(repeats(&cases), [(3, C.to_owned(), 3)]);
        cases.push(call(4, "13812341234", A, 25));
        assert_eq!(repeats(&cases), [(3, C.to_owned(), 3)], "same window");
        // 30 days after the alert: the calls of the last 30 days (days 25, 50, 51) raise again.
        cases.push(call(5, "13812341234", A, 50));
        cases.push(call(6, "13812341234", B, 51));
        assert_eq!(
            repeats(&cases),
            [(3, C.to_owned(), 3), (6, B.to_owned(), 3)]
        );
        // Staff reports carry no phone key and never count.
        let staff = Seen {
            phone_key: None,
            ..call(7, "", A, 52)
        };
        assert!(repeat_reporter(&staff, &cases, &[], &rules, staff.received_at).is_none());
    }

    #[test]
    fn phones_meet_however_they_are_spelled() {
        assert_eq!(phone_key("13812341234").as_deref(), Some("13812341234"));
        assert_eq!(
            phone_key("+86 138 1234 1234").as_deref(),
            Some("13812341234")
        );
        assert_eq!(
            phone_key("0086-13812341234").as_deref(),
            Some("13812341234")
        );
        assert_eq!(phone_key("0633-1234567").as_deref(), Some("06331234567"));
        assert_eq!(phone_key("12"), None);
        assert_eq!(phone_key(""), None);
    }

    #[test]
    fn thresholds_read_and_refuse_with_a_reason() {
        assert_eq!("5/72h".parse::<Threshold>(), Ok(Threshold::new(5, 72)));
        assert_eq!("3/30d".parse::<Threshold>(), Ok(Threshold::new(3, 720)));
        assert_eq!(Threshold::new(3, 720).to_string(), "3/30d");
        assert_eq!(Threshold::new(5, 36).to_string(), "5/36h");
        for (bad, says) in [
            ("5", "no '/'"),
            ("x/72h", "whole number"),
            ("1/72h", "from 2"),
            ("5/72", "hours (h) or days (d)"),
            ("5/0h", "from 1h"),
            ("5/400d", "366d"),
        ] {
            let err = bad.parse::<Threshold>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}

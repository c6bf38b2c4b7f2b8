//! Early warning (研判预警): the watcher that raises hotspot and repeat-reporter alerts as cases
//! come in, and `ListAlerts`.
//!
//! Each replica's watcher looks every [`ALERT_TICK`] at the cases received since the last look:
//! the `submitted` events after the shared cursor (at most [`SPAN`] sequence numbers a look, so
//! a look's work is bounded whatever came in). It records what it needs of each case
//! (`alert_cases`), reads the counts the cases' regions and phones need in one query per
//! township and class and one per look for phones, lets the domain decide
//! ([`alerts::hotspots`], [`alerts::repeat_reporter`]), and raises each alert in a transaction
//! of its own that claims it, stores it and appends its event to the crossing case's chain. Two
//! replicas may look at the same cases; the claim lets one of them raise each alert. The cursor
//! is moved with a compare-and-set once a look is done, so a look that fails is done again.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;

use super::{LiveDirectory, events::Wake, paging, time::TimeSource};
use crate::{
    domain::{
        Caller, DomainError, DomainResult,
        alerts::{self, Alert, AlertKind, AlertRules, Draft, Seen},
        case::Source,
        directory::{Directory, Tier, center_code},
        event::AlertDetails,
        scope::Scope,
        workflow::{self, Actor, Command},
    },
    storage::{
        self, StorageError,
        alerts::{AlertFilter, Received},
    },
};

/// How often each replica looks at the cases received: an alert is raised within about this
/// long of the case that crosses the threshold (the promise is 10 s).
pub const ALERT_TICK: Duration = Duration::from_secs(2);
/// Event sequence numbers a look covers at most.
pub const SPAN: i64 = 2000;

/// What a look did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Looked {
    /// Cases looked at.
    pub cases: usize,
    /// Alerts this replica raised.
    pub raised: usize,
}

#[derive(Debug)]
pub struct Alerts {
    db: DatabaseConnection,
    directory: Arc<LiveDirectory>,
    time: Arc<dyn TimeSource>,
    rules: AlertRules,
    wake: Wake,
    /// One look at a time in this process.
    running: tokio::sync::Mutex<()>,
}

impl Alerts {
    pub fn new(
        db: DatabaseConnection,
        directory: Arc<LiveDirectory>,
        time: Arc<dyn TimeSource>,
        rules: AlertRules,
        wake: Wake,
    ) -> Alerts {
        Alerts {
            db,
            directory,
            time,
            rules,
            wake,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// The directory snapshot alerts are shown with.
    pub fn directory(&self) -> Arc<Directory> {
        self.directory.snapshot()
    }

    /// Waits for a look under way to finish: what shutdown does before letting go of the
    /// database.
    pub async fn idle(&self) {
        drop(self.running.lock().await);
    }

    /// Looks at every case received since the last look, span after span until caught up.
    /// Nothing while alerts are turned off (`[alerts] enabled = false`): the cursor stays
    /// where it was, and a case looked at after its window has passed raises nothing.
    pub async fn run_due(&self) -> Result<Looked, StorageError> {
        if !self.rules.enabled {
            return Ok(Looked::default());
        }
        let _one_at_a_time = self.running.lock().await;
        let mut total = Looked::default();
        loop {
            let (looked, more) = self.look_once().await?;
            total.cases += looked.cases;
            total.raised += looked.raised;
            if !more {
                if total.raised > 0 {
                    tracing::info!(alerts = total.raised, cases = total.cases, "alerts raised");
                }
                return Ok(total);
            }
        }
    }

    /// One look at no more than [`SPAN`] sequence numbers; true when more wait.
    async fn look_once(&self) -> Result<(Looked, bool), StorageError> {
        let now = self.time.now();
        let cursor = match storage::alerts::cursor(&self.db).await? {
            Some(c) => c,
            None => {
                storage::alerts::start_cursor(&self.db, now - self.rules.longest_window()).await?
            }
        };
        let last = storage::cases::last_event_seq(&self.db).await?;
        if last <= cursor {
            return Ok((Looked::default(), false));
        }
        let upto = last.min(cursor.saturating_add(SPAN));
        let received = storage::alerts::received_between(&self.db, cursor, upto).await?;
        let directory = self.directory.snapshot();
        let seen: Vec<Seen> = received.iter().map(|r| seen_of(r, &directory)).collect();
        storage::alerts::observe(&self.db, &seen).await?;
        let raised = self.decide(&seen, &directory, now).await?;
        // Another replica that looked at the same span moved it already: nothing is lost.
        storage::alerts::advance_cursor(&self.db, cursor, upto).await?;
        if raised > 0 {
            self.wake.events_committed();
            metrics::counter!("gridcase_alerts_raised_total").increment(raised as u64);
        }
        Ok((
            Looked {
                cases: seen.len(),
                raised,
            },
            upto < last,
        ))
    }

    /// Reads what the cases' counts need, has the domain decide case by case (in the order
    /// they were received), and raises what it decides.
    async fn decide(
        &self,
        seen: &[Seen],
        directory: &Directory,
        now: DateTime<Utc>,
    ) -> Result<usize, StorageError> {
        let Some(earliest) = seen.iter().map(|s| s.received_at).min() else {
            return Ok(0);
        };
        let latest = seen.iter().map(|s| s.received_at).max().unwrap_or(earliest);
        // One read per township and class, over every window its cases need.
        let mut groups: BTreeMap<(String, String), Vec<Seen>> = BTreeMap::new();
        for s in seen {
            if let Some(p) = &s.township
                && !groups.contains_key(&(p.clone(), s.class_code.clone()))
            {
                let rows = storage::alerts::in_township(
                    &self.db,
                    p,
                    &s.class_code,
                    earliest - self.rules.longest_hotspot_window(),
                    latest,
                )
                .await?;
                groups.insert((p.clone(), s.class_code.clone()), rows);
            }
        }
        // One read for every phone of the look.
        let keys: BTreeSet<String> = seen.iter().filter_map(|s| s.phone_key.clone()).collect();
        let keys: Vec<String> = keys.into_iter().collect();
        let mut phones: BTreeMap<String, Vec<Seen>> = BTreeMap::new();
        if !keys.is_empty() {
            for c in storage::alerts::with_phones(
                &self.db,
                &keys,
                earliest - self.rules.repeat_reporter.window,
                latest,
            )
            .await?
            {
                if let Some(k) = c.phone_key.clone() {
                    phones.entry(k).or_default().push(c);
                }
            }
        }
        // And one for the claims of every class and phone concerned.
        let mut subjects: BTreeSet<String> = keys.into_iter().collect();
        subjects.extend(seen.iter().map(|s| s.class_code.clone()));
        let subjects: Vec<String> = subjects.into_iter().collect();
        let mut claims = storage::alerts::claims(&self.db, &subjects, earliest).await?;
        let mut raised = 0;
        let empty = Vec::new();
        for s in seen {
            let nearby = s
                .township
                .as_ref()
                .and_then(|p| groups.get(&(p.clone(), s.class_code.clone())))
                .unwrap_or(&empty);
            let same_phone = s
                .phone_key
                .as_ref()
                .and_then(|k| phones.get(k))
                .unwrap_or(&empty);
            let mut drafts = alerts::hotspots(s, nearby, &claims, &self.rules, now);
            drafts.extend(alerts::repeat_reporter(
                s,
                same_phone,
                &claims,
                &self.rules,
                now,
            ));
            for d in drafts {
                if self.raise(&d, directory, now).await? {
                    raised += 1;
                }
                // Raised here or by another replica: either way its window is taken.
                let claim = d.claim();
                claims.retain(|c| {
                    !(c.kind == claim.kind
                        && c.region_code == claim.region_code
                        && c.subject == claim.subject)
                });
                claims.push(claim);
            }
        }
        Ok(raised)
    }

    /// Raises one alert in a transaction of its own: the claim, the case's lock, the alert's
    /// row and its event. False when the claim is taken (another replica raised it).
    async fn raise(
        &self,
        draft: &Draft,
        directory: &Directory,
        now: DateTime<Utc>,
    ) -> Result<bool, StorageError> {
        // UUIDv7: alerts raised at the same moment list in the order they were raised.
        let id = uuid::Uuid::now_v7().to_string();
        let raise = storage::alerts::begin_raise(&self.db).await?;
        if !raise.claim(&draft.claim(), draft.at, &id).await? {
            return Ok(false);
        }
        let Some(case) = raise.case(&draft.case_id).await? else {
            return Err(StorageError::corrupt(format!(
                "alert on case {} that is not stored",
                draft.case_id
            )));
        };
        let region = directory.region(&draft.region_code);
        let tier = draft.tier.or(region.map(|r| r.tier)).unwrap_or(case.tier);
        let mut chain: [Option<String>; 5] = Default::default();
        for r in directory.chain(&draft.region_code) {
            if let Some(i) = Tier::ALL.iter().position(|t| *t == r.tier) {
                chain[i] = Some(r.code.clone());
            }
        }
        if chain.iter().all(Option::is_none) {
            // A region the directory no longer knows: file it under the case's own chain down
            // to the alert's tier.
            for (i, t) in Tier::ALL.iter().enumerate() {
                if *t <= tier {
                    chain[i] = case.chain[i].clone();
                }
            }
        }
        let (class_code, phone) = match draft.kind {
            AlertKind::Hotspot => (Some(draft.subject.clone()), None),
            AlertKind::RepeatReporter => (None, Some(draft.subject.clone())),
        };
        let class_name = class_code.as_deref().and_then(|c| class_name(directory, c));
        let center = center_code(&draft.region_code);
        let (case_ids, case_codes): (Vec<String>, Vec<String>) =
            draft.cases.iter().cloned().unzip();
        let details = AlertDetails {
            alert_id: id.clone(),
            region_code: draft.region_code.clone(),
            tier,
            center: center.clone(),
            class_code: class_code.clone(),
            class_name: class_name.clone(),
            phone_masked: phone.as_deref().map(alerts::mask_phone),
            case_ids: case_ids.clone(),
            case_codes: case_codes.clone(),
            from: draft.from,
            until: draft.until,
        };
        let command = Command::RaiseAlert {
            kind: draft.kind,
            details: Box::new(details),
        };
        // The supervisor's own commands are never refused; one that is marks a bug, and the
        // transaction is dropped (the claim with it: tried again at the next look).
        let (after, events) = workflow::apply(&case, Actor::Supervisor, directory, command, now)
            .map_err(|e| StorageError::corrupt(format!("alert refused: {e}")))?;
        let alert = Alert {
            id,
            kind: draft.kind,
            region_code: draft.region_code.clone(),
            tier,
            chain,
            center,
            class_code,
            class_name,
            phone,
            case_ids,
            case_codes,
            case_id: draft.case_id.clone(),
            raised_at: now,
            from: draft.from,
            until: draft.until,
        };
        raise.store(&alert, after, events).await?;
        raise.commit().await?;
        Ok(true)
    }

    /// `ListAlerts`: the alerts within the caller's scope (a dispatcher's or supervisor's
    /// region subtree), narrowed to `region_code` and `kind` when given, newest first.
    pub async fn list(
        &self,
        caller: &Caller,
        kind: Option<AlertKind>,
        region_code: &str,
        page_size: usize,
        page_token: &str,
    ) -> DomainResult<(Vec<Alert>, String)> {
        let directory = self.directory.snapshot();
        let scope = Scope::of(caller, &directory)?;
        if !matches!(scope, Scope::Region { .. }) {
            return Err(DomainError::PermissionDenied(
                "alerts are for the supervisors and dispatchers of a region".into(),
            ));
        }
        let region = if region_code.is_empty() {
            None
        } else {
            let r = directory.region(region_code).ok_or_else(|| {
                DomainError::invalid("region_code", format!("unknown region {region_code:?}"))
            })?;
            Some((r.tier, r.code.clone()))
        };
        let after = paging::cursor(page_token)?;
        let filter = AlertFilter {
            scope,
            kind,
            region,
        };
        let size = page_size.max(1);
        let mut rows = storage::alerts::list(&self.db, &filter, after, size as u64 + 1).await?;
        for a in &mut rows {
            a.class_name = a
                .class_code
                .as_deref()
                .and_then(|c| class_name(&directory, c));
        }
        let next = if rows.len() > size {
            rows.truncate(size);
            rows.last()
                .map(|a| paging::token_at(a.raised_at, &a.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok((rows, next))
    }
}

/// A class's name, from any category of it.
fn class_name(directory: &Directory, class_code: &str) -> Option<String> {
    directory
        .categories()
        .find(|c| c.class_code == class_code)
        .map(|c| c.class_name.clone())
}

/// What the watcher knows of a case: its category's class, its township and community, and a
/// citizen's phone key (a grid member's handset report has none: reporting is their job).
fn seen_of(r: &Received, directory: &Directory) -> Seen {
    let class_code = directory
        .category(&r.category_code)
        .map(|c| c.class_code.clone())
        // A category since removed: its code's first part names its class.
        .unwrap_or_else(|| {
            r.category_code
                .split('.')
                .next()
                .unwrap_or(&r.category_code)
                .to_owned()
        });
    Seen {
        case_id: r.case_id.clone(),
        case_code: r.case_code.clone(),
        received_at: r.received_at,
        seq: r.seq,
        class_code,
        township: r.township.clone(),
        community: r.community.clone(),
        region_code: r.region_code.clone(),
        phone_key: match r.source {
            Source::Handset => None,
            _ => r.phone.as_deref().and_then(alerts::phone_key),
        },
    }
}

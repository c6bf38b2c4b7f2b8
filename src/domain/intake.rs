//! Intake (受理): a validated, located report or ticket becomes a registered case with its
//! first events and clocks ([`register`]); a batch of such drafts is sorted into the cases to
//! create, the retries of stored ones, and the conflicts ([`Plan`]). Both are decisions, made
//! here; storage reads what a plan needs and writes what it decided.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};

use super::{
    Caller, DomainError, DomainResult,
    case::{self, Case, CaseStatus, Position, Source},
    directory::{Category, Directory, Region, Severity, Tier},
    duplicates::nearest_duplicate,
    event::{Details, EventKind, GENESIS, NewEvent},
    routing::{self, Routed},
    rules::Rules,
    sla::{self, Clock},
};

/// Where a report landed.
#[derive(Debug, Clone)]
pub enum Place {
    /// In a grid: located (and maybe snapped, by this many metres) or named by its QR code.
    Grid {
        grid: Region,
        position: Option<Position>,
        snapped: Option<f64>,
    },
    /// No grid: the triage queue of the named region, else the lowest active region covering
    /// the position, else the root.
    Triage {
        region: Option<Region>,
        position: Option<Position>,
    },
}

/// A report or ticket as intake has checked it.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    /// The new case's id (a UUIDv7: ids sort by time).
    pub id: String,
    pub reporter: &'a Caller,
    pub source: Source,
    pub category: &'a Category,
    pub urgency: Option<Severity>,
    pub description: String,
    pub place: Place,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub captured_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub attachment_ids: Vec<String>,
    pub client_report_id: Option<String>,
    /// A gateway's ticket number.
    pub external_id: Option<String>,
    /// sha256 of the request: what a retry must repeat exactly.
    pub request_hash: String,
}

/// A case ready to be stored but for its code, its possible-duplicate flag and its events'
/// sequence numbers, which the writer gives it with the rest of its batch.
#[derive(Debug, Clone)]
pub struct Draft {
    pub case: Case,
    pub events: Vec<NewEvent>,
    /// The clocks registration starts (id 0).
    pub clocks: Vec<Clock>,
    /// The district (or, for cases outside every district, the root region) whose code the
    /// case code starts with, and the day (Asia/Shanghai) it was received.
    pub code_prefix: String,
    pub day: NaiveDate,
    /// The version of the rules (routing overrides, SLA policy, calendar) it was registered
    /// under: a batch that finds newer rules stored does not create it ([`Outcome::RulesMoved`]).
    pub rules_version: i64,
}

/// The day (China Standard Time, UTC+8 all year) a moment falls on: what case codes carry.
pub fn shanghai_day(at: DateTime<Utc>) -> NaiveDate {
    (at + chrono::Duration::hours(8)).date_naive()
}

/// Routes the report (DESIGN.md "Routing", with the regions' overrides) and registers it: the
/// case as it will be stored, its `submitted` and `registered` events, and the clocks they
/// start by `rules`.
pub fn register(directory: &Directory, rules: &Rules, r: Report<'_>) -> DomainResult<Draft> {
    let (routed, grid, position, snapped) = match &r.place {
        Place::Grid {
            grid,
            position,
            snapped,
        } => {
            let mut routed =
                routing::route(directory, &grid.code, r.category).ok_or_else(|| {
                    DomainError::internal(anyhow::anyhow!("grid {} cannot be routed", grid.code))
                })?;
            // Regions may override the default routing per category.
            let chain = directory.chain(&grid.code);
            if let Some(unit) = rules
                .routing_override(
                    chain.iter().rev().map(|r| r.code.as_str()),
                    &r.category.code,
                )
                .and_then(|u| directory.active_unit(u))
                && let Some(region) = directory.region(&unit.region_code)
            {
                routed = Routed {
                    tier: region.tier,
                    region_code: region.code.clone(),
                    unit,
                };
            }
            (routed, Some(grid), *position, *snapped)
        }
        Place::Triage { region, position } => {
            let region = region
                .clone()
                .or_else(|| position.and_then(|p| directory.lowest_covering(p.lon, p.lat).cloned()))
                .or_else(|| {
                    directory
                        .roots()
                        .first()
                        .and_then(|c| directory.region(c))
                        .cloned()
                })
                .ok_or_else(|| {
                    DomainError::FailedPrecondition(
                        "the directory is empty: import one before taking reports".into(),
                    )
                })?;
            let routed = routing::triage(directory, &region).ok_or_else(|| {
                DomainError::internal(anyhow::anyhow!("region {} has no center", region.code))
            })?;
            (routed, None, *position, None)
        }
    };
    let place_code = grid.map_or(routed.region_code.as_str(), |g| g.code.as_str());
    let mut chain: [Option<String>; 5] = Default::default();
    for region in directory.chain(place_code) {
        if let Some(i) = Tier::ALL.iter().position(|t| *t == region.tier) {
            chain[i] = Some(region.code.clone());
        }
    }
    let code_prefix = chain[1]
        .clone()
        .or_else(|| chain[0].clone())
        .unwrap_or_else(|| routed.region_code.clone());
    let Routed {
        unit,
        tier,
        region_code,
    } = routed;
    let case = Case {
        id: r.id,
        code: String::new(),
        status: CaseStatus::Registered,
        source: r.source,
        category_code: r.category.code.clone(),
        severity: case::severity(r.category, r.urgency),
        description: r.description,
        chain,
        region_code: region_code.clone(),
        tier,
        unit_code: unit.code.clone(),
        position,
        snapped: snapped.is_some(),
        snap_distance_m: snapped.unwrap_or(0.0),
        address: r.address,
        reporter_sub: r.reporter.sub.clone(),
        reporter_phone: r.phone,
        reporter_name: r.name,
        captured_at: r.captured_at,
        received_at: r.received_at,
        updated_at: r.received_at,
        version: 1,
        cycle: 1,
        reopen_count: 0,
        escalation_level: 0,
        red_card: false,
        merged_into: None,
        // Set with the rest of the batch, which sees stored cases and the batch's own.
        possible_duplicate_of: None,
        resolution_text: None,
        external_source: r.external_id.as_ref().map(|_| r.source.as_str().to_owned()),
        external_id: r.external_id,
        client_report_id: r.client_report_id.clone(),
        request_hash: r.request_hash,
        attachment_ids: r.attachment_ids,
        last_event_hash: GENESIS.to_owned(),
        assisting: Vec::new(),
        resolved_at: None,
        evaluation: None,
        awaiting_since: None,
        dispatched_at: None,
        request: None,
    };
    let reason = match grid {
        Some(g) => format!("grid {}; lead unit {} at {} tier", g.code, unit.code, tier),
        None => format!("no grid holds this position: triage at the center of {region_code}"),
    };
    let by = r.reporter;
    let events = vec![
        NewEvent::new(EventKind::Submitted, &by.sub, by.role, r.received_at)
            .transition(None, CaseStatus::Submitted)
            .details(Details::Submitted {
                source: r.source,
                client_report_id: r.client_report_id,
                external_id: case.external_id.clone(),
            }),
        NewEvent::new(EventKind::Registered, &by.sub, by.role, r.received_at)
            .transition(Some(CaseStatus::Submitted), CaseStatus::Registered)
            .reason(reason)
            .details(Details::Registered {
                unit_code: unit.code.clone(),
                tier,
                region_code,
                grid_code: grid.map(|g| g.code.clone()),
                snap_distance_m: snapped,
            }),
    ];
    let mut events = events;
    super::event::address(&mut events, &case, &case);
    let ops = sla::plan(&case, &events);
    let clocks = sla::clock_changes(&case, &[], &ops, &rules.policy, &rules.calendar).started;
    Ok(Draft {
        day: shanghai_day(r.received_at),
        case,
        events,
        clocks,
        code_prefix,
        rules_version: rules.version,
    })
}

/// What became of one draft.
#[derive(Debug, Clone)]
pub enum Outcome {
    Created(Case),
    /// A retry: the case made by the first try with the same key and content.
    Existing(Case),
    /// The same key was used before with different content.
    Conflict(String),
    /// Not stored: the rules changed after the draft was registered (the stored version is
    /// this). Register it again under the new rules and store that: a rules change is in force
    /// for every report whose batch is stored after the change committed, on every replica.
    RulesMoved(i64),
}

/// An idempotency key: a handset's client report id per reporter, or a ticket per gateway.
/// Tickets are keyed per gateway: two gateways of one source number their tickets
/// independently, and neither ever meets the other's case (DESIGN.md "Integrations").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Report {
        reporter: String,
        client_report_id: String,
    },
    Ticket {
        gateway: String,
        source: String,
        external_id: String,
    },
}

impl Key {
    /// The key a case holds, if any.
    pub fn of(c: &Case) -> Option<Key> {
        if let Some(id) = &c.client_report_id {
            return Some(Key::Report {
                reporter: c.reporter_sub.clone(),
                client_report_id: id.clone(),
            });
        }
        match (&c.external_source, &c.external_id) {
            (Some(source), Some(id)) => Some(Key::Ticket {
                gateway: c.reporter_sub.clone(),
                source: source.clone(),
                external_id: id.clone(),
            }),
            _ => None,
        }
    }

    /// The key's parts, in the order storage matches them.
    pub fn parts(&self) -> Vec<&str> {
        match self {
            Key::Report {
                reporter,
                client_report_id,
            } => vec![reporter, client_report_id],
            Key::Ticket {
                gateway,
                source,
                external_id,
            } => vec![gateway, source, external_id],
        }
    }
}

/// An open case near a new one: a possible duplicate.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: String,
    pub category_code: String,
    pub lon: f64,
    pub lat: f64,
}

/// What the database holds that bears on a batch: the stored cases holding any of its keys,
/// and the open cases near its positions.
#[derive(Debug, Default)]
pub struct Found {
    pub stored: HashMap<Key, Case>,
    pub candidates: Vec<Candidate>,
    /// The rules version stored when the batch was read; `None` when it was not read.
    pub rules_version: Option<i64>,
}

/// A batch's drafts sorted into the ones to create and the ones already answered.
#[derive(Debug)]
pub struct Plan {
    outcomes: Vec<Option<Outcome>>,
    /// Indices of the drafts to create, in batch order.
    pub new: Vec<usize>,
    /// The draft that creates each key of the batch.
    first_in_batch: HashMap<Key, usize>,
}

impl Plan {
    /// Answers retries of stored cases; within the batch, the first draft of a key is the one
    /// created and later ones are its retries; flags each draft to create with the nearest
    /// open case of its item within 100 m and 72 h, stored or earlier in the batch (a hint on
    /// the case, for whoever dispatches it).
    ///
    /// A draft to create that was registered under older rules than `found` read is not
    /// created: it is answered [`Outcome::RulesMoved`], to be registered again.
    pub fn of(drafts: &mut [Draft], found: Found) -> Plan {
        let Found {
            stored,
            candidates,
            rules_version,
        } = found;
        let mut outcomes: Vec<Option<Outcome>> = vec![None; drafts.len()];
        let mut first_in_batch: HashMap<Key, usize> = HashMap::new();
        let mut new: Vec<usize> = Vec::new();
        for (i, d) in drafts.iter().enumerate() {
            let moved = rules_version.filter(|&v| v > d.rules_version);
            let Some(key) = Key::of(&d.case) else {
                match moved {
                    Some(v) => outcomes[i] = Some(Outcome::RulesMoved(v)),
                    None => new.push(i),
                }
                continue;
            };
            if let Some(existing) = stored.get(&key) {
                outcomes[i] = Some(retry_of(existing.clone(), &d.case));
            } else if let Some(v) = moved {
                outcomes[i] = Some(Outcome::RulesMoved(v));
            } else if let std::collections::hash_map::Entry::Vacant(slot) =
                first_in_batch.entry(key)
            {
                slot.insert(i);
                new.push(i);
            }
        }
        flag_duplicates(drafts, &new, candidates);
        Plan {
            outcomes,
            new,
            first_in_batch,
        }
    }

    /// How many events the drafts to create append.
    pub fn event_count(&self, drafts: &[Draft]) -> usize {
        self.new.iter().map(|&i| drafts[i].events.len()).sum()
    }

    /// Records that draft `i` is created as `case`.
    pub fn created(&mut self, i: usize, case: Case) {
        self.outcomes[i] = Some(Outcome::Created(case));
    }

    /// The outcomes, once the batch is stored: later drafts of a key created in this batch
    /// are answered as retries of the first.
    pub fn finish(mut self, drafts: &[Draft]) -> Vec<Outcome> {
        for (i, d) in drafts.iter().enumerate() {
            if self.outcomes[i].is_none()
                && let Some(first) = Key::of(&d.case).and_then(|k| self.first_in_batch.get(&k))
                && let Some(Outcome::Created(c)) = &self.outcomes[*first]
            {
                self.outcomes[i] = Some(retry_of(c.clone(), &d.case));
            }
        }
        self.outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Conflict("not stored".into())))
            .collect()
    }
}

/// A draft whose key a stored case holds: a retry if it repeats the request exactly, else a
/// conflict naming the case the key belongs to (the caller's own: keys are per reporter).
pub fn retry_of(existing: Case, attempt: &Case) -> Outcome {
    if existing.request_hash == attempt.request_hash {
        Outcome::Existing(existing)
    } else {
        let key = attempt
            .client_report_id
            .as_deref()
            .or(attempt.external_id.as_deref())
            .unwrap_or_default();
        Outcome::Conflict(format!(
            "{key} was already used for case {} with different content",
            existing.code
        ))
    }
}

fn flag_duplicates(drafts: &mut [Draft], new: &[usize], mut candidates: Vec<Candidate>) {
    for &i in new {
        let d = &mut drafts[i];
        let Some(p) = d.case.position else { continue };
        d.case.possible_duplicate_of = nearest_duplicate(
            &p,
            candidates
                .iter()
                .filter(|c| c.category_code == d.case.category_code)
                .map(|c| (c.id.as_str(), c.lon, c.lat)),
        );
        // Later drafts of the batch see this one.
        candidates.push(Candidate {
            id: d.case.id.clone(),
            category_code: d.case.category_code.clone(),
            lon: p.lon,
            lat: p.lat,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::{
            Role,
            fixtures::{self, *},
            sla::ClockKind,
        },
        geo::CoordSystem,
    };

    fn report<'a>(caller: &'a Caller, category: &'a Category, id: &str, lat: f64) -> Report<'a> {
        let position = Position {
            reported_lat: lat,
            reported_lon: 119.05,
            coord_system: CoordSystem::Wgs84,
            accuracy_m: 0.0,
            lat,
            lon: 119.05,
        };
        let directory = fixtures::directory();
        let grid = directory
            .locate(119.05, lat)
            .expect("in grid 1")
            .grid
            .clone();
        Report {
            id: id.into(),
            reporter: caller,
            source: Source::Handset,
            category,
            urgency: None,
            description: "邻里纠纷".into(),
            place: Place::Grid {
                grid,
                position: Some(position),
                snapped: None,
            },
            address: None,
            phone: None,
            name: None,
            captured_at: None,
            received_at: t0(),
            attachment_ids: vec![],
            client_report_id: Some(format!("client-{id}")),
            external_id: None,
            request_hash: format!("hash-{id}"),
        }
    }

    fn draft(id: &str, lat: f64) -> Draft {
        let directory = fixtures::directory();
        let category = directory.category("dispute.neighbor").unwrap().clone();
        let by = caller(REPORTER, Role::GridMember);
        register(
            &directory,
            &Rules::build(Default::default(), &Default::default()),
            report(&by, &category, id, lat),
        )
        .expect("registers")
    }

    #[test]
    fn a_report_is_registered_routed_and_its_clocks_started() {
        let d = draft("c1", 35.1);
        assert_eq!(d.case.status, CaseStatus::Registered);
        assert_eq!(d.case.chain[4].as_deref(), Some(GRID1));
        // dispute.neighbor: justice at community tier; none there, one at the township.
        assert_eq!(d.case.unit_code, JUSTICE);
        assert_eq!(d.case.tier, Tier::Township);
        assert_eq!(d.case.region_code, TOWNSHIP);
        assert_eq!(d.code_prefix, DISTRICT);
        let kinds: Vec<EventKind> = d.events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::Submitted, EventKind::Registered]);
        // The register clock, done at once, and the dispatch clock, running.
        let clocks: Vec<(ClockKind, bool)> = d
            .clocks
            .iter()
            .map(|c| (c.kind, c.stopped_at.is_some()))
            .collect();
        assert_eq!(
            clocks,
            [(ClockKind::Register, true), (ClockKind::Dispatch, false)]
        );
    }

    #[test]
    fn a_batch_creates_new_drafts_answers_retries_and_refuses_conflicts() {
        let stored = draft("c1", 35.1).case;
        let mut retry = draft("c1-again", 35.1);
        retry.case.client_report_id = stored.client_report_id.clone();
        retry.case.request_hash = stored.request_hash.clone();
        let mut conflict = draft("c1-changed", 35.1);
        conflict.case.client_report_id = stored.client_report_id.clone();
        let fresh = draft("c2", 35.15);
        let mut twice = draft("c2-again", 35.15);
        twice.case.client_report_id = fresh.case.client_report_id.clone();
        twice.case.request_hash = fresh.case.request_hash.clone();
        let mut drafts = vec![retry, conflict, fresh, twice];
        let mut found = Found::default();
        found
            .stored
            .insert(Key::of(&stored).unwrap(), stored.clone());
        let mut plan = Plan::of(&mut drafts, found);
        assert_eq!(plan.new, [2], "only the fresh draft is created");
        plan.created(2, drafts[2].case.clone());
        let outcomes = plan.finish(&drafts);
        assert!(matches!(&outcomes[0], Outcome::Existing(c) if c.id == stored.id));
        assert!(
            matches!(&outcomes[1], Outcome::Conflict(m) if m.contains(&stored.code)),
            "{:?}",
            outcomes[1]
        );
        assert!(matches!(&outcomes[2], Outcome::Created(c) if c.id == "c2"));
        assert!(
            matches!(&outcomes[3], Outcome::Existing(c) if c.id == "c2"),
            "a repeat within the batch is a retry of its first: {:?}",
            outcomes[3]
        );
    }

    #[test]
    fn tickets_are_keyed_per_gateway() {
        let mut a = draft("t1", 35.1).case;
        a.client_report_id = None;
        a.external_source = Some("hotline_12345".into());
        a.external_id = Some("T-1".into());
        a.reporter_sub = "gw-a".into();
        let mut b = a.clone();
        b.reporter_sub = "gw-b".into();
        assert_ne!(Key::of(&a), Key::of(&b));
        assert_eq!(
            Key::of(&a).unwrap().parts(),
            ["gw-a", "hotline_12345", "T-1"]
        );
    }

    #[test]
    fn possible_duplicates_are_the_nearest_open_case_of_the_item_stored_or_in_the_batch() {
        let metres = 6_371_008.8 * std::f64::consts::PI / 180.0;
        let mut drafts = vec![
            draft("near-stored", 35.1 + 50.0 / metres),
            draft("far", 35.1 + 500.0 / metres),
            draft("near-far", 35.1 + 530.0 / metres),
        ];
        let found = Found {
            stored: HashMap::new(),
            candidates: vec![
                Candidate {
                    id: "stored".into(),
                    category_code: "dispute.neighbor".into(),
                    lon: 119.05,
                    lat: 35.1,
                },
                Candidate {
                    id: "other-item".into(),
                    category_code: "city.litter".into(),
                    lon: 119.05,
                    lat: 35.1 + 500.0 / metres,
                },
            ],
            rules_version: None,
        };
        Plan::of(&mut drafts, found);
        let flags: Vec<Option<&str>> = drafts
            .iter()
            .map(|d| d.case.possible_duplicate_of.as_deref())
            .collect();
        assert_eq!(flags, [Some("stored"), None, Some("far")]);
    }

    #[test]
    fn drafts_registered_under_older_rules_are_not_created_but_retries_are_answered() {
        let stored = draft("c1", 35.1).case;
        let mut retry = draft("c1-again", 35.1);
        retry.case.client_report_id = stored.client_report_id.clone();
        retry.case.request_hash = stored.request_hash.clone();
        let mut current = draft("c2", 35.15);
        current.rules_version = 7;
        let old = draft("c3", 35.1);
        let mut keyless = draft("c4", 35.15);
        keyless.case.client_report_id = None;
        let mut drafts = vec![retry, current, old, keyless];
        let mut found = Found {
            rules_version: Some(7),
            ..Found::default()
        };
        found
            .stored
            .insert(Key::of(&stored).unwrap(), stored.clone());
        let mut plan = Plan::of(&mut drafts, found);
        assert_eq!(plan.new, [1], "only the draft registered under version 7");
        plan.created(1, drafts[1].case.clone());
        let outcomes = plan.finish(&drafts);
        assert!(matches!(&outcomes[0], Outcome::Existing(c) if c.id == stored.id));
        assert!(matches!(&outcomes[1], Outcome::Created(c) if c.id == "c2"));
        assert!(
            matches!(outcomes[2], Outcome::RulesMoved(7)),
            "{:?}",
            outcomes[2]
        );
        assert!(
            matches!(outcomes[3], Outcome::RulesMoved(7)),
            "{:?}",
            outcomes[3]
        );
    }
}

//! Which cases a caller may see (DESIGN.md "Access"): scopes come from the directory's member
//! records, never from the token.

use super::{
    Caller, DomainError, DomainResult, Role,
    case::Case,
    directory::{Directory, Tier},
};

/// The cases a caller reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A grid member: cases in their grids, and their own reports wherever they are.
    Grids {
        grids: Vec<String>,
        reporter: String,
    },
    /// Unit staff: cases their unit leads or assists.
    Unit(String),
    /// Dispatchers and supervisors: cases in their region's subtree.
    Region { code: String, tier: Tier },
    /// A gateway: the cases it brought in.
    Reporter(String),
    /// Every case: an admin following the event stream.
    All,
}

/// What a follower of the event stream needs to know of an event's case to decide whether it
/// sees the event: where the case is, who reported it, and which units it reached at that event
/// ([`super::event::Audience::units`]).
#[derive(Debug, Clone, Copy)]
pub struct EventPlace<'a> {
    pub chain: &'a [Option<String>; 5],
    pub reporter_sub: &'a str,
    pub units: &'a [String],
    /// For an alert (`hotspot`, `repeat_reporter`): the tier of the region it is about.
    pub alert_tier: Option<Tier>,
}

impl EventPlace<'_> {
    fn at(&self, tier: Tier) -> Option<&str> {
        let i = Tier::ALL.iter().position(|t| *t == tier)?;
        self.chain[i].as_deref()
    }
}

impl Scope {
    /// The caller's scope, from their member record.
    pub fn of(caller: &Caller, directory: &Directory) -> DomainResult<Scope> {
        let member = || {
            directory
                .member(&caller.sub)
                .filter(|m| m.role == caller.role)
                .ok_or_else(|| {
                    DomainError::PermissionDenied(format!(
                        "{} has no {} member record",
                        caller.sub, caller.role
                    ))
                })
        };
        match caller.role {
            Role::GridMember => Ok(Scope::Grids {
                grids: member()?.grid_codes.clone(),
                reporter: caller.sub.clone(),
            }),
            Role::UnitStaff => member()?
                .unit_code
                .clone()
                .map(Scope::Unit)
                .ok_or_else(|| DomainError::PermissionDenied("no unit on record".into())),
            Role::Dispatcher | Role::Supervisor => {
                let code = member()?
                    .region_code
                    .clone()
                    .ok_or_else(|| DomainError::PermissionDenied("no region on record".into()))?;
                let tier = directory.region(&code).map(|r| r.tier).ok_or_else(|| {
                    DomainError::PermissionDenied(format!("region {code} is not in the directory"))
                })?;
                Ok(Scope::Region { code, tier })
            }
            Role::Gateway => Ok(Scope::Reporter(caller.sub.clone())),
            Role::Admin => Err(DomainError::PermissionDenied(
                "admins manage the directory and configuration, not cases".into(),
            )),
        }
    }

    /// The events a caller follows: those of the cases it may see, by the same rule as
    /// [`Scope::of`]; an admin follows every case's.
    pub fn of_follower(caller: &Caller, directory: &Directory) -> DomainResult<Scope> {
        match caller.role {
            Role::Admin => Ok(Scope::All),
            _ => Scope::of(caller, directory),
        }
    }

    /// Whether the scope reaches an event of a case at `place` (what [`Scope::reaches`] says
    /// of the case as it was at that event).
    ///
    /// An alert is seen only by the centers of its region and above (dispatchers and
    /// supervisors whose region holds the alert's region), by the staff of the center it is
    /// addressed to (its audience's one unit), and by an admin; never by the case's reporter,
    /// gateway, grid members or units, nor by the centers of the regions below it.
    pub fn sees(&self, place: &EventPlace<'_>) -> bool {
        if let Some(alert) = place.alert_tier {
            return match self {
                Scope::Region { code, tier } => {
                    *tier <= alert && place.at(*tier) == Some(code.as_str())
                }
                Scope::Unit(unit) => place.units.iter().any(|u| u == unit),
                Scope::All => true,
                Scope::Grids { .. } | Scope::Reporter(_) => false,
            };
        }
        match self {
            Scope::Grids { grids, reporter } => {
                place.reporter_sub == reporter
                    || place
                        .at(Tier::Grid)
                        .is_some_and(|g| grids.iter().any(|x| x == g))
            }
            Scope::Unit(unit) => place.units.iter().any(|u| u == unit),
            Scope::Region { code, tier } => place.at(*tier) == Some(code.as_str()),
            Scope::Reporter(sub) => place.reporter_sub == sub,
            Scope::All => true,
        }
    }

    /// Whether the scope sees `event` of `case` (a case it reaches): every event but an alert
    /// not meant for it ([`Scope::sees`]).
    pub fn sees_event_of(&self, case: &Case, event: &super::event::NewEvent) -> bool {
        let Some(alert_tier) = super::event::alert_tier(event) else {
            return true;
        };
        let units = event
            .audience
            .as_ref()
            .map(|a| a.units.as_slice())
            .unwrap_or_default();
        self.sees(&EventPlace {
            chain: &case.chain,
            reporter_sub: &case.reporter_sub,
            units,
            alert_tier: Some(alert_tier),
        })
    }

    /// Whether the scope reaches `case`.
    pub fn reaches(&self, case: &Case) -> bool {
        match self {
            Scope::Grids { grids, reporter } => {
                case.reporter_sub == *reporter
                    || case
                        .grid_code()
                        .is_some_and(|g| grids.iter().any(|x| x == g))
            }
            Scope::Unit(unit) => {
                case.unit_code == *unit || case.assisting.iter().any(|a| a.unit_code == *unit)
            }
            Scope::Region { code, tier } => case.region_at(*tier) == Some(code.as_str()),
            Scope::Reporter(sub) => case.reporter_sub == *sub,
            Scope::All => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        case::{Assist, CaseStatus},
        fixtures::{self, *},
    };

    fn scope_of(sub: &str, role: Role) -> Scope {
        Scope::of(&caller(sub, role), &fixtures::directory()).expect("a scope")
    }

    #[test]
    fn each_scope_reaches_exactly_its_cases() {
        let case = fixtures::case(CaseStatus::Dispatched); // grid 1, led by the justice office
        let mut elsewhere = case.clone();
        elsewhere.chain = [Some(CITY.into()), Some("371103".into()), None, None, None];
        elsewhere.unit_code = "371103.center".into();
        elsewhere.reporter_sub = "someone-else".into();
        let mut assisted = elsewhere.clone();
        assisted.assisting = vec![Assist {
            unit_code: POLICE.into(),
            summoned_at: t0(),
            checked_in_at: None,
        }];
        let mut reported_elsewhere = elsewhere.clone();
        reported_elsewhere.reporter_sub = REPORTER.into();
        let mut of_gateway = elsewhere.clone();
        of_gateway.reporter_sub = GATEWAY.into();
        let cases = [
            ("grid 1", &case),
            ("another district", &elsewhere),
            ("assisted by the police", &assisted),
            ("reported elsewhere by gm-1", &reported_elsewhere),
            ("brought in by the gateway", &of_gateway),
        ];
        let table: [(&str, Scope, [bool; 5]); 7] = [
            (
                "the reporter: their grid and their own reports",
                scope_of(REPORTER, Role::GridMember),
                [true, false, false, true, false],
            ),
            (
                "another grid's member",
                scope_of(OTHER_GRID_MEMBER, Role::GridMember),
                [false, false, false, false, false],
            ),
            (
                "the lead unit",
                scope_of(JUSTICE_STAFF, Role::UnitStaff),
                [true, false, false, false, false],
            ),
            (
                "an assisting unit",
                scope_of(POLICE_STAFF, Role::UnitStaff),
                [false, false, true, false, false],
            ),
            (
                "the district's dispatcher",
                scope_of(DISPATCHER, Role::Dispatcher),
                [true, false, false, false, false],
            ),
            (
                "the city's supervisor",
                scope_of(SUPERVISOR, Role::Supervisor),
                [true, true, true, true, true],
            ),
            (
                "a gateway: what it brought in",
                scope_of(GATEWAY, Role::Gateway),
                [false, false, false, false, true],
            ),
        ];
        for (who, scope, reaches) in table {
            for ((what, case), want) in cases.iter().zip(reaches) {
                assert_eq!(scope.reaches(case), want, "{who} / {what}");
            }
        }
    }

    #[test]
    fn a_person_without_a_record_of_the_role_has_no_scope_and_admins_have_none_of_cases() {
        let directory = fixtures::directory();
        for c in [
            caller(REPORTER, Role::Dispatcher),
            caller("nobody", Role::GridMember),
            caller("ops-admin", Role::Admin),
        ] {
            assert!(
                matches!(
                    Scope::of(&c, &directory),
                    Err(DomainError::PermissionDenied(_))
                ),
                "{c:?}"
            );
        }
    }
}

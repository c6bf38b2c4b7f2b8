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
        }
    }
}

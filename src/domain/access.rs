//! Who is calling: roles and the caller a verified token names.

use std::{fmt, str::FromStr};

/// The roles of DESIGN.md "Access", as the token's `role` claim spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    GridMember,
    UnitStaff,
    Dispatcher,
    Supervisor,
    Gateway,
    Admin,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::GridMember,
        Role::UnitStaff,
        Role::Dispatcher,
        Role::Supervisor,
        Role::Gateway,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::GridMember => "grid_member",
            Role::UnitStaff => "unit_staff",
            Role::Dispatcher => "dispatcher",
            Role::Supervisor => "supervisor",
            Role::Gateway => "gateway",
            Role::Admin => "admin",
        }
    }

    /// Service identities need no member record; people do (DESIGN.md "Access").
    pub fn needs_member_record(self) -> bool {
        !matches!(self, Role::Gateway | Role::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown role {0:?}; expected one of grid_member, unit_staff, dispatcher, supervisor, gateway, admin"
)]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// The authenticated caller of one request: the token's subject and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub sub: String,
    pub role: Role,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_parses_back_from_its_claim_spelling() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
    }

    #[test]
    fn an_unknown_role_is_refused() {
        assert!("root".parse::<Role>().is_err());
        assert!("Admin".parse::<Role>().is_err());
    }
}

//! Conversions between the contract's messages and the domain's types.

use tonic::Status;

use crate::{
    domain::{
        Role,
        directory::{Category, Member, Region, Severity, Tier, Unit},
    },
    geo::CoordSystem,
    proto::v1 as pb,
};

impl From<Tier> for pb::Tier {
    fn from(t: Tier) -> Self {
        match t {
            Tier::City => pb::Tier::City,
            Tier::District => pb::Tier::District,
            Tier::Township => pb::Tier::Township,
            Tier::Community => pb::Tier::Community,
            Tier::Grid => pb::Tier::Grid,
        }
    }
}

impl From<Severity> for pb::Severity {
    fn from(s: Severity) -> Self {
        match s {
            Severity::General => pb::Severity::General,
            Severity::Complex => pb::Severity::Complex,
            Severity::Urgent => pb::Severity::Urgent,
        }
    }
}

impl From<Role> for pb::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::GridMember => pb::Role::GridMember,
            Role::UnitStaff => pb::Role::UnitStaff,
            Role::Dispatcher => pb::Role::Dispatcher,
            Role::Supervisor => pb::Role::Supervisor,
            Role::Gateway => pb::Role::Gateway,
            Role::Admin => pb::Role::Admin,
        }
    }
}

impl From<&Region> for pb::Region {
    fn from(r: &Region) -> Self {
        pb::Region {
            code: r.code.clone(),
            name: r.name.clone(),
            tier: pb::Tier::from(r.tier).into(),
            parent_code: r.parent_code.clone().unwrap_or_default(),
        }
    }
}

impl From<&Unit> for pb::Unit {
    fn from(u: &Unit) -> Self {
        pb::Unit {
            code: u.code.clone(),
            name: u.name.clone(),
            kind: u.kind.clone(),
            region_code: u.region_code.clone(),
        }
    }
}

impl From<&Category> for pb::Category {
    fn from(c: &Category) -> Self {
        pb::Category {
            code: c.code.clone(),
            name: c.name.clone(),
            class_code: c.class_code.clone(),
            class_name: c.class_name.clone(),
            unit_kind: c.unit_kind.clone(),
            handling_tier: pb::Tier::from(c.handling_tier).into(),
            severity: pb::Severity::from(c.severity).into(),
        }
    }
}

/// 138****1234: the first three and last four digits kept.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

impl From<&Member> for pb::Member {
    fn from(m: &Member) -> Self {
        pb::Member {
            sub: m.sub.clone(),
            name: m.name.clone(),
            role: pb::Role::from(m.role).into(),
            phone: m.phone.clone(),
            grid_codes: m.grid_codes.clone(),
            unit_code: m.unit_code.clone().unwrap_or_default(),
            region_code: m.region_code.clone().unwrap_or_default(),
        }
    }
}

/// The request's coordinate system; an unknown enum value is INVALID_ARGUMENT.
pub fn coord_system(value: i32) -> Result<CoordSystem, Status> {
    match pb::CoordSystem::try_from(value) {
        Ok(pb::CoordSystem::Unspecified | pb::CoordSystem::Wgs84) => Ok(CoordSystem::Wgs84),
        Ok(pb::CoordSystem::Gcj02) => Ok(CoordSystem::Gcj02),
        Ok(pb::CoordSystem::Bd09) => Ok(CoordSystem::Bd09),
        Err(_) => Err(Status::invalid_argument(format!(
            "coord_system: {value} is not a known coordinate system (WGS84, GCJ02, BD09)"
        ))),
    }
}

/// Page size: 0 means 50; more than 500 is clamped.
pub fn page_size(page: Option<&pb::PageRequest>) -> Result<usize, Status> {
    let size = page.map_or(0, |p| p.page_size);
    match size {
        0 => Ok(50),
        1..=500 => Ok(usize::try_from(size).unwrap_or(50)),
        n if n > 500 => Ok(500),
        n => Err(Status::invalid_argument(format!(
            "page.page_size: {n} is negative"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_masked_in_the_middle() {
        assert_eq!(mask_phone("13812341234"), "138****1234");
        assert_eq!(mask_phone("12345"), "*****");
    }
}

//! Routing (DESIGN.md "Routing"): the lead unit, tier and holding region of a new case.

use super::directory::{Category, Directory, Region, Tier, Unit, center_code};

/// Where routing sends a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// The lead unit (主办).
    pub unit: Unit,
    pub tier: Tier,
    /// The region whose center holds and dispatches the case.
    pub region_code: String,
}

/// DESIGN.md "Routing": from grid `grid_code`, for `category`.
pub fn route(directory: &Directory, grid_code: &str, category: &Category) -> Option<Routed> {
    if category.handling_tier == Tier::Grid {
        return Some(Routed {
            unit: directory.active_unit(&center_code(grid_code))?,
            tier: Tier::Grid,
            region_code: grid_code.to_owned(),
        });
    }
    let start = directory.ancestor_at(grid_code, category.handling_tier)?;
    let chain = directory.chain(&start.code);
    for region in chain.iter().rev() {
        if let Some(unit) = directory.unit_of_kind_at(&region.code, &category.unit_kind) {
            return Some(Routed {
                unit,
                tier: region.tier,
                region_code: region.code.clone(),
            });
        }
    }
    Some(Routed {
        unit: directory.unit(&center_code(&start.code))?,
        tier: category.handling_tier,
        region_code: start.code.clone(),
    })
}

/// A case that no grid holds waits in the triage queue of `region`'s center.
pub fn triage(directory: &Directory, region: &Region) -> Option<Routed> {
    Some(Routed {
        unit: directory.unit(&center_code(&region.code))?,
        tier: region.tier,
        region_code: region.code.clone(),
    })
}

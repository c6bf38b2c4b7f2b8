//! `DirectoryService`: locating, the region tree, and the admin's directory and configuration.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{
    caller,
    convert::{coord_system, mask_phone, page_size, urgency},
};
use crate::{
    domain::{
        DomainError,
        bundle::Counts,
        calendar::{CalendarDay, DayKind, SlaDuration},
        directory::Tier,
        rules::RoutingOverride,
        sla::{ClockKind, PolicyRule, RuleOrigin},
    },
    proto::v1::{self as pb, directory_service_server::DirectoryService},
    service::{
        LiveDirectory,
        rules::{CalendarFormat, LiveRules},
        time::TimeSource,
    },
};

#[derive(Debug, Clone)]
pub struct DirectoryApi {
    directory: Arc<LiveDirectory>,
    rules: Arc<LiveRules>,
    time: Arc<dyn TimeSource>,
}

impl DirectoryApi {
    pub fn new(
        directory: Arc<LiveDirectory>,
        rules: Arc<LiveRules>,
        time: Arc<dyn TimeSource>,
    ) -> Self {
        DirectoryApi {
            directory,
            rules,
            time,
        }
    }
}

fn day_for(d: &CalendarDay) -> pb::CalendarDay {
    pb::CalendarDay {
        date: d.date.format("%Y-%m-%d").to_string(),
        kind: match d.kind {
            DayKind::Working => pb::DayKind::Working,
            DayKind::Off => pb::DayKind::Off,
        }
        .into(),
        name: d.name.clone(),
        r#override: d.is_override,
    }
}

fn policy_for(rule: &PolicyRule, origin: RuleOrigin) -> pb::SlaPolicy {
    pb::SlaPolicy {
        clock: pb::ClockKind::from(rule.clock).into(),
        category_code: rule.category_code.clone().unwrap_or_default(),
        tier: rule
            .tier
            .map_or(pb::Tier::Unspecified, pb::Tier::from)
            .into(),
        severity: rule
            .severity
            .map_or(pb::Severity::Unspecified, pb::Severity::from)
            .into(),
        duration: rule.duration.to_string(),
        builtin: origin == RuleOrigin::Default,
    }
}

fn routing_override_for(o: RoutingOverride) -> pb::RoutingOverride {
    pb::RoutingOverride {
        region_code: o.region_code,
        category_code: o.category_code,
        unit_code: o.unit_code,
    }
}

fn clock_kind(value: i32) -> Result<ClockKind, Status> {
    match pb::ClockKind::try_from(value) {
        Ok(pb::ClockKind::Register) => Ok(ClockKind::Register),
        Ok(pb::ClockKind::Dispatch) => Ok(ClockKind::Dispatch),
        Ok(pb::ClockKind::OnSite) => Ok(ClockKind::OnSite),
        Ok(pb::ClockKind::WhistleCheckIn) => Ok(ClockKind::WhistleCheckIn),
        Ok(pb::ClockKind::Resolve) => Ok(ClockKind::Resolve),
        Ok(pb::ClockKind::Feedback) => Ok(ClockKind::Feedback),
        _ => Err(DomainError::invalid("clock", format!("{value} is not a clock")).into()),
    }
}

/// A request's tier; unspecified is `None`, an unknown value INVALID_ARGUMENT.
fn optional_tier(value: i32) -> Result<Option<Tier>, Status> {
    Ok(match pb::Tier::try_from(value) {
        Ok(pb::Tier::Unspecified) => None,
        Ok(pb::Tier::City) => Some(Tier::City),
        Ok(pb::Tier::District) => Some(Tier::District),
        Ok(pb::Tier::Township) => Some(Tier::Township),
        Ok(pb::Tier::Community) => Some(Tier::Community),
        Ok(pb::Tier::Grid) => Some(Tier::Grid),
        Err(_) => {
            return Err(DomainError::invalid("tier", format!("{value} is not a tier")).into());
        }
    })
}

fn counts(c: Counts) -> pb::ImportCounts {
    let n = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
    pb::ImportCounts {
        created: n(c.created),
        updated: n(c.updated),
        unchanged: n(c.unchanged),
        retired: n(c.retired),
    }
}

/// Pages over codes in ascending order; the token is the last code of the previous page.
fn page<'a, T>(
    items: impl Iterator<Item = (&'a str, T)>,
    token: &str,
    size: usize,
) -> (Vec<T>, String) {
    let mut out = Vec::with_capacity(size);
    let mut last = String::new();
    let mut more = false;
    for (code, item) in items.filter(|(c, _)| token.is_empty() || *c > token) {
        if out.len() == size {
            more = true;
            break;
        }
        last = code.to_owned();
        out.push(item);
    }
    (out, if more { last } else { String::new() })
}

#[tonic::async_trait]
impl DirectoryService for DirectoryApi {
    async fn locate(
        &self,
        request: Request<pb::LocateRequest>,
    ) -> Result<Response<pb::LocateResponse>, Status> {
        let r = request.into_inner();
        let system = coord_system(r.coord_system)?;
        let response =
            self.directory
                .locate_with(r.lat, r.lon, system, |located, directory, position| {
                    super::locate::locate_response(
                        located,
                        &directory.chain(&located.grid.code),
                        position,
                    )
                })?;
        Ok(Response::new(response))
    }

    async fn get_region(
        &self,
        request: Request<pb::GetRegionRequest>,
    ) -> Result<Response<pb::GetRegionResponse>, Status> {
        let r = request.into_inner();
        let directory = self.directory.snapshot();
        let entry = directory
            .entry(&r.code)
            .ok_or_else(|| DomainError::NotFound(format!("no region {:?}", r.code)))?;
        let geometry_geojson = if r.include_geometry {
            let geometry = geojson::Geometry::from(entry.shape.polygons());
            serde_json::to_string(&geometry).map_err(DomainError::internal)?
        } else {
            String::new()
        };
        Ok(Response::new(pb::GetRegionResponse {
            region: Some((&entry.region).into()),
            chain: directory
                .chain(&r.code)
                .into_iter()
                .map(Into::into)
                .collect(),
            geometry_geojson,
            child_count: i32::try_from(entry.children.len()).unwrap_or(i32::MAX),
        }))
    }

    async fn list_regions(
        &self,
        request: Request<pb::ListRegionsRequest>,
    ) -> Result<Response<pb::ListRegionsResponse>, Status> {
        let r = request.into_inner();
        let size = page_size(r.page.as_ref())?;
        let token = r.page.map(|p| p.page_token).unwrap_or_default();
        let directory = self.directory.snapshot();
        let codes: &[String] = if r.parent_code.is_empty() {
            directory.roots()
        } else {
            &directory
                .entry(&r.parent_code)
                .ok_or_else(|| DomainError::NotFound(format!("no region {:?}", r.parent_code)))?
                .children
        };
        let items = codes.iter().filter_map(|c| {
            directory
                .region(c)
                .filter(|region| r.include_retired || !region.retired)
                .map(|region| (c.as_str(), pb::Region::from(region)))
        });
        let (regions, next_page_token) = page(items, &token, size);
        Ok(Response::new(pb::ListRegionsResponse {
            regions,
            next_page_token,
        }))
    }

    async fn import_directory(
        &self,
        request: Request<pb::ImportDirectoryRequest>,
    ) -> Result<Response<pb::ImportDirectoryResponse>, Status> {
        let r = request.into_inner();
        let under = Some(r.retire_unlisted_under).filter(|c| !c.is_empty());
        let report = self.directory.import(r.bundle, under).await?;
        Ok(Response::new(pb::ImportDirectoryResponse {
            regions: Some(counts(report.regions)),
            units: Some(counts(report.units)),
            members: Some(counts(report.members)),
            categories: Some(counts(report.categories)),
            directory_version: report.version,
        }))
    }

    async fn list_units(
        &self,
        request: Request<pb::ListUnitsRequest>,
    ) -> Result<Response<pb::ListUnitsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let size = page_size(r.page.as_ref())?;
        let token = r.page.map(|p| p.page_token).unwrap_or_default();
        let units =
            self.directory
                .units_for(&caller, &r.region_code, &r.kind, r.include_retired)?;
        let items = units.iter().map(|u| (u.code.as_str(), pb::Unit::from(u)));
        let (units, next_page_token) = page(items, &token, size);
        Ok(Response::new(pb::ListUnitsResponse {
            units,
            next_page_token,
        }))
    }

    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let size = page_size(r.page.as_ref())?;
        let token = r.page.map(|p| p.page_token).unwrap_or_default();
        let members =
            self.directory
                .members_for(&caller, &r.region_code, &r.unit_code, r.include_retired)?;
        let items = members.iter().map(|(m, mask)| {
            let mut view = pb::Member::from(m);
            if *mask {
                view.phone = mask_phone(&view.phone);
            }
            (m.sub.as_str(), view)
        });
        let (members, next_page_token) = page(items, &token, size);
        Ok(Response::new(pb::ListMembersResponse {
            members,
            next_page_token,
        }))
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let caller = caller(&request)?;
        let (member, home, scope) = self.directory.who(&caller)?;
        Ok(Response::new(pb::WhoAmIResponse {
            sub: caller.sub.clone(),
            role: pb::Role::from(caller.role).into(),
            member: member.as_ref().map(pb::Member::from),
            home: home.as_ref().map(pb::Region::from),
            scope,
        }))
    }

    async fn get_region_shapes(
        &self,
        request: Request<pb::GetRegionShapesRequest>,
    ) -> Result<Response<pb::GetRegionShapesResponse>, Status> {
        let r = request.into_inner();
        let tier = optional_tier(r.tier)?;
        let shapes = self
            .directory
            .shapes(&r.region_code, tier, r.zoom, r.include_retired)?;
        Ok(Response::new(pb::GetRegionShapesResponse {
            geojson: shapes.geojson,
            count: i32::try_from(shapes.count).unwrap_or(i32::MAX),
            directory_version: shapes.version,
        }))
    }

    async fn import_calendar(
        &self,
        request: Request<pb::ImportCalendarRequest>,
    ) -> Result<Response<pb::ImportCalendarResponse>, Status> {
        let r = request.into_inner();
        let format = match pb::CalendarFormat::try_from(r.format) {
            Ok(pb::CalendarFormat::HolidayCnJson) => CalendarFormat::HolidayCnJson,
            Ok(pb::CalendarFormat::Ics) => CalendarFormat::Ics,
            _ => {
                return Err(DomainError::invalid(
                    "format",
                    "name the format: CALENDAR_FORMAT_HOLIDAY_CN_JSON or CALENDAR_FORMAT_ICS",
                )
                .into());
            }
        };
        let (years, days) = self
            .rules
            .import_calendar(format, &r.data, self.time.now())
            .await?;
        Ok(Response::new(pb::ImportCalendarResponse {
            years,
            days: i32::try_from(days).unwrap_or(i32::MAX),
        }))
    }

    async fn set_calendar_day(
        &self,
        request: Request<pb::SetCalendarDayRequest>,
    ) -> Result<Response<pb::SetCalendarDayResponse>, Status> {
        let day = request
            .into_inner()
            .day
            .ok_or_else(|| DomainError::invalid("day", "required"))?;
        let kind = match pb::DayKind::try_from(day.kind) {
            Ok(pb::DayKind::Working) => Some(DayKind::Working),
            Ok(pb::DayKind::Off) => Some(DayKind::Off),
            // Unspecified removes the override: the year's schedule decides again.
            Ok(pb::DayKind::Unspecified) => None,
            Err(_) => {
                return Err(DomainError::invalid(
                    "day.kind",
                    format!("{} is not a day kind", day.kind),
                )
                .into());
            }
        };
        let stored = self.rules.set_day(&day.date, kind, &day.name).await?;
        Ok(Response::new(pb::SetCalendarDayResponse {
            day: Some(day_for(&stored)),
        }))
    }

    async fn get_calendar(
        &self,
        request: Request<pb::GetCalendarRequest>,
    ) -> Result<Response<pb::GetCalendarResponse>, Status> {
        let year = request.into_inner().year;
        if !(2000..=2100).contains(&year) {
            return Err(
                DomainError::invalid("year", format!("{year} is outside 2000–2100")).into(),
            );
        }
        let rules = self.rules.snapshot();
        Ok(Response::new(pb::GetCalendarResponse {
            year,
            has_data: rules.calendar.has_data(year),
            days: rules
                .calendar
                .exceptions(year)
                .iter()
                .map(day_for)
                .collect(),
        }))
    }

    async fn set_sla_policy(
        &self,
        request: Request<pb::SetSlaPolicyRequest>,
    ) -> Result<Response<pb::SetSlaPolicyResponse>, Status> {
        let r = request.into_inner();
        let clock = clock_kind(r.clock)?;
        let directory = self.directory.snapshot();
        let category_code = if r.category_code.is_empty() {
            None
        } else if directory.category(&r.category_code).is_none() {
            return Err(DomainError::invalid(
                "category_code",
                format!("unknown category {:?}", r.category_code),
            )
            .into());
        } else {
            Some(r.category_code)
        };
        let tier = optional_tier(r.tier)?;
        let severity = urgency(r.severity).map_err(|_| {
            DomainError::invalid("severity", format!("{} is not a severity", r.severity))
        })?;
        let duration = r
            .duration
            .parse::<SlaDuration>()
            .map_err(|e| DomainError::invalid("duration", e))?;
        self.rules
            .set_policy(
                PolicyRule {
                    clock,
                    category_code,
                    tier,
                    severity,
                    duration,
                },
                self.time.now(),
            )
            .await?;
        Ok(Response::new(pb::SetSlaPolicyResponse {}))
    }

    async fn set_routing_override(
        &self,
        request: Request<pb::SetRoutingOverrideRequest>,
    ) -> Result<Response<pb::SetRoutingOverrideResponse>, Status> {
        let r = request.into_inner();
        let directory = self.directory.snapshot();
        self.rules
            .set_routing_override(
                &directory,
                &r.region_code,
                &r.category_code,
                &r.unit_code,
                self.time.now(),
            )
            .await?;
        Ok(Response::new(pb::SetRoutingOverrideResponse {}))
    }

    async fn list_sla_policies(
        &self,
        _request: Request<pb::ListSlaPoliciesRequest>,
    ) -> Result<Response<pb::ListSlaPoliciesResponse>, Status> {
        let rules = self.rules.snapshot();
        Ok(Response::new(pb::ListSlaPoliciesResponse {
            policies: rules
                .policy
                .rules_in_order()
                .into_iter()
                .map(|(rule, origin)| policy_for(rule, origin))
                .collect(),
            rules_version: rules.version,
        }))
    }

    async fn list_routing_overrides(
        &self,
        request: Request<pb::ListRoutingOverridesRequest>,
    ) -> Result<Response<pb::ListRoutingOverridesResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let rules = self.rules.snapshot();
        let overrides = self
            .directory
            .routing_overrides_for(&caller, &r.region_code, &rules)?;
        Ok(Response::new(pb::ListRoutingOverridesResponse {
            overrides: overrides.into_iter().map(routing_override_for).collect(),
            rules_version: rules.version,
        }))
    }

    async fn list_categories(
        &self,
        _request: Request<pb::ListCategoriesRequest>,
    ) -> Result<Response<pb::ListCategoriesResponse>, Status> {
        let directory = self.directory.snapshot();
        Ok(Response::new(pb::ListCategoriesResponse {
            categories: directory.categories().map(Into::into).collect(),
        }))
    }
}

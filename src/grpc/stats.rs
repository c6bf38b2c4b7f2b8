//! `StatsService`: a region subtree's or a unit's figures, live or for a period (month, quarter,
//! year).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{
    caller,
    convert::{mask_phone, page_size, time_of, timestamp},
    export::{self, ChunkStream},
};
use crate::{
    domain::{
        Caller, DomainError, Role,
        alerts::{Alert, AlertKind},
        directory::Directory,
        stats::{Figure, Stats},
    },
    proto::v1::{self as pb, get_stats_request::Scope, stats_service_server::StatsService},
    service::{
        alerts::Alerts,
        stats::{StatsService as Figures, StatsTarget},
    },
};

#[derive(Debug, Clone)]
pub struct StatsApi {
    stats: Arc<Figures>,
    alerts: Arc<Alerts>,
}

impl StatsApi {
    pub fn new(stats: Arc<Figures>, alerts: Arc<Alerts>) -> Self {
        StatsApi { stats, alerts }
    }
}

/// An alert as `viewer` may see it: a repeat reporter's phone whole only for the center
/// holding the latest case (its dispatchers, or its own staff), masked for everyone else, as a
/// case's phone is (`convert::case_for`).
fn alert_for(a: &Alert, viewer: &Caller, directory: &Directory) -> pb::Alert {
    let holding = directory
        .member(&viewer.sub)
        .is_some_and(|m| match viewer.role {
            Role::Dispatcher => m.region_code.as_deref() == Some(a.region_code.as_str()),
            Role::UnitStaff => m.unit_code.as_deref() == Some(a.center.as_str()),
            _ => false,
        });
    pb::Alert {
        id: a.id.clone(),
        kind: a.kind.as_str().to_owned(),
        region_code: a.region_code.clone(),
        region_name: directory
            .region(&a.region_code)
            .map(|r| r.name.clone())
            .unwrap_or_default(),
        tier: pb::Tier::from(a.tier).into(),
        center_unit_code: a.center.clone(),
        class_code: a.class_code.clone().unwrap_or_default(),
        class_name: a.class_name.clone().unwrap_or_default(),
        reporter_phone: a
            .phone
            .as_deref()
            .map(|p| if holding { p.to_owned() } else { mask_phone(p) })
            .unwrap_or_default(),
        count: i32::try_from(a.case_ids.len()).unwrap_or(i32::MAX),
        case_ids: a.case_ids.clone(),
        case_codes: a.case_codes.clone(),
        raised_at: Some(timestamp(a.raised_at)),
        window_from: Some(timestamp(a.from)),
        window_until: Some(timestamp(a.until)),
    }
}

fn stats_for(s: &Stats) -> pb::Stats {
    pb::Stats {
        received: s.received,
        resolved: s.resolved,
        resolution_rate: s.resolution_rate,
        on_time_rate: s.on_time_rate,
        overdue: s.overdue,
        mean_handling_working_hours: s.mean_handling_working_hours,
        evaluated: s.evaluated,
        satisfaction_rate: s.satisfaction_rate,
        local_resolution_rate: s.local_resolution_rate,
        escalations: s.escalations,
        returns: s.returns,
        reopens: s.reopens,
        evaluated_by_callback: s.evaluated_by_callback,
        callback_evaluation_rate: s.callback_evaluation_rate,
        extended: s.extended,
        resolved_on_time_by_extension: s.resolved_on_time_by_extension,
    }
}

/// The figure a ranking is by; unspecified is the on-time rate.
fn figure(value: i32) -> Result<Figure, Status> {
    match pb::RankFigure::try_from(value) {
        Ok(pb::RankFigure::Unspecified | pb::RankFigure::OnTimeRate) => Ok(Figure::OnTimeRate),
        Ok(pb::RankFigure::SatisfactionRate) => Ok(Figure::SatisfactionRate),
        Ok(pb::RankFigure::ResolutionRate) => Ok(Figure::ResolutionRate),
        Ok(pb::RankFigure::Overdue) => Ok(Figure::Overdue),
        Err(_) => {
            Err(DomainError::invalid("figure", format!("{value} is not a RankFigure")).into())
        }
    }
}

/// A ranking's period, which is required.
fn required_period(period: &str) -> Result<(), Status> {
    if period.is_empty() {
        return Err(DomainError::invalid(
            "period",
            "required: a month (2026-11), a quarter (2026-Q4) or a year (2026)",
        )
        .into());
    }
    Ok(())
}

fn target_of(region_code: String) -> StatsTarget {
    if region_code.is_empty() {
        StatsTarget::Own
    } else {
        StatsTarget::Region(region_code)
    }
}

#[tonic::async_trait]
impl StatsService for StatsApi {
    async fn get_stats(
        &self,
        request: Request<pb::GetStatsRequest>,
    ) -> Result<Response<pb::GetStatsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let target = match r.scope {
            Some(Scope::RegionCode(c)) if !c.is_empty() => StatsTarget::Region(c),
            Some(Scope::UnitCode(c)) if !c.is_empty() => StatsTarget::Unit(c),
            _ => StatsTarget::Own,
        };
        let from = time_of("from", r.from.as_ref())?;
        let to = time_of("to", r.to.as_ref())?;
        // `month` is the older name of a month period; errors name the field the caller used.
        let period = match (r.month.is_empty(), r.period.is_empty()) {
            (false, false) => {
                return Err(
                    DomainError::invalid("period", "give a period or a month, not both").into(),
                );
            }
            (false, true) => {
                crate::service::stats::month_bounds(&r.month)?;
                Some(r.month.as_str())
            }
            (true, false) => Some(r.period.as_str()),
            (true, true) => None,
        };
        let answer = match (period, from, to) {
            (Some(p), None, None) => self.stats.period(&caller, &target, p).await?,
            (None, Some(from), Some(to)) => self.stats.live(&caller, &target, from, to).await?,
            (Some(_), _, _) => {
                return Err(DomainError::invalid(
                    if r.month.is_empty() {
                        "period"
                    } else {
                        "month"
                    },
                    "give a period or from/to, not both",
                )
                .into());
            }
            (None, _, _) => {
                return Err(DomainError::invalid(
                    "from",
                    "give both from and to (a live range), or a period (2026-11, 2026-Q4, 2026)",
                )
                .into());
            }
        };
        Ok(Response::new(pb::GetStatsResponse {
            stats: Some(stats_for(&answer.stats)),
            snapshot: answer.snapshot,
            computed_at: Some(timestamp(answer.computed_at)),
        }))
    }

    async fn rank_units(
        &self,
        request: Request<pb::RankUnitsRequest>,
    ) -> Result<Response<pb::RankUnitsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let figure = figure(r.figure)?;
        required_period(&r.period)?;
        let target = target_of(r.region_code);
        let (ranked, computed_at) = self
            .stats
            .rank(&caller, &target, &r.period, figure, r.regions)
            .await?;
        Ok(Response::new(pb::RankUnitsResponse {
            entries: ranked
                .into_iter()
                .map(|e| pb::RankedEntry {
                    rank: i32::try_from(e.rank).unwrap_or(i32::MAX),
                    code: e.code,
                    name: e.name,
                    stats: Some(stats_for(&e.stats)),
                    targets: e
                        .targets
                        .into_iter()
                        .map(|t| pb::TargetCheck {
                            figure: t.figure.to_owned(),
                            target: t.target,
                            value: t.value,
                            met: t.met,
                        })
                        .collect(),
                })
                .collect(),
            computed_at: Some(timestamp(computed_at)),
        }))
    }

    /// `RankUnits`' entries as CSV, in rank order.
    async fn export_stats(
        &self,
        request: Request<pb::ExportStatsRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let figure = figure(r.figure)?;
        required_period(&r.period)?;
        let (ranked, _) = self
            .stats
            .rank(
                &caller,
                &target_of(r.region_code),
                &r.period,
                figure,
                r.regions,
            )
            .await?;
        Ok(Response::new(export::stream_stats(&r.period, &ranked)?))
    }

    async fn list_alerts(
        &self,
        request: Request<pb::ListAlertsRequest>,
    ) -> Result<Response<pb::ListAlertsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let kind = if r.kind.is_empty() {
            None
        } else {
            Some(
                r.kind
                    .parse::<AlertKind>()
                    .map_err(|e| DomainError::invalid("kind", e))?,
            )
        };
        let size = page_size(r.page.as_ref())?;
        let token = r.page.map(|p| p.page_token).unwrap_or_default();
        let (alerts, next_page_token) = self
            .alerts
            .list(&caller, kind, &r.region_code, size, &token)
            .await?;
        let directory = self.alerts.directory();
        Ok(Response::new(pb::ListAlertsResponse {
            alerts: alerts
                .iter()
                .map(|a| alert_for(a, &caller, &directory))
                .collect(),
            next_page_token,
        }))
    }
}

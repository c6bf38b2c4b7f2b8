//! `StatsService`: a region subtree's or a unit's figures, live or for a period (month, quarter,
//! year).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{
    caller,
    convert::{time_of, timestamp},
};
use crate::{
    domain::{
        DomainError,
        stats::{Figure, Stats},
    },
    proto::v1::{self as pb, get_stats_request::Scope, stats_service_server::StatsService},
    service::stats::{StatsService as Figures, StatsTarget},
};

#[derive(Debug, Clone)]
pub struct StatsApi {
    stats: Arc<Figures>,
}

impl StatsApi {
    pub fn new(stats: Arc<Figures>) -> Self {
        StatsApi { stats }
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
        let target = if r.region_code.is_empty() {
            StatsTarget::Own
        } else {
            StatsTarget::Region(r.region_code)
        };
        let figure = match pb::RankFigure::try_from(r.figure) {
            Ok(pb::RankFigure::Unspecified | pb::RankFigure::OnTimeRate) => Figure::OnTimeRate,
            Ok(pb::RankFigure::SatisfactionRate) => Figure::SatisfactionRate,
            Ok(pb::RankFigure::ResolutionRate) => Figure::ResolutionRate,
            Ok(pb::RankFigure::Overdue) => Figure::Overdue,
            Err(_) => {
                return Err(DomainError::invalid(
                    "figure",
                    format!("{} is not a RankFigure", r.figure),
                )
                .into());
            }
        };
        if r.period.is_empty() {
            return Err(DomainError::invalid(
                "period",
                "required: a month (2026-11), a quarter (2026-Q4) or a year (2026)",
            )
            .into());
        }
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
}

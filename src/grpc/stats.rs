//! `StatsService`: a region subtree's or a unit's figures, live or for a month.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{
    caller,
    convert::{time_of, timestamp},
};
use crate::{
    domain::{DomainError, stats::Stats},
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
        let answer = match (r.month.is_empty(), from, to) {
            (false, None, None) => self.stats.month(&caller, &target, &r.month).await?,
            (true, Some(from), Some(to)) => self.stats.live(&caller, &target, from, to).await?,
            (false, _, _) => {
                return Err(
                    DomainError::invalid("month", "give a month or from/to, not both").into(),
                );
            }
            (true, _, _) => {
                return Err(DomainError::invalid(
                    "from",
                    "give both from and to (a live range), or a month (YYYY-MM)",
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
}

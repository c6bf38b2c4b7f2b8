//! `CaseService`: reading cases within scope. The workflow RPCs (dispatch, accept, …) answer
//! UNIMPLEMENTED until the workflow lands.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{
    caller,
    convert::{case_for, event_for, page_size, time_of},
};
use crate::{
    domain::case::CaseStatus,
    proto::v1::{self as pb, case_service_server::CaseService},
    service::cases::{CaseQueries, ListRequest},
};

#[derive(Debug, Clone)]
pub struct CaseApi {
    cases: Arc<CaseQueries>,
}

impl CaseApi {
    pub fn new(cases: Arc<CaseQueries>) -> Self {
        CaseApi { cases }
    }
}

fn status(value: i32) -> Result<CaseStatus, Status> {
    Ok(match pb::CaseStatus::try_from(value) {
        Ok(pb::CaseStatus::Submitted) => CaseStatus::Submitted,
        Ok(pb::CaseStatus::Registered) => CaseStatus::Registered,
        Ok(pb::CaseStatus::Dispatched) => CaseStatus::Dispatched,
        Ok(pb::CaseStatus::Accepted) => CaseStatus::Accepted,
        Ok(pb::CaseStatus::InProgress) => CaseStatus::InProgress,
        Ok(pb::CaseStatus::Resolved) => CaseStatus::Resolved,
        Ok(pb::CaseStatus::Closed) => CaseStatus::Closed,
        Ok(pb::CaseStatus::Returned) => CaseStatus::Returned,
        Ok(pb::CaseStatus::Merged) => CaseStatus::Merged,
        Ok(pb::CaseStatus::Cancelled) => CaseStatus::Cancelled,
        _ => {
            return Err(Status::invalid_argument(format!(
                "statuses: {value} is not a case status"
            )));
        }
    })
}

#[tonic::async_trait]
impl CaseService for CaseApi {
    async fn get_case(
        &self,
        request: Request<pb::GetCaseRequest>,
    ) -> Result<Response<pb::GetCaseResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let (case, events) = self
            .cases
            .get(&caller, &r.case_id, r.include_events)
            .await?;
        let directory = self.cases.directory().snapshot();
        Ok(Response::new(pb::GetCaseResponse {
            events: events.iter().map(|e| event_for(e, &case.code)).collect(),
            case: Some(case_for(&case, &caller, &directory)),
        }))
    }

    async fn list_cases(
        &self,
        request: Request<pb::ListCasesRequest>,
    ) -> Result<Response<pb::ListCasesResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        if r.overdue_only {
            return Err(Status::unimplemented(
                "overdue_only: SLA clocks are not built yet",
            ));
        }
        let list = ListRequest {
            statuses: r
                .statuses
                .iter()
                .map(|s| status(*s))
                .collect::<Result<_, _>>()?,
            region_code: r.region_code,
            unit_code: r.unit_code,
            category_code: r.category_code,
            received_from: time_of("received_from", r.received_from.as_ref())?,
            received_to: time_of("received_to", r.received_to.as_ref())?,
            page_size: page_size(r.page.as_ref())?,
            page_token: r.page.map(|p| p.page_token).unwrap_or_default(),
        };
        let (cases, next_page_token) = self.cases.list(&caller, list).await?;
        let directory = self.cases.directory().snapshot();
        Ok(Response::new(pb::ListCasesResponse {
            cases: cases
                .iter()
                .map(|c| case_for(c, &caller, &directory))
                .collect(),
            next_page_token,
        }))
    }
}

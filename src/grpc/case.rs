//! `CaseService`: reading cases within scope and moving them through the lifecycle.
//! Assisting units summoned by `WhistleCase` check in with `AcceptCase`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{
    caller,
    convert::{case_for, clock_for, event_for_viewer, page_size, pin_for, time_of},
    export::{self, ChunkStream},
};
use crate::{
    domain::{
        Caller,
        calendar::SlaDuration,
        case::{Case, CaseStatus},
        sla::{self, SlaState},
        workflow::{Command, Satisfaction},
    },
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

    fn view(&self, case: &Case, caller: &Caller) -> Option<pb::Case> {
        Some(case_for(case, caller, &self.cases.directory().snapshot()))
    }

    async fn act(
        &self,
        caller: &Caller,
        case_id: &str,
        expected_version: i64,
        command: Command,
    ) -> Result<Option<pb::Case>, Status> {
        let case = self
            .cases
            .act(caller, case_id, expected_version, command)
            .await?;
        Ok(self.view(&case, caller))
    }
}

fn satisfaction(value: i32) -> Result<Satisfaction, Status> {
    match pb::Satisfaction::try_from(value) {
        Ok(pb::Satisfaction::Satisfied) => Ok(Satisfaction::Satisfied),
        Ok(pb::Satisfaction::BasicallySatisfied) => Ok(Satisfaction::BasicallySatisfied),
        Ok(pb::Satisfaction::Dissatisfied) => Ok(Satisfaction::Dissatisfied),
        _ => Err(Status::invalid_argument(
            "satisfaction: must be SATISFIED, BASICALLY_SATISFIED or DISSATISFIED",
        )),
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
        let clocks = self.cases.clocks(&case.id).await?;
        let mut pb_case = case_for(&case, &caller, &directory);
        pb_case.clocks = clocks.iter().map(clock_for).collect();
        let state = SlaState::of(
            case.red_card,
            case.escalation_level,
            sla::lateness(&clocks, self.cases.now()),
        );
        pb_case.sla_state = pb::SlaState::from(state).into();
        Ok(Response::new(pb::GetCaseResponse {
            events: events
                .iter()
                .map(|e| event_for_viewer(e, &case.code, &caller))
                .collect(),
            case: Some(pb_case),
        }))
    }

    async fn list_cases(
        &self,
        request: Request<pb::ListCasesRequest>,
    ) -> Result<Response<pb::ListCasesResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
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
            overdue_only: r.overdue_only,
            page_size: page_size(r.page.as_ref())?,
            page_token: r.page.map(|p| p.page_token).unwrap_or_default(),
        };
        let (cases, next_page_token) = self.cases.list(&caller, list).await?;
        let states = self.cases.sla_states(&cases).await?;
        let directory = self.cases.directory().snapshot();
        Ok(Response::new(pb::ListCasesResponse {
            cases: cases
                .iter()
                .map(|c| {
                    let mut view = case_for(c, &caller, &directory);
                    if let Some(state) = states.get(&c.id) {
                        view.sla_state = pb::SlaState::from(*state).into();
                    }
                    view
                })
                .collect(),
            next_page_token,
        }))
    }

    /// `ListCases`' query as CSV, streamed: the filters are checked before anything is sent.
    async fn export_cases(
        &self,
        request: Request<pb::ExportCasesRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let filters = ListRequest {
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
            overdue_only: r.overdue_only,
            ..ListRequest::default()
        };
        let export = self.cases.export(&caller, &filters)?;
        let stream = export::stream_cases(export, caller, self.cases.directory().clone())?;
        Ok(Response::new(stream))
    }

    async fn list_case_pins(
        &self,
        request: Request<pb::ListCasePinsRequest>,
    ) -> Result<Response<pb::ListCasePinsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let (pins, truncated) = self
            .cases
            .pins(&caller, &r.region_code, r.include_closed)
            .await?;
        Ok(Response::new(pb::ListCasePinsResponse {
            pins: pins.iter().map(pin_for).collect(),
            truncated,
        }))
    }

    async fn dispatch_case(
        &self,
        request: Request<pb::DispatchCaseRequest>,
    ) -> Result<Response<pb::DispatchCaseResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let command = Command::Dispatch {
            unit_code: (!r.unit_code.is_empty()).then_some(r.unit_code),
            reason: r.reason,
        };
        let case = self
            .act(&caller, &r.case_id, r.expected_version, command)
            .await?;
        Ok(Response::new(pb::DispatchCaseResponse { case }))
    }

    async fn accept_case(
        &self,
        request: Request<pb::AcceptCaseRequest>,
    ) -> Result<Response<pb::AcceptCaseResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let case = self
            .act(&caller, &r.case_id, r.expected_version, Command::Accept)
            .await?;
        Ok(Response::new(pb::AcceptCaseResponse { case }))
    }

    async fn await_reporter(
        &self,
        request: Request<pb::AwaitReporterRequest>,
    ) -> Result<Response<pb::AwaitReporterResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let case = self
            .cases
            .await_reporter(&caller, &r.case_id, r.expected_version, r.question)
            .await?;
        Ok(Response::new(pb::AwaitReporterResponse {
            case: self.view(&case, &caller),
        }))
    }

    async fn resume_case(
        &self,
        request: Request<pb::ResumeCaseRequest>,
    ) -> Result<Response<pb::ResumeCaseResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let command = Command::Resume { note: r.note };
        let case = self
            .act(&caller, &r.case_id, r.expected_version, command)
            .await?;
        Ok(Response::new(pb::ResumeCaseResponse { case }))
    }

    async fn return_case(
        &self,
        request: Request<pb::ReturnCaseRequest>,
    ) -> Result<Response<pb::ReturnCaseResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let case = self
            .cases
            .return_case(&caller, &r.case_id, r.expected_version, r.reason)
            .await?;
        Ok(Response::new(pb::ReturnCaseResponse {
            case: self.view(&case, &caller),
        }))
    }

    async fn request_extension(
        &self,
        request: Request<pb::RequestExtensionRequest>,
    ) -> Result<Response<pb::RequestExtensionResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let duration: SlaDuration = r
            .duration
            .parse()
            .map_err(|e: String| Status::invalid_argument(format!("duration: {e}")))?;
        let case = self
            .cases
            .request_extension(&caller, &r.case_id, r.expected_version, duration, r.reason)
            .await?;
        Ok(Response::new(pb::RequestExtensionResponse {
            case: self.view(&case, &caller),
        }))
    }

    async fn decide_extension(
        &self,
        request: Request<pb::DecideExtensionRequest>,
    ) -> Result<Response<pb::DecideExtensionResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let case = self
            .cases
            .decide_extension(&caller, &r.case_id, r.expected_version, r.approve, r.reason)
            .await?;
        Ok(Response::new(pb::DecideExtensionResponse {
            case: self.view(&case, &caller),
        }))
    }

    async fn decide_return(
        &self,
        request: Request<pb::DecideReturnRequest>,
    ) -> Result<Response<pb::DecideReturnResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let command = Command::DecideReturn {
            approve: r.approve,
            reason: r.reason,
        };
        let case = self
            .act(&caller, &r.case_id, r.expected_version, command)
            .await?;
        Ok(Response::new(pb::DecideReturnResponse { case }))
    }

    async fn update_progress(
        &self,
        request: Request<pb::UpdateProgressRequest>,
    ) -> Result<Response<pb::UpdateProgressResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let command = Command::Progress {
            note: r.note,
            attachment_ids: r.attachment_ids,
        };
        let case = self
            .act(&caller, &r.case_id, r.expected_version, command)
            .await?;
        Ok(Response::new(pb::UpdateProgressResponse { case }))
    }

    async fn resolve_case(
        &self,
        request: Request<pb::ResolveCaseRequest>,
    ) -> Result<Response<pb::ResolveCaseResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let command = Command::Resolve {
            result: r.result,
            attachment_ids: r.attachment_ids,
        };
        let case = self
            .act(&caller, &r.case_id, r.expected_version, command)
            .await?;
        Ok(Response::new(pb::ResolveCaseResponse { case }))
    }

    async fn record_feedback(
        &self,
        request: Request<pb::RecordFeedbackRequest>,
    ) -> Result<Response<pb::RecordFeedbackResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let command = Command::Feedback { note: r.note };
        let case = self
            .act(&caller, &r.case_id, r.expected_version, command)
            .await?;
        Ok(Response::new(pb::RecordFeedbackResponse { case }))
    }

    async fn evaluate_case(
        &self,
        request: Request<pb::EvaluateCaseRequest>,
    ) -> Result<Response<pb::EvaluateCaseResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let command = Command::Evaluate {
            satisfaction: satisfaction(r.satisfaction)?,
            comment: r.comment,
            by_callback: r.by_callback,
        };
        let case = self
            .act(&caller, &r.case_id, r.expected_version, command)
            .await?;
        Ok(Response::new(pb::EvaluateCaseResponse { case }))
    }

    async fn close_case(
        &self,
        request: Request<pb::CloseCaseRequest>,
    ) -> Result<Response<pb::CloseCaseResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let command = Command::Close { reason: r.reason };
        let case = self
            .act(&caller, &r.case_id, r.expected_version, command)
            .await?;
        Ok(Response::new(pb::CloseCaseResponse { case }))
    }

    async fn merge_case(
        &self,
        request: Request<pb::MergeCaseRequest>,
    ) -> Result<Response<pb::MergeCaseResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let case = self
            .cases
            .merge(
                &caller,
                &r.case_id,
                r.expected_version,
                &r.into_case_id,
                r.reason,
            )
            .await?;
        Ok(Response::new(pb::MergeCaseResponse {
            case: self.view(&case, &caller),
        }))
    }

    async fn cancel_case(
        &self,
        request: Request<pb::CancelCaseRequest>,
    ) -> Result<Response<pb::CancelCaseResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let command = Command::Cancel { reason: r.reason };
        let case = self
            .act(&caller, &r.case_id, r.expected_version, command)
            .await?;
        Ok(Response::new(pb::CancelCaseResponse { case }))
    }

    async fn escalate_case(
        &self,
        request: Request<pb::EscalateCaseRequest>,
    ) -> Result<Response<pb::EscalateCaseResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let command = Command::Escalate { reason: r.reason };
        let case = self
            .act(&caller, &r.case_id, r.expected_version, command)
            .await?;
        Ok(Response::new(pb::EscalateCaseResponse { case }))
    }

    async fn whistle_case(
        &self,
        request: Request<pb::WhistleCaseRequest>,
    ) -> Result<Response<pb::WhistleCaseResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let command = Command::Whistle {
            unit_codes: r.unit_codes,
            reason: r.reason,
        };
        let case = self
            .act(&caller, &r.case_id, r.expected_version, command)
            .await?;
        Ok(Response::new(pb::WhistleCaseResponse { case }))
    }
}

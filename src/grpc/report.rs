//! `ReportService`: handsets' reports, attachments, supplements and the reporter's own list.

use std::sync::Arc;

use futures_util::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::{
    caller,
    convert::{case_for, event_for, page_size, position, time_of, urgency},
};
use crate::{
    domain::DomainError,
    proto::v1::{
        self as pb, report_service_server::ReportService, upload_attachment_request::Part,
    },
    service::{
        attachments::{Attachments, Header},
        intake::{Intake, ReportInput},
    },
};

#[derive(Debug, Clone)]
pub struct ReportApi {
    intake: Arc<Intake>,
    attachments: Arc<Attachments>,
}

impl ReportApi {
    pub fn new(intake: Arc<Intake>, attachments: Arc<Attachments>) -> Self {
        ReportApi {
            intake,
            attachments,
        }
    }
}

#[tonic::async_trait]
impl ReportService for ReportApi {
    async fn submit_report(
        &self,
        request: Request<pb::SubmitReportRequest>,
    ) -> Result<Response<pb::SubmitReportResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let input = ReportInput {
            client_report_id: r.client_report_id,
            category_code: r.category_code,
            description: r.description,
            position: position(r.location.as_ref())?,
            grid_code: r.grid_code,
            captured_at: time_of("captured_at", r.captured_at.as_ref())?,
            attachment_ids: r.attachment_ids,
            urgency: urgency(r.urgency)?,
        };
        let (case, created) = self.intake.submit_report(&caller, input).await?;
        let directory = self.intake.directory().snapshot();
        Ok(Response::new(pb::SubmitReportResponse {
            case: Some(case_for(&case, &caller, &directory)),
            created,
        }))
    }

    async fn upload_attachment(
        &self,
        request: Request<Streaming<pb::UploadAttachmentRequest>>,
    ) -> Result<Response<pb::UploadAttachmentResponse>, Status> {
        let caller = caller(&request)?;
        let mut stream = request.into_inner();
        let header = match stream.next().await {
            Some(Ok(pb::UploadAttachmentRequest {
                part: Some(Part::Header(h)),
            })) => Header {
                content_type: h.content_type,
                size_bytes: h.size_bytes,
                file_name: h.file_name,
            },
            Some(Err(status)) => return Err(status),
            _ => {
                return Err(Status::invalid_argument(
                    "header: the first message must be the header",
                ));
            }
        };
        let chunks = stream.map(|m| match m {
            Ok(pb::UploadAttachmentRequest {
                part: Some(Part::Chunk(bytes)),
            }) => Ok(bytes),
            Ok(_) => Err(DomainError::invalid(
                "chunk",
                "only chunks may follow the header",
            )),
            // The client went away or broke the stream: nothing is kept.
            Err(status) => Err(DomainError::invalid("chunk", status.message().to_owned())),
        });
        let stored = self.attachments.upload(&caller, header, chunks).await?;
        Ok(Response::new(pb::UploadAttachmentResponse {
            attachment_id: stored.id,
            sha256: stored.sha256,
            size_bytes: stored.size_bytes,
            content_type: stored.content_type,
        }))
    }

    async fn list_my_reports(
        &self,
        request: Request<pb::ListMyReportsRequest>,
    ) -> Result<Response<pb::ListMyReportsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let size = page_size(r.page.as_ref())?;
        let token = r.page.map(|p| p.page_token).unwrap_or_default();
        let (cases, next_page_token) = self.intake.my_reports(&caller, size, &token).await?;
        let directory = self.intake.directory().snapshot();
        Ok(Response::new(pb::ListMyReportsResponse {
            cases: cases
                .iter()
                .map(|c| case_for(c, &caller, &directory))
                .collect(),
            next_page_token,
        }))
    }

    async fn add_supplement(
        &self,
        request: Request<pb::AddSupplementRequest>,
    ) -> Result<Response<pb::AddSupplementResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let (case, event) = self
            .intake
            .add_supplement(&caller, &r.case_id, &r.text, r.attachment_ids)
            .await?;
        let directory = self.intake.directory().snapshot();
        Ok(Response::new(pb::AddSupplementResponse {
            event: Some(event_for(&event, &case.code)),
            case: Some(case_for(&case, &caller, &directory)),
        }))
    }
}

//! `GatewayService`: tickets from the 12345 hotline, WeChat, SMS and walk-in windows.

use std::sync::Arc;

use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use super::{
    caller,
    convert::{case_for, event_for_viewer, position, time_of, urgency},
};
use crate::{
    domain::case::Source,
    proto::v1::{self as pb, gateway_service_server::GatewayService},
    service::{
        events::{EventHub, Follow},
        intake::{Intake, TicketInput},
    },
};

#[derive(Debug, Clone)]
pub struct GatewayApi {
    intake: Arc<Intake>,
    events: Arc<EventHub>,
}

impl GatewayApi {
    pub fn new(intake: Arc<Intake>, events: Arc<EventHub>) -> Self {
        GatewayApi { intake, events }
    }
}

fn source(value: i32) -> Result<Source, Status> {
    match pb::Source::try_from(value) {
        Ok(pb::Source::Hotline12345) => Ok(Source::Hotline12345),
        Ok(pb::Source::Wechat) => Ok(Source::Wechat),
        Ok(pb::Source::Sms) => Ok(Source::Sms),
        Ok(pb::Source::WalkIn) => Ok(Source::WalkIn),
        _ => Err(Status::invalid_argument(
            "source: must be SOURCE_HOTLINE_12345, SOURCE_WECHAT, SOURCE_SMS or SOURCE_WALK_IN",
        )),
    }
}

#[tonic::async_trait]
impl GatewayService for GatewayApi {
    async fn ingest_ticket(
        &self,
        request: Request<pb::IngestTicketRequest>,
    ) -> Result<Response<pb::IngestTicketResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let input = TicketInput {
            source: source(r.source)?,
            external_id: r.external_id,
            category_code: r.category_code,
            description: r.description,
            caller_phone: r.caller_phone,
            caller_name: r.caller_name,
            position: position(r.location.as_ref())?,
            address: r.address,
            region_code: r.region_code,
            received_at: time_of("received_at", r.received_at.as_ref())?,
            attachment_ids: r.attachment_ids,
            urgency: urgency(r.urgency)?,
        };
        let (case, created) = self.intake.ingest_ticket(&caller, input).await?;
        let directory = self.intake.directory().snapshot();
        Ok(Response::new(pb::IngestTicketResponse {
            case: Some(case_for(&case, &caller, &directory)),
            created,
        }))
    }

    /// The events of the cases the caller may see, in sequence order after `after_sequence`,
    /// then pushed as they commit ([`EventHub::follow`]).
    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let follow = Follow {
            after: r.after_sequence,
            kinds: r.kinds,
            region_code: r.region_code,
        };
        let feed = self.events.follow(&caller, follow)?;
        let stream = feed.map(move |item| {
            item.map(|e| event_for_viewer(&e.event, &e.case_code, &caller))
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

type EventStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::CaseEvent, Status>> + Send + 'static>,
>;

//! `GatewayService`: tickets from the 12345 hotline, WeChat, SMS and walk-in windows.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{
    caller,
    convert::{case_for, event_for_viewer, position, time_of, urgency},
};
use crate::{
    domain::case::Source,
    proto::v1::{self as pb, gateway_service_server::GatewayService},
    service::intake::{Intake, TicketInput},
    storage,
};

#[derive(Debug, Clone)]
pub struct GatewayApi {
    intake: Arc<Intake>,
}

impl GatewayApi {
    pub fn new(intake: Arc<Intake>) -> Self {
        GatewayApi { intake }
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

    /// The events of the gateway's own cases, in sequence order from `after_sequence`, then
    /// new ones as they commit (polled). Sequence numbers are assigned in commit order, so a
    /// gateway that resumes after the last one it saw misses nothing.
    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let caller = caller(&request)?;
        let after = request.into_inner().after_sequence;
        if after < 0 {
            return Err(Status::invalid_argument(
                "after_sequence: must be 0 (from the start) or a sequence seen before",
            ));
        }
        let (tx, rx) = mpsc::channel(WATCH_BATCH);
        let db = self.intake.db().clone();
        tokio::spawn(async move {
            let mut after = after;
            loop {
                let batch = match storage::cases::events_after(
                    &db,
                    &caller.sub,
                    after,
                    WATCH_BATCH as u64,
                )
                .await
                {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(error = %e, "WatchEvents read failed; ending the stream");
                        let _ = tx
                            .send(Err(Status::unavailable(
                                "event stream interrupted; resume after the last sequence seen",
                            )))
                            .await;
                        return;
                    }
                };
                let full = batch.len() == WATCH_BATCH;
                for (event, code) in batch {
                    after = event.seq;
                    if tx
                        .send(Ok(event_for_viewer(&event, &code, &caller)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                if !full {
                    tokio::select! {
                        () = tokio::time::sleep(WATCH_POLL) => {}
                        () = tx.closed() => return,
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

type EventStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::CaseEvent, Status>> + Send + 'static>,
>;

/// Events read and sent per query.
const WATCH_BATCH: usize = 256;
/// How often a caught-up stream looks for new events.
const WATCH_POLL: std::time::Duration = std::time::Duration::from_millis(250);

//! Following cases' events: what `WatchEvents` streams, in sequence order from a position the
//! caller has seen, then as they commit.

use sea_orm::DatabaseConnection;
use tokio::sync::mpsc;

use crate::{
    domain::{Caller, DomainError, DomainResult, case::Event},
    storage,
};

/// Events read per query.
const BATCH: usize = 256;
/// How often a caught-up stream looks for new events.
const POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// The events a caller follows.
#[derive(Debug, Clone)]
pub struct EventFeed {
    db: DatabaseConnection,
}

/// One event for a follower, with its case's code.
pub type FeedItem = DomainResult<(Event, String)>;

impl EventFeed {
    pub fn new(db: DatabaseConnection) -> EventFeed {
        EventFeed { db }
    }

    /// The events of the cases `caller` brought in, after sequence `after`, in sequence order,
    /// and then each as it commits (polled). Sequence numbers are assigned in commit order, so
    /// a caller that resumes after the last one it saw misses nothing. The stream ends when
    /// the receiver is dropped, or with UNAVAILABLE when storage fails.
    pub fn follow(&self, caller: Caller, after: i64) -> DomainResult<mpsc::Receiver<FeedItem>> {
        if after < 0 {
            return Err(DomainError::invalid(
                "after_sequence",
                "must be 0 (from the start) or a sequence seen before",
            ));
        }
        let (tx, rx) = mpsc::channel(BATCH);
        let db = self.db.clone();
        tokio::spawn(async move {
            let mut after = after;
            loop {
                let batch =
                    match storage::cases::events_after(&db, &caller.sub, after, BATCH as u64).await
                    {
                        Ok(b) => b,
                        Err(e) => {
                            tracing::warn!(error = %e, "event feed read failed; ending the stream");
                            let _ = tx
                            .send(Err(DomainError::Unavailable(anyhow::anyhow!(
                                "event stream interrupted; resume after the last sequence seen: {e}"
                            ))))
                            .await;
                            return;
                        }
                    };
                let full = batch.len() == BATCH;
                for item in batch {
                    after = item.0.seq;
                    if tx.send(Ok(item)).await.is_err() {
                        return;
                    }
                }
                if !full {
                    tokio::select! {
                        () = tokio::time::sleep(POLL) => {}
                        () = tx.closed() => return,
                    }
                }
            }
        });
        Ok(rx)
    }
}

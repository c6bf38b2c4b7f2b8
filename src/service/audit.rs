//! `gridcase audit verify`: walks every case's event chain and names the first broken link.

use sea_orm::DatabaseConnection;

use crate::{
    domain::case::{GENESIS, event_hash},
    storage::{self, StorageError},
};

/// What a verification found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub cases: usize,
    pub events: usize,
    /// The first broken link, described: which case, which event, what is wrong.
    pub broken: Option<String>,
}

/// Verifies one case's chain, or every case's when `case_id` is `None`.
pub async fn verify(
    db: &DatabaseConnection,
    case_id: Option<&str>,
) -> Result<AuditReport, StorageError> {
    let mut report = AuditReport::default();
    let mut after = String::new();
    loop {
        let anchors = match case_id {
            Some(id) => storage::cases::get(db, id)
                .await?
                .map(|c| vec![(c.id, c.code, c.last_event_hash)])
                .unwrap_or_default(),
            None => storage::cases::anchors(db, &after, 500).await?,
        };
        if anchors.is_empty() {
            if let Some(id) = case_id
                && report.cases == 0
            {
                report.broken = Some(format!("case {id}: no such case"));
            }
            return Ok(report);
        }
        for (id, code, anchor) in &anchors {
            report.cases += 1;
            let events = storage::cases::events_of(db, id).await?;
            let mut prev = GENESIS.to_owned();
            let mut last_seq = i64::MIN;
            for e in &events {
                report.events += 1;
                let problem = if e.prev_hash != prev {
                    Some("does not point at the event before it (one was changed, removed or inserted)".to_owned())
                } else if e.seq <= last_seq {
                    Some("is out of sequence".to_owned())
                } else if event_hash(&e.prev_hash, &e.case_id, &e.event) != e.hash {
                    Some("was altered: its content does not match its hash".to_owned())
                } else {
                    None
                };
                if let Some(problem) = problem {
                    report.broken = Some(format!(
                        "case {code} ({id}): event {} ({}) {problem}",
                        e.seq, e.event.kind
                    ));
                    return Ok(report);
                }
                prev = e.hash.clone();
                last_seq = e.seq;
            }
            if &prev != anchor {
                report.broken = Some(format!(
                    "case {code} ({id}): its newest event is not the one the case records (events were removed or appended outside gridcase)"
                ));
                return Ok(report);
            }
        }
        if case_id.is_some() {
            return Ok(report);
        }
        after = anchors.last().map(|a| a.0.clone()).unwrap_or_default();
    }
}

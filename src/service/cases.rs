//! Reading cases within the caller's scope: `GetCase` and `ListCases`.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use super::{LiveDirectory, paging};
use crate::{
    domain::{
        Caller, DomainError, DomainResult,
        case::{Case, Event},
        scope::Scope,
    },
    storage::{self, cases::CaseFilter},
};

/// What `ListCases` may narrow by, besides the caller's scope.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub statuses: Vec<crate::domain::case::CaseStatus>,
    pub region_code: String,
    pub unit_code: String,
    pub category_code: String,
    pub received_from: Option<chrono::DateTime<chrono::Utc>>,
    pub received_to: Option<chrono::DateTime<chrono::Utc>>,
    pub page_size: usize,
    pub page_token: String,
}

#[derive(Debug, Clone)]
pub struct CaseQueries {
    db: DatabaseConnection,
    directory: Arc<LiveDirectory>,
}

impl CaseQueries {
    pub fn new(db: DatabaseConnection, directory: Arc<LiveDirectory>) -> Self {
        CaseQueries { db, directory }
    }

    pub fn directory(&self) -> &Arc<LiveDirectory> {
        &self.directory
    }

    /// `GetCase`: a case out of the caller's scope is NOT_FOUND, as if it did not exist.
    pub async fn get(
        &self,
        caller: &Caller,
        case_id: &str,
        include_events: bool,
    ) -> DomainResult<(Case, Vec<Event>)> {
        let scope = Scope::of(caller, &self.directory.snapshot())?;
        let not_found = || DomainError::NotFound(format!("no case {case_id:?}"));
        let (case, events) = if include_events {
            storage::cases::with_events(&self.db, case_id)
                .await
                .map_err(DomainError::internal)?
                .ok_or_else(not_found)?
        } else {
            let case = storage::cases::get(&self.db, case_id)
                .await
                .map_err(DomainError::internal)?
                .ok_or_else(not_found)?;
            (case, Vec::new())
        };
        if !scope.reaches(&case) {
            return Err(not_found());
        }
        Ok((case, events))
    }

    /// `ListCases`: newest first, within the caller's scope; cases outside it are simply absent.
    pub async fn list(&self, caller: &Caller, r: ListRequest) -> DomainResult<(Vec<Case>, String)> {
        let directory = self.directory.snapshot();
        let scope = Scope::of(caller, &directory)?;
        let region = if r.region_code.is_empty() {
            None
        } else {
            let region = directory.region(&r.region_code).ok_or_else(|| {
                DomainError::invalid("region_code", format!("unknown region {:?}", r.region_code))
            })?;
            Some((region.tier, region.code.clone()))
        };
        let filter = CaseFilter {
            scope,
            statuses: r.statuses,
            region,
            unit_code: (!r.unit_code.is_empty()).then_some(r.unit_code),
            category_code: (!r.category_code.is_empty()).then_some(r.category_code),
            received_from: r.received_from,
            received_to: r.received_to,
        };
        let after = paging::cursor(&r.page_token)?;
        let limit = u64::try_from(r.page_size).unwrap_or(50) + 1;
        let cases = storage::cases::list(&self.db, &filter, after, limit)
            .await
            .map_err(DomainError::internal)?;
        Ok(paging::page(cases, r.page_size))
    }
}

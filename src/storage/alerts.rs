//! Early warning's tables: what the watcher has seen of each case (`alert_cases`), the claims
//! that make each alert exactly once (`alert_claims`), the alerts (`alerts`), and the cursor up
//! to which cases have been looked at (the `alerts_cursor` row of `sequences`).
//!
//! Exactly once is the database's doing: [`Raise::claim`] moves the (kind, region, subject)
//! row's end of window with a compare-and-set (`… ON CONFLICT DO UPDATE … WHERE until <= t`)
//! in the transaction that stores the alert and appends its event. Of replicas deciding the same
//! alert, the first to commit holds the row; the others' claims then change nothing.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};

use super::{
    StorageError, begin_write,
    cases::{corrupt, lock_case},
    sql,
};
use crate::domain::{
    alerts::{Alert, AlertKind, Claim, Seen},
    case::{Case, NewEvent, Source},
    directory::Tier,
    scope::Scope,
};

const CURSOR: &str = "alerts_cursor";

/// The event sequence up to which cases have been looked at; `None` before the first look.
pub async fn cursor(db: &impl ConnectionTrait) -> Result<Option<i64>, StorageError> {
    let row = db
        .query_one_raw(sql(
            db.get_database_backend(),
            "SELECT value FROM sequences WHERE name = $1",
            vec![CURSOR.into()],
        ))
        .await?
        .ok_or_else(|| StorageError::corrupt("no alerts_cursor sequence"))?;
    let value: i64 = row.try_get_by_index(0)?;
    Ok((value >= 0).then_some(value))
}

/// The first look: starts the cursor before the first case received since `since` (every case
/// before it is past every window), unless another replica started it first. Returns the
/// cursor as it stands.
pub async fn start_cursor(
    db: &DatabaseConnection,
    since: DateTime<Utc>,
) -> Result<i64, StorageError> {
    let backend = db.get_database_backend();
    db.execute_raw(sql(
        backend,
        "UPDATE sequences SET value = COALESCE(\
         (SELECT MIN(seq) - 1 FROM case_events WHERE kind = 'submitted' AND at >= $1), \
         (SELECT value FROM sequences WHERE name = 'events')) \
         WHERE name = $2 AND value < 0",
        vec![since.into(), CURSOR.into()],
    ))
    .await?;
    cursor(db)
        .await?
        .ok_or_else(|| StorageError::corrupt("alerts_cursor not started"))
}

/// Moves the cursor from `from` to `to`; false when another replica moved it first.
pub async fn advance_cursor(
    db: &DatabaseConnection,
    from: i64,
    to: i64,
) -> Result<bool, StorageError> {
    let result = db
        .execute_raw(sql(
            db.get_database_backend(),
            "UPDATE sequences SET value = $1 WHERE name = $2 AND value = $3",
            vec![to.into(), CURSOR.into(), from.into()],
        ))
        .await?;
    Ok(result.rows_affected() == 1)
}

/// A case received, as the watcher reads it.
#[derive(Debug, Clone)]
pub struct Received {
    pub seq: i64,
    pub case_id: String,
    pub case_code: String,
    pub received_at: DateTime<Utc>,
    pub category_code: String,
    pub township: Option<String>,
    pub community: Option<String>,
    pub region_code: String,
    pub source: Source,
    pub phone: Option<String>,
}

/// The cases whose `submitted` event has a sequence in `(after, upto]`, in sequence order: the
/// range bounds the work whatever else happened meanwhile.
pub async fn received_between(
    db: &impl ConnectionTrait,
    after: i64,
    upto: i64,
) -> Result<Vec<Received>, StorageError> {
    let rows = db
        .query_all_raw(sql(
            db.get_database_backend(),
            "SELECT e.seq, c.id, c.code, c.received_at, c.category_code, c.township_code, \
             c.community_code, c.region_code, c.source, c.reporter_phone \
             FROM case_events e JOIN cases c ON c.id = e.case_id \
             WHERE e.seq > $1 AND e.seq <= $2 AND e.kind = 'submitted' ORDER BY e.seq",
            vec![after.into(), upto.into()],
        ))
        .await?;
    rows.into_iter()
        .map(|r| {
            let source: String = r.try_get_by_index(8)?;
            Ok(Received {
                seq: r.try_get_by_index(0)?,
                case_id: r.try_get_by_index(1)?,
                case_code: r.try_get_by_index(2)?,
                received_at: r.try_get_by_index(3)?,
                category_code: r.try_get_by_index(4)?,
                township: r.try_get_by_index(5)?,
                community: r.try_get_by_index(6)?,
                region_code: r.try_get_by_index(7)?,
                source: source.parse().map_err(corrupt)?,
                phone: r.try_get_by_index(9)?,
            })
        })
        .collect()
}

/// Rows per multi-row statement: 9 parameters a row stays far inside both databases' limits.
const CHUNK: usize = 200;

/// `$k, $k+1, …` for `n` parameters after the `before` already bound.
fn params(before: usize, n: usize) -> String {
    (before + 1..=before + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Records what the watcher saw of each case (once: a case seen again, by another replica or
/// after a failed look, is left as it was), a chunk of rows a statement.
pub async fn observe(db: &DatabaseConnection, seen: &[Seen]) -> Result<(), StorageError> {
    let backend = db.get_database_backend();
    for chunk in seen.chunks(CHUNK) {
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 9);
        let mut rows = Vec::with_capacity(chunk.len());
        for s in chunk {
            rows.push(format!("({})", params(values.len(), 9)));
            values.extend([
                s.case_id.as_str().into(),
                s.case_code.as_str().into(),
                s.received_at.into(),
                s.seq.into(),
                s.class_code.as_str().into(),
                s.township.clone().into(),
                s.community.clone().into(),
                s.region_code.as_str().into(),
                s.phone_key.clone().into(),
            ]);
        }
        db.execute_raw(sql(
            backend,
            &format!(
                "INSERT INTO alert_cases (case_id, case_code, received_at, seq, class_code, \
                 township_code, community_code, region_code, phone_key) VALUES {} \
                 ON CONFLICT (case_id) DO NOTHING",
                rows.join(", ")
            ),
            values,
        ))
        .await?;
    }
    Ok(())
}

fn seen_of(r: sea_orm::QueryResult) -> Result<Seen, StorageError> {
    Ok(Seen {
        case_id: r.try_get_by_index(0)?,
        case_code: r.try_get_by_index(1)?,
        received_at: r.try_get_by_index(2)?,
        seq: r.try_get_by_index(3)?,
        class_code: r.try_get_by_index(4)?,
        township: r.try_get_by_index(5)?,
        community: r.try_get_by_index(6)?,
        region_code: r.try_get_by_index(7)?,
        phone_key: r.try_get_by_index(8)?,
    })
}

const SEEN_COLUMNS: &str = "case_id, case_code, received_at, seq, class_code, township_code, \
                            community_code, region_code, phone_key";

/// The cases of `class` seen in township `township` received in `(from, to]`.
pub async fn in_township(
    db: &impl ConnectionTrait,
    township: &str,
    class: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Seen>, StorageError> {
    db.query_all_raw(sql(
        db.get_database_backend(),
        &format!(
            "SELECT {SEEN_COLUMNS} FROM alert_cases WHERE township_code = $1 AND class_code = $2 \
             AND received_at > $3 AND received_at <= $4"
        ),
        vec![township.into(), class.into(), from.into(), to.into()],
    ))
    .await?
    .into_iter()
    .map(seen_of)
    .collect()
}

/// The cases seen with any of the phone keys `keys` received in `(from, to]`.
pub async fn with_phones(
    db: &impl ConnectionTrait,
    keys: &[String],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Seen>, StorageError> {
    let mut out = Vec::new();
    for chunk in keys.chunks(CHUNK) {
        let mut values: Vec<sea_orm::Value> = vec![from.into(), to.into()];
        values.extend(chunk.iter().map(|k| k.as_str().into()));
        let rows = db
            .query_all_raw(sql(
                db.get_database_backend(),
                &format!(
                    "SELECT {SEEN_COLUMNS} FROM alert_cases WHERE received_at > $1 \
                     AND received_at <= $2 AND phone_key IN ({})",
                    params(2, chunk.len())
                ),
                values,
            ))
            .await?;
        for r in rows {
            out.push(seen_of(r)?);
        }
    }
    Ok(out)
}

/// The claims of the subjects `subjects` (class codes, phone keys), of any kind and region,
/// whose window is still open after `after`: those that can hold back an alert of a case
/// received since (the caller picks what it needs).
pub async fn claims(
    db: &impl ConnectionTrait,
    subjects: &[String],
    after: DateTime<Utc>,
) -> Result<Vec<Claim>, StorageError> {
    let mut out = Vec::new();
    for chunk in subjects.chunks(CHUNK) {
        let mut values: Vec<sea_orm::Value> = vec![after.into()];
        values.extend(chunk.iter().map(|k| k.as_str().into()));
        let rows = db
            .query_all_raw(sql(
                db.get_database_backend(),
                &format!(
                    "SELECT kind, region_code, subject, until FROM alert_claims \
                     WHERE until > $1 AND subject IN ({})",
                    params(1, chunk.len())
                ),
                values,
            ))
            .await?;
        for r in rows {
            let kind: String = r.try_get_by_index(0)?;
            out.push(Claim {
                kind: kind.parse().map_err(corrupt)?,
                region_code: r.try_get_by_index(1)?,
                subject: r.try_get_by_index(2)?,
                until: r.try_get_by_index(3)?,
            });
        }
    }
    Ok(out)
}

/// One alert's transaction: claim, lock the case, store the alert and append its event.
#[derive(Debug)]
pub struct Raise {
    txn: DatabaseTransaction,
}

pub async fn begin_raise(db: &DatabaseConnection) -> Result<Raise, StorageError> {
    Ok(Raise {
        txn: begin_write(db).await?,
    })
}

impl Raise {
    /// Takes `claim` for alert `alert_id` raised at a case received at `at`: true when no
    /// alert of its (kind, region, subject) has a window still open at `at`. Held (row-locked
    /// on PostgreSQL, the write lock on SQLite) until the transaction ends.
    pub async fn claim(
        &self,
        claim: &Claim,
        at: DateTime<Utc>,
        alert_id: &str,
    ) -> Result<bool, StorageError> {
        let result = self
            .txn
            .execute_raw(sql(
                self.txn.get_database_backend(),
                "INSERT INTO alert_claims (kind, region_code, subject, until, alert_id) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, region_code, subject) \
                 DO UPDATE SET until = excluded.until, alert_id = excluded.alert_id \
                 WHERE alert_claims.until <= $6",
                vec![
                    claim.kind.as_str().into(),
                    claim.region_code.as_str().into(),
                    claim.subject.as_str().into(),
                    claim.until.into(),
                    alert_id.into(),
                    at.into(),
                ],
            ))
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The case the alert's event goes on, locked until the transaction ends.
    pub async fn case(&self, id: &str) -> Result<Option<Case>, StorageError> {
        lock_case(&self.txn, id).await?;
        super::cases::get(&self.txn, id).await
    }

    /// Stores the alert and appends its event to the case's chain (the case's version stays).
    pub async fn store(
        &self,
        alert: &Alert,
        case: Case,
        events: Vec<NewEvent>,
    ) -> Result<(), StorageError> {
        let chain = |t: Tier| alert.chain.get(tier_index(t)).cloned().flatten();
        self.txn
            .execute_raw(sql(
                self.txn.get_database_backend(),
                "INSERT INTO alerts (id, kind, region_code, tier, city_code, district_code, \
                 township_code, community_code, center, class_code, phone, count, case_ids, \
                 case_codes, case_id, raised_at, window_from, window_until) VALUES ($1, $2, \
                 $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
                vec![
                    alert.id.as_str().into(),
                    alert.kind.as_str().into(),
                    alert.region_code.as_str().into(),
                    alert.tier.as_str().into(),
                    chain(Tier::City).into(),
                    chain(Tier::District).into(),
                    chain(Tier::Township).into(),
                    chain(Tier::Community).into(),
                    alert.center.as_str().into(),
                    alert.class_code.clone().into(),
                    alert.phone.clone().into(),
                    i32::try_from(alert.case_ids.len())
                        .unwrap_or(i32::MAX)
                        .into(),
                    json(&alert.case_ids).into(),
                    json(&alert.case_codes).into(),
                    alert.case_id.as_str().into(),
                    alert.raised_at.into(),
                    alert.from.into(),
                    alert.until.into(),
                ],
            ))
            .await?;
        super::sla::record(&self.txn, vec![(case, events)]).await
    }

    pub async fn commit(self) -> Result<(), StorageError> {
        Ok(self.txn.commit().await?)
    }
}

fn json(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

fn tier_index(t: Tier) -> usize {
    Tier::ALL.iter().position(|x| *x == t).unwrap_or(0)
}

/// What `ListAlerts` asks for.
#[derive(Debug, Clone)]
pub struct AlertFilter {
    /// The caller's scope: a region (its subtree's alerts) or a center's unit (its own).
    pub scope: Scope,
    pub kind: Option<AlertKind>,
    /// A region subtree within the scope.
    pub region: Option<(Tier, String)>,
}

fn chain_column(t: Tier) -> Option<&'static str> {
    match t {
        Tier::City => Some("city_code"),
        Tier::District => Some("district_code"),
        Tier::Township => Some("township_code"),
        Tier::Community => Some("community_code"),
        Tier::Grid => None,
    }
}

/// The alerts matching `filter`, newest first, after the `(raised_at, id)` cursor.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &AlertFilter,
    after: Option<(DateTime<Utc>, String)>,
    limit: u64,
) -> Result<Vec<Alert>, StorageError> {
    fn param(values: &mut Vec<sea_orm::Value>, v: sea_orm::Value) -> String {
        values.push(v);
        format!("${}", values.len())
    }
    // A region's alerts are filed under their chain down to their own tier: an alert of a
    // township has no community, so a community's scope never reaches it.
    fn within(values: &mut Vec<sea_orm::Value>, tier: Tier, code: &str) -> String {
        match chain_column(tier) {
            Some(col) => format!("{col} = {}", param(values, code.into())),
            None => "1 = 0".to_owned(),
        }
    }
    let mut conditions: Vec<String> = Vec::new();
    let mut values: Vec<sea_orm::Value> = Vec::new();
    match &filter.scope {
        Scope::Region { code, tier } => conditions.push(within(&mut values, *tier, code)),
        Scope::Unit(unit) => {
            conditions.push(format!(
                "center = {}",
                param(&mut values, unit.as_str().into())
            ));
        }
        Scope::All => {}
        Scope::Grids { .. } | Scope::Reporter(_) => return Ok(Vec::new()),
    }
    if let Some((tier, code)) = &filter.region {
        conditions.push(within(&mut values, *tier, code));
    }
    if let Some(kind) = filter.kind {
        conditions.push(format!(
            "kind = {}",
            param(&mut values, kind.as_str().into())
        ));
    }
    if let Some((at, id)) = after {
        let a = param(&mut values, at.into());
        let b = param(&mut values, at.into());
        let i = param(&mut values, id.into());
        conditions.push(format!(
            "(raised_at < {a} OR (raised_at = {b} AND id < {i}))"
        ));
    }
    let limit_param = param(&mut values, i64::try_from(limit).unwrap_or(i64::MAX).into());
    let text = format!(
        "SELECT id, kind, region_code, tier, city_code, district_code, township_code, \
         community_code, center, class_code, phone, case_ids, case_codes, case_id, raised_at, \
         window_from, window_until FROM alerts {} ORDER BY raised_at DESC, id DESC LIMIT {}",
        if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        },
        limit_param
    );
    let rows = db
        .query_all_raw(sql(db.get_database_backend(), &text, values))
        .await?;
    rows.into_iter()
        .map(|r| {
            let id: String = r.try_get_by_index(0)?;
            let bad = |what: &str, e: String| corrupt(format!("alert {id} {what}: {e}"));
            let kind: String = r.try_get_by_index(1)?;
            let tier: String = r.try_get_by_index(3)?;
            let ids: String = r.try_get_by_index(11)?;
            let codes: String = r.try_get_by_index(12)?;
            Ok(Alert {
                kind: kind.parse().map_err(|e| bad("kind", e))?,
                region_code: r.try_get_by_index(2)?,
                tier: tier.parse().map_err(|e| bad("tier", e))?,
                chain: [
                    r.try_get_by_index(4)?,
                    r.try_get_by_index(5)?,
                    r.try_get_by_index(6)?,
                    r.try_get_by_index(7)?,
                    None,
                ],
                center: r.try_get_by_index(8)?,
                class_code: r.try_get_by_index(9)?,
                class_name: None,
                phone: r.try_get_by_index(10)?,
                case_ids: serde_json::from_str(&ids).map_err(|e| bad("case_ids", e.to_string()))?,
                case_codes: serde_json::from_str(&codes)
                    .map_err(|e| bad("case_codes", e.to_string()))?,
                case_id: r.try_get_by_index(13)?,
                raised_at: r.try_get_by_index(14)?,
                from: r.try_get_by_index(15)?,
                until: r.try_get_by_index(16)?,
                id,
            })
        })
        .collect()
}

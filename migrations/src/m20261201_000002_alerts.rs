//! Early warning (研判预警): hotspots and repeat reporters (ARCHITECTURE.md "Alerts").
//!
//! - `alert_cases`: what the alert watcher has seen of each case (its class, township,
//!   community, the reporter's phone as a key), so the windows are counted on its own indexes
//!   and intake writes nothing more.
//! - `alert_claims`: one row per (kind, region, subject) holding the end of its last alert's
//!   window; an alert is raised only by the compare-and-set that moves it, in the transaction
//!   that stores the alert and its event, so every replica raises each alert at most once.
//! - `alerts`: the alerts raised, listed by `ListAlerts` within the caller's scope.
//! - the `alerts_cursor` row of `sequences`: the event sequence up to which cases have been
//!   looked at (-1: not yet started).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("alert_cases")
                    .col(string("case_id").primary_key())
                    .col(string("case_code"))
                    .col(timestamp_with_time_zone("received_at"))
                    // The sequence of the case's `submitted` event: the order of cases
                    // received at the same moment.
                    .col(big_integer("seq"))
                    .col(string("class_code"))
                    .col(string_null("township_code"))
                    .col(string_null("community_code"))
                    .col(string("region_code"))
                    // Digits of a citizen's phone (+86 left off); NULL for staff reports.
                    .col(string_null("phone_key"))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            (
                "alert_cases_township",
                &["township_code", "class_code", "received_at"][..],
            ),
            ("alert_cases_phone", &["phone_key", "received_at"][..]),
        ] {
            let mut index = Index::create();
            index.name(name).table("alert_cases");
            for c in cols {
                index.col(*c);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("alert_claims")
                    .col(string("kind"))
                    .col(string("region_code"))
                    // The class code of a hotspot; the phone key of a repeat reporter.
                    .col(string("subject"))
                    // The end of the last alert's window: no alert again before it.
                    .col(timestamp_with_time_zone("until"))
                    .col(string("alert_id"))
                    .primary_key(
                        Index::create()
                            .col("kind")
                            .col("region_code")
                            .col("subject"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("alert_claims_subject")
                    .table("alert_claims")
                    .col("subject")
                    .col("until")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("alerts")
                    .col(string("id").primary_key())
                    .col(string("kind"))
                    // The region alerted (hotspot) or holding the latest case (repeat reporter).
                    .col(string("region_code"))
                    .col(string("tier"))
                    .col(string_null("city_code"))
                    .col(string_null("district_code"))
                    .col(string_null("township_code"))
                    .col(string_null("community_code"))
                    .col(string("center"))
                    .col(string_null("class_code"))
                    .col(string_null("phone"))
                    .col(integer("count"))
                    // JSON arrays, oldest first.
                    .col(text("case_ids"))
                    .col(text("case_codes"))
                    // The case whose event carries the alert.
                    .col(string("case_id"))
                    .col(timestamp_with_time_zone("raised_at"))
                    .col(timestamp_with_time_zone("window_from"))
                    .col(timestamp_with_time_zone("window_until"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("alerts_newest")
                    .table("alerts")
                    .col("raised_at")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table("sequences")
                    .columns(["name", "value"])
                    .values_panic(["alerts_cursor".into(), (-1i64).into()])
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["alerts", "alert_claims", "alert_cases"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .exec_stmt(
                Query::delete()
                    .from_table("sequences")
                    .and_where(Expr::col("name").eq("alerts_cursor"))
                    .to_owned(),
            )
            .await
    }
}

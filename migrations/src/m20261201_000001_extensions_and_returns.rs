//! Extensions (延期) and returns within the rule (DESIGN.md "SLA clocks").
//!
//! `cases.dispatched_at`: when the case was last sent to its lead unit (the return window
//! counts from it), filled in for stored cases from their last `dispatched`, `escalated` or
//! `reopened` event; `cases.pending_request`: what the lead unit asked of the holding center
//! and the center has not decided yet, as JSON (NULL: nothing). `sla_clocks.extensions`:
//! extensions granted to the clock (0 for everything stored before);
//! `sla_clocks.base_due_at`: its due time before the first of them (NULL: never extended).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        for (table, column) in [
            ("cases", timestamp_with_time_zone_null("dispatched_at")),
            ("cases", text_null("pending_request")),
            ("sla_clocks", integer("extensions").default(0).to_owned()),
            ("sla_clocks", timestamp_with_time_zone_null("base_due_at")),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE cases SET dispatched_at = (SELECT MAX(e.at) FROM case_events e \
                 WHERE e.case_id = cases.id \
                 AND e.kind IN ('dispatched', 'escalated', 'reopened'))",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in [
            ("sla_clocks", "base_due_at"),
            ("sla_clocks", "extensions"),
            ("cases", "pending_request"),
            ("cases", "dispatched_at"),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}

//! Waiting on the reporter (DESIGN.md "SLA clocks": a clock pauses only while the case waits on
//! the reporter). `cases.awaiting_since`: since when the lead unit's question waits for the
//! reporter (NULL: not waiting); `sla_clocks.paused_at`: since when a clock is paused (NULL:
//! running or stopped as it always was). Both NULL for everything stored before.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("cases")
                    .add_column(timestamp_with_time_zone_null("awaiting_since"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("sla_clocks")
                    .add_column(timestamp_with_time_zone_null("paused_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("sla_clocks")
                    .drop_column("paused_at")
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("cases")
                    .drop_column("awaiting_since")
                    .to_owned(),
            )
            .await
    }
}

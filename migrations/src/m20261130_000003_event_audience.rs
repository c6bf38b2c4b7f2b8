//! Who each event reaches beyond its case's place, and whom it asks to act: decided when the
//! event is written, kept beside it (not hashed), so a follower resuming from far back sees
//! exactly what it would have seen live. NULL for events stored before.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("case_events")
                    .add_column(text_null("audience"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("case_events")
                    .drop_column("audience")
                    .to_owned(),
            )
            .await
    }
}

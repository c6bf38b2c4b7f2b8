//! Tickets are idempotent per gateway: (gateway, source, external id) instead of (source,
//! external id), so two gateways of one source never meet each other's cases.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Every stored pair was unique, so every triple is: the new index always builds.
        manager
            .create_index(
                Index::create()
                    .name("cases_ticket")
                    .table("cases")
                    .col("reporter_sub")
                    .col("external_source")
                    .col("external_id")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("cases_external")
                    .table("cases")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Fails, as it should, once two gateways hold the same (source, external id).
        manager
            .create_index(
                Index::create()
                    .name("cases_external")
                    .table("cases")
                    .col("external_source")
                    .col("external_id")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(Index::drop().name("cases_ticket").table("cases").to_owned())
            .await
    }
}

//! The directory: regions with geometry, units, members, categories, and the version every
//! replica watches to know when to reload its in-memory copy.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("regions")
                    .col(string("code").primary_key())
                    .col(string("name"))
                    .col(string("tier"))
                    .col(string_null("parent_code"))
                    // GeoJSON geometry (Polygon or MultiPolygon, WGS-84), as imported.
                    .col(text("geometry"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("regions_parent_code")
                    .table("regions")
                    .col("parent_code")
                    .col("code")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("units")
                    .col(string("code").primary_key())
                    .col(string("name"))
                    .col(string("kind"))
                    .col(string("region_code"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("units_region_code")
                    .table("units")
                    .col("region_code")
                    .col("kind")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("members")
                    .col(string("sub").primary_key())
                    .col(string("name"))
                    .col(string("role"))
                    .col(string("phone"))
                    .col(string_null("unit_code"))
                    .col(string_null("region_code"))
                    // JSON array of grid codes (grid members only).
                    .col(text("grid_codes"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("categories")
                    .col(string("code").primary_key())
                    .col(string("name"))
                    .col(string("class_code"))
                    .col(string("class_name"))
                    .col(string("unit_kind"))
                    .col(string("handling_tier"))
                    .col(string("severity"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("directory_state")
                    .col(integer("id").primary_key())
                    // Bumped by every import that changes anything; replicas reload when it moves.
                    .col(big_integer("version"))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table("directory_state")
                    .columns(["id", "version"])
                    .values_panic([1.into(), 0i64.into()])
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "directory_state",
            "categories",
            "members",
            "units",
            "regions",
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

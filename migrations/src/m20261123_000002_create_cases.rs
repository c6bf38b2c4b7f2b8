//! Cases, their hash-chained events, attachments, and the counters that give case codes and
//! event sequence numbers.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("cases")
                    .col(string("id").primary_key())
                    .col(string("code"))
                    .col(string("status"))
                    .col(string("source"))
                    .col(string("category_code"))
                    .col(string("severity"))
                    .col(text("description"))
                    // The region chain, denormalised so every scope is one indexed equality.
                    .col(string_null("city_code"))
                    .col(string_null("district_code"))
                    .col(string_null("township_code"))
                    .col(string_null("community_code"))
                    .col(string_null("grid_code"))
                    // The region whose center holds the case (its triage queue when unlocated).
                    .col(string("region_code"))
                    .col(string("tier"))
                    .col(string("unit_code"))
                    .col(double_null("lat"))
                    .col(double_null("lon"))
                    // The ~200 m cell of the WGS-84 position: bounds the duplicate search.
                    .col(big_integer_null("geo_cell"))
                    .col(double_null("reported_lat"))
                    .col(double_null("reported_lon"))
                    .col(string_null("reported_coord_system"))
                    .col(double_null("accuracy_m"))
                    .col(boolean("snapped"))
                    .col(double("snap_distance_m"))
                    .col(text_null("address"))
                    .col(string("reporter_sub"))
                    .col(string_null("reporter_phone"))
                    .col(string_null("reporter_name"))
                    .col(timestamp_with_time_zone_null("captured_at"))
                    .col(timestamp_with_time_zone("received_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(big_integer("version"))
                    .col(integer("cycle"))
                    .col(integer("reopen_count"))
                    .col(integer("escalation_level"))
                    .col(boolean("red_card"))
                    .col(string_null("merged_into"))
                    .col(string_null("possible_duplicate_of"))
                    .col(text_null("resolution_text"))
                    .col(string_null("external_source"))
                    .col(string_null("external_id"))
                    .col(string_null("client_report_id"))
                    // sha256 of the request's content: a retry must match it.
                    .col(string("request_hash"))
                    // JSON array of attachment ids.
                    .col(text("attachment_ids"))
                    // The hash of the case's newest event: the anchor of its chain.
                    .col(string("last_event_hash"))
                    .to_owned(),
            )
            .await?;
        let indexes: &[(&str, &[&str], bool)] = &[
            ("cases_code", &["code"], true),
            (
                "cases_client_report",
                &["reporter_sub", "client_report_id"],
                true,
            ),
            ("cases_external", &["external_source", "external_id"], true),
            ("cases_reporter", &["reporter_sub", "received_at"], false),
            ("cases_district", &["district_code", "received_at"], false),
            ("cases_grid", &["grid_code", "received_at"], false),
            ("cases_region", &["region_code", "received_at"], false),
            ("cases_unit", &["unit_code", "received_at"], false),
            (
                "cases_nearby",
                &["category_code", "geo_cell", "received_at"],
                false,
            ),
        ];
        for (name, cols, unique) in indexes {
            let mut index = Index::create();
            index.name(*name).table("cases");
            for col in *cols {
                index.col(*col);
            }
            if *unique {
                index.unique();
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("case_events")
                    // Global, gap-free within committed work, in commit order: assigned under the
                    // `sequences` row lock held to commit. WatchEvents resumes after it.
                    .col(big_integer("seq").primary_key())
                    .col(string("case_id"))
                    .col(string("kind"))
                    .col(string("actor_sub"))
                    .col(string("actor_role"))
                    .col(timestamp_with_time_zone("at"))
                    .col(string_null("from_status"))
                    .col(string_null("to_status"))
                    .col(text("reason"))
                    .col(text("details"))
                    .col(string("prev_hash"))
                    .col(string("hash"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("case_events_case")
                    .table("case_events")
                    .col("case_id")
                    .col("seq")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("case_assists")
                    // 吹哨报到: units summoned to assist a case; each checks in.
                    .col(string("case_id"))
                    .col(string("unit_code"))
                    .col(timestamp_with_time_zone("summoned_at"))
                    .col(timestamp_with_time_zone_null("checked_in_at"))
                    .primary_key(Index::create().col("case_id").col("unit_code"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("case_assists_unit")
                    .table("case_assists")
                    .col("unit_code")
                    .col("case_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("attachments")
                    .col(string("id").primary_key())
                    .col(string("sha256"))
                    .col(big_integer("size_bytes"))
                    .col(string("content_type"))
                    .col(string("file_name"))
                    .col(string("owner_sub"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("sequences")
                    .col(string("name").primary_key())
                    .col(big_integer("value"))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table("sequences")
                    .columns(["name", "value"])
                    .values_panic(["events".into(), 0i64.into()])
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("case_code_counters")
                    // `{district code}{yyyymmdd}`.
                    .col(string("scope").primary_key())
                    .col(big_integer("last"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "case_code_counters",
            "sequences",
            "attachments",
            "case_events",
            "cases",
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

//! SLA clocks and what configures them (the working-time calendar, per-category policies, routing
//! overrides), the monthly statistics snapshots, and the claims that make scheduled work run once.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // When the case was last resolved, and its last evaluation: what statistics count.
        manager
            .alter_table(
                Table::alter()
                    .table("cases")
                    .add_column(timestamp_with_time_zone_null("resolved_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("cases")
                    .add_column(string_null("satisfaction"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("cases")
                    .add_column(text_null("evaluation"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("sla_clocks")
                    .col(big_integer("id").primary_key().auto_increment())
                    .col(string("case_id"))
                    .col(string("kind"))
                    .col(integer("cycle"))
                    // The unit a whistle check-in clock runs against; empty for the others.
                    .col(string("unit_code"))
                    // A clock stopped and started again in the same cycle (a dispatch clock after
                    // a return) is a new row with the next attempt.
                    .col(integer("attempt"))
                    .col(string("duration"))
                    .col(timestamp_with_time_zone("started_at"))
                    .col(timestamp_with_time_zone("due_at"))
                    .col(timestamp_with_time_zone("warn_at"))
                    .col(timestamp_with_time_zone("escalate_at"))
                    .col(timestamp_with_time_zone("red_card_at"))
                    // The next level's time while the clock runs and has levels left; NULL after.
                    .col(timestamp_with_time_zone_null("next_at"))
                    // Levels fired: 0 none, 1 warned, 2 breached, 3 escalated, 4 escalated again.
                    .col(integer("stage"))
                    .col(timestamp_with_time_zone_null("warned_at"))
                    .col(timestamp_with_time_zone_null("breached_at"))
                    .col(timestamp_with_time_zone_null("escalated_at"))
                    .col(integer("escalations"))
                    .col(timestamp_with_time_zone_null("stopped_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sla_clocks_identity")
                    .table("sla_clocks")
                    .col("case_id")
                    .col("kind")
                    .col("cycle")
                    .col("unit_code")
                    .col("attempt")
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The scheduler's scan: only clocks with a level still to fire are in this index, so a
        // scan that finds nothing due reads one index page however many cases are open.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX sla_clocks_next ON sla_clocks (next_at) WHERE next_at IS NOT NULL",
            )
            .await?;
        // "Overdue" lists: running clocks by due time, so the overdue set is a range scan.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX sla_clocks_running ON sla_clocks (due_at, case_id) \
                 WHERE stopped_at IS NULL",
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("sla_policies")
                    .col(string("clock"))
                    // Empty: any category / tier / severity.
                    .col(string("category_code"))
                    .col(string("tier"))
                    .col(string("severity"))
                    .col(string("duration"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(
                        Index::create()
                            .col("clock")
                            .col("category_code")
                            .col("tier")
                            .col("severity"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("routing_overrides")
                    .col(string("region_code"))
                    .col(string("category_code"))
                    .col(string("unit_code"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(Index::create().col("region_code").col("category_code"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("calendar_years")
                    .col(integer("year").primary_key())
                    .col(string("format"))
                    .col(timestamp_with_time_zone("imported_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("calendar_days")
                    // YYYY-MM-DD, Asia/Shanghai.
                    .col(string("date"))
                    // `data` (a year's published schedule) or `override` (an admin's single day).
                    .col(string("source"))
                    .col(string("kind"))
                    .col(string("name"))
                    .primary_key(Index::create().col("date").col("source"))
                    .to_owned(),
            )
            .await?;
        // Bumped by every change to the calendar, policies or routing overrides; replicas poll it.
        manager
            .exec_stmt(
                Query::insert()
                    .into_table("sequences")
                    .columns(["name", "value"])
                    .values_panic(["rules".into(), 0i64.into()])
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("stats_snapshots")
                    .col(string("month"))
                    .col(string("scope_kind"))
                    .col(string("scope_code"))
                    .col(text("stats"))
                    .col(timestamp_with_time_zone("computed_at"))
                    .primary_key(
                        Index::create()
                            .col("month")
                            .col("scope_kind")
                            .col("scope_code"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("job_runs")
                    .col(string("job"))
                    .col(string("period"))
                    .col(string("claimed_by"))
                    .col(timestamp_with_time_zone("claimed_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .primary_key(Index::create().col("job").col("period"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "job_runs",
            "stats_snapshots",
            "calendar_days",
            "calendar_years",
            "routing_overrides",
            "sla_policies",
            "sla_clocks",
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .exec_stmt(
                Query::delete()
                    .from_table("sequences")
                    .and_where(Expr::col("name").eq("rules"))
                    .to_owned(),
            )
            .await?;
        for column in ["evaluation", "satisfaction", "resolved_at"] {
            manager
                .alter_table(Table::alter().table("cases").drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}

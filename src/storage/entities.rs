//! sea-orm entities: one module per table, named as the migrations name them.

pub mod region {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "regions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub code: String,
        pub name: String,
        pub tier: String,
        pub parent_code: Option<String>,
        #[sea_orm(column_type = "Text")]
        pub geometry: String,
        pub retired: bool,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod unit {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "units")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub code: String,
        pub name: String,
        pub kind: String,
        pub region_code: String,
        pub retired: bool,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod member {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "members")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub sub: String,
        pub name: String,
        pub role: String,
        pub phone: String,
        pub unit_code: Option<String>,
        pub region_code: Option<String>,
        /// JSON array of grid codes.
        #[sea_orm(column_type = "Text")]
        pub grid_codes: String,
        pub retired: bool,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod category {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "categories")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub code: String,
        pub name: String,
        pub class_code: String,
        pub class_name: String,
        pub unit_kind: String,
        pub handling_tier: String,
        pub severity: String,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod directory_state {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "directory_state")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub version: i64,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod case {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "cases")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub code: String,
        pub status: String,
        pub source: String,
        pub category_code: String,
        pub severity: String,
        #[sea_orm(column_type = "Text")]
        pub description: String,
        pub city_code: Option<String>,
        pub district_code: Option<String>,
        pub township_code: Option<String>,
        pub community_code: Option<String>,
        pub grid_code: Option<String>,
        pub region_code: String,
        pub tier: String,
        pub unit_code: String,
        pub lat: Option<f64>,
        pub lon: Option<f64>,
        pub geo_cell: Option<i64>,
        pub reported_lat: Option<f64>,
        pub reported_lon: Option<f64>,
        pub reported_coord_system: Option<String>,
        pub accuracy_m: Option<f64>,
        pub snapped: bool,
        pub snap_distance_m: f64,
        #[sea_orm(column_type = "Text", nullable)]
        pub address: Option<String>,
        pub reporter_sub: String,
        pub reporter_phone: Option<String>,
        pub reporter_name: Option<String>,
        pub captured_at: Option<DateTimeUtc>,
        pub received_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub version: i64,
        pub cycle: i32,
        pub reopen_count: i32,
        pub escalation_level: i32,
        pub red_card: bool,
        pub merged_into: Option<String>,
        pub possible_duplicate_of: Option<String>,
        #[sea_orm(column_type = "Text", nullable)]
        pub resolution_text: Option<String>,
        pub external_source: Option<String>,
        pub external_id: Option<String>,
        pub client_report_id: Option<String>,
        pub request_hash: String,
        #[sea_orm(column_type = "Text")]
        pub attachment_ids: String,
        pub last_event_hash: String,
        pub resolved_at: Option<DateTimeUtc>,
        pub satisfaction: Option<String>,
        /// JSON: satisfaction, comment, by_sub, at.
        #[sea_orm(column_type = "Text", nullable)]
        pub evaluation: Option<String>,
        /// Since when the case waits on the reporter (the lead unit asked a question).
        pub awaiting_since: Option<DateTimeUtc>,
        /// When the case was last sent to its lead unit.
        pub dispatched_at: Option<DateTimeUtc>,
        /// JSON: the lead unit's request the holding center has not decided yet.
        #[sea_orm(column_type = "Text", nullable)]
        pub pending_request: Option<String>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod case_event {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "case_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i64,
        pub case_id: String,
        pub kind: String,
        pub actor_sub: String,
        pub actor_role: String,
        pub at: DateTimeUtc,
        pub from_status: Option<String>,
        pub to_status: Option<String>,
        #[sea_orm(column_type = "Text")]
        pub reason: String,
        #[sea_orm(column_type = "Text")]
        pub details: String,
        pub prev_hash: String,
        pub hash: String,
        /// JSON `domain::event::Audience`; NULL for events stored before audiences were.
        #[sea_orm(column_type = "Text", nullable)]
        pub audience: Option<String>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod attachment {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "attachments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub sha256: String,
        pub size_bytes: i64,
        pub content_type: String,
        pub file_name: String,
        pub owner_sub: String,
        pub created_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod case_assist {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "case_assists")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub case_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub unit_code: String,
        pub summoned_at: DateTimeUtc,
        pub checked_in_at: Option<DateTimeUtc>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod sla_clock {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sla_clocks")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub case_id: String,
        pub kind: String,
        pub cycle: i32,
        pub unit_code: String,
        pub attempt: i32,
        pub duration: String,
        pub started_at: DateTimeUtc,
        pub due_at: DateTimeUtc,
        pub warn_at: DateTimeUtc,
        pub escalate_at: DateTimeUtc,
        pub red_card_at: DateTimeUtc,
        pub next_at: Option<DateTimeUtc>,
        pub stage: i32,
        pub warned_at: Option<DateTimeUtc>,
        pub breached_at: Option<DateTimeUtc>,
        pub escalated_at: Option<DateTimeUtc>,
        pub escalations: i32,
        pub stopped_at: Option<DateTimeUtc>,
        pub paused_at: Option<DateTimeUtc>,
        pub extensions: i32,
        pub base_due_at: Option<DateTimeUtc>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod sla_policy {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sla_policies")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub clock: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub category_code: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub tier: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub severity: String,
        pub duration: String,
        pub updated_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod routing_override {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "routing_overrides")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub region_code: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub category_code: String,
        pub unit_code: String,
        pub updated_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod calendar_year {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "calendar_years")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub year: i32,
        pub format: String,
        pub imported_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod calendar_day {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "calendar_days")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub date: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub source: String,
        pub kind: String,
        pub name: String,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod stats_snapshot {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "stats_snapshots")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub month: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub scope_kind: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub scope_code: String,
        #[sea_orm(column_type = "Text")]
        pub stats: String,
        pub computed_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod job_run {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "job_runs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub job: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub period: String,
        pub claimed_by: String,
        pub claimed_at: DateTimeUtc,
        pub finished_at: Option<DateTimeUtc>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

//! Statistics through the real server: a month of cases with known outcomes, the live figures
//! checked against counts worked out by hand here, the monthly snapshot taken exactly once by
//! two replicas and answered from afterwards.

// Test code: a failed step should fail the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use common::*;
use gridcase::{
    domain::Role,
    proto::v1::{
        AcceptCaseRequest, CancelCaseRequest, Case, DispatchCaseRequest, EvaluateCaseRequest,
        GetStatsRequest, RecordFeedbackRequest, ResolveCaseRequest, ReturnCaseRequest,
        Satisfaction, Stats, case_service_client::CaseServiceClient, get_stats_request::Scope,
        stats_service_client::StatsServiceClient,
    },
    service::time::ManualTime,
};
use tonic::{Code, transport::Channel};

fn cases(app: &TestApp) -> CaseServiceClient<Channel> {
    CaseServiceClient::new(app.channel.clone())
}

/// One step of the lifecycle at a given time.
struct Steps<'a> {
    app: &'a TestApp,
    time: Arc<ManualTime>,
}

impl Steps<'_> {
    fn at(&self, t: DateTime<Utc>) -> &Self {
        self.time.set(t);
        self
    }

    async fn dispatch(&self, c: &Case, unit: &str) -> Case {
        let token = self.app.token(DISPATCHER, Role::Dispatcher);
        cases(self.app)
            .dispatch_case(authed(
                DispatchCaseRequest {
                    case_id: c.id.clone(),
                    expected_version: c.version,
                    unit_code: unit.into(),
                    reason: "分流".into(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap()
    }

    async fn accept(&self, c: &Case, staff: &str) -> Case {
        let token = self.app.token(staff, Role::UnitStaff);
        cases(self.app)
            .accept_case(authed(
                AcceptCaseRequest {
                    case_id: c.id.clone(),
                    expected_version: c.version,
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap()
    }

    async fn give_back(&self, c: &Case, staff: &str) -> Case {
        let token = self.app.token(staff, Role::UnitStaff);
        cases(self.app)
            .return_case(authed(
                ReturnCaseRequest {
                    case_id: c.id.clone(),
                    expected_version: c.version,
                    reason: "不属于本单位".into(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap()
    }

    async fn resolve(&self, c: &Case, staff: &str) -> Case {
        let token = self.app.token(staff, Role::UnitStaff);
        cases(self.app)
            .resolve_case(authed(
                ResolveCaseRequest {
                    case_id: c.id.clone(),
                    expected_version: c.version,
                    result: "已处理".into(),
                    attachment_ids: vec![],
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap()
    }

    async fn feedback(&self, c: &Case, staff: &str) -> Case {
        let token = self.app.token(staff, Role::UnitStaff);
        cases(self.app)
            .record_feedback(authed(
                RecordFeedbackRequest {
                    case_id: c.id.clone(),
                    expected_version: c.version,
                    note: "已告知".into(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap()
    }

    async fn evaluate(&self, c: &Case, satisfaction: Satisfaction) -> Case {
        let token = self.app.token(GRID_MEMBER, Role::GridMember);
        cases(self.app)
            .evaluate_case(authed(
                EvaluateCaseRequest {
                    case_id: c.id.clone(),
                    expected_version: c.version,
                    satisfaction: satisfaction.into(),
                    comment: String::new(),
                    by_callback: false,
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap()
    }

    async fn cancel(&self, c: &Case) -> Case {
        let token = self.app.token(DISPATCHER, Role::Dispatcher);
        cases(self.app)
            .cancel_case(authed(
                CancelCaseRequest {
                    case_id: c.id.clone(),
                    expected_version: c.version,
                    reason: "重复来电".into(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap()
    }

    async fn report(&self, category: &str) -> Case {
        submit(self.app, GRID_MEMBER, category, 35.1, 119.05).await
    }
}

async fn stats(
    app: &TestApp,
    sub: &str,
    request: GetStatsRequest,
) -> Result<(Stats, bool), tonic::Status> {
    let token = app.token(sub, Role::Supervisor);
    StatsServiceClient::new(app.channel.clone())
        .get_stats(authed(request, &token))
        .await
        .map(|r| {
            let r = r.into_inner();
            (r.stats.unwrap(), r.snapshot)
        })
}

fn november(scope: Scope) -> GetStatsRequest {
    GetStatsRequest {
        scope: Some(scope),
        from: Some(ts(shanghai(2025, 11, 1, 0, 0))),
        to: Some(ts(shanghai(2025, 12, 1, 0, 0))),
        month: String::new(),
        period: String::new(),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

async fn the_figures_match_counts_made_by_hand_and_the_month_is_snapshotted_once(backend: Backend) {
    let time = Arc::new(ManualTime::new(shanghai(2025, 11, 3, 9, 0)));
    let db = TestDb::new(&backend).await;
    // Scans only when the test says (and once at start-up), so the figures hold still.
    let quiet = |s: &mut gridcase::config::Settings| s.sla_tick = Duration::from_secs(3600);
    let app = TestApp::spawn_full(TestDb::shared(&db.url), quiet, Some(time.clone())).await;
    import(&app, &small_bundle()).await;
    let s = Steps {
        app: &app,
        time: time.clone(),
    };
    let day = |h, m| shanghai(2025, 11, 3, h, m); // a Monday, a working day

    // c1: community tier, settled by the township justice office in 2 working hours; 满意.
    let c1 = s.at(day(9, 0)).report("dispute.neighbor").await;
    let c1 = s.at(day(9, 1)).dispatch(&c1, "").await;
    let c1 = s.at(day(9, 2)).accept(&c1, JUSTICE_STAFF).await;
    let c1 = s.at(day(11, 0)).resolve(&c1, JUSTICE_STAFF).await;
    let c1 = s.at(day(11, 5)).feedback(&c1, JUSTICE_STAFF).await;
    s.at(day(11, 10))
        .evaluate(&c1, Satisfaction::Satisfied)
        .await;

    // c2: returned once, resolved, 不满意 → reopened (not resolved now).
    let c2 = s.at(day(9, 5)).report("dispute.neighbor").await;
    let c2 = s.at(day(9, 6)).dispatch(&c2, "").await;
    let c2 = s.at(day(9, 7)).accept(&c2, JUSTICE_STAFF).await;
    let c2 = s.at(day(9, 8)).give_back(&c2, JUSTICE_STAFF).await;
    let c2 = s.at(day(9, 9)).dispatch(&c2, "371102001.justice").await;
    let c2 = s.at(day(9, 10)).accept(&c2, JUSTICE_STAFF).await;
    let c2 = s.at(day(10, 0)).resolve(&c2, JUSTICE_STAFF).await;
    let c2 = s
        .at(day(10, 30))
        .evaluate(&c2, Satisfaction::Dissatisfied)
        .await;
    assert_eq!(c2.reopen_count, 1);

    // c3: a grid item nobody dispatches: escalated twice by its SLA clock.
    s.at(day(9, 20)).report("city.litter").await;

    // c4: urgent, at district tier, resolved after its 15-minute on-site clock ran out; 基本满意.
    let c4 = s.at(day(9, 10)).report("safety.fire_hazard").await;
    let c4 = s.at(day(9, 12)).dispatch(&c4, "371102.police").await;
    let c4 = s.at(day(9, 15)).accept(&c4, UNIT_STAFF).await;
    let c4 = s.at(day(9, 40)).resolve(&c4, UNIT_STAFF).await;
    let c4 = s.at(day(9, 45)).feedback(&c4, UNIT_STAFF).await;
    s.at(day(9, 50))
        .evaluate(&c4, Satisfaction::BasicallySatisfied)
        .await;

    // c5: cancelled at once.
    let c5 = s.at(day(9, 30)).report("dispute.neighbor").await;
    s.at(day(9, 31)).cancel(&c5).await;

    // Two days later the scan runs: c3's dispatch clock is past twice its time.
    time.set(shanghai(2025, 11, 5, 12, 0));
    app.supervisor.run_due().await.unwrap();

    // c6: received in December, outside the month.
    s.at(shanghai(2025, 12, 1, 0, 5))
        .report("dispute.neighbor")
        .await;
    // The figures as of 5 November.
    time.set(shanghai(2025, 11, 5, 12, 0));

    // Worked out by hand from the steps above.
    let (city, snapshot) = stats(
        &app,
        SUPERVISOR,
        november(Scope::RegionCode("371100".into())),
    )
    .await
    .unwrap();
    assert!(!snapshot);
    assert_eq!(city.received, 5, "c1..c5");
    assert_eq!(city.resolved, 2, "c1, c4");
    assert!(close(city.resolution_rate, 2.0 / 5.0));
    assert!(
        close(city.on_time_rate, 1.0 / 2.0),
        "c4 overran its on-site clock"
    );
    assert_eq!(city.overdue, 2, "c3 (dispatch), c4 (on-site)");
    assert!(
        close(city.mean_handling_working_hours, (2.0 + 0.5) / 2.0),
        "{}",
        city.mean_handling_working_hours
    );
    assert_eq!(city.evaluated, 3, "c1, c2, c4");
    assert!(close(city.satisfaction_rate, 2.0 / 3.0));
    assert!(close(city.local_resolution_rate, 1.0 / 2.0), "c1 only");
    assert_eq!(city.escalations, 2, "c3, twice");
    assert_eq!(city.returns, 1, "c2");
    assert_eq!(city.reopens, 1, "c2");

    // A unit: the justice office led c1, c2 and c5.
    let (justice, _) = stats(
        &app,
        SUPERVISOR,
        november(Scope::UnitCode("371102001.justice".into())),
    )
    .await
    .unwrap();
    assert_eq!(justice.received, 3);
    assert_eq!(justice.resolved, 1);
    assert_eq!(justice.returns, 1);
    assert!(close(justice.on_time_rate, 1.0));

    // Out of the caller's region, or malformed: refused, nothing computed.
    let denied = stats(
        &app,
        GRID2_SUPERVISOR,
        november(Scope::RegionCode("371100".into())),
    )
    .await
    .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    for request in [
        GetStatsRequest {
            month: "2025-13".into(),
            ..GetStatsRequest::default()
        },
        GetStatsRequest {
            from: Some(ts(shanghai(2025, 11, 1, 0, 0))),
            ..GetStatsRequest::default()
        },
        GetStatsRequest {
            scope: Some(Scope::RegionCode("999999".into())),
            month: "2025-11".into(),
            ..GetStatsRequest::default()
        },
    ] {
        let status = stats(&app, SUPERVISOR, request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }

    // The 1st of December: by now c2's reopened resolve clock (7 working days from 3
    // November) has run past due too: "overdue" is as of the moment asked.
    let other = TestApp::spawn_full(TestDb::shared(&db.url), quiet, Some(time.clone())).await;
    time.set(shanghai(2025, 12, 1, 0, 5));
    let (city_dec1, _) = stats(
        &app,
        SUPERVISOR,
        november(Scope::RegionCode("371100".into())),
    )
    .await
    .unwrap();
    assert_eq!(city_dec1.overdue, 3, "c2, c3, c4");
    assert_eq!(
        Stats {
            overdue: city.overdue,
            ..city_dec1
        },
        city,
        "nothing else moved"
    );
    // The monthly job, started on two replicas at once, runs once.
    let (a, b) = tokio::join!(app.stats.run_monthly(), other.stats.run_monthly());
    let ran = [a.unwrap(), b.unwrap()];
    assert_eq!(ran.iter().filter(|r| **r).count(), 1, "{ran:?}");
    assert!(!app.stats.run_monthly().await.unwrap(), "taken already");
    // Later changes do not move the snapshot; the month is answered from it.
    s.at(shanghai(2025, 12, 2, 9, 0));
    let month = |scope| GetStatsRequest {
        scope: Some(scope),
        month: "2025-11".into(),
        ..GetStatsRequest::default()
    };
    let (snap, from_snapshot) = stats(
        &other,
        SUPERVISOR,
        month(Scope::RegionCode("371100".into())),
    )
    .await
    .unwrap();
    assert!(from_snapshot);
    assert_eq!(snap, city_dec1);
    let (grid, from_snapshot) = stats(
        &other,
        SUPERVISOR,
        month(Scope::RegionCode("371102001001001".into())),
    )
    .await
    .unwrap();
    assert!(from_snapshot);
    assert_eq!(grid.received, 5, "every case of the month lies in grid 01");
    // A month with no snapshot is computed live.
    let (dec, from_snapshot) = stats(
        &other,
        SUPERVISOR,
        GetStatsRequest {
            scope: Some(Scope::RegionCode("371100".into())),
            month: "2025-12".into(),
            ..GetStatsRequest::default()
        },
    )
    .await
    .unwrap();
    assert!(!from_snapshot);
    assert_eq!(dec.received, 1, "c6");
    app.stop().await.unwrap();
    other.stop().await.unwrap();
}

/// 季通报、年考核: a quarter's and a year's figures are those of the cases received in them, so
/// their counts are the sums of their months'; the job on the 1st after a quarter and a year
/// snapshots them once, and GetStats answers from the snapshots.
async fn quarters_and_years_sum_their_months_and_are_snapshotted_once(backend: Backend) {
    // Time only moves forward from here: the start-up catch-up takes no period the test uses.
    let time = Arc::new(ManualTime::new(shanghai(2025, 9, 29, 8, 0)));
    let db = TestDb::new(&backend).await;
    let quiet = |s: &mut gridcase::config::Settings| s.sla_tick = Duration::from_secs(3600);
    let app = TestApp::spawn_full(TestDb::shared(&db.url), quiet, Some(time.clone())).await;
    let other = TestApp::spawn_full(TestDb::shared(&db.url), quiet, Some(time.clone())).await;
    import(&app, &small_bundle()).await;
    let s = Steps {
        app: &app,
        time: time.clone(),
    };
    // Q4 2025: October 2 cases (one resolved), November 1, December 3 (one resolved); one in
    // Q3 (September) and one in 2026 outside both.
    let mut received = Vec::new();
    for (month, day, resolve) in [
        (9, 29, true),
        (10, 9, true),
        (10, 20, false),
        (11, 12, false),
        (12, 1, true),
        (12, 15, false),
        (12, 30, false),
    ] {
        let c = s
            .at(shanghai(2025, month, day, 9, 0))
            .report("dispute.neighbor")
            .await;
        if resolve {
            let c = s
                .at(shanghai(2025, month, day, 9, 1))
                .dispatch(&c, "")
                .await;
            let c = s
                .at(shanghai(2025, month, day, 9, 2))
                .accept(&c, JUSTICE_STAFF)
                .await;
            s.at(shanghai(2025, month, day, 11, 0))
                .resolve(&c, JUSTICE_STAFF)
                .await;
        }
        received.push(c);
    }
    s.at(shanghai(2026, 1, 2, 9, 0))
        .report("dispute.neighbor")
        .await;
    let city = || Some(Scope::RegionCode("371100".into()));
    let of = |period: &str| GetStatsRequest {
        scope: city(),
        period: period.into(),
        ..GetStatsRequest::default()
    };
    let mut months = Vec::new();
    for m in ["2025-10", "2025-11", "2025-12"] {
        let (figures, snapshot) = stats(&app, SUPERVISOR, of(m)).await.unwrap();
        assert!(!snapshot);
        months.push(figures);
    }
    assert_eq!(
        months
            .iter()
            .map(|m| (m.received, m.resolved))
            .collect::<Vec<_>>(),
        [(2, 1), (1, 0), (3, 1)]
    );
    let (quarter, snapshot) = stats(&app, SUPERVISOR, of("2025-Q4")).await.unwrap();
    assert!(!snapshot, "live before the quarter's snapshot");
    assert_eq!(
        quarter.received,
        months.iter().map(|m| m.received).sum::<i64>()
    );
    assert_eq!(
        quarter.resolved,
        months.iter().map(|m| m.resolved).sum::<i64>()
    );
    assert!(close(quarter.resolution_rate, 2.0 / 6.0), "{quarter:?}");
    let (q3, _) = stats(&app, SUPERVISOR, of("2025-Q3")).await.unwrap();
    assert_eq!((q3.received, q3.resolved), (1, 1));
    let (year, _) = stats(&app, SUPERVISOR, of("2025")).await.unwrap();
    assert_eq!(
        (year.received, year.resolved),
        (
            q3.received + quarter.received,
            q3.resolved + quarter.resolved
        )
    );
    // `month` still names a month; a bad period is INVALID_ARGUMENT naming it.
    let (november, _) = stats(
        &app,
        SUPERVISOR,
        GetStatsRequest {
            scope: city(),
            month: "2025-11".into(),
            ..GetStatsRequest::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(november, months[1]);
    for bad in ["2025-Q5", "2025Q4", "25"] {
        let status = stats(&app, SUPERVISOR, of(bad)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}");
        assert!(status.message().starts_with("period"), "{status:?}");
    }

    // 00:10 on 1 January 2026: the job, on two replicas at once, takes December's, Q4's and
    // 2025's snapshots, each once.
    time.set(shanghai(2026, 1, 1, 0, 10));
    let (a, b) = tokio::join!(app.stats.run_monthly(), other.stats.run_monthly());
    assert!(
        a.unwrap() ^ b.unwrap(),
        "December's snapshot taken exactly once"
    );
    let snapshots = |period: &'static str| {
        let url = db.url.clone();
        async move {
            use sea_orm::ConnectionTrait;
            let db = gridcase::storage::connect(&url, 1).await.unwrap();
            let row = db
                .query_one_raw(sea_orm::Statement::from_string(
                    db.get_database_backend(),
                    format!(
                        "SELECT COUNT(*) FROM stats_snapshots WHERE month = '{period}' \
                         AND scope_kind = 'region' AND scope_code = '371100'"
                    ),
                ))
                .await
                .unwrap()
                .unwrap();
            row.try_get_by_index::<i64>(0).unwrap()
        }
    };
    for period in ["2025-12", "2025-Q4", "2025"] {
        assert_eq!(snapshots(period).await, 1, "{period}");
    }
    // Later changes do not move them: a case resolved now leaves Q4's snapshot as it was.
    let c = s
        .at(shanghai(2026, 1, 1, 8, 0))
        .dispatch(&received[2], "")
        .await;
    let c = s
        .at(shanghai(2026, 1, 1, 8, 1))
        .accept(&c, JUSTICE_STAFF)
        .await;
    s.at(shanghai(2026, 1, 1, 9, 0))
        .resolve(&c, JUSTICE_STAFF)
        .await;
    let (frozen, snapshot) = stats(&app, SUPERVISOR, of("2025-Q4")).await.unwrap();
    assert!(snapshot);
    assert_eq!(frozen.resolved, quarter.resolved);
    let (frozen, snapshot) = stats(&app, SUPERVISOR, of("2025")).await.unwrap();
    assert!(snapshot);
    assert_eq!(frozen.received, year.received);
    app.stop().await.unwrap();
    other.stop().await.unwrap();
}

/// 季通报: a region's units, and its child regions, ranked by a figure over a period, with the
/// practice's targets marked; scoped to the caller's region.
async fn units_and_regions_are_ranked_with_their_targets(backend: Backend) {
    use gridcase::proto::v1::{RankFigure, RankUnitsRequest, RankUnitsResponse};
    let time = Arc::new(ManualTime::new(shanghai(2025, 11, 3, 8, 0)));
    let quiet = |s: &mut gridcase::config::Settings| s.sla_tick = Duration::from_secs(3600);
    let app = TestApp::spawn_full(TestDb::new(&backend).await, quiet, Some(time.clone())).await;
    import(&app, &small_bundle()).await;
    let s = Steps {
        app: &app,
        time: time.clone(),
    };
    let day = |h, m| shanghai(2025, 11, 3, h, m);
    for minute in [0, 10] {
        let c = s.at(day(9, minute)).report("dispute.neighbor").await;
        let c = s.at(day(9, minute + 1)).dispatch(&c, "").await;
        let c = s.at(day(9, minute + 2)).accept(&c, JUSTICE_STAFF).await;
        s.at(day(11, minute)).resolve(&c, JUSTICE_STAFF).await;
    }
    let fire = s.at(day(9, 30)).report("safety.fire_hazard").await;
    let fire = s.at(day(9, 31)).dispatch(&fire, "371102.police").await;
    s.at(day(9, 32)).accept(&fire, UNIT_STAFF).await;
    s.at(day(9, 40)).report("city.litter").await;
    // A case of December is not in November's ranking.
    s.at(shanghai(2025, 12, 1, 9, 0))
        .report("dispute.neighbor")
        .await;

    let rank = |sub: &'static str, request: RankUnitsRequest| {
        let app = &app;
        async move {
            let token = app.token(sub, Role::Supervisor);
            StatsServiceClient::new(app.channel.clone())
                .rank_units(authed(request, &token))
                .await
                .map(|r| r.into_inner())
        }
    };
    let request = |region: &str, figure: RankFigure, regions: bool| RankUnitsRequest {
        region_code: region.into(),
        period: "2025-11".into(),
        figure: figure.into(),
        regions,
    };
    let lines = |r: &RankUnitsResponse| -> Vec<(i32, String, i64, i64)> {
        r.entries
            .iter()
            .map(|e| {
                let s = e.stats.as_ref().unwrap();
                (e.rank, e.code.clone(), s.received, s.resolved)
            })
            .collect()
    };
    let units = rank(
        SUPERVISOR,
        request("371102", RankFigure::ResolutionRate, false),
    )
    .await
    .unwrap();
    let ranked = lines(&units);
    assert_eq!(
        ranked[..3],
        [
            (1, "371102001.justice".to_owned(), 2, 2),
            (2, "371102.police".to_owned(), 1, 0),
            (2, "371102001001001.center".to_owned(), 1, 0),
        ],
        "{ranked:?}"
    );
    // The district's two units and the grid's center, which led the litter case; nothing else.
    assert_eq!(ranked.len(), 3, "{ranked:?}");
    // The township's justice office: resolution 100 % against 90 %, all settled locally.
    let justice: Vec<(String, f64, bool)> = units.entries[0]
        .targets
        .iter()
        .map(|t| (t.figure.clone(), t.target, t.met))
        .collect();
    assert_eq!(
        justice,
        [
            ("resolution_rate".to_owned(), 0.90, true),
            ("local_resolution_rate".to_owned(), 0.85, true),
        ]
    );
    assert!(
        units.entries[1]
            .targets
            .iter()
            .any(|t| t.figure == "resolution_rate" && !t.met),
        "the police resolved nothing: {:?}",
        units.entries[1]
    );
    // By overdue count, fewest first (as of now, 1 December): the police's 15-minute on-site
    // clock and the litter's dispatch clock ran out; the justice office resolved both its
    // cases in time but never recorded the 24-hour feedback of either.
    let by_overdue = rank(SUPERVISOR, request("371102", RankFigure::Overdue, false))
        .await
        .unwrap();
    let overdue: Vec<(i32, &str, i64)> = by_overdue
        .entries
        .iter()
        .map(|e| (e.rank, e.code.as_str(), e.stats.as_ref().unwrap().overdue))
        .collect();
    assert_eq!(
        overdue,
        [
            (1, "371102.police", 1),
            (1, "371102001001001.center", 1),
            (3, "371102001.justice", 2),
        ]
    );

    // The city's districts: one, with every case of November; 50 % against the district's 93 %.
    let regions = rank(SUPERVISOR, request("", RankFigure::OnTimeRate, true))
        .await
        .unwrap();
    assert_eq!(lines(&regions), [(1, "371102".to_owned(), 4, 2)]);
    let resolution = regions.entries[0]
        .targets
        .iter()
        .find(|t| t.figure == "resolution_rate")
        .unwrap();
    assert_eq!((resolution.target, resolution.met), (0.93, false));

    // Refusals: outside the caller's region, a grid's sub-regions, no period, an unknown figure.
    let outside = rank(
        GRID2_SUPERVISOR,
        request("371102", RankFigure::OnTimeRate, false),
    )
    .await
    .unwrap_err();
    assert_eq!(outside.code(), Code::PermissionDenied, "{outside:?}");
    let grid = rank(
        SUPERVISOR,
        request("371102001001001", RankFigure::OnTimeRate, true),
    )
    .await
    .unwrap_err();
    assert_eq!(grid.code(), Code::InvalidArgument, "{grid:?}");
    let mut no_period = request("371102", RankFigure::OnTimeRate, false);
    no_period.period.clear();
    let no_period = rank(SUPERVISOR, no_period).await.unwrap_err();
    assert_eq!(no_period.code(), Code::InvalidArgument);
    assert!(no_period.message().starts_with("period"), "{no_period:?}");
    let mut odd = request("371102", RankFigure::OnTimeRate, false);
    odd.figure = 99;
    let odd = rank(SUPERVISOR, odd).await.unwrap_err();
    assert_eq!(odd.code(), Code::InvalidArgument);
    app.stop().await.unwrap();
}

on_both_databases!(
    units_and_regions_are_ranked_with_their_targets,
    the_figures_match_counts_made_by_hand_and_the_month_is_snapshotted_once,
    quarters_and_years_sum_their_months_and_are_snapshotted_once,
);

-- pgbench baseline for intake: one report = one transaction inserting the rows gridcase
-- stores for a report (the case, its two first events, its register and dispatch SLA clocks),
-- with nothing else: no validation,
-- no locating, no routing, no idempotency check, no counters. Run by bench/intake.sh.
\set k random(1, 1000000000000000000)
BEGIN;
INSERT INTO cases (id, code, status, source, category_code, severity, description,
  city_code, district_code, township_code, community_code, grid_code, region_code, tier, unit_code,
  lat, lon, reported_lat, reported_lon, reported_coord_system, accuracy_m, snapped, snap_distance_m,
  address, reporter_sub, reporter_phone, reporter_name, captured_at, received_at, updated_at,
  version, cycle, reopen_count, escalation_level, red_card, merged_into, possible_duplicate_of,
  resolution_text, external_source, external_id, client_report_id, request_hash, attachment_ids,
  last_event_hash)
VALUES (gen_random_uuid()::text, 'B' || gen_random_uuid()::text, 'registered', 'handset',
  'dispute.neighbor', 'general', '压测上报 baseline', '371100', '371102', '371102001',
  '371102001001', '371102001001001', '371102001', 'township', '371102001.justice',
  35.4, 119.4, 35.4, 119.4, 'wgs84', 8, false, 0, NULL, 'gm-371102001001001', '13800000000',
  '网格员', NULL, now(), now(), 1, 1, 0, 0, false, NULL, NULL, NULL, NULL, NULL,
  gen_random_uuid()::text, md5(:k::text) || md5(:k::text), '[]', md5(:k::text));
INSERT INTO case_events (seq, case_id, kind, actor_sub, actor_role, at, from_status, to_status,
  reason, details, prev_hash, hash)
VALUES (nextval('bench_event_seq'), 'b' || :k, 'submitted', 'gm-371102001001001', 'grid_member',
  now(), NULL, 'submitted', '', '{"source":"handset"}', 'genesis', md5(:k::text)),
  (nextval('bench_event_seq'), 'b' || :k, 'registered', 'gm-371102001001001', 'grid_member',
  now(), 'submitted', 'registered', 'grid 371102001001001; lead unit 371102001.justice',
  '{"unit_code":"371102001.justice"}', md5(:k::text), md5((:k + 1)::text));
INSERT INTO sla_clocks (case_id, kind, cycle, unit_code, attempt, duration, started_at, due_at,
  warn_at, escalate_at, red_card_at, next_at, stage, escalations, stopped_at)
VALUES ('b' || :k, 'register', 1, '', 0, '1h', now(), now() + interval '1 hour',
  now() + interval '48 minutes', now() + interval '90 minutes', now() + interval '2 hours', NULL,
  0, 0, now()),
  ('b' || :k, 'dispatch', 1, '', 0, '24h', now(), now() + interval '24 hours',
  now() + interval '1152 minutes', now() + interval '36 hours', now() + interval '48 hours',
  now() + interval '1152 minutes', 0, 0, NULL);
COMMIT;

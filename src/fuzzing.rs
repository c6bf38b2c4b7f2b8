//! One entry point for fuzzers (`fuzz/`, `cargo fuzz run request`) and for the tests that replay
//! what they find: bytes as a request body would bring them, decoded by prost as tonic does,
//! then checked by the very functions the services check requests with, up to the point where
//! a database would be needed. Whatever the bytes, nothing may panic, hang or allocate without
//! bound, and whatever passes the checks must hold what the checks promise.

use prost::Message;

use crate::{
    domain::{bundle, calendar, directory::Directory},
    grpc::convert::{coord_system, page_size, position, time_of, urgency},
    proto::v1 as pb,
    service::{
        directory::check_position,
        intake::{MAX_TEXT_CHARS, check_text, convert},
    },
};

/// Decodes `data[1..]` as the request the first byte picks, and validates it.
pub fn request(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 7 {
        0 => {
            if let Ok(r) = pb::SubmitReportRequest::decode(body) {
                report(&r);
            }
        }
        1 => {
            if let Ok(r) = pb::IngestTicketRequest::decode(body) {
                ticket(&r);
            }
        }
        2 => {
            if let Ok(r) = pb::LocateRequest::decode(body)
                && coord_system(r.coord_system).is_ok()
                && check_position(r.lat, r.lon).is_ok()
            {
                assert!((-90.0..=90.0).contains(&r.lat) && (-180.0..=180.0).contains(&r.lon));
            }
        }
        3 => {
            if let Ok(r) = pb::ImportDirectoryRequest::decode(body) {
                let _ = bundle::parse(&r.bundle, &Directory::empty());
            }
        }
        4 => {
            if let Ok(r) = pb::ImportCalendarRequest::decode(body) {
                let _ = calendar::parse_holiday_cn_json(&r.data);
                let _ = calendar::parse_ics(&r.data);
            }
        }
        5 => {
            if let Ok(r) = pb::ListCasesRequest::decode(body)
                && let Ok(size) = page_size(r.page.as_ref())
            {
                assert!(size >= 1);
            }
        }
        _ => {
            // Raw bytes straight into the parsers that take files.
            let _ = bundle::parse(body, &Directory::empty());
            let _ = calendar::parse_ics(body);
        }
    }
}

/// The checks `SubmitReport` makes before it needs the directory or the database.
fn report(r: &pb::SubmitReportRequest) {
    let _ = uuid::Uuid::parse_str(&r.client_report_id);
    text(&r.description);
    let _ = time_of("captured_at", r.captured_at.as_ref());
    let _ = urgency(r.urgency);
    place(r.location.as_ref());
}

/// The checks `IngestTicket` makes before it needs the directory or the database.
fn ticket(r: &pb::IngestTicketRequest) {
    text(&r.description);
    let _ = check_text("caller_name", &r.caller_name, false);
    let _ = check_text("address", &r.address, false);
    let _ = time_of("received_at", r.received_at.as_ref());
    let _ = urgency(r.urgency);
    place(r.location.as_ref());
}

fn text(description: &str) {
    if let Ok(kept) = check_text("description", description, true) {
        assert!(!kept.is_empty() && kept.chars().count() <= MAX_TEXT_CHARS);
    }
}

fn place(location: Option<&pb::Location>) {
    if let Ok(Some(p)) = position(location)
        && let Ok(converted) = convert(p)
    {
        // Whatever passed is a real place on the earth, in WGS-84 too.
        assert!(converted.lat.is_finite() && converted.lon.is_finite());
        assert!((-90.0..=90.0).contains(&converted.lat), "{converted:?}");
        assert!((-180.0..=180.0).contains(&converted.lon), "{converted:?}");
        assert!(converted.accuracy_m.is_finite() && converted.accuracy_m >= 0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzz target's short run for every `cargo test`: seeds that reach each branch, then
    /// 20,000 pseudo-random inputs made from them (a fixed xorshift, so a failure repeats).
    #[test]
    fn requests_of_any_bytes_are_checked_without_a_panic() {
        let located = pb::Location {
            lat: 35.4,
            lon: 119.5,
            coord_system: 2,
            accuracy_m: 5.0,
        };
        let mut seeds: Vec<Vec<u8>> = vec![
            [vec![0], pb::SubmitReportRequest {
                client_report_id: uuid::Uuid::nil().to_string(),
                description: "路灯损坏".into(),
                location: Some(located),
                ..Default::default()
            }
            .encode_to_vec()]
            .concat(),
            [vec![1], pb::IngestTicketRequest {
                description: "x".into(),
                location: Some(pb::Location { lat: 89.9999, lon: 180.0, ..located }),
                ..Default::default()
            }
            .encode_to_vec()]
            .concat(),
            [vec![2], pb::LocateRequest { lat: -90.0, lon: -180.0, coord_system: 3 }.encode_to_vec()].concat(),
            [vec![3], pb::ImportDirectoryRequest {
                bundle: br#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":null}]}"#.to_vec(),
                ..Default::default()
            }
            .encode_to_vec()]
            .concat(),
            [vec![4], pb::ImportCalendarRequest {
                format: 2,
                data: b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20260101\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n".to_vec(),
            }
            .encode_to_vec()]
            .concat(),
            vec![5, 0x0a, 0x02, 0x08, 0x00],
            b"\x06{\"year\":2026,\"days\":[{\"date\":\"2026-01-01\",\"isOffDay\":true}]}".to_vec(),
        ];
        for seed in seeds.clone() {
            request(&seed);
        }
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20_000 {
            let mut input = seeds[round % seeds.len()].clone();
            for _ in 0..=(next() % 8) {
                let at = usize::try_from(next()).unwrap_or(0) % (input.len() + 1);
                match next() % 4 {
                    0 if at < input.len() => input[at] = next() as u8,
                    1 => input.insert(at, next() as u8),
                    2 if at < input.len() => {
                        input.remove(at);
                    }
                    _ => input.truncate(at.max(1)),
                }
            }
            request(&input);
            if round % 1_000 == 0 {
                seeds.push(input);
            }
        }
    }
}

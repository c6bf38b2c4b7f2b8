//! Which roles reach which RPC (DESIGN.md "Access"), in one table checked before any handler.
//!
//! Scopes (which cases, which regions) are the domain's business; this table only says whether a
//! role may call a method at all. A `gridcase.v1` method missing here is refused to everyone, and
//! a test checks that every method of the contract has a row.

use crate::domain::Role::{self, *};

const EVERYONE: &[Role] = &Role::ALL;
const PEOPLE_AND_GATEWAYS: &[Role] = &[GridMember, UnitStaff, Dispatcher, Supervisor, Gateway];

/// `(full gRPC path, roles allowed)`.
pub const RPC_ROLES: &[(&str, &[Role])] = &[
    // Directory: locating and browsing the tree are open to every role.
    ("/gridcase.v1.DirectoryService/Locate", EVERYONE),
    ("/gridcase.v1.DirectoryService/GetRegion", EVERYONE),
    ("/gridcase.v1.DirectoryService/ListRegions", EVERYONE),
    ("/gridcase.v1.DirectoryService/GetRegionShapes", EVERYONE),
    ("/gridcase.v1.DirectoryService/WhoAmI", EVERYONE),
    // Handsets and gateways need the taxonomy to report at all.
    ("/gridcase.v1.DirectoryService/ListCategories", EVERYONE),
    ("/gridcase.v1.DirectoryService/ImportDirectory", &[Admin]),
    // Dispatchers choose among units; supervisors read them.
    (
        "/gridcase.v1.DirectoryService/ListUnits",
        &[Dispatcher, Supervisor, Admin],
    ),
    // Dispatchers see whom they dispatch to; supervisors whom they supervise.
    (
        "/gridcase.v1.DirectoryService/ListMembers",
        &[Dispatcher, Supervisor, Admin],
    ),
    ("/gridcase.v1.DirectoryService/ImportCalendar", &[Admin]),
    ("/gridcase.v1.DirectoryService/SetCalendarDay", &[Admin]),
    (
        "/gridcase.v1.DirectoryService/GetCalendar",
        &[Dispatcher, Supervisor, Admin],
    ),
    ("/gridcase.v1.DirectoryService/SetSlaPolicy", &[Admin]),
    ("/gridcase.v1.DirectoryService/SetRoutingOverride", &[Admin]),
    // Admins change the configuration; dispatchers work to the SLA clocks and supervisors
    // supervise by them, so both read the policy as they read the calendar (GetCalendar). It
    // is one table for the whole deployment: nothing in it belongs to a region.
    (
        "/gridcase.v1.DirectoryService/ListSlaPolicies",
        &[Dispatcher, Supervisor, Admin],
    ),
    // Overrides decide which unit leads the cases dispatchers triage and supervisors read; as
    // with ListUnits, those two see only the overrides that route cases in their region's
    // subtree (the directory service confines them), admins all.
    (
        "/gridcase.v1.DirectoryService/ListRoutingOverrides",
        &[Dispatcher, Supervisor, Admin],
    ),
    // Reports: grid members from handsets, citizens through the mini-program gateway.
    (
        "/gridcase.v1.ReportService/SubmitReport",
        &[GridMember, Gateway],
    ),
    // Unit staff attach photos to progress and results.
    (
        "/gridcase.v1.ReportService/UploadAttachment",
        &[GridMember, UnitStaff, Gateway],
    ),
    (
        "/gridcase.v1.ReportService/ListMyReports",
        &[GridMember, Gateway],
    ),
    (
        "/gridcase.v1.ReportService/AddSupplement",
        &[GridMember, Gateway],
    ),
    // Cases: everyone with a scope reads within it.
    ("/gridcase.v1.CaseService/GetCase", PEOPLE_AND_GATEWAYS),
    ("/gridcase.v1.CaseService/ListCases", PEOPLE_AND_GATEWAYS),
    ("/gridcase.v1.CaseService/ListCasePins", PEOPLE_AND_GATEWAYS),
    // ListCases' cases as CSV: the same callers, the same scope.
    ("/gridcase.v1.CaseService/ExportCases", PEOPLE_AND_GATEWAYS),
    ("/gridcase.v1.CaseService/DispatchCase", &[Dispatcher]),
    ("/gridcase.v1.CaseService/AcceptCase", &[UnitStaff]),
    ("/gridcase.v1.CaseService/ReturnCase", &[UnitStaff]),
    ("/gridcase.v1.CaseService/UpdateProgress", &[UnitStaff]),
    // Grid members settle grid-tier items on the spot (小事不出网格).
    (
        "/gridcase.v1.CaseService/ResolveCase",
        &[UnitStaff, GridMember],
    ),
    (
        "/gridcase.v1.CaseService/RecordFeedback",
        &[UnitStaff, Dispatcher],
    ),
    // The reporter; or, on the reporter's word after a callback (回访), the gateway that
    // brought the case or a dispatcher of the center holding it.
    (
        "/gridcase.v1.CaseService/EvaluateCase",
        &[GridMember, Gateway, Dispatcher],
    ),
    ("/gridcase.v1.CaseService/CloseCase", &[Dispatcher]),
    ("/gridcase.v1.CaseService/MergeCase", &[Dispatcher]),
    ("/gridcase.v1.CaseService/CancelCase", &[Dispatcher]),
    ("/gridcase.v1.CaseService/WhistleCase", &[Dispatcher]),
    ("/gridcase.v1.CaseService/EscalateCase", &[Dispatcher]),
    // The lead unit's staff only (`workflow::apply` checks the unit).
    ("/gridcase.v1.CaseService/AwaitReporter", &[UnitStaff]),
    ("/gridcase.v1.CaseService/ResumeCase", &[UnitStaff]),
    ("/gridcase.v1.CaseService/RequestExtension", &[UnitStaff]),
    // The holding center decides what the lead unit asks (`workflow::apply` checks the role;
    // the scope holds the case).
    ("/gridcase.v1.CaseService/DecideExtension", &[Dispatcher]),
    ("/gridcase.v1.CaseService/DecideReturn", &[Dispatcher]),
    ("/gridcase.v1.GatewayService/IngestTicket", &[Gateway]),
    // Everyone follows what they may see (the scope rule of ListCases; admins all).
    ("/gridcase.v1.GatewayService/WatchEvents", EVERYONE),
    (
        "/gridcase.v1.StatsService/GetStats",
        &[Supervisor, Dispatcher],
    ),
    (
        "/gridcase.v1.StatsService/RankUnits",
        &[Supervisor, Dispatcher],
    ),
    // RankUnits' entries as CSV.
    (
        "/gridcase.v1.StatsService/ExportStats",
        &[Supervisor, Dispatcher],
    ),
    // Within the caller's region (the scope rule of ListCases).
    (
        "/gridcase.v1.StatsService/ListAlerts",
        &[Supervisor, Dispatcher],
    ),
];

/// Paths that need no token: health and reflection.
pub fn is_open(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.v1.ServerReflection/")
        || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")
}

/// What the table says of `role` calling `path`.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Denied,
    /// Not a gridcase method at all: the router answers UNIMPLEMENTED.
    UnknownMethod,
}

pub fn decide(path: &str, role: Role) -> Decision {
    match RPC_ROLES.iter().find(|(p, _)| *p == path) {
        Some((_, roles)) if roles.contains(&role) => Decision::Allowed,
        Some(_) => Decision::Denied,
        None if path.starts_with("/gridcase.") => Decision::Denied,
        None => Decision::UnknownMethod,
    }
}

pub fn roles_for(path: &str) -> Option<&'static [Role]> {
    RPC_ROLES.iter().find(|(p, _)| *p == path).map(|(_, r)| *r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Every method of every `gridcase.v1` service, read from the compiled contract.
    fn contract_methods() -> Vec<String> {
        let fds = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)
            .expect("descriptor set decodes");
        let mut out = Vec::new();
        for file in fds.file {
            for service in &file.service {
                for method in &service.method {
                    out.push(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
        out
    }

    #[test]
    fn every_method_of_the_contract_has_a_row_and_every_row_a_method() {
        let methods = contract_methods();
        assert!(methods.len() > 30, "contract has {} methods", methods.len());
        for m in &methods {
            assert!(roles_for(m).is_some(), "{m} has no row in RPC_ROLES");
        }
        for (p, _) in RPC_ROLES {
            assert!(methods.iter().any(|m| m == p), "{p} is not in the contract");
        }
    }

    #[test]
    fn an_unlisted_gridcase_method_is_refused_to_everyone() {
        for role in Role::ALL {
            assert_eq!(
                decide("/gridcase.v1.CaseService/DropTables", role),
                Decision::Denied
            );
        }
    }

    #[test]
    fn health_and_reflection_are_open_and_nothing_else_is() {
        assert!(is_open("/grpc.health.v1.Health/Check"));
        assert!(is_open(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!is_open("/gridcase.v1.DirectoryService/Locate"));
    }
}

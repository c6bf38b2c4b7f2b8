//! gridcase: the backend of grid-based social governance (网格化管理). Reports come in from
//! grid members' handsets and citizens' gateways; gridcase locates each in a grid, routes it to
//! a tier and a responsible unit, and follows it to the end.
//!
//! # Layout
//!
//! - [`config`]: typed settings: defaults, then a TOML file, then `GRIDCASE_*` variables.
//! - [`console`]: the web console's embedded assets, served on the gRPC port.
//! - [`telemetry`]: tracing subscriber, text or JSON.
//! - [`proto`]: the generated `gridcase.v1` contract.
//! - [`auth`]: JWT verification and minting, the role table, the tower layer in front of all RPCs.
//! - [`grpc`]: the thin gRPC layer; maps domain errors to status codes in one place.
//! - [`service`]: application services, one call per use case, combining domain and storage.
//! - [`domain`]: the rules in the domain's words; no tonic or sea-orm types.
//! - [`monitoring`]: Prometheus metrics on their own address, and the health the database's state sets.
//! - [`geo`]: shapes, the grid index behind `Locate`, coordinate-system conversion.
//! - [`storage`]: sea-orm connection, migrations, tables.
//! - [`app`]: wiring: `Application::build` and `run_until_stopped`.
//! - [`watch`]: `gridcase watch`, the reference client of the event stream.
//! - [`export`]: `gridcase export`, the client of the CSV exports.
//! - [`demo`]: the shipped Rizhao directory.

pub mod app;
pub mod auth;
pub mod config;
pub mod console;
pub mod demo;
pub mod domain;
pub mod export;
#[doc(hidden)]
pub mod fuzzing;
pub mod geo;
pub mod grpc;
pub mod monitoring;
pub mod proto;
pub mod service;
pub mod storage;
pub mod telemetry;
pub mod watch;

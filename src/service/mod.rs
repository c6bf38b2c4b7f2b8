//! Application services: each use case as one call that the gRPC layer makes, combining the
//! domain's rules with storage.

pub mod alerts;
pub mod attachments;
pub mod audit;
pub mod cases;
pub mod directory;
pub mod events;
pub mod intake;
pub mod paging;
pub mod rules;
pub mod sla;
pub mod stats;
pub mod time;

pub use directory::LiveDirectory;

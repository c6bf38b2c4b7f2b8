//! The domain: gridcase's rules in its own words, with no tonic or sea-orm types.

pub mod access;
pub mod alerts;
pub mod bundle;
pub mod calendar;
pub mod case;
pub mod directory;
pub mod duplicates;
pub mod error;
pub mod event;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod intake;
pub mod routing;
pub mod rules;
pub mod scope;
pub mod sla;
pub mod stats;
pub mod workflow;

pub use access::{Caller, Role};
pub use error::{DomainError, DomainResult};

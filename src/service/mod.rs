//! Application services: each use case as one call that the gRPC layer makes, combining the
//! domain's rules with storage.

pub mod directory;

pub use directory::LiveDirectory;

//! The generated `gridcase.v1` messages, servers and clients.

#![allow(missing_debug_implementations)] // generated code: prost derives Debug where it can

/// The `gridcase.v1` package.
pub mod v1 {
    // Generated code is not ours to lint.
    #![allow(
        clippy::all,
        clippy::pedantic,
        clippy::unwrap_used,
        clippy::expect_used
    )]
    tonic::include_proto!("gridcase.v1");
}

/// The encoded descriptor set of every `gridcase.v1` file, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/gridcase_descriptor.bin"));

//! Compiles `proto/` with protox (pure Rust, so no system `protoc`) and generates the tonic
//! servers and clients; also writes the descriptor set that server reflection serves.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "gridcase/v1/common.proto",
    "gridcase/v1/directory.proto",
    "gridcase/v1/case.proto",
    "gridcase/v1/report.proto",
    "gridcase/v1/gateway.proto",
    "gridcase/v1/stats.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(PROTOS, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("gridcase_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // An RPC whose issue has not landed answers UNIMPLEMENTED rather than pretending.
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    Ok(())
}

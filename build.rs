//! Compiles `proto/` with protox (pure Rust, so no system `protoc`) and generates the tonic
//! servers and clients; also writes the descriptor set that server reflection serves, and the
//! table of the console's built assets (`console/dist/`, committed) that the binary embeds.

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
    console_assets(&out)?;
    Ok(())
}

/// `console_assets.rs`: every file of `console/dist/` as (name, content type, bytes), embedded
/// with `include_bytes!`. The assets are built from the console's lockfile by
/// `console/build.sh` and committed, so building gridcase never needs Node.js.
fn console_assets(out: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=console/dist");
    let dist = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("console/dist");
    let mut files: Vec<PathBuf> = match fs::read_dir(&dist) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    let mut table = String::from("pub static ASSETS: &[(&str, &str, &[u8])] = &[\n");
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or("a console asset's name is not UTF-8")?;
        let kind = match path.extension().and_then(|e| e.to_str()) {
            Some("html") => "text/html; charset=utf-8",
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("json") => "application/json",
            Some("svg") => "image/svg+xml",
            Some("png") => "image/png",
            Some("ico") => "image/x-icon",
            Some("txt") => "text/plain; charset=utf-8",
            _ => "application/octet-stream",
        };
        table.push_str(&format!(
            "    ({name:?}, {kind:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
        println!("cargo:rerun-if-changed={}", path.display());
    }
    table.push_str("];\n");
    fs::write(out.join("console_assets.rs"), table)?;
    Ok(())
}

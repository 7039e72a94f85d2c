//! Generates the client of the backend's protobuf API (`proto/`), and its server for the
//! tests' fake backend. protox parses the files (no `protoc` to install) into a
//! descriptor set, which tonic-prost-build turns into code in `OUT_DIR`.

/// The backend's packages, as paths under `proto/`. A new package version (`v2`) is
/// added beside the old one, never instead of it.
const FILES: [&str; 1] = ["bff_template/items/v1/items.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for file in FILES {
        println!("cargo:rerun-if-changed=proto/{file}");
    }
    let descriptors = protox::compile(FILES, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}

//! Generates the Rust code of the demo's protobuf packages (`proto/` at the repository's
//! root): messages, tonic clients and servers. protox parses the files (no `protoc` to
//! install) into a descriptor set, which tonic-prost-build turns into code in `OUT_DIR`.

use std::path::PathBuf;

/// Every package this crate exposes, as paths under `proto/`. A new package version
/// (`v2`) is added here beside the old one, never instead of it.
const FILES: [&str; 2] = [
    "oberon/demo/events/v1/events.proto",
    "oberon/demo/checkout/v1/checkout.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    for file in FILES {
        println!("cargo:rerun-if-changed={}", proto_root.join(file).display());
    }
    let descriptors = protox::compile(FILES, [&proto_root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}

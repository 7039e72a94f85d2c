//! `oberon-componentize CORE.wasm OUT.wasm`: the component of a guest's core module, for
//! scripts that build guests without the `oberon` command (the renderer image's build,
//! `infra/docker/install-components.sh`).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [core, out] = args.as_slice() else {
        eprintln!("usage: oberon-componentize CORE.wasm OUT.wasm");
        return ExitCode::from(2);
    };
    match oberon_guest_build::componentize_file(core, out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oberon-componentize: {e}");
            ExitCode::FAILURE
        }
    }
}

//! `oberon new bff payments --path DIR` outside the repository gives a crate that builds
//! and passes its own tests offline, from the lock file it was given and the platform
//! it vendors: the template cannot rot, and a team needs nothing of this repository.

use std::path::Path;
use std::process::Command;

#[test]
fn a_new_bff_builds_and_passes_its_own_tests_offline() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let project = tmp.path().join("teams/payments");
    let out = Command::new(env!("CARGO_BIN_EXE_oberon"))
        .args(["new", "bff", "payments", "--path"])
        .arg(&project)
        .output()
        .expect("run oberon");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("Cargo.lock: the versions"),
        "the lock was not trimmed:\n{said}"
    );
    assert!(project.join("src/main.rs").exists());
    assert!(project.join("oberon/bff/src/lib.rs").exists());

    // `--locked`: the lock it was given is whole. The target directory is the
    // workspace's own (a subdirectory), so the test reuses what it compiled last time.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), std::path::PathBuf::from)
        .join("new-bff");
    let test = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["test", "--offline", "--locked", "--quiet"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&project)
        .output()
        .expect("run cargo test");
    let stdout = String::from_utf8_lossy(&test.stdout);
    assert!(
        test.status.success(),
        "cargo test in the new BFF failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(
        stdout.contains("test result: ok.") && !stdout.contains("FAILED"),
        "{stdout}"
    );
}

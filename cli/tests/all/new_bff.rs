//! `oberon new bff payments` in an empty directory gives a crate whose own tests
//! pass: the template cannot rot.

use std::path::Path;
use std::process::Command;

#[test]
fn a_new_bff_builds_and_passes_its_own_tests() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_oberon"))
        .args(["new", "bff", "payments"])
        .current_dir(tmp.path())
        .output()
        .expect("run oberon");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let project = tmp.path().join("payments-bff");
    assert!(project.join("src/main.rs").exists());

    // Build with the workspace's lock file and target directory so the test reuses
    // what is already compiled and needs no network.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::copy(root.join("Cargo.lock"), project.join("Cargo.lock")).expect("lock");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), std::path::PathBuf::from)
        .join("new-bff");
    let test = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["test", "--offline", "--quiet"])
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
    assert!(stdout.contains("test result: ok"), "{stdout}");
}

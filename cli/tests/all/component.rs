//! `oberon component …` as a user runs it: the real binary, real components built from
//! source (`oberon-test-artifacts`), a registry on disk or in a moto S3 server.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use oberon_test_artifacts::artifact;

fn oberon(registry: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oberon"))
        .args(["component"])
        .args(args)
        .args(["--registry", registry])
        .env("OBERON_ACTOR", "ci")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Exits non-zero (1, or 2 for a usage error), with `message` in what it says.
fn refused(out: &Output, message: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "not refused: {stderr}");
    assert_eq!(stderr.matches(message).count(), 1, "said once: {stderr}");
    assert!(matches!(out.status.code(), Some(1 | 2)), "{:?}", out.status);
    assert!(
        stderr.contains(message),
        "expected {message:?} in:\n{stderr}"
    );
}

fn deploy_args<'a>(name: &'a str, version: &'a str) -> Vec<String> {
    let a = artifact(name);
    vec![
        "deploy".into(),
        "--wasm".into(),
        a.wasm.into(),
        "--assets".into(),
        a.assets_dir().display().to_string(),
        "--version".into(),
        version.into(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn deploy_list_promote_rollback() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = tmp.path().join("registry");
    let reg = reg.to_str().unwrap();

    let out = oberon(reg, &strs(&deploy_args("hello-v1", "1.0.0")));
    let stdout = ok(&out);
    assert_eq!(stdout, "deployed hello 1.0.0 to stable ((none) → 1.0.0)\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("oberon: compiling and validating"),
        "{stderr}"
    );
    assert!(
        stderr.contains("(oberon:component@0.2.0), test render"),
        "{stderr}"
    );
    assert!(
        stderr.contains("oberon: uploading hello 1.0.0 to"),
        "{stderr}"
    );

    let mut canary = deploy_args("hello-v2", "1.1.0");
    canary.extend(["--channel", "canary", "--canary-percent", "25"].map(String::from));
    let stdout = ok(&oberon(reg, &strs(&canary)));
    assert_eq!(
        stdout,
        "deployed hello 1.1.0 to canary (25%) ((none) → 1.1.0)\n"
    );

    let list = ok(&oberon(reg, &["list"]));
    let row = list.lines().find(|l| l.starts_with("hello")).unwrap();
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["hello", "1.0.0", "1.1.0", "(25%)", "2"]
    );

    let stdout = ok(&oberon(reg, &["canary", "hello", "--percent", "50"]));
    assert_eq!(stdout, "hello: canary 1.1.0 now gets 50% of traffic\n");
    let list = ok(&oberon(reg, &["list"]));
    assert!(list.contains(" 1.1.0 (50%) "), "{list}");

    let stdout = ok(&oberon(reg, &["promote", "hello"]));
    assert_eq!(
        stdout,
        "hello: stable 1.0.0 → 1.1.0\nhello: canary 1.1.0 → (none)\n"
    );
    let stdout = ok(&oberon(reg, &["rollback", "hello"]));
    assert_eq!(stdout, "hello: stable 1.1.0 → 1.0.0\n");

    let status = ok(&oberon(reg, &["status", "hello"]));
    assert!(
        status.contains("  stable: 1.0.0\n  canary: (none)\n"),
        "{status}"
    );
    let history: Vec<&str> = status
        .lines()
        .skip_while(|l| *l != "history:")
        .skip(1)
        .collect();
    assert_eq!(history.len(), 6, "{status}");
    assert!(
        history[2].contains("share    canary 1.1.0 → 1.1.0 (50%)  by ci"),
        "{status}"
    );
    assert!(
        history[5].contains("rollback stable 1.1.0 → 1.0.0  by ci"),
        "{status}"
    );

    // Nothing to promote now, and rolling back past the first stable is refused.
    refused(&oberon(reg, &["promote", "hello"]), "no canary to promote");
    ok(&oberon(reg, &["rollback", "hello", "--to", "1.1.0"]));
    refused(
        &oberon(reg, &["status", "nobody"]),
        "no component \"nobody\" in the registry",
    );
}

#[test]
fn both_contract_versions_deploy() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = tmp.path().join("registry");
    let reg = reg.to_str().unwrap();
    // chain-sink is built against the frozen 0.1.0, chain-source with the SDK (0.2.0).
    for (name, contract) in [("chain-sink", "0.1.0"), ("chain-source", "0.2.0")] {
        let out = oberon(reg, &strs(&deploy_args(name, "1.0.0")));
        ok(&out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("(oberon:component@{contract}), test render")),
            "{name}: {stderr}"
        );
        let status = ok(&oberon(reg, &["status", name]));
        assert!(
            status.contains(&format!("oberon:component@{contract}")),
            "{name}: {status}"
        );
    }
}

#[test]
fn refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = tmp.path().join("registry");
    let reg = reg.to_str().unwrap();

    refused(
        &oberon(reg, &strs(&deploy_args("bad-metadata", "1.0.0"))),
        "refused: invalid metadata: topic \"cart\" is both subscribed and published by the same component",
    );

    let mut trap = deploy_args("misbehave", "1.0.0");
    trap.extend(["--test-props", r#"{"mode":"trap"}"#].map(String::from));
    refused(
        &oberon(reg, &strs(&trap)),
        r#"refused: the test render (props {"mode":"trap"}, empty bus) failed: component misbehave: trapped: "#,
    );

    refused(
        &oberon(reg, &strs(&deploy_args("wit-next", "1.0.0"))),
        "refused: built against oberon:component@0.3.0-next, but renderers serve oberon:component@0.1.0 and oberon:component@0.2.0; rebuild it with an oberon-sdk for oberon:component@0.2.0",
    );

    // A file changed after its build: the recorded hash no longer matches.
    let wasm = tmp.path().join("hello.wasm");
    let mut bytes = std::fs::read(artifact("hello-v1").wasm()).unwrap();
    let recorded = oberon_registry::sha256_hex(&bytes);
    std::fs::write(
        tmp.path().join("hello.wasm.sha256"),
        format!("{recorded}  hello.wasm\n"),
    )
    .unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&wasm, &bytes).unwrap();
    let mut corrupt = deploy_args("hello-v1", "1.0.0");
    corrupt[2] = wasm.display().to_string();
    refused(
        &oberon(reg, &strs(&corrupt)),
        &format!(
            "corrupt upload: {} has sha256 {}, but its build recorded {recorded}",
            wasm.display(),
            oberon_registry::sha256_hex(&bytes)
        ),
    );

    // Nothing refused reached the registry.
    assert_eq!(
        ok(&oberon(reg, &["list"])),
        format!("no components in {reg}\n")
    );

    ok(&oberon(reg, &strs(&deploy_args("hello-v1", "1.0.0"))));
    refused(
        &oberon(reg, &strs(&deploy_args("hello-v2", "1.0.0"))),
        "component hello version 1.0.0 already exists: versions are immutable, deploy a new version",
    );
    refused(
        &oberon(reg, &["rollback", "hello", "--channel", "beta"]),
        "unknown channel \"beta\"",
    );
}

/// Deploys from separate processes at once all land in the index and its history.
#[test]
fn concurrent_deploy_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = tmp.path().join("registry");
    let reg = reg.to_str().unwrap();
    let children: Vec<Child> = (0..4)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_oberon"))
                .arg("component")
                .args(strs(&deploy_args("hello-v1", &format!("2.{i}.0"))))
                .args(["--registry", reg])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let status = ok(&oberon(reg, &["status", "hello"]));
    for i in 0..4 {
        assert!(status.contains(&format!("\n  2.{i}.0 ")), "{status}");
    }
    assert!(status.contains("(generation 4)"), "{status}");
    let deploys = status.lines().filter(|l| l.contains(" deploy ")).count();
    assert_eq!(deploys, 4, "{status}");
}

/// The S3 backend as an operator configures it: `s3://bucket/prefix` and `AWS_*`.
#[test]
fn s3_registry_through_environment() {
    let mut moto = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("moto_server not found: run the tests with `tests/run`, which installs it (tests/requirements.txt)");
    let mut lines = BufReader::new(moto.stderr.take().unwrap()).lines();
    let endpoint = loop {
        let line = lines.next().expect("moto_server exited").unwrap();
        if let Some(rest) = line.split("Running on ").nth(1) {
            break rest.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let created = Command::new("python3")
        .args([
            "-c",
            "import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], method='PUT'))",
        ])
        .arg(format!("{endpoint}/oberon-test"))
        .status()
        .unwrap();
    assert!(created.success());

    let run = |args: &[String]| {
        Command::new(env!("CARGO_BIN_EXE_oberon"))
            .arg("component")
            .args(args)
            .args(["--registry", "s3://oberon-test/fleet/registry"])
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .unwrap()
    };
    ok(&run(&deploy_args("hello-v1", "1.0.0")));
    let mut canary = deploy_args("hello-v2", "1.1.0");
    canary.extend(["--channel", "canary"].map(String::from));
    ok(&run(&canary));
    ok(&run(&["promote".into(), "hello".into()]));
    let list = ok(&run(&["list".into()]));
    let row = list.lines().find(|l| l.starts_with("hello")).unwrap();
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["hello", "1.1.0", "-", "2"]
    );
    let _ = moto.kill();
    let _ = moto.wait();
}

/// `new`, `build` and `deploy` of a scaffolded crate, outside any workspace.
#[test]
fn scaffolded_component_builds_and_deploys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().join("gift-card");
    let reg = tmp.path().join("registry");
    let reg = reg.to_str().unwrap();
    let bin = env!("CARGO_BIN_EXE_oberon");
    let out = Command::new(bin)
        .args(["component", "new", "gift-card", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    ok(&out);
    // The crate builds on its own: none of this build's cargo settings leak in.
    let out = Command::new(bin)
        .args(["component", "build", "--dir"])
        .arg(&dir)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    let stdout = ok(&out);
    let wasm = dir.join("target/wasm32-unknown-unknown/release/gift_card.component.wasm");
    assert!(stdout.starts_with(&wasm.display().to_string()), "{stdout}");
    assert!(Path::new(&format!("{}.sha256", wasm.display())).is_file());
    let out = Command::new(bin)
        .args(["component", "deploy", "--dir"])
        .arg(&dir)
        .args(["--registry", reg])
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    assert_eq!(
        ok(&out),
        "deployed gift-card 0.1.0 to stable ((none) → 0.1.0)\n"
    );
    let status = ok(&oberon(reg, &["status", "gift-card"]));
    assert!(
        status.contains(" 1 asset(s) oberon:component@0.2.0"),
        "{status}"
    );
}

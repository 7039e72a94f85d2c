//! buf, the protobuf linter and breaking-change checker CI runs on `proto/`: the
//! repository's packages pass its lint, and a change that would break a published
//! package's clients is caught, naming the field. buf is the npm package pinned in
//! `proto/tools/package.json`, which `tests/run` installs and names in `OBERON_BUF`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::repo;

/// The buf `tests/run` installed. Unset is a failure, not a skip: a run that skipped
/// these would pass with the check it exists for never made.
fn buf() -> PathBuf {
    let buf = std::env::var_os("OBERON_BUF").map(PathBuf::from).expect(
        "OBERON_BUF is not set: run the tests with `tests/run`, which installs buf \
         (proto/tools/package.json) and sets it",
    );
    assert!(
        buf.is_file(),
        "OBERON_BUF is {}, which is not a file: run `tests/run --setup-only`",
        buf.display()
    );
    buf
}

fn run_buf(args: &[&str]) -> Output {
    Command::new(buf())
        .args(args)
        .output()
        .expect("running buf")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The buf module in `from` (buf.yaml and every .proto) copied into `to`.
fn copy_module(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read proto/") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_module(&path, &target);
        } else if path
            .extension()
            .is_some_and(|e| e == "proto" || e == "yaml")
        {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

/// An edit of one file: in `file`, `before` becomes `after`.
struct Edit {
    file: &'static str,
    before: &'static str,
    after: &'static str,
}

/// `proto/` copied, with `edit` made to the copy; then `buf breaking` of the copy against
/// `proto/` itself.
fn breaking(edit: Option<Edit>) -> Output {
    let original = repo().join("proto");
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("proto");
    copy_module(&original, &copy);
    if let Some(Edit {
        file,
        before,
        after,
    }) = edit
    {
        let path = copy.join(file);
        let source = std::fs::read_to_string(&path).expect("read");
        assert!(
            source.contains(before),
            "{file} has no `{before}` to change"
        );
        std::fs::write(&path, source.replace(before, after)).expect("write");
    }
    run_buf(&[
        "breaking",
        copy.to_str().expect("utf-8 path"),
        "--against",
        original.to_str().expect("utf-8 path"),
    ])
}

#[test]
fn the_packages_pass_buf_lint() {
    let output = run_buf(&["lint", repo().join("proto").to_str().expect("utf-8 path")]);
    assert!(output.status.success(), "buf lint: {}", text(&output));
}

#[test]
fn an_unchanged_copy_is_not_breaking() {
    let output = breaking(None);
    assert!(output.status.success(), "{}", text(&output));
}

#[test]
fn a_field_whose_type_changes_is_breaking() {
    let output = breaking(Some(Edit {
        file: "oberon/demo/events/v1/events.proto",
        before: "int64 price_cents = 3;",
        after: "string price_cents = 3;",
    }));
    let text = text(&output);
    assert!(!output.status.success(), "not caught: {text}");
    assert!(
        text.contains("price_cents") && text.contains("TicketType") && text.contains("type"),
        "{text}"
    );
}

#[test]
fn a_field_whose_number_changes_is_breaking() {
    let output = breaking(Some(Edit {
        file: "oberon/demo/checkout/v1/checkout.proto",
        before: "string subject = 2;",
        after: "string subject = 3;",
    }));
    let text = text(&output);
    assert!(!output.status.success(), "not caught: {text}");
    assert!(
        text.contains("\"subject\"") && text.contains("ListOrdersRequest"),
        "{text}"
    );
}

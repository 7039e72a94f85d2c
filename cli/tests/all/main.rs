//! The `oberon` binary as users run it: one integration-test binary (see STYLE.md).

// Helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

mod component;
mod component_js;
mod component_python;
mod containment;
mod dev;
mod new_bff;

/// A copy in `parent` of the demo's project `components/<project>` (without what a build
/// left in it), with `(from, to)` replaced once in its file `file`.
pub(crate) fn demo_project(
    project: &str,
    parent: &std::path::Path,
    file: &str,
    (from, to): (&str, &str),
) -> std::path::PathBuf {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if oberon_cli::build::NOT_SOURCES.contains(&name.to_str().unwrap()) {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &to.join(&name));
            } else {
                std::fs::copy(entry.path(), to.join(&name)).unwrap();
            }
        }
    }
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../components")
        .join(project);
    let dir = parent.join(source.file_name().unwrap());
    copy(&source, &dir);
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} in {}",
        path.display()
    );
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    dir
}

//! `oberon new bff NAME`: a new Backend-For-Frontend from the template in
//! `bff-template/`, renamed everywhere (crate, binary, environment variables, docs), with
//! the platform it builds on vendored under `oberon/`: `oberon-bff` and the crates it
//! uses, as this `oberon` was built with them. The team owns everything else; `oberon/`
//! it never edits, and `oberon bff upgrade` replaces it whole. The crate carries a lock
//! file and a Dockerfile, and builds and tests offline with no access to Oberon's
//! repository.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

mod template {
    include!(concat!(env!("OUT_DIR"), "/bff_template.rs"));
}

mod platform {
    include!(concat!(env!("OUT_DIR"), "/bff_platform.rs"));
}

/// Where a new BFF keeps the vendored platform.
pub const VENDOR_DIR: &str = "oberon";

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    #[command(subcommand)]
    pub what: New,
}

#[derive(Debug, clap::Subcommand)]
pub enum New {
    /// A Backend-For-Frontend service for one team, from Oberon's BFF template.
    Bff {
        /// The team's or domain's name, e.g. `payments` (gives crate `payments-bff`).
        name: String,
        /// Where to create it (default: `./NAME-bff`). Must not exist, or be empty.
        #[arg(long, alias = "dir")]
        path: Option<PathBuf>,
    },
}

pub fn run(args: NewArgs) -> anyhow::Result<()> {
    match args.what {
        New::Bff { name, path } => {
            let dir = path.unwrap_or_else(|| PathBuf::from(format!("{name}-bff")));
            let written = new_bff(&name, &dir)?;
            println!("created {} ({written} files)", dir.display());
            match prune_lock(&dir) {
                Ok(()) => {
                    println!("Cargo.lock: the versions this oberon was built and tested with")
                }
                Err(e) => {
                    println!(
                        "Cargo.lock: not trimmed ({e:#}); run `cargo build` and commit the lock before `docker build`, which builds --locked"
                    )
                }
            }
            println!(
                "next:\n  cd {}\n  cargo test\n  {}_BFF_BACKEND_URL=http://127.0.0.1:9000 cargo run",
                dir.display(),
                name.to_uppercase().replace('-', "_")
            );
            Ok(())
        }
    }
}

/// `oberon bff …`: what a team does with a BFF it made with `oberon new bff`.
#[derive(Debug, clap::Args)]
pub struct BffArgs {
    #[command(subcommand)]
    pub what: BffCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum BffCommand {
    /// Replace the BFF's vendored platform (`oberon/`) with this oberon's, whole.
    Upgrade {
        /// The BFF's directory (default: the current one).
        #[arg(long, default_value = ".")]
        path: PathBuf,
    },
}

pub fn run_bff(args: BffArgs) -> anyhow::Result<()> {
    match args.what {
        BffCommand::Upgrade { path } => {
            let written = upgrade_bff(&path)?;
            println!(
                "replaced {} ({written} files); next: cargo test, then commit it with Cargo.lock (cargo updates the lock if the platform needs new crates) and compare the Dockerfile with `oberon new bff`'s",
                path.join(VENDOR_DIR).display()
            );
            Ok(())
        }
    }
}

/// Write the template into `dir` as `NAME-bff`, with the platform vendored. Returns the
/// number of files written.
pub fn new_bff(name: &str, dir: &Path) -> anyhow::Result<usize> {
    validate_name(name)?;
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} already exists and is not empty: choose another --path",
            dir.display()
        );
    }
    let kebab = format!("{name}-bff");
    let snake = kebab.replace('-', "_");
    let shout = snake.to_uppercase();
    let rename = |text: &str| {
        text.replace("bff-template", &kebab)
            .replace("bff_template", &snake)
            .replace("BFF_TEMPLATE", &shout)
    };
    for (rel, contents) in template::FILES {
        let mut text = rename(contents);
        if *rel == "Cargo.toml" {
            text = vendored_manifest(&text)?;
        }
        // The backend's protobuf package is the team's too: `proto/NAME_bff/...`.
        write(&dir.join(rename(rel)), &text)?;
    }
    for (rel, contents) in platform::FILES {
        // The Dockerfile builds this crate by default; the platform keeps its names.
        let text = if *rel == "Dockerfile" {
            rename(contents)
        } else {
            contents.to_string()
        };
        write(&dir.join(rel), &text)?;
    }
    Ok(template::FILES.len() + platform::FILES.len())
}

/// The template's manifest for a crate of its own: `oberon-bff` from `oberon/` (as a
/// dependency, and with its `testing` feature as a dev-dependency), and a workspace of
/// its own, not part of any enclosing one.
fn vendored_manifest(manifest: &str) -> anyhow::Result<String> {
    const IN_REPO: &str = "oberon-bff = { path = \"../bff\"";
    if !manifest.contains(IN_REPO) {
        bail!("the embedded template does not depend on oberon-bff as `{IN_REPO} }}`");
    }
    let vendored = format!("oberon-bff = {{ path = \"{VENDOR_DIR}/bff\"");
    let mut text = manifest.replace(IN_REPO, &vendored);
    // Path dependencies under a workspace's root are its members unless excluded: the
    // vendored crates are built, never tested or linted, by the BFF.
    text.push_str(&format!(
        "\n# Its own workspace, not part of any enclosing one; the platform in {VENDOR_DIR}/ is\n# built for it, never tested or linted with it.\n[workspace]\nexclude = [\"{VENDOR_DIR}\"]\n"
    ));
    Ok(text)
}

/// Replace `dir/oberon/` with this oberon's platform. The BFF's own files, its lock
/// file and Dockerfile are left alone.
pub fn upgrade_bff(dir: &Path) -> anyhow::Result<usize> {
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))
        .with_context(|| format!("{} is not a BFF's directory", dir.display()))?;
    let vendored = format!("path = \"{VENDOR_DIR}/bff\"");
    if !manifest.contains(&vendored) {
        bail!(
            "{} does not depend on a vendored oberon-bff ({vendored}): not made with `oberon new bff`",
            dir.join("Cargo.toml").display()
        );
    }
    // Written whole beside the old one, then swapped in: a failed write leaves the old
    // platform in place, never half of each.
    let vendor = dir.join(VENDOR_DIR);
    let (fresh, old) = (dir.join(".oberon.new"), dir.join(".oberon.old"));
    for leftover in [&fresh, &old] {
        if leftover.exists() {
            std::fs::remove_dir_all(leftover)
                .with_context(|| format!("cannot remove {}", leftover.display()))?;
        }
    }
    let mut written = 0;
    for (rel, contents) in platform::FILES {
        if let Some(inside) = rel.strip_prefix(&format!("{VENDOR_DIR}/")) {
            write(&fresh.join(inside), contents)?;
            written += 1;
        }
    }
    let swap = |from: &Path, to: &Path| {
        std::fs::rename(from, to)
            .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))
    };
    if vendor.exists() {
        swap(&vendor, &old)?;
    }
    swap(&fresh, &vendor)?;
    if old.exists() {
        std::fs::remove_dir_all(&old)
            .with_context(|| format!("cannot remove {}", old.display()))?;
    }
    Ok(written)
}

/// The lock file trimmed to what the new crate uses, versions kept: cargo resolves with
/// the lock (`metadata --offline` changes only what it must), from the local registry.
fn prune_lock(dir: &Path) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--offline", "--format-version", "1"])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .output()
        .context("cannot run cargo")?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Lower-case letters, digits and single dashes, starting with a letter: it becomes a
/// crate name, a binary name and an environment variable prefix.
fn validate_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        bail!(
            "{name:?} is not a valid BFF name: use lower-case letters, digits and dashes, starting with a letter (e.g. `payments`)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_name("payments").is_ok());
        assert!(validate_name("gift-cards2").is_ok());
        for bad in ["", "Payments", "2fa", "a--b", "a-", "a_b", "a/b", "../x"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn renames_everywhere_vendors_the_platform_and_refuses_a_used_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        let n = new_bff("payments", &dir).unwrap();
        assert_eq!(n, template::FILES.len() + platform::FILES.len());
        let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"payments-bff\"") && cargo.contains("[workspace]"));
        assert!(
            cargo.contains("oberon-bff = { path = \"oberon/bff\" }"),
            "{cargo}"
        );
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(lib.contains("\"PAYMENTS_BFF_\""));
        let main = std::fs::read_to_string(dir.join("src/main.rs")).unwrap();
        assert!(main.contains("payments_bff::"));
        let proto = dir.join("proto/payments_bff/items/v1/items.proto");
        let proto = std::fs::read_to_string(proto).unwrap();
        assert!(proto.contains("package payments_bff.items.v1;"), "{proto}");
        let docker = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
        assert!(docker.contains("ARG BFF=payments-bff"), "{docker}");
        for (rel, _) in template::FILES {
            let rel = rel.replace("bff_template", "payments_bff");
            let text = std::fs::read_to_string(dir.join(&rel)).unwrap();
            assert!(
                !text.contains("bff-template")
                    && !text.contains("bff_template")
                    && !text.contains("BFF_TEMPLATE"),
                "{rel}"
            );
        }
        // The vendored crates stand alone: nothing inherited from Oberon's workspace.
        for crate_dir in ["bff", "identity", "service", "config"] {
            let manifest =
                std::fs::read_to_string(dir.join(format!("oberon/{crate_dir}/Cargo.toml")))
                    .unwrap();
            assert!(!manifest.contains("workspace"), "{crate_dir}: {manifest}");
            assert!(dir.join(format!("oberon/{crate_dir}/src/lib.rs")).exists());
        }
        let err = new_bff("payments", &dir).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
    }

    #[test]
    fn an_upgrade_replaces_the_platform_whole_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        new_bff("payments", &dir).unwrap();
        std::fs::write(
            dir.join("oberon/bff/src/stale.rs"),
            "// from an older oberon",
        )
        .unwrap();
        std::fs::write(dir.join("oberon/bff/src/lib.rs"), "// edited by hand").unwrap();
        std::fs::write(dir.join("src/lib.rs"), "// the team's own").unwrap();
        upgrade_bff(&dir).unwrap();
        assert!(!dir.join("oberon/bff/src/stale.rs").exists());
        let lib = std::fs::read_to_string(dir.join("oberon/bff/src/lib.rs")).unwrap();
        assert!(lib.contains("pub struct Bff"));
        let own = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert_eq!(own, "// the team's own");
        let err = upgrade_bff(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("not a BFF's directory"), "{err}");
    }
}

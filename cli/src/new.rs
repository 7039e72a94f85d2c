//! `oberon new bff NAME`: a new Backend-For-Frontend from the template in
//! `bff-template/`, renamed everywhere (crate, binary, environment variables, docs).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

mod template {
    include!(concat!(env!("OUT_DIR"), "/bff_template.rs"));
}

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
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

pub fn run(args: NewArgs) -> anyhow::Result<()> {
    match args.what {
        New::Bff { name, dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(format!("{name}-bff")));
            let written = new_bff(&name, &dir)?;
            println!("created {} ({written} files)", dir.display());
            println!(
                "next:\n  cd {}\n  cargo test\n  {}_BFF_BACKEND_URL=http://127.0.0.1:9000 cargo run",
                dir.display(),
                name.to_uppercase().replace('-', "_")
            );
            Ok(())
        }
    }
}

/// Write the template into `dir` as `NAME-bff`. Returns the number of files written.
pub fn new_bff(name: &str, dir: &Path) -> anyhow::Result<usize> {
    validate_name(name)?;
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} already exists and is not empty: choose another --dir",
            dir.display()
        );
    }
    let kebab = format!("{name}-bff");
    let snake = kebab.replace('-', "_");
    let shout = snake.to_uppercase();
    for (rel, contents) in template::FILES {
        let mut text = contents
            .replace("bff-template", &kebab)
            .replace("bff_template", &snake)
            .replace("BFF_TEMPLATE", &shout);
        if *rel == "Cargo.toml" {
            text.push_str("\n# Its own workspace, not part of any enclosing one.\n[workspace]\n");
        }
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(template::FILES.len())
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
    fn renames_everywhere_and_refuses_a_used_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        let n = new_bff("payments", &dir).unwrap();
        assert!(n >= 8, "{n}");
        let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"payments-bff\"") && cargo.contains("[workspace]"));
        let config = std::fs::read_to_string(dir.join("src/config.rs")).unwrap();
        assert!(config.contains("PAYMENTS_BFF_"));
        let main = std::fs::read_to_string(dir.join("src/main.rs")).unwrap();
        assert!(main.contains("use payments_bff::"));
        for (rel, _) in template::FILES {
            let text = std::fs::read_to_string(dir.join(rel)).unwrap();
            assert!(
                !text.contains("bff-template")
                    && !text.contains("bff_template")
                    && !text.contains("BFF_TEMPLATE"),
                "{rel}"
            );
        }
        let err = new_bff("payments", &dir).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
    }
}

//! A site as an author writes it: `site.toml`, a page and a layout (the input's three
//! parts, separated by NUL bytes; seeds are the demo's files), read from a scratch
//! directory by `SiteSource::read` and built by `Site::build` (with no components, so
//! every check that needs none runs: routes, layouts and their holes, data sources and
//! their URL templates, topics). Property: nothing panics, and every error renders.
#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use oberon_renderer::config::{PageConfig, SiteConfig};
use oberon_renderer::component_set::ComponentSet;
use oberon_renderer::site::{Site, SiteSource};

fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a scratch directory");
        std::fs::create_dir(dir.path().join("pages")).expect("pages/");
        std::fs::create_dir(dir.path().join("layouts")).expect("layouts/");
        dir
    })
    .path()
}

/// The layout's file name: the page's `layout` when it is a plain, short file name.
fn layout_name(page: &str) -> String {
    oberon_config::parse_toml::<PageConfig>(Path::new("page.toml"), page)
        .ok()
        .map(|p| p.layout.into_inner())
        .filter(|n| {
            n.len() <= 64
                && n.ends_with(".html")
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
                && !n.starts_with('.')
        })
        .unwrap_or_else(|| "base.html".into())
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\0');
    let (site, page, layout) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    // The site must stay in the scratch directory: only the default directories.
    match oberon_config::parse_toml::<SiteConfig>(Path::new("site.toml"), site) {
        Ok(c) if c.pages == Path::new("pages") && c.layouts == Path::new("layouts") => {}
        Ok(_) => return,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    }
    let dir = scratch();
    for sub in ["pages", "layouts"] {
        for entry in std::fs::read_dir(dir.join(sub)).expect("scratch").flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let write = |path: PathBuf, text: &str| std::fs::write(path, text).expect("scratch write");
    write(dir.join("site.toml"), site);
    write(dir.join("pages/page.toml"), page);
    write(dir.join("layouts").join(layout_name(page)), layout);
    let source = match SiteSource::read(dir, &BTreeMap::new()) {
        Ok(source) => source,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let components = ComponentSet {
        by_name: BTreeMap::new(),
        canary: BTreeMap::new(),
    };
    if let Err(e) = Site::build(&source, components) {
        let _ = e.to_string();
    }
});

//! The component versions a site is built from: a [`ComponentSet`] (the stable
//! [`ComponentVersion`] of each component, and the [`Canary`] of those that have one),
//! each version with its client [`Asset`]s held in memory.
//!
//! Versions come from a directory, loaded and watched here, or from a registry,
//! fetched by [`crate::registry_source`] and turned into versions by
//! [`load_artifact`]. (This is not the registry: that is the `oberon_registry` crate.)
//!
//! Directory layout: `<dir>/<name>/component.wasm`, with the client assets that
//! `describe` declares under `<dir>/<name>/assets/`. Each version is identified by the
//! SHA-256 of its `.wasm`; its assets are read into memory with it, so a version and
//! its assets are swapped together and asset URLs (which carry the hash) are
//! immutable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use futures::StreamExt;

use crate::config::ConfigError;
use crate::engine::{ComponentEngine, LoadError, LoadedComponent};

/// One client asset held in memory, with what serving it needs computed once.
#[derive(Debug)]
pub struct Asset {
    pub bytes: bytes::Bytes,
    pub content_type: &'static str,
    /// First 16 hex digits of the SHA-256 of `bytes`: the asset's URL carries it, so a
    /// URL always means the same bytes, and an asset unchanged across versions keeps
    /// its URL (and its place in every cache).
    pub hash: String,
    /// A strong ETag of `bytes`; the gzip variant's is this with `-gz`.
    pub etag: http::HeaderValue,
    /// The gzip-compressed bytes, for a compressible type when compression saves at
    /// least a tenth.
    pub gzip: Option<bytes::Bytes>,
}

impl Asset {
    pub fn new(path: &str, bytes: bytes::Bytes) -> Self {
        let hash = crate::code_cache::ContentDigest::of(&bytes).short();
        let content_type = content_type(path);
        let gzip = compressible(content_type)
            .then(|| gzip(&bytes))
            .flatten()
            .filter(|z| z.len() * 10 <= bytes.len() * 9)
            .map(bytes::Bytes::from);
        let etag = http::HeaderValue::from_str(&format!("\"{hash}\""))
            .unwrap_or_else(|_| http::HeaderValue::from_static("\"\""));
        Self {
            bytes,
            content_type,
            hash,
            etag,
            gzip,
        }
    }

    /// The ETag of the gzip variant (a different representation, so a different tag).
    pub fn gzip_etag(&self) -> http::HeaderValue {
        http::HeaderValue::from_str(&format!("\"{}-gz\"", self.hash))
            .unwrap_or_else(|_| http::HeaderValue::from_static("\"\""))
    }
}

fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.starts_with("application/json")
        || content_type.starts_with("image/svg+xml")
}

fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok()
}

/// A loaded component version with its assets.
#[derive(Debug)]
pub struct ComponentVersion {
    pub component: LoadedComponent,
    /// First 16 hex digits of the SHA-256 of the `.wasm`.
    pub hash: String,
    pub assets: BTreeMap<String, Arc<Asset>>,
    /// The registry version, for a version from a registry (a directory's components
    /// have none).
    pub version: Option<oberon_registry::Version>,
    /// The memory cap per instance its deploy asked for, in MiB (a directory's
    /// components ask for none): a slot's `memory_mib` overrides it, and the site's
    /// ceiling bounds it.
    pub memory_mib: Option<usize>,
    stamp: FileStamp,
}

impl ComponentVersion {
    pub fn name(&self) -> &str {
        &self.component.metadata().name
    }

    /// URL of one of this version's assets: `/assets/<component>/<content hash>/<path>`.
    pub fn asset_url(&self, path: &str) -> String {
        let hash = self.assets.get(path).map_or(&self.hash, |a| &a.hash);
        format!("/assets/{}/{}/{}", self.name(), hash, path)
    }
}

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

/// The component versions currently loaded, by name: the stable version of each, and
/// the canary of those that have one.
#[derive(Debug, Default, Clone)]
pub struct ComponentSet {
    pub by_name: BTreeMap<String, Arc<ComponentVersion>>,
    /// Canary versions with their share of requests (1 to 100 %); only from a registry.
    pub canary: BTreeMap<String, Canary>,
}

/// A component's canary version and the share of requests that get it.
#[derive(Debug, Clone)]
pub struct Canary {
    pub version: Arc<ComponentVersion>,
    pub percent: u8,
}

impl ComponentSet {
    pub fn get(&self, name: &str) -> Option<&Arc<ComponentVersion>> {
        self.by_name.get(name)
    }

    /// Every version loaded, stable and canary.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ComponentVersion>> {
        self.by_name
            .values()
            .chain(self.canary.values().map(|c| &c.version))
    }

    /// Whether this set holds a version with this hash under this name.
    pub fn holds(&self, name: &str, hash: &str) -> bool {
        self.get(name).is_some_and(|v| v.hash == hash)
            || self
                .canary
                .get(name)
                .is_some_and(|c| c.version.hash == hash)
    }
}

fn wasm_paths(dir: &Path) -> Result<Vec<(String, PathBuf)>, ConfigError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        ConfigError::new(dir, format!("cannot read components directory: {e}")).help(
            "build the components (`oberon dev` does) or set `components = \"...\"` in site.toml",
        )
    })?;
    let mut found: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join("component.wasm").is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.path().join("component.wasm"),
            )
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Load every component in `dir`, reusing versions from `previous` whose file has not
/// changed. Returns the new set and the problems found; a component that fails to load
/// keeps its previous version if it had one.
pub async fn load_components(
    engine: &ComponentEngine,
    dir: &Path,
    previous: &ComponentSet,
) -> (ComponentSet, Vec<ConfigError>) {
    let mut set = ComponentSet::default();
    let mut errors = Vec::new();
    let paths = match wasm_paths(dir) {
        Ok(p) => p,
        Err(e) => return (previous.clone(), vec![e]),
    };
    let mut changed = Vec::new();
    for (name, wasm_path) in paths {
        let current = stamp(&wasm_path);
        if let Some(prev) = previous.get(&name).filter(|p| Some(p.stamp) == current) {
            set.by_name.insert(name, prev.clone());
        } else {
            changed.push((name, wasm_path, current));
        }
    }
    // Side by side, as many as there are cores: compiling or reading a big guest's code
    // (a Python or JavaScript component: ~0.1 s from the code cache, 15 s compiled)
    // does not wait for the others'.
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
    let loaded: Vec<_> = futures::stream::iter(changed.into_iter().map(
        |(name, wasm_path, current)| async move {
            let result = load_one(engine, &name, &wasm_path, current).await;
            (name, result)
        },
    ))
    .buffered(parallel)
    .collect()
    .await;
    for (name, result) in loaded {
        match result {
            Ok(version) => {
                tracing::info!(component = %name, hash = %version.hash, "loaded component version");
                set.by_name.insert(name, Arc::new(version));
            }
            Err(e) => {
                if let Some(prev) = previous.get(&name) {
                    set.by_name.insert(name, prev.clone());
                }
                errors.push(e);
            }
        }
    }
    (set, errors)
}

async fn load_one(
    engine: &ComponentEngine,
    name: &str,
    wasm_path: &Path,
    stamp: Option<FileStamp>,
) -> Result<ComponentVersion, ConfigError> {
    let bytes = tokio::fs::read(wasm_path)
        .await
        .map_err(|e| ConfigError::new(wasm_path, format!("cannot read: {e}")))?;
    let component = engine.load(&bytes).await.map_err(|e| {
        ConfigError::new(wasm_path, format!("component {name}: {e}")).help(format!(
            "rebuild it against components/wit/v{} (`oberon component build`)",
            crate::component::WIT_LATEST
        ))
    })?;
    let declared = &component.metadata().name;
    if &**declared != name {
        return Err(ConfigError::new(
            wasm_path,
            format!("component in directory {name:?} describes itself as {declared:?}"),
        )
        .help(format!("move it to a directory named {declared:?}")));
    }
    let mut assets = BTreeMap::new();
    let asset_dir = wasm_path.with_file_name("assets");
    for path in &component.metadata().assets {
        let file = asset_dir.join(path);
        let bytes = tokio::fs::read(&file).await.map_err(|e| {
            ConfigError::new(
                &file,
                format!("component {name} declares asset {path:?}, which cannot be read: {e}"),
            )
            .help(
                "ship the file in the component's assets/ directory, or remove it from describe()",
            )
        })?;
        assets.insert(path.clone(), Arc::new(Asset::new(path, bytes.into())));
    }
    Ok(ComponentVersion {
        hash: component.digest().short(),
        component,
        assets,
        version: None,
        memory_mib: None,
        stamp: stamp.unwrap_or(FileStamp {
            modified: None,
            len: 0,
        }),
    })
}

/// The stamps of every `component.wasm` in a directory. Two equal scans mean nothing
/// was added, removed or rewritten in between.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirScan(BTreeMap<String, Option<FileStamp>>);

pub fn scan(dir: &Path) -> DirScan {
    DirScan(
        wasm_paths(dir)
            .unwrap_or_default()
            .into_iter()
            .map(|(name, path)| (name, stamp(&path)))
            .collect(),
    )
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        "html" => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Install a built component into a components directory as `<dir>/<name>/`: its
/// assets first, then `component.wasm` written to a temporary file and renamed, so a
/// watching renderer never reads a half-written module. This is the local-disk deploy
/// that `oberon dev` and the tests use.
pub fn install(dir: &Path, name: &str, wasm: &Path, assets: Option<&Path>) -> std::io::Result<()> {
    let dest = dir.join(name);
    std::fs::create_dir_all(&dest)?;
    if let Some(src) = assets.filter(|p| p.is_dir()) {
        copy_tree(src, &dest.join("assets"))?;
    }
    let tmp = dest.join(".component.wasm.tmp");
    std::fs::copy(wasm, &tmp)?;
    std::fs::rename(&tmp, dest.join("component.wasm"))
}

fn copy_tree(src: &Path, dest: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let to = dest.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &to)?;
        } else {
            std::fs::copy(entry.path(), to)?;
        }
    }
    Ok(())
}

/// Why a registry version's files do not make a version this renderer can serve.
/// Always the version's own fault (the upstream's side, [`crate::error::Side`]): the
/// same files fail the same way at every look, so the generation is refused, not
/// retried.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("component {name} {version}: {error}")]
    Load {
        name: String,
        version: oberon_registry::Version,
        error: LoadError,
    },
    #[error("component {name} {version} describes itself as {declared:?}")]
    Misnamed {
        name: String,
        version: oberon_registry::Version,
        declared: Arc<str>,
    },
    #[error("component {name} {version} declares asset {path:?}, which the registry does not hold")]
    MissingAsset {
        name: String,
        version: oberon_registry::Version,
        path: String,
    },
}

/// A version from the registry's files (already checked against their hashes):
/// compiled (or taken from the code cache) and its assets held in memory.
pub async fn load_artifact(
    engine: &ComponentEngine,
    name: &str,
    version: &oberon_registry::Version,
    wasm: &[u8],
    files: &BTreeMap<String, bytes::Bytes>,
) -> Result<ComponentVersion, ArtifactError> {
    let component = engine
        .load(wasm)
        .await
        .map_err(|error| ArtifactError::Load {
            name: name.to_string(),
            version: version.clone(),
            error,
        })?;
    let declared = &component.metadata().name;
    if &**declared != name {
        return Err(ArtifactError::Misnamed {
            name: name.to_string(),
            version: version.clone(),
            declared: declared.clone(),
        });
    }
    let mut assets = BTreeMap::new();
    for path in &component.metadata().assets {
        let bytes = files.get(path).ok_or_else(|| ArtifactError::MissingAsset {
            name: name.to_string(),
            version: version.clone(),
            path: path.clone(),
        })?;
        assets.insert(path.clone(), Arc::new(Asset::new(path, bytes.clone())));
    }
    Ok(ComponentVersion {
        hash: component.digest().short(),
        component,
        assets,
        version: Some(version.clone()),
        memory_mib: None,
        stamp: FileStamp {
            modified: None,
            len: 0,
        },
    })
}

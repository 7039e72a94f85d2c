//! Compiled components kept on disk, so a restarted renderer does not compile again.
//!
//! An entry is keyed by the SHA-256 of the component's `.wasm` and by the engine's
//! compatibility hash (wasmtime's version and every setting that changes the code it
//! generates), so a new binary or a new engine configuration simply misses. An entry
//! is `MAGIC`, the xxh3-128 of the payload, then the payload (wasmtime's precompiled
//! component). A torn write, a flipped bit or a file from elsewhere fails the check or
//! wasmtime's own compatibility check, and is compiled again and replaced: a cache
//! entry is never a reason not to start.
//!
//! Writes go to a temporary file in the same directory and are renamed into place,
//! so a reader sees a whole entry or none. The directory is created private to the
//! renderer's user. The cache keeps at most [`CodeCache::MAX_ENTRIES`] entries,
//! forgetting the least recently used.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use wasmtime::Engine;
use wasmtime::component::Component;

/// The SHA-256 of some content: of a component's `.wasm`, taken once as it loads, its
/// entry's key here; its first 16 hex digits ([`ContentDigest::short`]) are the
/// hash a version's or an asset's URL carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentDigest([u8; 32]);

impl ContentDigest {
    pub fn of(wasm: &[u8]) -> Self {
        use sha2::{Digest as _, Sha256};
        Self(Sha256::digest(wasm).into())
    }

    /// All 64 hex digits.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 16 hex digits: a version's or an asset's hash.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..8])
    }
}

/// The first bytes of every entry (and its format's version).
const MAGIC: &[u8; 8] = b"OBRNCC01";
const HEADER: usize = MAGIC.len() + 16;
const SUFFIX: &str = ".cwasm";

/// How one load used the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// The compiled code came from disk.
    Hit,
    /// No entry: compiled, and stored for next time.
    Miss,
    /// An entry was there but not usable (corrupt, truncated, or refused by the
    /// engine): compiled again, and the entry replaced.
    Rejected,
}

/// Counters since the cache was opened, for health output and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub rejected: u64,
    /// Entries that could not be written (the component was still loaded).
    pub write_errors: u64,
}

/// A directory of compiled components for one engine configuration.
#[derive(Debug)]
pub struct CodeCache {
    dir: PathBuf,
    /// The engine's compatibility hash, part of every entry's name.
    engine_key: String,
    hits: AtomicU64,
    misses: AtomicU64,
    rejected: AtomicU64,
    write_errors: AtomicU64,
}

/// Why an entry on disk was not used (and the component is compiled again). Never a
/// reason not to load. Always internal (`Side::Internal`): the renderer's own disk.
#[derive(Debug, thiserror::Error)]
enum EntryError {
    #[error("not an entry of this format")]
    Format,
    #[error("checksum mismatch: truncated or corrupt")]
    Checksum,
    /// Wasmtime refused the code (another version or configuration). Its message,
    /// causes included, is the whole of this one.
    #[error("{0:#}")]
    Refused(wasmtime::Error),
}

impl CodeCache {
    /// Entries kept; past this the least recently used are removed.
    pub const MAX_ENTRIES: usize = 256;

    /// Open (creating it if needed) the cache in `dir` for `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        create_private_dir(dir)?;
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir: dir.to_path_buf(),
            engine_key: format!("{:016x}", hasher.finish()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
        }
    }

    /// The entry's path for `wasm`.
    pub fn entry_path(&self, wasm: &[u8]) -> PathBuf {
        self.entry_path_of(&ContentDigest::of(wasm))
    }

    /// The entry's path for the `.wasm` whose digest is `digest`.
    fn entry_path_of(&self, digest: &ContentDigest) -> PathBuf {
        let mut name = digest.hex();
        name.reserve(1 + 16 + SUFFIX.len());
        name.push('-');
        name.push_str(&self.engine_key);
        name.push_str(SUFFIX);
        self.dir.join(name)
    }

    /// The compiled `wasm` (whose digest is `digest`): from disk if a valid entry is
    /// there, otherwise compiled (and stored). Fails only if the component does not
    /// compile.
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
        digest: &ContentDigest,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let path = self.entry_path_of(digest);
        let mut outcome = CacheOutcome::Miss;
        match std::fs::read(&path) {
            Ok(bytes) => match Self::read_entry(engine, &bytes) {
                Ok(component) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    // Mark it used, for the least-recently-used pruning.
                    if let Ok(file) = std::fs::File::options().append(true).open(&path) {
                        let _ = file.set_modified(SystemTime::now());
                    }
                    return Ok((component, CacheOutcome::Hit));
                }
                Err(reason) => {
                    tracing::warn!(
                        entry = %path.display(),
                        "compiled-code cache entry not used ({reason}); compiling again"
                    );
                    outcome = CacheOutcome::Rejected;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(entry = %path.display(), "cannot read compiled-code cache entry: {e}");
            }
        }
        match outcome {
            CacheOutcome::Rejected => self.rejected.fetch_add(1, Ordering::Relaxed),
            _ => self.misses.fetch_add(1, Ordering::Relaxed),
        };
        let component = Component::new(engine, wasm)?;
        if let Err(e) = component
            .serialize()
            .map_err(std::io::Error::other)
            .and_then(|compiled| self.store(&path, &compiled))
        {
            self.write_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                dir = %self.dir.display(),
                "cannot write compiled-code cache entry (the component is loaded; the next start compiles it again): {e}"
            );
        }
        Ok((component, outcome))
    }

    fn read_entry(engine: &Engine, bytes: &[u8]) -> Result<Component, EntryError> {
        if bytes.len() < HEADER || &bytes[..MAGIC.len()] != MAGIC {
            return Err(EntryError::Format);
        }
        let (header, payload) = bytes.split_at(HEADER);
        let recorded = u128::from_le_bytes(header[MAGIC.len()..].try_into().expect("16 bytes"));
        if xxhash_rust::xxh3::xxh3_128(payload) != recorded {
            return Err(EntryError::Checksum);
        }
        // SAFETY: `Component::deserialize` requires bytes produced by wasmtime's
        // `precompile_component`/`serialize`. Entries are only ever written by
        // `store` below from such bytes, into a directory private to this user; the
        // checksum above rules out a torn or damaged file, and wasmtime itself refuses
        // code from another version or configuration. Whoever can write this
        // directory can already replace the renderer's binary.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, payload) };
        component.map_err(EntryError::Refused)
    }

    fn store(&self, path: &Path, compiled: &[u8]) -> std::io::Result<()> {
        // A name no other writer uses (process, time, a counter): two renderers
        // sharing a directory each write their own file; the last rename wins, and
        // both files are whole.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let temp = self.dir.join(format!(
            ".tmp-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut file = std::fs::File::options()
                .write(true)
                .create_new(true)
                .open(&temp)?;
            file.write_all(MAGIC)?;
            file.write_all(&xxhash_rust::xxh3::xxh3_128(compiled).to_le_bytes())?;
            file.write_all(compiled)?;
            file.sync_data()?;
            std::fs::rename(&temp, path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written?;
        self.prune();
        Ok(())
    }

    /// Remove the least recently used entries past [`Self::MAX_ENTRIES`].
    fn prune(&self) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<(SystemTime, PathBuf)> = dir
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(SUFFIX))
            .filter_map(|e| {
                let modified = e.metadata().and_then(|m| m.modified()).ok()?;
                Some((modified, e.path()))
            })
            .collect();
        if entries.len() <= Self::MAX_ENTRIES {
            return;
        }
        entries.sort();
        let excess = entries.len() - Self::MAX_ENTRIES;
        for (_, path) in entries.into_iter().take(excess) {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

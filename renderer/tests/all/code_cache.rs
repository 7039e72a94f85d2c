//! The compiled-code cache: a second engine loads from disk, and any damaged, foreign
//! or unwritable entry costs a compile, never a failed load.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use oberon_renderer::bus::BusSnapshot;
use oberon_renderer::code_cache::{CacheStats, CodeCache};
use oberon_renderer::engine::{ComponentEngine, EngineLimits};

fn engine(dir: &std::path::Path) -> ComponentEngine {
    ComponentEngine::new(EngineLimits::default())
        .expect("engine")
        .with_code_cache(dir)
        .expect("cache opens")
}

fn footer() -> Vec<u8> {
    std::fs::read(oberon_test_artifacts::artifact("site-footer").wasm()).expect("wasm")
}

fn stats(engine: &ComponentEngine) -> CacheStats {
    engine.code_cache().expect("cache").stats()
}

/// Load and render once: the component from the cache must work, not just load.
async fn load_and_render(engine: &ComponentEngine, wasm: &[u8]) -> String {
    let component = engine.load(wasm).await.expect("loads");
    let ctx = crate::support::bare_request("code-cache");
    let deadline = Instant::now() + Duration::from_secs(5);
    let result = engine
        .render(
            &component,
            &ctx,
            "{}",
            &Arc::new(BusSnapshot::default()),
            engine.budget(deadline),
        )
        .await;
    result.outcome.expect("renders").html
}

#[tokio::test]
async fn a_second_engine_loads_from_disk_without_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = footer();

    let first = engine(dir.path());
    let html = load_and_render(&first, &wasm).await;
    assert!(html.contains("<footer"), "{html}");
    assert_eq!(
        stats(&first),
        CacheStats {
            misses: 1,
            ..CacheStats::default()
        }
    );
    let entry = first.code_cache().unwrap().entry_path(&wasm);
    assert!(entry.is_file(), "entry written at {}", entry.display());

    // A new engine, as after a restart: same configuration, same directory.
    let second = engine(dir.path());
    assert_eq!(load_and_render(&second, &wasm).await, html);
    assert_eq!(
        stats(&second),
        CacheStats {
            hits: 1,
            ..CacheStats::default()
        }
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // A directory the cache creates is private to the renderer's user.
        let created = dir.path().join("nested/cache");
        let _ = engine(&created);
        let created_mode = std::fs::metadata(&created).unwrap().permissions().mode();
        assert_eq!(created_mode & 0o777, 0o700, "was {created_mode:o}");
    }
}

#[tokio::test]
async fn damaged_entries_are_compiled_again_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = footer();
    let good = {
        let engine = engine(dir.path());
        load_and_render(&engine, &wasm).await;
        std::fs::read(engine.code_cache().unwrap().entry_path(&wasm)).unwrap()
    };

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let mut wrong_magic = good.clone();
    wrong_magic[0] = b'X';
    let cases: [(&str, Vec<u8>); 5] = [
        ("a flipped bit", flipped),
        ("truncated", good[..good.len() / 3].to_vec()),
        ("shorter than a header", good[..10].to_vec()),
        ("another format", wrong_magic),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in cases {
        let engine = engine(dir.path());
        let path = engine.code_cache().unwrap().entry_path(&wasm);
        std::fs::write(&path, &bytes).unwrap();
        let html = load_and_render(&engine, &wasm).await;
        assert!(html.contains("<footer"), "{what}: {html}");
        assert_eq!(
            stats(&engine),
            CacheStats {
                rejected: 1,
                ..CacheStats::default()
            },
            "{what}"
        );
        // Replaced by a good entry: the next start hits.
        let next = self::engine(dir.path());
        load_and_render(&next, &wasm).await;
        assert_eq!(stats(&next).hits, 1, "{what}: entry replaced");
    }
}

#[tokio::test]
async fn code_from_another_engine_configuration_is_refused_by_wasmtime() {
    // Well-formed entry, right checksum, under our key, but compiled by an engine with
    // another configuration (no epoch interruption, so its code would never stop a
    // looping guest). Wasmtime's compatibility check refuses it; we compile again.
    let dir = tempfile::tempdir().unwrap();
    let wasm = footer();
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    let foreign_engine = wasmtime::Engine::new(&config).unwrap();
    let foreign = foreign_engine.precompile_component(&wasm).unwrap();
    let mut entry = b"OBRNCC01".to_vec();
    entry.extend_from_slice(&xxhash_rust::xxh3::xxh3_128(&foreign).to_le_bytes());
    entry.extend_from_slice(&foreign);

    let engine = engine(dir.path());
    std::fs::write(engine.code_cache().unwrap().entry_path(&wasm), &entry).unwrap();
    let html = load_and_render(&engine, &wasm).await;
    assert!(html.contains("<footer"), "{html}");
    assert_eq!(
        stats(&engine),
        CacheStats {
            rejected: 1,
            ..CacheStats::default()
        }
    );
}

#[tokio::test]
async fn an_unwritable_cache_still_loads_and_counts_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let engine = engine(&cache_dir);
    // Gone after opening (a volume unmounted, a directory removed by hand).
    std::fs::remove_dir_all(&cache_dir).unwrap();
    let html = load_and_render(&engine, &footer()).await;
    assert!(html.contains("<footer"), "{html}");
    assert_eq!(
        stats(&engine),
        CacheStats {
            misses: 1,
            write_errors: 1,
            ..CacheStats::default()
        }
    );
}

#[tokio::test]
async fn the_least_recently_used_entries_go_past_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let old = SystemTime::now() - Duration::from_secs(3600);
    for i in 0..CodeCache::MAX_ENTRIES {
        let path = dir.path().join(format!("{i:064x}-0000000000000000.cwasm"));
        std::fs::write(&path, b"stale").unwrap();
        let file = std::fs::File::options().append(true).open(&path).unwrap();
        file.set_modified(old + Duration::from_secs(i as u64))
            .unwrap();
    }
    // Not an entry: never pruned.
    std::fs::write(dir.path().join("README"), b"keep").unwrap();

    let engine = engine(dir.path());
    let wasm = footer();
    load_and_render(&engine, &wasm).await;
    let entries: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cwasm"))
        .collect();
    assert_eq!(entries.len(), CodeCache::MAX_ENTRIES);
    assert!(
        !entries.contains(&format!("{:064x}-0000000000000000.cwasm", 0)),
        "the oldest entry went"
    );
    assert!(dir.path().join("README").is_file());
    assert!(engine.code_cache().unwrap().entry_path(&wasm).is_file());
}

#[tokio::test]
async fn a_cache_directory_that_cannot_be_created_stops_the_start_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"").unwrap();
    let site = crate::support::TestSite::new(&[]);
    site.install(&["site-footer"]);
    site.page(
        "home",
        "route = \"/\"\nlayout = \"test.html\"\n[[slots]]\nname = \"main\"\ncomponent = \"site-footer\"\n",
    );
    let err = site
        .start_with_code_cache(Some(file.join("cache")))
        .await
        .err()
        .expect("refused");
    let message = err.to_string();
    assert!(
        message.contains("cannot open the compiled-code cache")
            && message.contains("not-a-directory/cache")
            && message.contains("give a writable directory"),
        "{message}"
    );
}

//! The registry's index and version metadata as a reader gets them from storage (a
//! file or an S3 object anybody with write access to the bucket could have written):
//! `parse_index`, then what readers do with an index — resolve each component's
//! channels (with and without a page's version requirement) and walk the stable
//! lineage. Properties: nothing panics; an index that parses survives a write and a
//! read unchanged; a resolved version is the channel's and meets the requirement.
#![no_main]

use oberon_registry::model::Channel;
use oberon_registry::{VersionReq, parse_index};

const REQUIREMENTS: [&str; 4] = ["*", "^1", ">=0.1, <2", "=1.0.0"];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The generation a reader expects: what the document says, so the deep checks run
    // (and a mismatch is tried too).
    let generation = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v.get("generation")?.as_u64())
        .unwrap_or(0);
    for expected in [generation, generation.wrapping_add(1)] {
        let key = format!("index/{expected:020}.json");
        let index = match parse_index(&key, expected, data) {
            Ok(index) => index,
            Err(e) => {
                let _ = e.to_string();
                continue;
            }
        };
        assert_eq!(index.generation, expected);
        let written = serde_json::to_vec(&index).expect("an index serialises");
        assert_eq!(
            parse_index(&key, expected, &written).expect("a written index reads back"),
            index
        );
        for (name, entry) in &index.components {
            // Each move pushes at most one version.
            assert!(entry.stable_lineage().len() <= entry.history.len());
            for channel in [Channel::Stable, Channel::Canary] {
                let pointer = match channel {
                    Channel::Stable => entry.channels.stable.as_ref(),
                    Channel::Canary => entry.channels.canary.as_ref().map(|c| &c.version),
                };
                match index.resolve(name, channel, None) {
                    Ok(resolved) => {
                        assert_eq!(Some(resolved.version), pointer);
                        assert_eq!(entry.versions.get(resolved.version), Some(resolved.entry));
                    }
                    Err(e) => {
                        let _ = e.to_string();
                    }
                }
                for requirement in REQUIREMENTS {
                    let requirement = VersionReq::parse(requirement).expect("a requirement");
                    match index.resolve(name, channel, Some(&requirement)) {
                        Ok(resolved) => assert!(requirement.matches(resolved.version)),
                        Err(e) => {
                            let _ = e.to_string();
                        }
                    }
                }
            }
        }
    }
});

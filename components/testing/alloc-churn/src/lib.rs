//! `alloc-churn`: exercises the SDK's allocator (built for wasm32-unknown-unknown, like
//! every guest but `misbehave`). Props `mode`:
//! - `churn`: allocates, grows, shrinks and frees some 24 MiB (more than the
//!   renderer's 16 MiB cap) in blocks of every size class, checking every byte it wrote, and reports how many 64 KiB pages of memory
//!   the instance ended with (memory is reused, so a few, not hundreds).
//! - `big`: one 8 MiB buffer, written and read back.
//! - `oom`: keeps 1 MiB blocks until allocation fails (a trap).
//! - `hold` with `mib`: keeps that many 1 MiB blocks, each written, and says so (a trap
//!   where its instance's memory cap is smaller).
//! - `panic`: panics, which on this target is a trap with no WASI to print to.

use std::collections::BTreeMap;

use oberon_sdk::{Component, Context, Fragment, Metadata, Props};

struct AllocChurn;

impl Component for AllocChurn {
    fn describe() -> Metadata {
        Metadata::new("alloc-churn")
    }

    fn render(_ctx: &Context, props: Props) -> Result<Fragment, String> {
        match props.str("mode").unwrap_or("churn") {
            "churn" => {
                churn().map(|pages| Fragment::html(format!("<p>churn ok pages={pages}</p>")))
            }
            "big" => big().map(|()| Fragment::html("<p>big ok</p>")),
            "oom" => {
                let mut kept: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut block = vec![0u8; 1 << 20];
                    block[0] = 1;
                    kept.push(block);
                }
            }
            "hold" => {
                let mib = props.i64("mib").unwrap_or(1).clamp(0, 4096) as usize;
                let kept: Vec<Vec<u8>> = (0..mib).map(|i| vec![i as u8 | 1; 1 << 20]).collect();
                let sum: usize = kept.iter().map(|b| b[b.len() - 1] as usize).sum();
                Ok(Fragment::html(format!("<p>held {mib} MiB ({sum})</p>")))
            }
            "panic" => panic!("alloc-churn asked to panic"),
            other => Err(format!("unknown mode {other}")),
        }
    }
}

fn pattern(i: usize, j: usize) -> u8 {
    (i.wrapping_mul(31) ^ j) as u8
}

/// What block `i` of `round` is filled with.
fn tag(i: usize, round: usize) -> u8 {
    (i * 7 + round) as u8 | 1
}

fn churn() -> Result<usize, String> {
    let mut total = 0usize;
    for round in 0..48usize {
        // Blocks of every size class from 1 B to 16 KiB, a third freed out of order.
        let mut blocks: Vec<Vec<u8>> = (0..64)
            .map(|i| {
                let len = 1 + (i * 977 + round * 131) % (16 << 10);
                total += len;
                vec![tag(i, round); len]
            })
            .collect();
        for i in (0..blocks.len()).step_by(3) {
            blocks[i] = Vec::new();
        }
        // A string built by pushing (the top block grows in place), then shrunk.
        let mut s = String::new();
        for k in 0..2000 {
            s.push_str(&k.to_string());
        }
        total += s.len();
        s.truncate(10);
        s.shrink_to_fit();
        // A map of small nodes, then dropped.
        let map: BTreeMap<usize, String> = (0..500).map(|k| (k, format!("v{k}"))).collect();
        if map.get(&499).map(String::as_str) != Some("v499") {
            return Err(format!("round {round}: map lost a value"));
        }
        for (i, block) in blocks.iter().enumerate() {
            if block.iter().any(|b| *b != tag(i, round)) {
                return Err(format!("round {round}: block {i} corrupted"));
            }
        }
        if !s.starts_with("0123456789") {
            return Err(format!("round {round}: string corrupted"));
        }
    }
    if total < 20 << 20 {
        return Err(format!("only {total} bytes allocated"));
    }
    Ok(memory_pages())
}

/// The instance's memory, in 64 KiB pages.
#[cfg(target_arch = "wasm32")]
fn memory_pages() -> usize {
    core::arch::wasm32::memory_size(0)
}

/// The guest workspace's host-side test build compiles every crate for the host,
/// where this component never runs.
#[cfg(not(target_arch = "wasm32"))]
fn memory_pages() -> usize {
    0
}

fn big() -> Result<(), String> {
    let mut buf = vec![0u8; 8 << 20];
    for (j, b) in buf.iter_mut().enumerate() {
        *b = pattern(7, j);
    }
    match buf
        .iter()
        .enumerate()
        .position(|(j, b)| *b != pattern(7, j))
    {
        Some(j) => Err(format!("8 MiB buffer corrupted at byte {j}")),
        None => Ok(()),
    }
}

oberon_sdk::export_component!(AllocChurn);

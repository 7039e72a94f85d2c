//! `misbehave`: a component that misbehaves on request, for the renderer's
//! isolation tests. Props:
//! `{"mode": "ok"|"log"|"loop"|"sleep"|"oom"|"stack"|"trap"|"panic"|"error"|"env"}`.

use std::hint::black_box;

use oberon_sdk::{Component, Context, Fragment, Metadata, Props, html};

struct Misbehave;

impl Component for Misbehave {
    fn describe() -> Metadata {
        Metadata::new("misbehave")
    }

    fn render(_ctx: &Context, props: Props) -> Result<Fragment, String> {
        match props.str("mode").unwrap_or("ok") {
            "ok" => Ok(Fragment::html("<p>misbehave ok</p>")),
            // A line in the host's log, which a trace shows as an event of the slot.
            "log" => {
                oberon_sdk::log::info("misbehave rendered, logging on request");
                Ok(Fragment::html("<p>misbehave logged</p>"))
            }
            "loop" => spin(),
            // Parks in a WASI poll, where no wasm runs and so no epoch check happens.
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(30));
                Ok(Fragment::html("<p>misbehave woke up</p>"))
            }
            "oom" => exhaust_memory(),
            "stack" => Ok(Fragment::html(format!("<p>{}</p>", recurse(0)))),
            "trap" => trap(),
            "panic" => panic!("misbehave asked to panic"),
            "error" => Err("misbehave asked to fail".to_string()),
            "env" => {
                let vars = std::env::vars().count();
                let fs = if std::fs::read_dir("/").is_ok() {
                    "ok"
                } else {
                    "err"
                };
                Ok(Fragment::html(format!("<p>env={vars} fs={fs}</p>")))
            }
            other => Err(format!("unknown mode {}", html::escape(other))),
        }
    }
}

/// Loops forever; `black_box` keeps the optimiser from removing the loop.
fn spin() -> ! {
    let mut i: u64 = 0;
    loop {
        i = black_box(i.wrapping_add(1));
    }
}

/// Allocates and writes 1 MiB chunks, keeping them all alive, until allocation
/// fails (which aborts, i.e. traps).
fn exhaust_memory() -> ! {
    const CHUNK: usize = 1 << 20;
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0xA5u8; CHUNK];
        chunk[CHUNK - 1] = kept.len() as u8;
        kept.push(black_box(chunk));
        black_box(&kept);
    }
}

/// Recurses without end, each frame holding a buffer whose address escapes, so the
/// frames live on the guest's shadow stack (16 KiB) and overflow it.
#[allow(unconditional_recursion)] // on purpose: it ends in a stack-overflow trap
fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 512];
    frame[0] = depth as u8;
    black_box(&mut frame);
    recurse(black_box(depth + 1)) + u64::from(frame[0])
}

#[cfg(target_arch = "wasm32")]
fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
fn trap() -> ! {
    std::process::abort()
}

oberon_sdk::export_component!(Misbehave);

//! `chain-sink`: reads `n` and `n2` and shows them (compact JSON, or `absent`).
//!
//! Built against `oberon:component@0.1.0` (the frozen contract, without `reuse`)
//! rather than with the SDK, which is on 0.2.0: the renderer serves both versions
//! side by side, and a 0.1.0 component is never reused, so this sink renders afresh
//! on every request whatever its publishers did.

#[allow(clippy::all)]
mod bindings {
    wit_bindgen::generate!({ path: "../../wit/v0.1.0", world: "component" });
}

use bindings::oberon::component::bus;
use bindings::oberon::component::types::{Cacheability, Context, Fragment, Metadata};

struct ChainSink;

/// A topic's value as compact JSON, HTML-escaped, or `absent`.
fn show(topic: &str) -> String {
    bus::get(topic)
        .and_then(|raw| serde_json::from_str::<serde_json::Value>(&raw).ok())
        .map(|v| escape(&v.to_string()))
        .unwrap_or_else(|| "absent".to_string())
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl bindings::Guest for ChainSink {
    fn describe() -> Metadata {
        Metadata {
            name: "chain-sink".into(),
            subscribes: vec!["n".into(), "n2".into()],
            publishes: vec![],
            assets: vec![],
            cacheability: Cacheability::Public,
        }
    }

    fn render(_ctx: Context, _props: String) -> Result<Fragment, String> {
        Ok(Fragment {
            html: format!("<p>sink n={} n2={}</p>", show("n"), show("n2")),
            head: vec![],
        })
    }
}

bindings::export!(ChainSink with_types_in bindings);

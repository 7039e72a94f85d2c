//! `chain-sink`: reads `n` and `n2` and shows them (compact JSON, or `absent`).

use oberon_sdk::{Component, Context, Fragment, Metadata, Props, Value, bus, html};

struct ChainSink;

fn show(topic: &str) -> String {
    bus::get::<Value>(topic)
        .map(|v| html::escape(&v.to_string()))
        .unwrap_or_else(|| "absent".to_string())
}

impl Component for ChainSink {
    fn describe() -> Metadata {
        Metadata::new("chain-sink").subscribes(["n", "n2"])
    }

    fn render(_ctx: &Context, _props: Props) -> Result<Fragment, String> {
        Ok(Fragment::html(format!(
            "<p>sink n={} n2={}</p>",
            show("n"),
            show("n2")
        )))
    }
}

oberon_sdk::export_component!(ChainSink);

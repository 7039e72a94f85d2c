//! `chain-source`: publishes `n` (props `n`, a JSON number, default 1).
//! With props `fail: true` it fails before publishing; with `fail_after_publish: true`
//! it publishes and then fails, so the host must discard what it published.
//! Reusable: the render cache's tests reuse it as a publisher.

use oberon_sdk::{Component, Context, Fragment, Metadata, Props, Value, bus, html};

struct ChainSource;

impl Component for ChainSource {
    fn describe() -> Metadata {
        Metadata::new("chain-source").publishes(["n"]).reuse(600)
    }

    fn render(_ctx: &Context, props: Props) -> Result<Fragment, String> {
        if props.bool("fail") == Some(true) {
            return Err("chain-source asked to fail".to_string());
        }
        let n = match props.get("n") {
            None | Some(Value::Null) => Value::from(1),
            Some(n @ Value::Number(_)) => n.clone(),
            Some(other) => return Err(format!("props.n must be a number, got {other}")),
        };
        bus::publish("n", &n)?;
        if props.bool("fail_after_publish") == Some(true) {
            return Err("chain-source published, then failed".to_string());
        }
        Ok(Fragment::html(format!(
            "<p>source n={}</p>",
            html::escape(&n.to_string())
        )))
    }
}

oberon_sdk::export_component!(ChainSource);

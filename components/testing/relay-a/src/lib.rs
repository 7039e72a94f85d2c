//! `relay-a`: reads `x`, publishes `y` = x + 1 (1 when `x` is absent).
//! With the other relay on the same page the topics form a cycle.

use oberon_sdk::{Component, Context, Fragment, Metadata, Props, bus};

struct RelayA;

impl Component for RelayA {
    fn describe() -> Metadata {
        Metadata::new("relay-a").subscribes(["x"]).publishes(["y"])
    }

    fn render(_ctx: &Context, _props: Props) -> Result<Fragment, String> {
        let input = bus::get::<i64>("x");
        let output = input.map_or(1, |v| v.saturating_add(1));
        bus::publish("y", &output)?;
        let shown = input.map_or_else(|| "absent".to_string(), |v| v.to_string());
        Ok(Fragment::html(format!(
            "<p>relay-a x={shown} y={output}</p>"
        )))
    }
}

oberon_sdk::export_component!(RelayA);

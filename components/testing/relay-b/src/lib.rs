//! `relay-b`: reads `y`, publishes `x` = y + 1 (1 when `y` is absent).
//! With the other relay on the same page the topics form a cycle.

use oberon_sdk::{Component, Context, Fragment, Metadata, Props, bus};

struct RelayB;

impl Component for RelayB {
    fn describe() -> Metadata {
        Metadata::new("relay-b").subscribes(["y"]).publishes(["x"])
    }

    fn render(_ctx: &Context, _props: Props) -> Result<Fragment, String> {
        let input = bus::get::<i64>("y");
        let output = input.map_or(1, |v| v.saturating_add(1));
        bus::publish("x", &output)?;
        let shown = input.map_or_else(|| "absent".to_string(), |v| v.to_string());
        Ok(Fragment::html(format!(
            "<p>relay-b y={shown} x={output}</p>"
        )))
    }
}

oberon_sdk::export_component!(RelayB);

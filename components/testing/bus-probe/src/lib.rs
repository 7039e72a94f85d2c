//! `bus-probe`: checks the host enforces declared topics. Subscribes `declared`,
//! publishes `mine`; reads the undeclared `secret` and publishes the undeclared
//! `not-mine`, and reports what happened.

use oberon_sdk::{Component, Context, Fragment, Metadata, Props, bus, html};

struct BusProbe;

fn outcome(result: Result<(), String>) -> String {
    match result {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("err:{e}"),
    }
}

impl Component for BusProbe {
    fn describe() -> Metadata {
        Metadata::new("bus-probe")
            .subscribes(["declared"])
            .publishes(["mine"])
    }

    fn render(_ctx: &Context, _props: Props) -> Result<Fragment, String> {
        let secret = if bus::get_raw("secret").is_some() {
            "present"
        } else {
            "absent"
        };
        let declared = bus::get_raw("declared").unwrap_or_else(|| "absent".to_string());
        let undeclared = outcome(bus::publish_raw("not-mine", "1"));
        let mine = outcome(bus::publish_raw("mine", "2"));
        Ok(Fragment::html(format!(
            "<p>secret={} declared={} publish-undeclared={} publish-declared={}</p>",
            secret,
            html::escape(&declared),
            html::escape(&undeclared),
            html::escape(&mine)
        )))
    }
}

oberon_sdk::export_component!(BusProbe);

//! `chain-double`: reads `n`, publishes `n2` = n * 2 (nothing when `n` is absent).
//! Reusable for 1 s only: the render cache's expiry test waits that out.

use oberon_sdk::{Component, Context, Fragment, Metadata, Props, bus};

struct ChainDouble;

impl Component for ChainDouble {
    fn describe() -> Metadata {
        Metadata::new("chain-double")
            .subscribes(["n"])
            .publishes(["n2"])
            .reuse(1)
    }

    fn render(_ctx: &Context, _props: Props) -> Result<Fragment, String> {
        match bus::get::<i64>("n") {
            Some(n) => {
                let n2 = n.checked_mul(2).ok_or("n * 2 overflows")?;
                bus::publish("n2", &n2)?;
                Ok(Fragment::html(format!("<p>double n2={n2}</p>")))
            }
            None => Ok(Fragment::html("<p>double n absent</p>")),
        }
    }
}

oberon_sdk::export_component!(ChainDouble);

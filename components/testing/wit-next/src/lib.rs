//! `wit-next`: a component built against `oberon:component@0.3.0-next` (see `wit/`), a
//! contract version the host does not serve, for the registry's deploy validation
//! tests. Otherwise well-formed.

#[allow(clippy::all)]
mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "component" });
}

use bindings::oberon::component::types::{Cacheability, Context, Fragment, Metadata};

struct WitNext;

impl bindings::Guest for WitNext {
    fn describe() -> Metadata {
        Metadata {
            name: "wit-next".into(),
            subscribes: vec![],
            publishes: vec![],
            assets: vec![],
            cacheability: Cacheability::Public,
            reuse: None,
        }
    }

    fn render(_ctx: Context, _props: String) -> Result<Fragment, String> {
        Ok(Fragment {
            html: "<p>from the future</p>".into(),
            head: vec![],
        })
    }
}

bindings::export!(WitNext with_types_in bindings);

//! `bad-metadata`: a component whose `describe` the host must refuse (it subscribes to
//! and publishes the same topic), for the registry's deploy validation tests.

use oberon_sdk::{Component, Context, Fragment, Metadata, Props};

struct BadMetadata;

impl Component for BadMetadata {
    fn describe() -> Metadata {
        Metadata::new("bad-metadata")
            .subscribes(["cart"])
            .publishes(["cart"])
    }

    fn render(_ctx: &Context, _props: Props) -> Result<Fragment, String> {
        Ok(Fragment::html("<p>never deployed</p>"))
    }
}

oberon_sdk::export_component!(BadMetadata);

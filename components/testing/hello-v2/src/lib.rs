//! `hello-v2`: version 2 of the component `hello`, for the renderer's hot-swap
//! tests (two builds that describe themselves with the same name). Reusable, so the
//! render cache's deploy and rollback test shows a swap never serves the other's.

use oberon_sdk::{Component, Context, Fragment, Metadata, Props};

struct Hello;

impl Component for Hello {
    fn describe() -> Metadata {
        Metadata::new("hello").assets(["hello.js"]).reuse(600)
    }

    fn render(_ctx: &Context, _props: Props) -> Result<Fragment, String> {
        Ok(Fragment::html("<p>hello v2</p>"))
    }
}

oberon_sdk::export_component!(Hello);

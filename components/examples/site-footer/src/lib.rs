//! `site-footer` (team platform): a static footer. No topics, public, reusable.

use oberon_sdk::{Component, Context, Fragment, Metadata, Props};

struct SiteFooter;

impl Component for SiteFooter {
    fn describe() -> Metadata {
        Metadata::new("site-footer").reuse(300)
    }

    fn render(_ctx: &Context, _props: Props) -> Result<Fragment, String> {
        Ok(Fragment::html(concat!(
            r#"<footer class="site-footer">"#,
            r#"<nav aria-label="Footer"><ul>"#,
            r#"<li><a href="/">Home</a></li><li><a href="/checkout">Checkout</a></li><li><a href="/help">Help</a></li>"#,
            "</ul></nav>",
            "<p>© Oberon Tickets · Rendered by Oberon components</p>",
            "</footer>"
        )))
    }
}

oberon_sdk::export_component!(SiteFooter);

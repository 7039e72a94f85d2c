//! `site-header` (team platform): the site header. No topics, public, reusable.
//!
//! Props: `{"site_name": "Oberon Tickets"}` (the default). The header does not
//! show who is signed in, so it stays cacheable for everyone: "Your account" is
//! a static link (the gateway sends a visitor who is not signed in to sign in).

use oberon_sdk::{Component, Context, Fragment, Metadata, Props, html};
use serde::Deserialize;

#[derive(Deserialize)]
struct HeaderProps {
    #[serde(default = "default_site_name")]
    site_name: String,
}

fn default_site_name() -> String {
    "Oberon Tickets".to_string()
}

struct SiteHeader;

impl Component for SiteHeader {
    fn describe() -> Metadata {
        Metadata::new("site-header").reuse(300)
    }

    fn render(_ctx: &Context, props: Props) -> Result<Fragment, String> {
        let props: HeaderProps = props.parse()?;
        Ok(Fragment::html(format!(
            concat!(
                r#"<header class="site-header">"#,
                r#"<a class="site-name" href="/">{}</a>"#,
                r#"<nav aria-label="Main"><ul>"#,
                r#"<li><a href="/events/42">Events</a></li>"#,
                r#"<li><a href="/account">Your account</a></li>"#,
                "</ul></nav></header>"
            ),
            html::escape(&props.site_name)
        )))
    }
}

oberon_sdk::export_component!(SiteHeader);

//! `recommendations` (team discovery): related events.
//!
//! Subscribes `event` (reads its `related` list). Public, reusable.

use oberon_sdk::{Component, Context, Fragment, Metadata, Props, bus, html};
use serde::Deserialize;

/// The part of the `event` topic this component reads.
#[derive(Deserialize)]
struct Event {
    #[serde(default)]
    related: Vec<Related>,
}

#[derive(Deserialize)]
struct Related {
    id: String,
    name: String,
    #[serde(default)]
    starts_at: Option<String>,
}

struct Recommendations;

impl Component for Recommendations {
    fn describe() -> Metadata {
        Metadata::new("recommendations")
            .subscribes(["event"])
            .reuse(60)
    }

    fn render(_ctx: &Context, _props: Props) -> Result<Fragment, String> {
        let related = bus::get::<Event>("event")
            .map(|e| e.related)
            .unwrap_or_default();
        if related.is_empty() {
            return Ok(Fragment::html(
                r#"<section class="recommendations recommendations--empty"><h2>You might also like</h2><p>No recommendations right now.</p></section>"#,
            ));
        }
        // Built with `push_str` and `escape_into`, not `format!`: this runs on every
        // request, and each `format!` and escaped `String` is work in a fresh instance.
        let mut html = String::with_capacity(160 + 160 * related.len());
        html.push_str(r#"<section class="recommendations"><h2>You might also like</h2><ul>"#);
        for r in &related {
            html.push_str(r#"<li><a href="/events/"#);
            html::escape_into(&mut html, &r.id);
            html.push_str(r#"">"#);
            html::escape_into(&mut html, &r.name);
            html.push_str("</a>");
            if let Some(d) = r.starts_at.as_deref() {
                let day = d.split('T').next().unwrap_or(d);
                html.push_str(r#" <time datetime=""#);
                html::escape_into(&mut html, d);
                html.push_str(r#"">"#);
                html::escape_into(&mut html, day);
                html.push_str("</time>");
            }
            html.push_str("</li>");
        }
        html.push_str("</ul></section>");
        Ok(Fragment::html(html))
    }
}

oberon_sdk::export_component!(Recommendations);

//! `recommendations` (team discovery): related events.
//!
//! Subscribes `event` (reads its `related` list). Public.

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
        Metadata::new("recommendations").subscribes(["event"])
    }

    fn render(_ctx: &Context, _props: Props) -> Result<Fragment, String> {
        let related = bus::get::<Event>("event")
            .map(|e| e.related)
            .unwrap_or_default();
        if related.is_empty() {
            return Ok(Fragment::html(
                r#"<section class="recommendations recommendations--empty"><p>No recommendations right now.</p></section>"#,
            ));
        }
        let mut items = String::new();
        for r in &related {
            let date = r
                .starts_at
                .as_deref()
                .map(|d| {
                    let day = d.split('T').next().unwrap_or(d);
                    format!(
                        r#" <time datetime="{}">{}</time>"#,
                        html::escape(d),
                        html::escape(day)
                    )
                })
                .unwrap_or_default();
            items.push_str(&format!(
                r#"<li><a href="/events/{}">{}</a>{}</li>"#,
                html::escape(&r.id),
                html::escape(&r.name),
                date
            ));
        }
        Ok(Fragment::html(format!(
            r#"<section class="recommendations"><h2>You might also like</h2><ul>{items}</ul></section>"#
        )))
    }
}

oberon_sdk::export_component!(Recommendations);

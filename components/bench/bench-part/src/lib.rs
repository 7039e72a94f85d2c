//! `bench-part` (the benchmarks' component): one part of the comparison page of
//! `bench/src/bin/compare.rs`, a list of offers from a data source.
//!
//! Props `{ topic = "part-1" }` choose which of the topics `part-1` … `part-4` to read:
//! `{"title": "...", "items": [{"name", "href", "price", "note"}, ...]}`. Without its
//! topic (its data source failed or missed its deadline) the render fails, so the slot
//! gets its fallback. Public, reusable (a pure function of its props and topics).

use oberon_sdk::{Component, Context, Fragment, Metadata, Props, bus, html};
use serde::Deserialize;

const TOPICS: [&str; 4] = ["part-1", "part-2", "part-3", "part-4"];

#[derive(Deserialize)]
struct Part {
    title: String,
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    name: String,
    href: String,
    price: String,
    note: String,
}

struct BenchPart;

impl Component for BenchPart {
    fn describe() -> Metadata {
        Metadata::new("bench-part").subscribes(TOPICS).reuse(60)
    }

    fn render(_ctx: &Context, props: Props) -> Result<Fragment, String> {
        let topic = props
            .str("topic")
            .filter(|t| TOPICS.contains(t))
            .ok_or("props.topic must be one of part-1 … part-4")?;
        let part = bus::get::<Part>(topic).ok_or_else(|| format!("no {topic} on the bus"))?;
        // Built with `push_str` and `escape_into`, as the examples are.
        let mut out = String::with_capacity(2300);
        out.push_str(r#"<section class="part" data-part=""#);
        out.push_str(topic);
        out.push_str(r#""><h2>"#);
        html::escape_into(&mut out, &part.title);
        out.push_str("</h2><ul>");
        for item in &part.items {
            out.push_str(r#"<li class="offer"><a href=""#);
            html::escape_into(&mut out, &item.href);
            out.push_str(r#"">"#);
            html::escape_into(&mut out, &item.name);
            out.push_str(r#"</a> <span class="price">"#);
            html::escape_into(&mut out, &item.price);
            out.push_str(r#"</span><p class="note">"#);
            html::escape_into(&mut out, &item.note);
            out.push_str("</p></li>");
        }
        out.push_str("</ul></section>");
        Ok(Fragment::html(out))
    }
}

oberon_sdk::export_component!(BenchPart);

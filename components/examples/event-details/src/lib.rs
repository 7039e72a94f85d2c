//! `event-details` (team events): the event's name, place, date and description.
//!
//! Subscribes `event` (the page's data source). Public, reusable (a pure function of
//! `event`, the path and its props). No assets: its styles are in the site's layouts,
//! inline, so the page has no render-blocking stylesheet.
//!
//! Head entries: the title, the meta description and, with the prop
//! `canonical_origin` (`"https://tickets.example"`), `<link rel="canonical">` to the
//! event's path on that origin (a canonical URL must be absolute, and a component does
//! not know the origin it is served on).

use oberon_sdk::{Component, Context, Fragment, HeadEntry, Metadata, Props, bus, html};
use serde::Deserialize;

/// The part of the `event` topic this component reads.
#[derive(Deserialize)]
struct Event {
    name: String,
    venue: String,
    city: String,
    starts_at: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    image: Option<String>,
}

struct EventDetails;

impl Component for EventDetails {
    fn describe() -> Metadata {
        Metadata::new("event-details")
            .subscribes(["event"])
            .reuse(60)
    }

    fn render(ctx: &Context, props: Props) -> Result<Fragment, String> {
        let Some(event) = bus::get::<Event>("event") else {
            return Ok(Fragment::html(
                r#"<section class="event-details event-details--unavailable"><h1>Event details</h1><p>Event details are unavailable right now.</p></section>"#,
            ));
        };
        // Built with `push_str` and `escape_into`, not `format!`: this runs on every
        // request, and each `format!` and escaped `String` is work in a fresh instance.
        let mut html = String::with_capacity(256 + event.description.len());
        html.push_str(r#"<section class="event-details">"#);
        if let Some(src) = event.image.as_deref() {
            // The size (16:9, as the layout's `aspect-ratio`) reserves its box before it
            // loads; it is the page's largest paint, so it is fetched first.
            html.push_str(r#"<img class="event-image" src=""#);
            html::escape_into(&mut html, src);
            html.push_str(r#"" alt=""#);
            html::escape_into(&mut html, &event.name);
            html.push_str(r#"" width="1280" height="720" fetchpriority="high">"#);
        }
        html.push_str("<h1>");
        html::escape_into(&mut html, &event.name);
        html.push_str(r#"</h1><p class="event-place">"#);
        html::escape_into(&mut html, &event.venue);
        html.push_str(", ");
        html::escape_into(&mut html, &event.city);
        html.push_str(r#"</p><p class="event-date"><time datetime=""#);
        html::escape_into(&mut html, &event.starts_at);
        html.push_str(r#"">"#);
        html::escape_into(&mut html, &format_date(&event.starts_at));
        html.push_str(r#"</time></p><div class="event-description"><p>"#);
        html::escape_into(&mut html, &event.description);
        html.push_str("</p></div></section>");
        let fragment = Fragment::html(html)
            .with_head(HeadEntry::title(format!("{} · Oberon Tickets", event.name)))
            .with_head(HeadEntry::meta_name("description", summary(&event)));
        Ok(match props.str("canonical_origin") {
            Some(origin) => fragment.with_head(HeadEntry::link(
                "canonical",
                canonical_url(origin, &ctx.path),
            )),
            None => fragment,
        })
    }
}

/// `2026-12-05T20:00:00Z` → `5 December 2026, 20:00 UTC`; anything else as is.
fn format_date(starts_at: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let parsed = (|| {
        let (date, time) = starts_at.split_once('T')?;
        let mut parts = date.splitn(3, '-');
        let year = parts.next()?;
        let month: usize = parts.next()?.parse().ok()?;
        let day: u32 = parts.next()?.parse().ok()?;
        let month = MONTHS.get(month.checked_sub(1)?)?;
        let hhmm = time.get(..5)?;
        let zone = if time.ends_with('Z') { " UTC" } else { "" };
        Some(format!("{day} {month} {year}, {hhmm}{zone}"))
    })();
    parsed.unwrap_or_else(|| starts_at.to_string())
}

/// `https://tickets.example/` and `/events/42` → `https://tickets.example/events/42`
/// (the path without its query: every `?type=…&qty=…` view is the same event page).
fn canonical_url(origin: &str, path: &str) -> String {
    format!("{}{path}", origin.trim_end_matches('/'))
}

/// The meta description: the event's own description, or its place and date.
fn summary(event: &Event) -> String {
    let text = event.description.trim();
    if text.is_empty() {
        format!(
            "{} at {}, {} on {}",
            event.name,
            event.venue,
            event.city,
            format_date(&event.starts_at)
        )
    } else if text.chars().count() > 160 {
        let cut: String = text.chars().take(157).collect();
        format!("{}...", cut.trim_end())
    } else {
        text.to_string()
    }
}

oberon_sdk::export_component!(EventDetails);

#[cfg(test)]
mod tests {
    use super::{canonical_url, format_date};

    #[test]
    fn canonical_urls_join_origin_and_path() {
        assert_eq!(
            canonical_url("https://tickets.example", "/events/42"),
            "https://tickets.example/events/42"
        );
        assert_eq!(
            canonical_url("https://tickets.example/", "/events/42"),
            "https://tickets.example/events/42"
        );
    }

    #[test]
    fn formats_dates() {
        assert_eq!(
            format_date("2026-12-05T20:00:00Z"),
            "5 December 2026, 20:00 UTC"
        );
        assert_eq!(
            format_date("2026-01-15T09:30:00+01:00"),
            "15 January 2026, 09:30"
        );
        assert_eq!(format_date("soon"), "soon");
        assert_eq!(format_date("2026-13-05T20:00:00Z"), "2026-13-05T20:00:00Z");
    }
}

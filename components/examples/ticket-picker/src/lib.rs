//! `ticket-picker` (team checkout): choose a ticket type and a quantity.
//!
//! Subscribes `event`, publishes `ticket-selection`. Volatile (remaining counts).
//! Reusable for 10 s: a pure function of `event` (remaining counts included), the
//! query and its props, so a reused render publishes the same selection.
//! Query: `type` (ticket type id; default the first one not sold out) and `qty`
//! (default props `default_quantity`, else 2; clamped to 1..=10 and to what remains).
//! Assets: `ticket-picker.js`, which republishes the selection on the browser bus.

use oberon_sdk::{Cacheability, Component, Context, Fragment, Metadata, Props, bus, html, log};
use std::fmt::Write;

use serde::{Deserialize, Serialize};

const MAX_QUANTITY: u32 = 10;

#[derive(Deserialize)]
struct PickerProps {
    #[serde(default = "default_quantity")]
    default_quantity: u32,
}

fn default_quantity() -> u32 {
    2
}

/// The part of the `event` topic this component reads.
#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(default)]
    ticket_types: Vec<TicketType>,
}

#[derive(Deserialize)]
struct TicketType {
    id: String,
    name: String,
    price_cents: i64,
    currency: String,
    remaining: u32,
}

/// The `ticket-selection` topic, owned by team checkout.
#[derive(Serialize)]
struct TicketSelection<'a> {
    event_id: &'a str,
    ticket_type: &'a str,
    name: &'a str,
    quantity: u32,
    unit_price_cents: i64,
    currency: &'a str,
}

struct TicketPicker;

impl Component for TicketPicker {
    fn describe() -> Metadata {
        Metadata::new("ticket-picker")
            .subscribes(["event"])
            .publishes(["ticket-selection"])
            .assets(["ticket-picker.js"])
            .cacheability(Cacheability::Volatile)
            .reuse(10)
    }

    fn render(ctx: &Context, props: Props) -> Result<Fragment, String> {
        let props: PickerProps = props.parse()?;
        let Some(event) = bus::get::<Event>("event") else {
            return Ok(Fragment::html(
                r#"<section class="ticket-picker ticket-picker--unavailable"><h2>Tickets</h2><p>Tickets are unavailable right now.</p></section>"#,
            ));
        };

        let chosen = pick_type(&event.ticket_types, ctx.query("type"));
        let quantity = chosen.map_or(0, |t| {
            let wanted = ctx
                .query("qty")
                .and_then(|q| q.trim().parse::<u32>().ok())
                .unwrap_or(props.default_quantity);
            clamp_quantity(wanted, t.remaining)
        });

        if let Some(t) = chosen {
            let selection = TicketSelection {
                event_id: &event.id,
                ticket_type: &t.id,
                name: &t.name,
                quantity,
                unit_price_cents: t.price_cents,
                currency: &t.currency,
            };
            if let Err(e) = bus::publish("ticket-selection", &selection) {
                log::warn(&format!("cannot publish ticket-selection: {e}"));
            }
        }

        Ok(Fragment::html(render_form(ctx, &event, chosen, quantity)))
    }
}

/// The requested type if it exists and is not sold out, else the first one not sold out.
fn pick_type<'a>(types: &'a [TicketType], requested: Option<&str>) -> Option<&'a TicketType> {
    requested
        .and_then(|id| types.iter().find(|t| t.id == id && t.remaining > 0))
        .or_else(|| types.iter().find(|t| t.remaining > 0))
}

/// Clamps to 1..=10 and to what remains.
fn clamp_quantity(wanted: u32, remaining: u32) -> u32 {
    wanted.clamp(1, MAX_QUANTITY).min(remaining)
}

/// `4500, "EUR"` → `EUR 45.00`.
fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{currency} {sign}{}.{:02}", abs / 100, abs % 100)
}

// The form is built with `push_str` and `html::escape_into` rather than `format!`:
// on this hot path (every request, in a fresh instance) `format!` with many
// arguments and an escaped `String` per value was a third of this component's work.
fn render_form(ctx: &Context, event: &Event, chosen: Option<&TicketType>, quantity: u32) -> String {
    let mut out = String::with_capacity(512 + 320 * event.ticket_types.len());
    out.push_str(r#"<form class="ticket-picker" method="get" action=""#);
    html::escape_into(&mut out, &ctx.path);
    out.push_str(r#"" data-oberon-component="ticket-picker" data-event-id=""#);
    html::escape_into(&mut out, &event.id);
    out.push_str(r#""><h2>Tickets</h2><label class="field">Ticket type <select name="type">"#);
    for t in &event.ticket_types {
        push_option(&mut out, t, chosen.is_some_and(|c| c.id == t.id));
    }
    let max = chosen.map_or(MAX_QUANTITY, |t| t.remaining.min(MAX_QUANTITY));
    let _ = write!(
        out,
        r#"</select></label><label class="field">Quantity <input type="number" inputmode="numeric" name="qty" min="1" max="{max}" value="{}"></label>"#,
        quantity.max(1)
    );
    out.push_str(r#"<button type="submit">Update</button>"#);
    if chosen.is_none() {
        out.push_str(r#"<p class="ticket-picker-soldout">Sold out.</p>"#);
    }
    out.push_str("</form>");
    out
}

/// `<option value="…" data-…>Name · EUR 45.00 (12 left)</option>`
fn push_option(out: &mut String, t: &TicketType, selected: bool) {
    out.push_str(r#"<option value=""#);
    html::escape_into(out, &t.id);
    out.push_str(r#"" data-name=""#);
    html::escape_into(out, &t.name);
    let _ = write!(
        out,
        r#"" data-price-cents="{}" data-currency=""#,
        t.price_cents
    );
    html::escape_into(out, &t.currency);
    let _ = write!(out, r#"" data-remaining="{}""#, t.remaining);
    if selected {
        out.push_str(" selected");
    }
    if t.remaining == 0 {
        out.push_str(" disabled");
    }
    out.push('>');
    html::escape_into(out, &t.name);
    out.push_str(" · ");
    html::escape_into(out, &money(t.price_cents, &t.currency));
    if t.remaining == 0 {
        out.push_str(" (sold out)</option>");
    } else {
        let _ = write!(out, " ({} left)</option>", t.remaining);
    }
}

oberon_sdk::export_component!(TicketPicker);

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: &str, remaining: u32) -> TicketType {
        TicketType {
            id: id.into(),
            name: id.into(),
            price_cents: 4500,
            currency: "EUR".into(),
            remaining,
        }
    }

    #[test]
    fn picks_requested_or_first_available() {
        let types = [t("a", 0), t("b", 5), t("c", 1)];
        assert_eq!(pick_type(&types, None).unwrap().id, "b");
        assert_eq!(pick_type(&types, Some("c")).unwrap().id, "c");
        assert_eq!(pick_type(&types, Some("a")).unwrap().id, "b");
        assert_eq!(pick_type(&types, Some("zzz")).unwrap().id, "b");
        assert!(pick_type(&[t("a", 0)], None).is_none());
    }

    #[test]
    fn clamps_quantity() {
        assert_eq!(clamp_quantity(0, 100), 1);
        assert_eq!(clamp_quantity(2, 100), 2);
        assert_eq!(clamp_quantity(50, 100), 10);
        assert_eq!(clamp_quantity(5, 3), 3);
    }

    #[test]
    fn formats_money() {
        assert_eq!(money(4500, "EUR"), "EUR 45.00");
        assert_eq!(money(9005, "EUR"), "EUR 90.05");
        assert_eq!(money(-150, "USD"), "USD -1.50");
    }
}

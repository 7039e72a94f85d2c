//! `ticket-picker` (team checkout): choose a ticket type and a quantity.
//!
//! Subscribes `event`, publishes `ticket-selection`. Volatile (remaining counts).
//! Query: `type` (ticket type id; default the first one not sold out) and `qty`
//! (default props `default_quantity`, else 2; clamped to 1..=10 and to what remains).
//! Assets: `ticket-picker.js`, which republishes the selection on the browser bus.

use oberon_sdk::{Cacheability, Component, Context, Fragment, Metadata, Props, bus, html, log};
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
    }

    fn render(ctx: &Context, props: Props) -> Result<Fragment, String> {
        let props: PickerProps = props.parse()?;
        let Some(event) = bus::get::<Event>("event") else {
            return Ok(Fragment::html(
                r#"<section class="ticket-picker ticket-picker--unavailable"><p>Tickets are unavailable right now.</p></section>"#,
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

fn render_form(ctx: &Context, event: &Event, chosen: Option<&TicketType>, quantity: u32) -> String {
    let mut options = String::new();
    for t in &event.ticket_types {
        let selected = if chosen.is_some_and(|c| c.id == t.id) {
            " selected"
        } else {
            ""
        };
        let disabled = if t.remaining == 0 { " disabled" } else { "" };
        let availability = if t.remaining == 0 {
            "sold out".to_string()
        } else {
            format!("{} left", t.remaining)
        };
        options.push_str(&format!(
            concat!(
                r#"<option value="{id}" data-name="{name}" data-price-cents="{price}" "#,
                r#"data-currency="{currency}" data-remaining="{remaining}"{selected}{disabled}>"#,
                "{name} · {money} ({availability})</option>"
            ),
            id = html::escape(&t.id),
            name = html::escape(&t.name),
            price = t.price_cents,
            currency = html::escape(&t.currency),
            remaining = t.remaining,
            selected = selected,
            disabled = disabled,
            money = html::escape(&money(t.price_cents, &t.currency)),
            availability = availability,
        ));
    }
    let max = chosen.map_or(MAX_QUANTITY, |t| t.remaining.min(MAX_QUANTITY));
    let status = if chosen.is_none() {
        r#"<p class="ticket-picker-soldout">Sold out.</p>"#
    } else {
        ""
    };
    format!(
        concat!(
            r#"<form class="ticket-picker" method="get" action="{action}" "#,
            r#"data-oberon-component="ticket-picker" data-event-id="{event_id}">"#,
            r#"<label>Ticket type <select name="type">{options}</select></label> "#,
            r#"<label>Quantity <input type="number" name="qty" min="1" max="{max}" value="{quantity}"></label> "#,
            r#"<button type="submit">Update</button>{status}"#,
            "</form>"
        ),
        action = html::escape(&ctx.path),
        event_id = html::escape(&event.id),
        options = options,
        max = max,
        quantity = quantity.max(1),
        status = status,
    )
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

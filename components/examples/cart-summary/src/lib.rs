//! `cart-summary` (team checkout): what is in the cart and what it costs.
//!
//! Subscribes `ticket-selection`. Public, reusable. Assets: `cart-summary.js`, which
//! follows `ticket-selection` on the browser bus and updates the total.

use oberon_sdk::{Component, Context, Fragment, Metadata, Props, bus, html};
use serde::Deserialize;

/// The `ticket-selection` topic (published by `ticket-picker`).
#[derive(Deserialize)]
struct TicketSelection {
    name: String,
    quantity: u32,
    unit_price_cents: i64,
    currency: String,
}

struct CartSummary;

impl Component for CartSummary {
    fn describe() -> Metadata {
        Metadata::new("cart-summary")
            .subscribes(["ticket-selection"])
            .assets(["cart-summary.js"])
            .reuse(60)
    }

    fn render(_ctx: &Context, _props: Props) -> Result<Fragment, String> {
        let body = match bus::get::<TicketSelection>("ticket-selection") {
            Some(s) if s.quantity > 0 => {
                let total = s.unit_price_cents.saturating_mul(i64::from(s.quantity));
                format!(
                    concat!(
                        r#"<p class="cart-line">{qty} × {name}</p>"#,
                        r#"<p class="cart-total">Total: <strong data-oberon-total>{total}</strong></p>"#
                    ),
                    qty = s.quantity,
                    name = html::escape(&s.name),
                    total = html::escape(&money(total, &s.currency)),
                )
            }
            _ => r#"<p class="cart-empty">Your cart is empty.</p>"#.to_string(),
        };
        Ok(Fragment::html(format!(
            concat!(
                r#"<section class="cart-summary" data-oberon-component="cart-summary">"#,
                "<h2>Your cart</h2>",
                // Announced when `cart-summary.js` refills it after a new selection.
                r#"<div data-oberon-cart aria-live="polite">{body}</div>"#,
                "</section>"
            ),
            body = body
        )))
    }
}

/// `9000, "EUR"` → `EUR 90.00`.
fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{currency} {sign}{}.{:02}", abs / 100, abs % 100)
}

oberon_sdk::export_component!(CartSummary);

#[cfg(test)]
mod tests {
    use super::money;

    #[test]
    fn formats_money() {
        assert_eq!(money(9000, "EUR"), "EUR 90.00");
        assert_eq!(money(5, "GBP"), "GBP 0.05");
    }
}

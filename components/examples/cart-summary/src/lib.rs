//! `cart-summary` (team checkout): what is in the cart and what it costs.
//!
//! Subscribes `ticket-selection` (from the Rust `ticket-picker`) and `promotion` (from
//! the JavaScript `promo-banner`, team marketing): a promotion for the selection's event
//! takes its percentage off the total (rounded down to the cent). Public, reusable.
//! Assets: `cart-summary.js`, which follows both topics on the browser bus and updates
//! the total.

use oberon_sdk::{Component, Context, Fragment, Metadata, Props, bus, html};
use serde::Deserialize;

/// The `ticket-selection` topic (published by `ticket-picker`).
#[derive(Deserialize)]
struct TicketSelection {
    name: String,
    quantity: u32,
    unit_price_cents: i64,
    currency: String,
    #[serde(default)]
    event_id: String,
}

/// The `promotion` topic (published by `promo-banner`).
#[derive(Deserialize)]
struct Promotion {
    event_id: String,
    code: String,
    percent_off: u8,
}

/// The most a promotion may take off; more is taken as a mistake and ignored.
const MAX_PERCENT_OFF: u8 = 50;

struct CartSummary;

impl Component for CartSummary {
    fn describe() -> Metadata {
        Metadata::new("cart-summary")
            .subscribes(["ticket-selection", "promotion"])
            .assets(["cart-summary.js"])
            .reuse(60)
    }

    fn render(_ctx: &Context, _props: Props) -> Result<Fragment, String> {
        let body = match bus::get::<TicketSelection>("ticket-selection") {
            Some(s) if s.quantity > 0 => {
                let promotion = bus::get::<Promotion>("promotion").filter(|p| {
                    p.event_id == s.event_id && (1..=MAX_PERCENT_OFF).contains(&p.percent_off)
                });
                let total = s.unit_price_cents.saturating_mul(i64::from(s.quantity));
                let (discount, total) = match &promotion {
                    Some(p) => {
                        let off = discount(total, p.percent_off);
                        let line = format!(
                            r#"<p class="cart-discount">{code}: {pct} % off, −{off}</p>"#,
                            code = html::escape(&p.code),
                            pct = p.percent_off,
                            off = html::escape(&money(off, &s.currency)),
                        );
                        (line, total - off)
                    }
                    None => (String::new(), total),
                };
                format!(
                    concat!(
                        r#"<p class="cart-line">{qty} × {name}</p>"#,
                        "{discount}",
                        r#"<p class="cart-total">Total: <strong data-oberon-total>{total}</strong></p>"#
                    ),
                    qty = s.quantity,
                    name = html::escape(&s.name),
                    discount = discount,
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

/// What `percent_off` takes off `total` cents: rounded down to the cent, as
/// `cart-summary.js` computes it.
fn discount(total: i64, percent_off: u8) -> i64 {
    total.saturating_mul(i64::from(percent_off)) / 100
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
    use super::{discount, money};

    #[test]
    fn takes_the_percentage_off_rounded_down() {
        assert_eq!(discount(9000, 10), 900);
        assert_eq!(discount(4999, 10), 499);
        assert_eq!(discount(0, 50), 0);
    }

    #[test]
    fn formats_money() {
        assert_eq!(money(9000, "EUR"), "EUR 90.00");
        assert_eq!(money(5, "GBP"), "GBP 0.05");
    }
}

//! The demo's components in three languages on one page, served by `oberon dev` and
//! built from their sources as it builds them: team marketing's `promo-banner`
//! (JavaScript) publishes `promotion`, which team checkout's `cart-summary` (Rust)
//! takes off its total; team fulfilment's `delivery-options` (Python) reads the
//! `ticket-selection` that team checkout's `ticket-picker` (Rust) publishes. In the
//! page as served, and in a real browser, where `cart-summary.js` applies the promotion
//! to the visitor's next selection.

use oberon_e2e_tests::browser::{Browser, TICKET_QUANTITY};
use oberon_e2e_tests::demo::Demo;
use oberon_e2e_tests::exclusive;
use serde_json::{Value, json};

/// The cart's discount line and total, as the visitor sees them.
const CART: &str = r#"
var cart = document.querySelector('[data-oberon-component="cart-summary"] [data-oberon-cart]');
var discount = cart && cart.querySelector(".cart-discount");
var total = cart && cart.querySelector("[data-oberon-total]");
return { discount: discount && discount.textContent, total: total && total.textContent };
"#;

/// What the cart shows for `quantity` Standard tickets (45.00 each) with the demo's
/// promotion (10 % off).
fn promoted_cart(quantity: i64) -> Value {
    let total = 4500 * quantity;
    let off = total * 10 / 100;
    json!({
        "discount": format!("EARLYBIRD: 10 % off, −{}", euros(off)),
        "total": euros(total - off),
    })
}

/// `4500` → `EUR 45.00`, as the components write it.
fn euros(cents: i64) -> String {
    format!("EUR {}.{:02}", cents / 100, cents % 100)
}

/// The `Server-Timing` outcome of `slot`: `ok`, `fallback`, `timeout`, ...
fn outcome<'a>(timing: &'a str, slot: &str) -> Option<&'a str> {
    timing
        .split(", ")
        .find(|entry| entry.starts_with(&format!("slot-{slot};")))
        .and_then(|entry| entry.split(";desc=").nth(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_components_exchange_bus_data_across_languages() {
    let demo = Demo::start().await;
    let client = reqwest::Client::new();
    // (query, the ticket type ticket-picker selects, quantity, unit price in cents)
    let cases = [
        ("", "Standard", 2, 4500),
        ("?type=premium&qty=3", "Premium", 3, 8900),
    ];
    for (query, name, quantity, price) in cases {
        let url = format!("{}/events/42{query}", demo.url);
        let response = client.get(&url).send().await.expect("the event page");
        assert_eq!(response.status(), 200, "{url}:\n{}", demo.log());
        let timing = response
            .headers()
            .get("server-timing")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let page = response.text().await.expect("body");
        for slot in ["promo", "tickets", "cart", "delivery"] {
            assert_eq!(
                outcome(&timing, slot),
                Some("ok"),
                "{url}: slot {slot} in {timing}\n{}",
                demo.log()
            );
        }

        // Rust → Python: the selection ticket-picker published, as delivery-options shows it.
        let delivery = format!(r#"<p class="delivery-for">For {quantity} × {name}:</p>"#);
        assert!(page.contains(&delivery), "{url}: no {delivery} in\n{page}");
        assert!(
            page.contains(&format!(
                "By post, {quantity} printed tickets: <strong>EUR 2.50</strong>"
            )),
            "{url}: delivery-options' props\n{page}"
        );

        // JavaScript → Rust: promo-banner's promotion, taken off cart-summary's total.
        let total = price * quantity;
        let off = total * 10 / 100;
        let discount = format!(
            r#"<p class="cart-discount">EARLYBIRD: 10 % off, −{}</p>"#,
            euros(off)
        );
        assert!(page.contains(&discount), "{url}: no {discount} in\n{page}");
        let charged = format!("<strong data-oberon-total>{}</strong>", euros(total - off));
        assert!(page.contains(&charged), "{url}: no {charged} in\n{page}");
        assert!(
            page.contains(
                "<strong>EARLYBIRD</strong>: 10 % off tickets for The Midnight Orchestra"
            ),
            "{url}: promo-banner's banner\n{page}"
        );

        // Both topics go on to the browser's bus, for cart-summary.js.
        for topic in [
            r#""promotion":{"event_id":"42","code":"EARLYBIRD","percent_off":10}"#,
            r#""ticket-selection":{"#,
        ] {
            assert!(
                page.contains(topic),
                "{url}: no {topic} in the page's bus state"
            );
        }
    }

    // In the browser: the promotion, replayed from the page's bus state, applies to
    // the quantity the visitor types as well (no request: the cart is redrawn in place).
    let _one_at_a_time = exclusive().await;
    let browser = Browser::start().await;
    browser.goto(&format!("{}/events/42", demo.url)).await;
    browser
        .wait_for_value("the promoted cart", CART, json!([]), &promoted_cart(2))
        .await;
    browser.retype(TICKET_QUANTITY, 1, "3").await;
    browser
        .wait_for_value(
            "the promoted cart for three",
            CART,
            json!([]),
            &promoted_cart(3),
        )
        .await;
}

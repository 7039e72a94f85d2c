//! The client-side state bus in a real browser: Debian's headless chromium, driven over
//! WebDriver, loads an event page through the CDN (Varnish) and the gateway and uses it
//! as a visitor would.
//!
//! What runs is the renderer's `client_bus.js` (inline in the page, seeded from the
//! embedded `oberon-bus-state`), `ticket-picker.js` (publishes `ticket-selection`) and
//! `cart-summary.js` (subscribes to it and re-renders the cart), served by the renderer
//! under their content-hashed `/assets/` URLs. Expected values come from the event
//! fixture the origin serves and the page's `default_quantity = 2`.

use std::path::Path;

use oberon_e2e_tests::browser::{Browser, TICKET_QUANTITY};
use oberon_e2e_tests::exclusive;
use oberon_e2e_tests::origin::{Origin, SiteSettings};
use oberon_e2e_tests::varnish::{Varnish, reserve_port};
use serde_json::{Value, json};

/// Installed before the page's own scripts: collects script errors (uncaught
/// exceptions, failed loads of script elements) and the cart's client-side renders —
/// `cart-summary.js` empties the cart and fills it again, and only it removes nodes
/// from the cart: the parser only adds.
const PROBE: &str = r#"
window.__probe = { errors: [], cartRenders: [], submits: [] };
window.addEventListener("error", function (e) {
  var source = e.target && (e.target.src || e.target.href);
  window.__probe.errors.push(source ? "failed to load " + source : String(e.message));
}, true);
window.addEventListener("unhandledrejection", function (e) {
  window.__probe.errors.push("unhandled rejection: " + String(e.reason));
});
window.addEventListener("submit", function (e) {
  window.__probe.submits.push({ defaultPrevented: e.defaultPrevented });
});
new MutationObserver(function (records) {
  var rendered = records.some(function (r) {
    return r.removedNodes.length > 0 && r.target.matches && r.target.matches("[data-oberon-cart]");
  });
  if (!rendered) return;
  var cart = document.querySelector("[data-oberon-cart]");
  var line = cart.querySelector(".cart-line");
  var total = cart.querySelector("[data-oberon-total]");
  window.__probe.cartRenders.push({
    line: line && line.textContent,
    total: total && total.textContent
  });
}).observe(document, { childList: true, subtree: true });
"#;

/// The cart as the visitor sees it.
const CART: &str = r#"
var cart = document.querySelector('[data-oberon-component="cart-summary"] [data-oberon-cart]');
var line = cart && cart.querySelector(".cart-line");
var total = cart && cart.querySelector("[data-oberon-total]");
return { line: line && line.textContent, total: total && total.textContent };
"#;

/// A ticket type of the demo's event fixture.
struct TicketType {
    id: String,
    name: String,
    price_cents: i64,
    currency: String,
    remaining: u64,
}

fn ticket_types() -> Vec<TicketType> {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../demo/fixtures/event-42.json");
    let text = std::fs::read_to_string(&fixture).expect("demo/fixtures/event-42.json");
    let event: Value = serde_json::from_str(&text).expect("fixture JSON");
    let types = event["ticket_types"].as_array().expect("ticket_types");
    types
        .iter()
        .map(|t| TicketType {
            id: t["id"].as_str().expect("id").into(),
            name: t["name"].as_str().expect("name").into(),
            price_cents: t["price_cents"].as_i64().expect("price_cents"),
            currency: t["currency"].as_str().expect("currency").into(),
            remaining: t["remaining"].as_u64().expect("remaining"),
        })
        .collect()
}

/// `4500, "EUR"` → `EUR 45.00`, as both the component and `cart-summary.js` write it.
fn money(cents: i64, currency: &str) -> String {
    format!("{currency} {}.{:02}", cents / 100, cents % 100)
}

/// The `ticket-selection` value for `quantity` of `t` at event `event_id`.
fn selection(event_id: &str, t: &TicketType, quantity: i64) -> Value {
    json!({
        "event_id": event_id, "ticket_type": t.id, "name": t.name, "quantity": quantity,
        "unit_price_cents": t.price_cents, "currency": t.currency,
    })
}

/// The cart showing `quantity` of `t`.
fn cart(t: &TicketType, quantity: i64) -> Value {
    json!({
        "line": format!("{quantity} \u{d7} {}", t.name),
        "total": money(t.price_cents * quantity, &t.currency),
    })
}

/// Wait until the cart shows `expected`.
async fn wait_for_cart(browser: &Browser, expected: &Value) {
    let what = format!("the cart to show {expected}");
    browser
        .wait_for_value(&what, CART, json!([]), expected)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bus_carries_the_selection_from_picker_to_cart_in_a_real_browser() {
    let _one_at_a_time = exclusive().await;
    let types = ticket_types();
    // The server's choice: the first type not sold out, `default_quantity` of it.
    let default = types
        .iter()
        .find(|t| t.remaining > 0)
        .expect("a type on sale");
    let other = types
        .iter()
        .find(|t| t.remaining >= 3 && t.id != default.id)
        .expect("a second type on sale, at least 3 left");
    let event_id = "42";

    // As a visitor reaches it: through the CDN, which the gateway insists on.
    let port = reserve_port();
    let origin = Origin::start(SiteSettings {
        purge: vec![format!("http://127.0.0.1:{port}/")],
        ..SiteSettings::default()
    })
    .await;
    let varnish = Varnish::start(port, origin.gateway_addr, &origin.origin_secret);
    let browser = Browser::start().await;
    browser.before_page_scripts(PROBE).await;
    let url = varnish.url(&format!("/events/{event_id}"));
    browser.goto(&url).await;

    // (1) The page, the bus and the components' scripts loaded, with no errors.
    let loaded = browser
        .wait_for(
            "the page and its module scripts",
            r#"
            if (document.readyState !== "complete") return null;
            var scripts = Array.from(document.querySelectorAll("script[src]"), function (s) { return s.src; });
            var statuses = {};
            performance.getEntriesByType("resource").forEach(function (e) { statuses[e.name] = e.responseStatus; });
            return {
              bus: typeof (window.oberon && window.oberon.bus && window.oberon.bus.subscribe),
              page: performance.getEntriesByType("navigation")[0].responseStatus,
              scripts: scripts.map(function (src) { return { src: src, status: statuses[src] }; }),
              wired: document.querySelectorAll("[data-oberon-wired]").length
            };
            "#,
            json!([]),
        )
        .await;
    assert_eq!(loaded["bus"], "function", "window.oberon.bus: {loaded}");
    assert_eq!(loaded["page"], 200, "{loaded}");
    let scripts = loaded["scripts"].as_array().expect("scripts");
    for component in ["ticket-picker", "cart-summary"] {
        let prefix = varnish.url(&format!("/assets/{component}/"));
        let script = scripts
            .iter()
            .find(|s| {
                s["src"]
                    .as_str()
                    .is_some_and(|src| src.starts_with(&prefix))
            })
            .unwrap_or_else(|| panic!("no script under {prefix} in the page: {loaded}"));
        assert_eq!(script["status"], 200, "{component}'s script: {script}");
    }
    assert_eq!(
        loaded["wired"], 1,
        "ticket-picker.js wired the form: {loaded}"
    );
    let errors = browser
        .execute("return window.__probe.errors;", json!([]))
        .await;
    assert_eq!(errors, json!([]), "script errors on load");
    assert_no_browser_errors(&browser).await;

    // (2) The server's selection, embedded in the page, is replayed to the cart.
    let embedded = browser
        .execute(
            r#"var state = JSON.parse(document.getElementById("oberon-bus-state").textContent);
               return [state["ticket-selection"], window.oberon.bus.get("ticket-selection")];"#,
            json!([]),
        )
        .await;
    let initial = selection(event_id, default, 2);
    assert_eq!(
        embedded,
        json!([initial, initial]),
        "embedded, then on the bus"
    );
    let renders = browser
        .execute("return window.__probe.cartRenders;", json!([]))
        .await;
    assert_eq!(
        renders,
        json!([cart(default, 2)]),
        "cart-summary.js rendered the replayed selection once, on load"
    );
    assert_eq!(browser.execute(CART, json!([])).await, cart(default, 2));

    // (3) Choosing in the picker updates the cart in place: no navigation.
    browser
        .execute("window.__marker = 'same document'; return 1;", json!([]))
        .await;
    let option = browser
        .find(&format!(
            "[data-oberon-component=\"ticket-picker\"] select[name=\"type\"] option[value=\"{}\"]",
            other.id
        ))
        .await;
    browser.click(&option).await;
    wait_for_cart(&browser, &cart(other, 2)).await;

    // The quantity as a visitor edits it: to the end of the field, delete the 2, type 3.
    browser.retype(TICKET_QUANTITY, 1, "3").await;
    wait_for_cart(&browser, &cart(other, 3)).await;

    // "Update" submits the form: with the bus, that publishes instead of navigating.
    let button = browser
        .find("[data-oberon-component=\"ticket-picker\"] button[type=\"submit\"]")
        .await;
    browser.click(&button).await;
    let submits = browser
        .wait_for(
            "the form's submit event",
            "return window.__probe.submits.length ? window.__probe.submits : null;",
            json!([]),
        )
        .await;
    assert_eq!(submits, json!([{ "defaultPrevented": true }]));
    let same = browser
        .execute(
            r#"return { marker: window.__marker, navigations: performance.getEntriesByType("navigation").length,
                        quantity: document.querySelector('input[name="qty"]').value,
                        selection: window.oberon.bus.get("ticket-selection") };"#,
            json!([]),
        )
        .await;
    assert_eq!(
        same,
        json!({ "marker": "same document", "navigations": 1, "quantity": "3",
                "selection": selection(event_id, other, 3) }),
        "the page was updated in place"
    );
    assert_eq!(browser.url().await, url, "no navigation");
    assert_eq!(browser.execute(CART, json!([])).await, cart(other, 3));

    // (4) A late subscriber gets the latest value at once.
    let late = browser
        .execute(
            r#"var got = [];
               window.oberon.bus.subscribe("ticket-selection", function (value, topic) {
                 got.push({ topic: topic, value: value });
               });
               return got;"#,
            json!([]),
        )
        .await;
    assert_eq!(
        late,
        json!([{ "topic": "ticket-selection", "value": selection(event_id, other, 3) }])
    );

    // (5) `__proto__` and `constructor` are topics like any other: published...
    let special = browser
        .execute(
            r#"var bus = window.oberon.bus;
               var before = ["__proto__", "constructor", "toString"].map(function (t) { return typeof bus.get(t); });
               var seen = [];
               bus.subscribe("__proto__", function (value) { seen.push(value); });
               bus.publish("__proto__", { polluted: true });
               bus.publish("constructor", "just a topic");
               return {
                 before: before, seen: seen,
                 proto: bus.get("__proto__"), constructor: bus.get("constructor"),
                 polluted: "polluted" in Object.prototype || "polluted" in {},
                 objectConstructor: ({}).constructor === Object
               };"#,
            json!([]),
        )
        .await;
    assert_eq!(
        special,
        json!({
            "before": ["undefined", "undefined", "undefined"],
            "seen": [{ "polluted": true }],
            "proto": { "polluted": true }, "constructor": "just a topic",
            "polluted": false, "objectConstructor": true,
        })
    );
    // ...and seeded from a page's embedded state: the bus script, unchanged, in a
    // document of its own whose state has those keys.
    let seeded = browser
        .execute_async(
            r#"var done = arguments[arguments.length - 1];
               var bus = document.getElementById("oberon-bus-state").nextElementSibling.textContent;
               var frame = document.createElement("iframe");
               frame.onload = function () {
                 var w = frame.contentWindow;
                 done({
                   proto: w.oberon.bus.get("__proto__"), constructor: w.oberon.bus.get("constructor"),
                   polluted: "polluted" in w.Object.prototype,
                   objectConstructor: w.eval("({}).constructor === Object")
                 });
               };
               frame.srcdoc = '<script id="oberon-bus-state" type="application/json">'
                 + '{"__proto__": {"polluted": true}, "constructor": {"c": 1}}</' + 'script>'
                 + "<script>" + bus + "</" + "script>";
               document.body.appendChild(frame);"#,
            json!([]),
        )
        .await;
    assert_eq!(
        seeded,
        json!({
            "proto": { "polluted": true }, "constructor": { "c": 1 },
            "polluted": false, "objectConstructor": true,
        })
    );

    let errors = browser
        .execute("return window.__probe.errors;", json!([]))
        .await;
    assert_eq!(errors, json!([]), "script errors");
    assert_no_browser_errors(&browser).await;
}

/// No error in the browser's console since the last look: uncaught exceptions,
/// `console.error` (the bus reports failing subscribers there), failed loads.
async fn assert_no_browser_errors(browser: &Browser) {
    let errors: Vec<Value> = browser
        .log_entries()
        .await
        .into_iter()
        .filter(|e| e["level"] == "SEVERE")
        // The test site has no favicon; chromium asks for one anyway.
        .filter(|e| {
            !e["message"]
                .as_str()
                .is_some_and(|m| m.contains("/favicon.ico "))
        })
        .collect();
    assert!(errors.is_empty(), "errors in the browser: {errors:#?}");
}

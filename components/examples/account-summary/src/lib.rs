//! `account-summary` (team checkout): who is signed in, and their orders.
//!
//! Subscribes `orders` (from the checkout BFF, fetched with the user's identity).
//! Personal: it shows the signed-in user, so no cache may share it.

use oberon_sdk::{Cacheability, Component, Context, Fragment, Metadata, Props, bus, html};
use serde::Deserialize;

/// The `orders` topic.
#[derive(Deserialize)]
struct Orders {
    orders: Vec<Order>,
}

#[derive(Deserialize)]
struct Order {
    id: String,
    event: String,
    quantity: u32,
}

struct AccountSummary;

impl Component for AccountSummary {
    fn describe() -> Metadata {
        Metadata::new("account-summary")
            .subscribes(["orders"])
            .cacheability(Cacheability::Personal)
    }

    fn render(ctx: &Context, _props: Props) -> Result<Fragment, String> {
        let Some(user) = ctx.user() else {
            return Ok(Fragment::html(concat!(
                r#"<section class="account" data-oberon-component="account-summary">"#,
                "<h1>Your account</h1><p>You are not signed in. ",
                r#"<a href="/_gateway/sign-in?return_to=%2Faccount">Sign in</a></p>"#,
                "</section>"
            )));
        };
        let roles = if user.roles.is_empty() {
            "none".to_string()
        } else {
            html::escape(&user.roles.join(", "))
        };
        let orders = match bus::get::<Orders>("orders") {
            Some(o) if o.orders.is_empty() => "<p>No orders yet.</p>".to_string(),
            Some(o) => {
                let items: String = o
                    .orders
                    .iter()
                    .map(|order| {
                        format!(
                            "<li>{} × {} <small>({})</small></li>",
                            order.quantity,
                            html::escape(&order.event),
                            html::escape(&order.id)
                        )
                    })
                    .collect();
                format!(r#"<ul class="orders">{items}</ul>"#)
            }
            None => "<p>Your orders are unavailable right now.</p>".to_string(),
        };
        // The subject is for people; the id (issuer and subject) is what tells two
        // users apart, for the page's scripts.
        Ok(Fragment::html(format!(
            concat!(
                r#"<section class="account" data-oberon-component="account-summary" data-oberon-user-id="{id}">"#,
                r#"<h1>Signed in as <span data-oberon-user>{user}</span></h1>"#,
                "<p>Roles: {roles}</p>",
                "<h2>Your orders</h2>{orders}",
                r#"<form method="post" action="/_gateway/sign-out"><button type="submit">Sign out</button></form>"#,
                "</section>"
            ),
            id = html::escape(&user.id),
            user = html::escape(user.subject()),
            roles = roles,
            orders = orders,
        )))
    }
}

oberon_sdk::export_component!(AccountSummary);

//! checkout-bff: the checkout team's Backend-For-Frontend, made with `oberon new bff
//! checkout`. It answers for the signed-in user only: who they are comes from the
//! gateway's identity assertion (`oberon_bff::identity`), never from anything else.
//!
//! - `GET /v1/orders`: the signed-in buyer's orders (role `buyer`), `private`.
//!
//! Only the domain lives here; the rest is `oberon-bff`.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use oberon_bff::backend::path_segment;
use oberon_bff::{
    BackendError, Bff, Env, ErrorBody, Forward, Lifecycle, PRIVATE, Role, Service, UserWithRole,
    versioned,
};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

/// The crate's name: its binary, its default `OTEL_SERVICE_NAME`.
pub const NAME: &str = env!("CARGO_PKG_NAME");
/// Prefix of every variable this service reads.
pub const PREFIX: &str = "CHECKOUT_BFF_";

/// The service `env` configures: the platform's variables, and the lifecycle of
/// `/v1` (`CHECKOUT_BFF_V1_DEPRECATED_AT`, `…_SUNSET_AT`, `…_DOCS_URL`).
pub fn service(env: Env) -> anyhow::Result<Service> {
    let version = env!("CARGO_PKG_VERSION");
    let (bff, v1) = Bff::configure(NAME, version, env, |env| Lifecycle::read(env, "V1"))?;
    let mut doc = ApiDoc::openapi();
    v1.document(&mut doc, "/v1/");
    let v1_routes = Router::new().route("/v1/orders", get(orders_v1));
    let api = versioned(v1_routes, v1).with_state(bff.clone());
    Ok(Service::new(bff, api, doc))
}

// --- the domain: orders -----------------------------------------------------------

/// The role that may see orders.
pub struct Buyer;

impl Role for Buyer {
    const NAME: &'static str = "buyer";
}

/// An order as the orders backend describes it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct BackendOrder {
    pub id: String,
    pub event_id: String,
    pub event_name: String,
    pub quantity: u32,
    pub total_cents: i64,
    pub currency: String,
}

/// `/v1/orders`: what the account page shows.
#[derive(Debug, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
pub struct OrdersV1 {
    pub orders: Vec<OrderV1>,
}

#[derive(Debug, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
pub struct OrderV1 {
    pub id: String,
    pub event: String,
    /// The event's page; empty when the event's id cannot name a path (`.`, `..`).
    pub event_url: String,
    pub quantity: u32,
    /// Ready to show: `EUR 90.00`.
    pub total: String,
}

fn money_label(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{currency} {sign}{}.{:02}", abs / 100, abs % 100)
}

/// The signed-in buyer's orders (role `buyer`); the user comes from the gateway's
/// assertion.
#[utoipa::path(
    get,
    path = "/v1/orders",
    params(("Oberon-Identity" = String, Header, description = "the gateway's assertion of who is asking")),
    responses(
        (status = 200, description = "the orders", body = OrdersV1),
        (status = 401, description = "no valid identity assertion", body = ErrorBody),
        (status = 403, description = "the user lacks the role `buyer`", body = ErrorBody),
        (status = 410, description = "`/v1` is past its sunset", body = ErrorBody),
        (status = 502, description = "the backend failed", body = ErrorBody),
        (status = 504, description = "the backend timed out", body = ErrorBody),
    ),
)]
async fn orders_v1(State(bff): State<Bff>, user: UserWithRole<Buyer>, fwd: Forward) -> Response {
    // Keyed by issuer and subject: `alice` at one identity provider is not `alice` at
    // another, and must not see the other's orders.
    let path = match user.user().backend_path() {
        Ok(user) => format!("{user}/orders"),
        Err(refused) => return refused.into_response(),
    };
    let orders = match bff.backend().get::<Vec<BackendOrder>>(&path, &fwd).await {
        Ok(orders) => orders,
        // A user the orders service has never seen has no orders.
        Err(BackendError::NotFound) => Vec::new(),
        Err(e) => return e.answer("user"),
    };
    let body = OrdersV1 {
        orders: orders.into_iter().map(order_v1).collect(),
    };
    ([(header::CACHE_CONTROL, PRIVATE)], Json(body)).into_response()
}

fn order_v1(o: BackendOrder) -> OrderV1 {
    OrderV1 {
        event_url: path_segment(&o.event_id)
            .map(|id| format!("/events/{id}"))
            .unwrap_or_default(),
        total: money_label(o.total_cents, &o.currency),
        id: o.id,
        event: o.event_name,
        quantity: o.quantity,
    }
}

/// The API's OpenAPI document, from the handler's `utoipa::path` and the types'
/// schemas (the platform adds its operational endpoints).
#[derive(OpenApi)]
#[openapi(paths(orders_v1))]
struct ApiDoc;

//! checkout-bff: the checkout team's Backend-For-Frontend, made with `oberon new bff
//! checkout`. It answers for the signed-in user only: who they are comes from the
//! gateway's identity assertion (`oberon_bff::identity`), never from anything else. It
//! calls the orders backend (`oberon.demo.checkout.v1.OrdersService`, gRPC).
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
    Backend, BackendError, BackendFailure, Bff, Env, ErrorBody, Forward, Lifecycle, PRIVATE, Role,
    Service, User, UserWithRole, versioned,
};
use oberon_demo_proto::checkout::v1::orders_service_client::OrdersServiceClient;
use oberon_demo_proto::checkout::v1::{ListOrdersRequest, Order};
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

/// The orders backend's call, as its span names it.
const LIST_ORDERS: &str = "oberon.demo.checkout.v1.OrdersService/ListOrders";

/// The role that may see orders.
pub struct Buyer;

impl Role for Buyer {
    const NAME: &'static str = "buyer";
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
        BackendFailure,
    ),
)]
async fn orders_v1(State(bff): State<Bff>, user: UserWithRole<Buyer>, fwd: Forward) -> Response {
    let orders = match list_orders(bff.backend(), user.user(), &fwd).await {
        Ok(orders) => orders,
        Err(e) => return e.answer_for_user("user"),
    };
    let body = OrdersV1 {
        orders: orders.into_iter().map(order_v1).collect(),
    };
    ([(header::CACHE_CONTROL, PRIVATE)], Json(body)).into_response()
}

/// `OrdersService.ListOrders` of the orders backend, within its deadline. Orders are
/// kept per user *at an issuer*: `alice` at one identity provider is not `alice` at
/// another, and must not see the other's orders. A user the backend has never seen
/// has none.
async fn list_orders(
    backend: &Backend,
    user: &User,
    fwd: &Forward,
) -> Result<Vec<Order>, BackendError> {
    let orders = OrdersServiceClient::new(backend.channel()?);
    let request = ListOrdersRequest {
        issuer: user.issuer.clone(),
        subject: user.subject.clone(),
    };
    let answer = backend
        .call(LIST_ORDERS, fwd, request, |r| {
            let mut orders = orders.clone();
            async move { orders.list_orders(r).await }
        })
        .await;
    match answer {
        Ok(answer) => Ok(answer.orders),
        // The contract answers an empty list for a user it has never seen; a
        // `NOT_FOUND` means the same.
        Err(BackendError::NotFound) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn order_v1(o: Order) -> OrderV1 {
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

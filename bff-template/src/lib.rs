//! bff-template: a Backend-For-Frontend. It calls the team's backend over gRPC (its
//! versioned protobuf API in `proto/`, a client generated at build time) and answers the
//! renderer with UI-shaped, versioned JSON that says how long it may be cached.
//!
//! - `GET /v2/items/{id}`: the current shape; `GET /v1/items/{id}`: the older one,
//!   which can be deprecated and sunset from the environment (`BFF_TEMPLATE_V1_*`).
//! - `GET /v2/me`, `GET /v2/me/items`: who is asking, and the signed-in buyer's items.
//!
//! Only the domain lives here. Configuration, identity, API versions, the backend
//! client, metrics, traces, the operational endpoints and serving come from
//! `oberon-bff` (vendored under `oberon/`, replaced whole on an upgrade).

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use oberon_bff::{
    Backend, BackendError, BackendFailure, Bff, Env, ErrorBody, Forward, Lifecycle, NO_STORE,
    OptionalUser, PRIVATE, Role, Service, User, UserWithRole, error, versioned,
};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::proto::items_service_client::ItemsServiceClient;
use crate::proto::{GetItemRequest, Item, ListUserItemsRequest};

/// The backend's protobuf API (`proto/bff_template/items/v1`), generated at build time:
/// messages, the client, and the server the tests' fake backend implements.
pub mod proto {
    tonic::include_proto!("bff_template.items.v1");
}

/// The backend's calls, as their spans name them.
const GET_ITEM: &str = "bff_template.items.v1.ItemsService/GetItem";
const LIST_USER_ITEMS: &str = "bff_template.items.v1.ItemsService/ListUserItems";

/// The crate's name: its binary, its default `OTEL_SERVICE_NAME`.
pub const NAME: &str = env!("CARGO_PKG_NAME");
/// Prefix of every variable this service reads.
pub const PREFIX: &str = "BFF_TEMPLATE_";

/// Cache policy of a successful, public answer: the renderer's data client (and any
/// shared cache) may keep it 30 s, revalidate in the background for 30 s more, and
/// fall back to it for 5 minutes if this service fails.
pub const PUBLIC_CACHE: &str = "public, max-age=30, stale-while-revalidate=30, stale-if-error=300";

/// The service `env` configures: the platform's variables, and the lifecycle of
/// `/v1` (`BFF_TEMPLATE_V1_DEPRECATED_AT`, `…_SUNSET_AT`, `…_DOCS_URL`).
pub fn service(env: Env) -> anyhow::Result<Service> {
    let version = env!("CARGO_PKG_VERSION");
    let (bff, v1) = Bff::configure(NAME, version, env, |env| Lifecycle::read(env, "V1"))?;
    let mut doc = ApiDoc::openapi();
    v1.document(&mut doc, "/v1/");
    Ok(Service::new(bff.clone(), api(bff, v1), doc))
}

/// The API's routes.
pub fn api(bff: Bff, v1: Lifecycle) -> Router {
    let v1_routes = Router::new().route("/v1/items/{id}", get(item_v1));
    Router::new()
        .route("/v2/items/{id}", get(item_v2))
        .route("/v2/me", get(me))
        .route("/v2/me/items", get(my_items))
        .merge(versioned(v1_routes, v1))
        .with_state(bff)
}

// --- the domain: items ------------------------------------------------------------

/// `/v2`: what the UI needs, nothing more.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ItemV2 {
    pub id: String,
    pub title: String,
    pub price: Money,
    pub in_stock: bool,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct Money {
    pub amount_cents: i64,
    pub currency: String,
    /// Ready to show: `EUR 12.50`.
    pub label: String,
}

/// `/v1`: the older shape, kept for consumers that have not moved yet.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ItemV1 {
    pub id: String,
    pub name: String,
    pub price_label: String,
}

fn money_label(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{currency} {sign}{}.{:02}", abs / 100, abs % 100)
}

fn public(body: impl Serialize) -> Response {
    ([(header::CACHE_CONTROL, PUBLIC_CACHE)], Json(body)).into_response()
}

async fn load_item(bff: &Bff, id: &str, fwd: &Forward) -> Result<Item, Response> {
    let valid = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(error(StatusCode::BAD_REQUEST, "invalid item id", NO_STORE));
    }
    let backend = bff.backend();
    let items = ItemsServiceClient::new(backend.channel().map_err(|e| e.answer("item"))?);
    let request = GetItemRequest { id: id.to_string() };
    let answer = backend
        .call(GET_ITEM, fwd, request, |r| {
            let mut items = items.clone();
            async move { items.get_item(r).await }
        })
        .await
        .map_err(|e| e.answer("item"))?;
    answer.item.ok_or_else(|| {
        BackendError::Invalid("GetItem answered without an item".into()).answer("item")
    })
}

/// One item, in the current shape.
#[utoipa::path(
    get,
    path = "/v2/items/{id}",
    params(("id" = String, Path, description = "the item's id", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 200, description = "the item", body = ItemV2),
        (status = 400, description = "not an item id", body = ErrorBody),
        (status = 404, description = "no such item", body = ErrorBody),
        BackendFailure,
    ),
)]
async fn item_v2(State(bff): State<Bff>, Path(id): Path<String>, fwd: Forward) -> Response {
    match load_item(&bff, &id, &fwd).await {
        Ok(item) => public(item_v2_of(item)),
        Err(response) => response,
    }
}

fn item_v2_of(item: Item) -> ItemV2 {
    ItemV2 {
        price: Money {
            label: money_label(item.price_cents, &item.currency),
            amount_cents: item.price_cents,
            currency: item.currency,
        },
        id: item.id,
        title: item.name,
        in_stock: item.stock > 0,
    }
}

/// One item, in the older shape.
#[utoipa::path(
    get,
    path = "/v1/items/{id}",
    params(("id" = String, Path, description = "the item's id", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 200, description = "the item", body = ItemV1),
        (status = 400, description = "not an item id", body = ErrorBody),
        (status = 404, description = "no such item", body = ErrorBody),
        (status = 410, description = "`/v1` is past its sunset", body = ErrorBody),
        BackendFailure,
    ),
)]
async fn item_v1(State(bff): State<Bff>, Path(id): Path<String>, fwd: Forward) -> Response {
    match load_item(&bff, &id, &fwd).await {
        Ok(item) => public(ItemV1 {
            price_label: money_label(item.price_cents, &item.currency),
            id: item.id,
            name: item.name,
        }),
        Err(response) => response,
    }
}

// --- the signed-in user -----------------------------------------------------------

/// The role [`my_items`] needs.
pub struct Buyer;

impl Role for Buyer {
    const NAME: &'static str = "buyer";
}

/// `/v2/me`: who the gateway says is asking (or nobody).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct Me {
    pub signed_in: bool,
    /// Issuer and subject in one string ([`oberon_bff::User::id`]): unique across the
    /// identity providers, as `sub` alone is not.
    pub id: Option<String>,
    pub roles: Vec<String>,
}

/// Who the gateway's identity assertion says is asking, or nobody.
#[utoipa::path(
    get,
    path = "/v2/me",
    params(("Oberon-Identity" = Option<String>, Header, description = "the gateway's assertion of who is asking")),
    responses((status = 200, description = "the user, or `signed_in: false`", body = Me)),
)]
async fn me(OptionalUser(user): OptionalUser) -> Response {
    let me = match user {
        Some(u) => Me {
            signed_in: true,
            id: Some(u.id()),
            roles: u.roles,
        },
        None => Me {
            signed_in: false,
            id: None,
            roles: Vec::new(),
        },
    };
    ([(header::CACHE_CONTROL, PRIVATE)], Json(me)).into_response()
}

/// The signed-in buyer's saved items (role `buyer`).
#[utoipa::path(
    get,
    path = "/v2/me/items",
    params(("Oberon-Identity" = Option<String>, Header, description = "the gateway's assertion of who is asking")),
    responses(
        (status = 200, description = "the items", body = Vec<ItemV2>),
        (status = 401, description = "no valid identity assertion", body = ErrorBody),
        (status = 403, description = "the user lacks the role `buyer`", body = ErrorBody),
        BackendFailure,
    ),
)]
async fn my_items(State(bff): State<Bff>, user: UserWithRole<Buyer>, fwd: Forward) -> Response {
    let items = match user_items(bff.backend(), user.user(), &fwd).await {
        Ok(items) => items,
        Err(e) => return e.answer_for_user("user"),
    };
    let items: Vec<ItemV2> = items.into_iter().map(item_v2_of).collect();
    ([(header::CACHE_CONTROL, PRIVATE)], Json(items)).into_response()
}

/// `ItemsService.ListUserItems`: keyed by issuer and subject, since `alice` at one
/// identity provider is not `alice` at another. A user the backend has never seen has
/// no items (`NOT_FOUND` reads the same).
async fn user_items(
    backend: &Backend,
    user: &User,
    fwd: &Forward,
) -> Result<Vec<Item>, BackendError> {
    let items = ItemsServiceClient::new(backend.channel()?);
    let request = ListUserItemsRequest {
        issuer: user.issuer.clone(),
        subject: user.subject.clone(),
    };
    let answer = backend
        .call(LIST_USER_ITEMS, fwd, request, |r| {
            let mut items = items.clone();
            async move { items.list_user_items(r).await }
        })
        .await;
    match answer {
        Ok(answer) => Ok(answer.items),
        Err(BackendError::NotFound) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The API's OpenAPI document, from the handlers' `utoipa::path`s and the types'
/// schemas (the platform adds its operational endpoints).
#[derive(OpenApi)]
#[openapi(paths(item_v2, item_v1, me, my_items))]
struct ApiDoc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_labelled_with_its_currency() {
        assert_eq!(money_label(12550, "EUR"), "EUR 125.50");
        assert_eq!(money_label(-5, "GBP"), "GBP -0.05");
    }
}

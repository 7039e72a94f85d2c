//! events-bff: the events team's Backend-For-Frontend, made with `oberon new bff
//! events`. It calls the catalogue backend and answers the renderer with what an event
//! page needs, in one JSON document that says how long it may be cached.
//!
//! - `GET /v1/events/{id}`: the event, its ticket types, and its related events (one
//!   backend call per related event, concurrently; a related event that fails is left
//!   out rather than failing the page's data).
//!
//! Only the domain lives here; the rest is `oberon-bff`.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use oberon_bff::{Bff, Env, ErrorBody, Forward, Lifecycle, NO_STORE, Service, error, versioned};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

/// The crate's name: its binary, its default `OTEL_SERVICE_NAME`.
pub const NAME: &str = env!("CARGO_PKG_NAME");
/// Prefix of every variable this service reads.
pub const PREFIX: &str = "EVENTS_BFF_";

/// Cache policy of an event: the renderer's data client (and any shared cache) may
/// keep it 30 s, revalidate in the background for 30 s more, and fall back to it for
/// 5 minutes if this service fails.
pub const PUBLIC_CACHE: &str = "public, max-age=30, stale-while-revalidate=30, stale-if-error=300";

/// The most related events looked up for one event.
const MAX_RELATED: usize = 8;

/// The service `env` configures: the platform's variables, and the lifecycle of
/// `/v1` (`EVENTS_BFF_V1_DEPRECATED_AT`, `…_SUNSET_AT`, `…_DOCS_URL`).
pub fn service(env: Env) -> anyhow::Result<Service> {
    let version = env!("CARGO_PKG_VERSION");
    let (bff, v1) = Bff::configure(NAME, version, env, |env| Lifecycle::read(env, "V1"))?;
    let mut doc = ApiDoc::openapi();
    v1.document(&mut doc, "/v1/");
    let v1_routes = Router::new().route("/v1/events/{id}", get(event_v1));
    let api = versioned(v1_routes, v1).with_state(bff.clone());
    Ok(Service::new(bff, api, doc))
}

// --- the domain: events -----------------------------------------------------------

/// A ticket type, as the backend and the page both describe it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
pub struct TicketType {
    pub id: String,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub remaining: u32,
}

/// An event as the catalogue backend describes it: related events by id only.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct BackendEvent {
    pub id: String,
    pub name: String,
    pub venue: String,
    pub city: String,
    pub starts_at: String,
    pub description: String,
    pub ticket_types: Vec<TicketType>,
    #[serde(default)]
    pub related_ids: Vec<String>,
}

/// A related event, as much as a link to it needs.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
pub struct Related {
    pub id: String,
    pub name: String,
    pub starts_at: String,
}

/// `/v1/events/{id}`: what the event page's components read from the `event` topic.
#[derive(Debug, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
pub struct EventV1 {
    pub id: String,
    pub name: String,
    pub venue: String,
    pub city: String,
    pub starts_at: String,
    pub description: String,
    pub ticket_types: Vec<TicketType>,
    pub related: Vec<Related>,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The event page's data: the event, its ticket types, its related events.
#[utoipa::path(
    get,
    path = "/v1/events/{id}",
    params(("id" = String, Path, description = "the event's id", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 200, description = "the event", body = EventV1),
        (status = 400, description = "not an event id", body = ErrorBody),
        (status = 404, description = "no such event", body = ErrorBody),
        (status = 410, description = "`/v1` is past its sunset", body = ErrorBody),
        (status = 502, description = "the backend failed", body = ErrorBody),
        (status = 504, description = "the backend timed out", body = ErrorBody),
    ),
)]
async fn event_v1(State(bff): State<Bff>, Path(id): Path<String>, fwd: Forward) -> Response {
    if !valid_id(&id) {
        return error(StatusCode::BAD_REQUEST, "invalid event id", NO_STORE);
    }
    let backend = bff.backend();
    let event = match backend
        .get::<BackendEvent>(&format!("/events/{id}"), &fwd)
        .await
    {
        Ok(event) => event,
        Err(e) => return e.answer("event"),
    };
    let related = related(&bff, &event.related_ids, &fwd).await;
    let body = EventV1 {
        id: event.id,
        name: event.name,
        venue: event.venue,
        city: event.city,
        starts_at: event.starts_at,
        description: event.description,
        ticket_types: event.ticket_types,
        related,
    };
    ([(header::CACHE_CONTROL, PUBLIC_CACHE)], Json(body)).into_response()
}

/// The related events, looked up concurrently; one that fails is left out, not fatal.
async fn related(bff: &Bff, ids: &[String], fwd: &Forward) -> Vec<Related> {
    let lookups: Vec<_> = ids
        .iter()
        .filter(|id| valid_id(id))
        .take(MAX_RELATED)
        .map(|id| {
            let (backend, fwd) = (bff.backend().clone(), fwd.clone());
            let path = format!("/events/{id}");
            tokio::spawn(async move { backend.get::<BackendEvent>(&path, &fwd).await })
        })
        .collect();
    let mut related = Vec::new();
    for lookup in lookups {
        match lookup.await {
            Ok(Ok(r)) => related.push(Related {
                id: r.id,
                name: r.name,
                starts_at: r.starts_at,
            }),
            Ok(Err(e)) => tracing::info!("related event left out: {e}"),
            Err(e) => tracing::warn!("related event lookup failed: {e}"),
        }
    }
    related
}

/// The API's OpenAPI document, from the handlers' `utoipa::path`s and the types'
/// schemas (the platform adds its operational endpoints).
#[derive(OpenApi)]
#[openapi(paths(event_v1))]
struct ApiDoc;

//! events-bff: the events team's Backend-For-Frontend, made with `oberon new bff
//! events`. It calls the catalogue backend (`oberon.demo.events.v1.EventsService`, gRPC)
//! and answers the renderer with what an event page needs, in one JSON document that
//! says how long it may be cached.
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
use oberon_bff::{
    Backend, BackendError, BackendFailure, Bff, Env, ErrorBody, Forward, Lifecycle, NO_STORE,
    Service, error, versioned,
};
use oberon_demo_proto::events::v1::events_service_client::EventsServiceClient;
use oberon_demo_proto::events::v1::{Event, GetEventRequest};
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

/// The catalogue's call, as its span names it.
const GET_EVENT: &str = "oberon.demo.events.v1.EventsService/GetEvent";

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

/// A ticket type, as the page reads it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
pub struct TicketType {
    pub id: String,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub remaining: u32,
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
        BackendFailure,
    ),
)]
async fn event_v1(State(bff): State<Bff>, Path(id): Path<String>, fwd: Forward) -> Response {
    if !valid_id(&id) {
        return error(StatusCode::BAD_REQUEST, "invalid event id", NO_STORE);
    }
    let event = match get_event(bff.backend(), &id, &fwd).await {
        Ok(event) => event,
        Err(e) => return e.answer("event"),
    };
    let related = related(&bff, &event.related_ids, &fwd).await;
    let body = EventV1 {
        starts_at: starts_at(&event),
        ticket_types: event.ticket_types.into_iter().map(ticket_type).collect(),
        id: event.id,
        name: event.name,
        venue: event.venue,
        city: event.city,
        description: event.description,
        related,
    };
    ([(header::CACHE_CONTROL, PUBLIC_CACHE)], Json(body)).into_response()
}

/// `EventsService.GetEvent` of the catalogue, within the backend's deadline.
async fn get_event(backend: &Backend, id: &str, fwd: &Forward) -> Result<Event, BackendError> {
    let events = EventsServiceClient::new(backend.channel()?);
    let request = GetEventRequest { id: id.to_string() };
    let answer = backend
        .call(GET_EVENT, fwd, request, |r| {
            let mut events = events.clone();
            async move { events.get_event(r).await }
        })
        .await?;
    answer
        .event
        .ok_or_else(|| BackendError::Invalid("GetEvent answered without an event".into()))
}

/// When the event begins, as RFC 3339 (`2026-12-05T20:00:00Z`); empty if the catalogue
/// gave no time.
fn starts_at(event: &Event) -> String {
    event
        .starts_at
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default()
}

fn ticket_type(t: oberon_demo_proto::events::v1::TicketType) -> TicketType {
    TicketType {
        id: t.id,
        name: t.name,
        price_cents: t.price_cents,
        currency: t.currency,
        remaining: t.remaining,
    }
}

/// The related events, looked up concurrently; one that fails is left out, not fatal.
/// Not spawned: the lookups stay in the request's span (and trace) and end with it.
async fn related(bff: &Bff, ids: &[String], fwd: &Forward) -> Vec<Related> {
    let lookups = ids
        .iter()
        .filter(|id| valid_id(id))
        .take(MAX_RELATED)
        .map(|id| get_event(bff.backend(), id, fwd));
    let mut related = Vec::new();
    for lookup in futures::future::join_all(lookups).await {
        match lookup {
            Ok(r) => related.push(Related {
                starts_at: starts_at(&r),
                id: r.id,
                name: r.name,
            }),
            Err(e) => tracing::info!("related event left out: {e}"),
        }
    }
    related
}

/// The API's OpenAPI document, from the handlers' `utoipa::path`s and the types'
/// schemas (the platform adds its operational endpoints).
#[derive(OpenApi)]
#[openapi(paths(event_v1))]
struct ApiDoc;

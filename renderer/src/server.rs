//! HTTP: the renderer as an axum [`Router`], and [`serve`] over a listener the caller
//! bound (so tests hand it port 0).

use std::convert::Infallible;
use std::future::{Future, Ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::handler::Handler as _;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::Either;
use oberon_config::listen::ListenLimits;
use tower::Service;

use crate::cache::{self, Mode};
use crate::compress::{self, Coding};
use crate::lifecycle::Renderer;
use crate::render::ReplyBody;

/// The renderer's routes: its own endpoints, component assets, and every other GET as
/// a page, behind the render limit.
pub fn app(renderer: Arc<Renderer>) -> Router {
    // A method no page answers is refused before the limit: it neither takes a place
    // nor is shed. A service, not a `MethodRouter` as the fallback handler: that one
    // is cloned and routed a second time for every page.
    let pages = tower::ServiceBuilder::new()
        .layer_fn(ReadOnly)
        .layer(renderer.mode().admission().layer())
        .service(page.with_state(renderer.clone()));
    Router::new()
        .route(
            "/_oberon/livez",
            get(|| async { no_store("ok\n".into_response()) }),
        )
        .route("/_oberon/readyz", get(ready))
        .route("/_oberon/status", get(status))
        .route("/_oberon/mode", get(mode).post(set_mode))
        .route("/assets/{component}/{hash}/{*path}", get(asset))
        .fallback_service(pages)
        .with_state(renderer)
}

/// The ops port's routes: `GET /metrics`, in Prometheus's text format, with what is
/// state (modes, breakers, pools, the registry) read as it is scraped.
pub fn ops_app(renderer: Arc<Renderer>, exporter: oberon_service::metrics::Exporter) -> Router {
    exporter.app(move || crate::metrics::observe(&renderer))
}

/// Serve `app` on `listener` until `shutdown` resolves, finishing requests in flight:
/// within [`ListenLimits`], so a connection that sends its head slowly, or nothing, is
/// closed at the header-read timeout.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    oberon_config::listen::serve(listener, app, ListenLimits::default(), shutdown).await
}

async fn ready(State(renderer): State<Arc<Renderer>>) -> Response {
    let site = renderer.site();
    let body = format!(
        "ok: {} pages, {} components\n",
        site.pages.len(),
        site.components.by_name.len()
    );
    no_store(body.into_response())
}

/// What the renderer is doing, as JSON: its site, where its components come from (the
/// registry's reachability and generation), the canaries and how many pages each
/// channel rendered, the render cache's counters and size, and each BFF's breaker and
/// the data client's counters.
async fn status(State(renderer): State<Arc<Renderer>>) -> Response {
    let site = renderer.site();
    let data = renderer.data();
    let (canary_pages, stable_pages) = renderer.channel_counts();
    let (streamed, late_dropped) = renderer.stream_counts();
    let response = axum::Json(serde_json::json!({
        "pages": site.pages.len(),
        "components": site.components.by_name.len(),
        // `null` when the components come from a directory. An unreachable registry
        // shows here (`reachable: false`) while the renderer goes on serving.
        "registry": renderer.registry_status(),
        "canaries": site.components.canary.iter()
            .map(|(name, c)| (name.clone(), serde_json::json!({
                "version": c.version.version.as_ref().map(ToString::to_string),
                "percent": c.percent,
            })))
            .collect::<serde_json::Map<_, _>>(),
        "pages_rendered": { "canary": canary_pages, "stable": stable_pages },
        // Pages sent before all their data had answered, and late answers dropped
        // from them for being less cacheable than their headers had promised.
        "streaming": { "pages": streamed, "late_data_dropped": late_dropped },
        "mode": renderer.mode().status(),
        // Slots reused and rendered since start, and the cache's weighted size.
        "render_cache": renderer.render_cache().stats(),
        // Component instances alive now, and what freed pool slots keep resident.
        "instance_pool": renderer.engine().pool(),
        "data": {
            "breakers": data.breakers(),
            "stats": data.stats(),
        },
    }))
    .into_response();
    no_store(response)
}

/// The cache mode and what set it, as JSON.
async fn mode(State(renderer): State<Arc<Renderer>>) -> Response {
    no_store(axum::Json(renderer.mode().status()).into_response())
}

/// `POST /_oberon/mode` with `Authorization: Bearer <admin token>` and
/// `{"mode": "normal" | "elevated" | "incident" | "auto"}`: an operator's floor for the
/// mode (`auto` clears it). Answers the new status.
async fn set_mode(
    _: AdminBearer,
    State(renderer): State<Arc<Renderer>>,
    body: axum::body::Bytes,
) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SetMode {
        mode: String,
    }
    let wanted = serde_json::from_slice::<SetMode>(&body)
        .map_err(|e| e.to_string())
        .and_then(|m| match m.mode.as_str() {
            "auto" => Ok(None),
            other => other.parse::<Mode>().map(Some).map_err(|e| e.to_string()),
        });
    match wanted {
        Ok(floor) => {
            renderer.set_operator_mode(floor);
            no_store(axum::Json(renderer.mode().status()).into_response())
        }
        Err(e) => no_store(
            (
                StatusCode::BAD_REQUEST,
                format!("expected {{\"mode\": \"normal\" | \"elevated\" | \"incident\" | \"auto\"}}: {e}\n"),
            )
                .into_response(),
        ),
    }
}

/// The operator: a request with `Authorization: Bearer <admin token>`
/// ([`Renderer::is_admin`]). Anyone else gets 401 with a `Bearer` challenge, before
/// the body is read.
pub struct AdminBearer;

impl FromRequestParts<Arc<Renderer>> for AdminBearer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        renderer: &Arc<Renderer>,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if token.is_some_and(|t| renderer.is_admin(t)) {
            return Ok(AdminBearer);
        }
        let mut response = (StatusCode::UNAUTHORIZED, "admin token required\n").into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"oberon-renderer\""),
        );
        Err(no_store(response))
    }
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Pages are read-only: 405 for any method but GET and HEAD, answered in front of
/// the service it wraps (the render limit).
#[derive(Clone)]
struct ReadOnly<S>(S);

impl<S> Service<Request<Body>> for ReadOnly<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if matches!(*request.method(), Method::GET | Method::HEAD) {
            return Either::Right(self.0.call(request));
        }
        let mut response = (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n").into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        Either::Left(std::future::ready(Ok(response)))
    }
}

/// A page. Its place under the render limit is taken and given back by the admission
/// layer (a streamed body holds it until its last chunk).
async fn page(State(renderer): State<Arc<Renderer>>, request: Request<Body>) -> Response {
    let uri = request.uri();
    let reply = renderer
        .reply(uri.path(), uri.query(), request.headers())
        .await;
    reply.meter.answered(request.method(), reply.status);
    let mut headers = reply.headers;
    let body = encoded(
        reply.body,
        Coding::negotiate(request.headers()),
        &mut headers,
    );
    let mut response = (reply.status, body).into_response();
    response.headers_mut().extend(headers);
    response
}

/// A whole page's body in the client's coding ([`crate::compress`]), and the headers
/// that say so: `Content-Encoding` and the representation's own `ETag` (a 304's too).
/// Every page anyone may store already says `Vary: Accept-Encoding`
/// ([`cache::decide`]). A streamed page goes as it is (see `compress`).
fn encoded(body: ReplyBody, coding: Option<Coding>, headers: &mut HeaderMap) -> Body {
    let body = match body {
        ReplyBody::Whole(body) => body,
        ReplyBody::Stream(stream) => return Body::from_stream(stream.into_body_stream()),
    };
    let Some(coding) = coding else {
        return Body::from(body);
    };
    if let Some(tag) = headers.get(header::ETAG) {
        let coded = cache::coded_etag(tag, coding.token());
        headers.insert(header::ETAG, coded);
    }
    if body.is_empty() {
        return Body::empty();
    }
    headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(coding.token()),
    );
    Body::from(coding.compress(body.as_bytes()))
}

async fn asset(
    State(renderer): State<Arc<Renderer>>,
    Path((component, hash, path)): Path<(String, String, String)>,
    request: HeaderMap,
) -> Response {
    // Only a declared asset of a version loaded (or swapped out moments ago) is
    // served, by an in-memory lookup on the literal path: no request path ever reaches
    // the file system, so `..` and its encodings simply find nothing.
    let Some(asset) = renderer.asset(&component, &hash, &path) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, "no-store")],
            "not found\n",
        )
            .into_response();
    };
    let gzip = asset
        .gzip
        .as_ref()
        .filter(|_| compress::accepts_gzip(&request));
    let etag = match gzip {
        Some(_) => asset.gzip_etag(),
        None => asset.etag.clone(),
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=31536000, immutable"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if asset.gzip.is_some() {
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    let not_modified = crate::cache::if_none_match(request.get_all(header::IF_NONE_MATCH), &etag);
    headers.insert(header::ETAG, etag);
    if not_modified {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    match gzip {
        Some(body) => {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            (headers, body.clone()).into_response()
        }
        None => (headers, asset.bytes.clone()).into_response(),
    }
}

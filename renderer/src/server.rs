//! HTTP: the renderer as an axum [`Router`], and [`serve`] over a listener the caller
//! bound (so tests hand it port 0).

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::render::Renderer;

/// The renderer's routes: its own endpoints, component assets, and every other GET as
/// a page.
pub fn app(renderer: Arc<Renderer>) -> Router {
    Router::new()
        .route("/_oberon/livez", get(|| async { "ok\n" }))
        .route("/_oberon/readyz", get(ready))
        .route("/_oberon/status", get(status))
        .route("/assets/{component}/{hash}/{*path}", get(asset))
        .fallback(page)
        .with_state(renderer)
}

/// Serve `app` on `listener` until `shutdown` resolves, finishing requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn ready(State(renderer): State<Arc<Renderer>>) -> Response {
    let site = renderer.site();
    let body = format!(
        "ok: {} pages, {} components\n",
        site.pages.len(),
        site.components.by_name.len()
    );
    body.into_response()
}

/// What the renderer is doing, as JSON: its site, and each BFF's breaker and the data
/// client's counters (the cache mode will key on these).
async fn status(State(renderer): State<Arc<Renderer>>) -> Response {
    let site = renderer.site();
    let data = renderer.data();
    axum::Json(serde_json::json!({
        "pages": site.pages.len(),
        "components": site.components.by_name.len(),
        "data": {
            "breakers": data.breakers(),
            "stats": data.stats(),
        },
    }))
    .into_response()
}

async fn page(State(renderer): State<Arc<Renderer>>, request: Request<Body>) -> Response {
    let method = request.method();
    if method != Method::GET && method != Method::HEAD {
        let mut response = (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n").into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let uri = request.uri();
    let rendered = renderer
        .render(uri.path(), uri.query(), request.headers())
        .await;
    let mut response = (rendered.status, rendered.body).into_response();
    response.headers_mut().extend(rendered.headers);
    response
}

async fn asset(
    State(renderer): State<Arc<Renderer>>,
    Path((component, hash, path)): Path<(String, String, String)>,
) -> Response {
    let site = renderer.site();
    // Only a declared asset of the version currently loaded is served: the lookup is in
    // an in-memory map, so no request path ever reaches the file system.
    let found = site
        .components
        .get(&component)
        .filter(|v| v.hash == hash)
        .and_then(|v| v.assets.get(&path));
    match found {
        Some(asset) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(asset.content_type),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
            ],
            asset.bytes.clone(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, "no-store")],
            "not found\n",
        )
            .into_response(),
    }
}

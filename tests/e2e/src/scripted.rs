//! An origin that answers what the test tells it to: for each path, a status and
//! header lines chosen by the test, for every method. It is how the caching tests put a
//! given `CDN-Cache-Control`, `Age` or `Vary` in front of Varnish, which the real
//! renderer (`origin`) never sends, and count what reaches the origin.
//!
//! It answers the health probe of `oberon-backend.vcl.example` (`/_gateway/readyz`),
//! and ignores the origin-verification header.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Request, Response, StatusCode};

/// What one path answers: status and header lines (a name may repeat).
#[derive(Debug, Clone)]
struct Script {
    status: u16,
    headers: Vec<(String, String)>,
}

#[derive(Default)]
struct State {
    scripts: HashMap<String, Script>,
    /// Requests per path (the probe's excluded).
    requests: HashMap<String, u64>,
}

/// The origin, serving on loopback until dropped.
pub struct ScriptedOrigin {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedOrigin {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = state.clone();
        let app = axum::Router::new().fallback(move |request: Request<Body>| {
            let state = shared.clone();
            async move { answer(&state, &request) }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state, task }
    }

    /// From now on `path` answers `status` with these header lines, to any method. The
    /// body names the method, the path and the request's number for that path.
    pub fn script(&self, path: &str, status: u16, headers: &[(&str, &str)]) {
        let script = Script {
            status,
            headers: headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
        };
        self.lock().scripts.insert(path.to_string(), script);
    }

    /// How many requests for `path` reached the origin.
    pub fn requests(&self, path: &str) -> u64 {
        self.lock().requests.get(path).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("scripted origin state")
    }
}

impl Drop for ScriptedOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(state: &Mutex<State>, request: &Request<Body>) -> Response<Body> {
    let path = request.uri().path().to_string();
    if path == "/_gateway/readyz" {
        return Response::new(Body::from("ready"));
    }
    let (script, number) = {
        let mut state = state.lock().expect("scripted origin state");
        let number = state.requests.entry(path.clone()).or_default();
        *number += 1;
        let number = *number;
        (state.scripts.get(&path).cloned(), number)
    };
    let Some(script) = script else {
        let mut response = Response::new(Body::from(format!("no script for {path}")));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    };
    let mut response = Response::new(Body::from(format!("{} {path} #{number}", request.method())));
    *response.status_mut() = StatusCode::from_u16(script.status).expect("status");
    for (name, value) in &script.headers {
        response.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    response
}

//! For a BFF's own tests: the service on port 0 over real HTTP, and a stand-in for the
//! gateway that publishes its keys and signs assertions the way the gateway does. (An
//! environment from a list is [`Env::from_pairs`](crate::Env::from_pairs).)

use std::sync::{Arc, RwLock};

use axum::Router;
use axum::routing;
use oberon_identity::{Identity, Signer};

use crate::{Listeners, Service, serve};

async fn bind() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port")
}

fn url_of(listener: &tokio::net::TcpListener) -> String {
    format!("http://{}", listener.local_addr().expect("local address"))
}

/// `app` (a fake backend, say) served on a loopback port; returns its base URL.
pub async fn serve_on_loopback(app: Router) -> String {
    let listener = bind().await;
    let url = url_of(&listener);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// gRPC services (a fake backend's) served on a loopback port; returns the base URL a
/// BFF's `BACKEND_URL` names.
pub async fn serve_grpc_on_loopback(routes: tonic::service::Routes) -> String {
    let listener = bind().await;
    let url = url_of(&listener);
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming(incoming),
    );
    url
}

/// `GET url` with `headers`.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("the request is sent")
}

/// A service served on two loopback ports until [`Running::stop`].
pub struct Running {
    /// The API's base URL.
    pub url: String,
    /// The operational endpoints' base URL.
    pub ops: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub async fn start(service: Service) -> Self {
        let listeners = Listeners {
            api: bind().await,
            ops: bind().await,
        };
        let (url, ops) = (url_of(&listeners.api), url_of(&listeners.ops));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(serve(listeners, service, async move {
            let _ = stopped.await;
        }));
        Self {
            url,
            ops,
            stop: Some(stop),
            done,
        }
    }

    /// Begins the shutdown, as SIGTERM would.
    pub fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down and waits until the requests in flight have finished.
    pub async fn stop(mut self) -> std::io::Result<()> {
        self.shut_down();
        (&mut self.done).await.map_err(std::io::Error::other)?
    }
}

/// The gateway, as far as a BFF sees it: its keys at `jwks_url`, and the assertions it
/// signs. Its keys can be withdrawn and replaced, as a rotation does.
pub struct FakeGateway {
    pub jwks_url: String,
    signer: RwLock<Signer>,
    published: Arc<RwLock<serde_json::Value>>,
}

impl FakeGateway {
    pub async fn start() -> Self {
        let signer = Signer::generate();
        let published = Arc::new(RwLock::new(jwks_of(&signer)));
        let served = published.clone();
        let app = Router::new().route(
            oberon_identity::assertion::JWKS_PATH,
            routing::get(move || {
                let set = served.read().unwrap_or_else(|e| e.into_inner()).clone();
                async move { axum::Json(set) }
            }),
        );
        let base = serve_on_loopback(app).await;
        let jwks_url = format!("{base}{}", oberon_identity::assertion::JWKS_PATH);
        Self {
            jwks_url,
            signer: RwLock::new(signer),
            published,
        }
    }

    /// The assertion for `subject` at `issuer` with `roles`, made for the request
    /// `request_id` and good at `audiences`.
    pub fn assertion(
        &self,
        issuer: &str,
        subject: &str,
        roles: &[&str],
        request_id: &str,
        audiences: &[&str],
    ) -> String {
        let identity = Identity {
            subject: subject.into(),
            issuer: issuer.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            name: None,
        };
        self.signer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .sign(&identity, request_id, audiences)
            .expect("sign an assertion")
    }

    /// Signs with a new key from now on and publishes only it: the old key is withdrawn.
    pub fn rotate(&self) {
        let signer = Signer::generate();
        *self.published.write().unwrap_or_else(|e| e.into_inner()) = jwks_of(&signer);
        *self.signer.write().unwrap_or_else(|e| e.into_inner()) = signer;
    }

    /// Publishes no key at all.
    pub fn withdraw_keys(&self) {
        *self.published.write().unwrap_or_else(|e| e.into_inner()) =
            serde_json::json!({ "keys": [] });
    }
}

fn jwks_of(signer: &Signer) -> serde_json::Value {
    serde_json::to_value(signer.jwks()).expect("a JWKS is JSON")
}

//! What the gateway adds to a request, measured side by side in one run over loopback:
//!
//! - `gateway_latency/direct`: GET of a 2 KiB page from the upstream itself.
//! - `gateway_latency/public`: the same through the gateway, on a public route (path
//!   normalisation, routing, header hygiene, proxying).
//! - `gateway_latency/authenticated`: the same with a bearer token (RS256, from a cached
//!   JWKS) verified, the user rate-limited, and an EdDSA identity assertion signed for
//!   the upstream.
//! - `gateway_throughput/{direct,authenticated}`: 256 requests, 32 at a time.
//! - `gateway_parts/*`: verifying a bearer token (uncached, and cached as a browser's
//!   repeated session token is), signing an assertion.
//!
//! Client, gateway and upstream share the machine's cores (a two-worker runtime), so
//! the absolute numbers include the client's own cost; the differences are the point.
//!
//! `cargo bench -p oberon-bench --bench gateway`.

use std::net::SocketAddr;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oberon_gateway::devidp::{DevIdp, Mint};
use oberon_gateway::{Gateway, GatewayOptions};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONFIG: &str = r#"
public_url = "http://127.0.0.1"
[rate_limit]
per_client = { per_second = 1000000, burst = 1000000 }
per_user = { per_second = 1000000, burst = 1000000 }
[upstreams]
page = "http://127.0.0.1:9"
[[issuers]]
issuer = "bench-idp"
jwks_url = "http://127.0.0.1:9/jwks"
audiences = ["oberon"]
algorithms = ["RS256"]
[[routes]]
path = "/public/{id}"
upstream = "page"
kind = "api"
auth = "public"
[[routes]]
path = "/private/{id}"
upstream = "page"
kind = "api"
auth = "required"
roles = ["buyer"]
"#;

struct Setup {
    upstream: String,
    gateway: String,
    token: String,
    loaded: Arc<Gateway>,
    _dir: tempfile::TempDir,
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    format!("http://{addr}")
}

async fn setup() -> Setup {
    let page = "<p>".to_string() + &"x".repeat(2048) + "</p>";
    let upstream = serve(axum::Router::new().fallback(move || {
        let page = page.clone();
        async move { ([("content-type", "text/html")], page) }
    }))
    .await;
    let idp =
        Arc::new(DevIdp::new("bench-idp", "http://127.0.0.1", "oberon", vec![]).expect("idp"));
    let token = idp
        .mint(&Mint {
            subject: "alice".into(),
            name: None,
            roles: vec!["buyer".into()],
            lifetime_s: 3600,
        })
        .expect("token");
    let idp_url = serve(oberon_gateway::devidp::app(idp)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, CONFIG).expect("config");
    let gateway = Gateway::load(GatewayOptions {
        config: file,
        upstreams: [("page".to_string(), upstream.clone())].into(),
        jwks_urls: [(
            "bench-idp".to_string(),
            format!("{idp_url}/.well-known/jwks.json"),
        )]
        .into(),
        ..GatewayOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let loaded = Arc::new(gateway);
    let gateway = serve(oberon_gateway::app(loaded.clone())).await;
    Setup {
        upstream,
        gateway,
        token,
        loaded,
        _dir: dir,
    }
}

async fn get(client: &reqwest::Client, url: &str, token: Option<&str>) {
    let mut request = client.get(url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.expect("request");
    assert_eq!(response.status(), 200, "{url}");
    let body = response.bytes().await.expect("body");
    assert!(body.len() > 2048);
}

fn gateway(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let s = rt.block_on(setup());
    let client = reqwest::Client::new();
    let direct = format!("{}/public/1", s.upstream);
    let public = format!("{}/public/1", s.gateway);
    let private = format!("{}/private/1", s.gateway);

    let mut group = c.benchmark_group("gateway_parts");
    group.bench_function("verify_rs256_token", |b| {
        b.to_async(&rt).iter(|| async {
            s.loaded
                .issuers()
                .verify_uncached(&s.token)
                .await
                .expect("valid")
        })
    });
    group.bench_function("verify_cached_token", |b| {
        b.to_async(&rt).iter(|| async {
            s.loaded
                .issuers()
                .verify(&s.token, oberon_gateway::auth::Presented::Bearer)
                .await
                .expect("valid")
        })
    });
    let identity = rt
        .block_on(
            s.loaded
                .issuers()
                .verify(&s.token, oberon_gateway::auth::Presented::Bearer),
        )
        .expect("valid")
        .identity
        .clone();
    group.bench_function("sign_assertion", |b| {
        b.iter(|| {
            s.loaded
                .signer()
                .sign(&identity, "request-id", &["renderer", "checkout"])
                .expect("sign")
        })
    });
    group.finish();

    let mut group = c.benchmark_group("gateway_latency");
    group.bench_function("direct", |b| {
        b.to_async(&rt).iter(|| get(&client, &direct, None))
    });
    group.bench_function("public", |b| {
        b.to_async(&rt).iter(|| get(&client, &public, None))
    });
    group.bench_function("authenticated", |b| {
        b.to_async(&rt)
            .iter(|| get(&client, &private, Some(&s.token)))
    });
    group.finish();

    const BATCH: usize = 256;
    const CONCURRENCY: usize = 32;
    let mut group = c.benchmark_group("gateway_throughput");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, url, token) in [
        ("direct", &direct, None),
        ("authenticated", &private, Some(s.token.as_str())),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                use futures::StreamExt;
                futures::stream::iter(0..BATCH)
                    .for_each_concurrent(CONCURRENCY, |_| get(&client, url, token))
                    .await;
            })
        });
    }
    group.finish();
}

criterion_group!(benches, gateway);
criterion_main!(benches);

//! The demo's backend services, from fixtures: serves `<root>/<path>.json` for
//! `GET /<path>`. The demo BFFs (`demo/bffs/*`) call these as they would call a team's
//! real backends.
//!
//! With `--grpc`, the same fixtures as the backends' gRPC services instead
//! (`oberon_demo_proto::fixtures`): what the BFFs will call once they speak gRPC. Until
//! then `oberon dev` serves HTTP only.

use std::path::{Component, Path, PathBuf};

use anyhow::Context;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// `oberon fixtures --root DIR --listen ADDR [--grpc]` (hidden).
#[derive(Debug, clap::Args)]
pub struct FixturesArgs {
    /// The directory of `<path>.json` files.
    #[arg(long)]
    pub root: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: String,
    /// Serve the fixtures as the gRPC services of `proto/` (`EventsService` from
    /// `<root>/events/`, `OrdersService` from `<root>/issuers/`) instead of over HTTP.
    #[arg(long)]
    pub grpc: bool,
}

/// Serve `args.root` on `args.listen` until SIGTERM or Ctrl-C.
pub async fn run(args: FixturesArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    if args.grpc {
        return run_grpc(listener, &args.root).await;
    }
    eprintln!(
        "oberon: fixtures from {} on http://{}",
        args.root.display(),
        listener.local_addr()?
    );
    axum::serve(listener, app(args.root))
        .with_graceful_shutdown(oberon_gateway::shutdown_signal())
        .await?;
    Ok(())
}

/// The fixtures under `root`, read whole before the first call, as gRPC on `listener`.
async fn run_grpc(listener: tokio::net::TcpListener, root: &Path) -> anyhow::Result<()> {
    let fixtures = oberon_demo_proto::fixtures::Fixtures::load(root)?;
    eprintln!(
        "oberon: grpc fixtures from {} on http://{}",
        root.display(),
        listener.local_addr()?
    );
    oberon_demo_proto::fixtures::serve(listener, fixtures, oberon_gateway::shutdown_signal())
        .await?;
    Ok(())
}

pub fn app(root: PathBuf) -> Router {
    Router::new().route("/{*path}", get(serve)).with_state(root)
}

async fn serve(State(root): State<PathBuf>, UrlPath(path): UrlPath<String>) -> Response {
    let relative = Path::new(&path);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return StatusCode::NOT_FOUND.into_response();
    }
    match tokio::fs::read(root.join(relative).with_extension("json")).await {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(_) => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"error\":\"not found\"}",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn status(root: &Path, uri: &str) -> StatusCode {
        let request = Request::get(uri).body(Body::empty()).expect("request");
        app(root.to_path_buf())
            .oneshot(request)
            .await
            .expect("response")
            .status()
    }

    #[tokio::test]
    async fn serves_fixtures_and_nothing_outside_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("v1")).expect("mkdir");
        std::fs::write(root.join("v1/item.json"), "{}").expect("write");
        std::fs::write(dir.path().join("secret.json"), "{}").expect("write");
        assert_eq!(status(&root, "/v1/item").await, StatusCode::OK);
        assert_eq!(status(&root, "/v1/missing").await, StatusCode::NOT_FOUND);
        assert_eq!(status(&root, "/..%2Fsecret").await, StatusCode::NOT_FOUND);
        assert_eq!(
            status(&root, "/v1/..%2F..%2Fsecret").await,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(&root, &format!("/{}", dir.path().join("secret").display())).await,
            StatusCode::NOT_FOUND
        );
    }
}

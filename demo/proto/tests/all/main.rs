//! oberon-demo-proto's tests, one binary: the fixture servers through real tonic clients
//! over loopback (`fixtures`), deadlines and a backend that is down (`deadlines`), and
//! buf's lint and breaking-change checks on `proto/` (`buf`).

mod buf;
mod deadlines;
mod fixtures;

use std::path::{Path, PathBuf};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::service::Routes;
use tonic::transport::Channel;

use oberon_demo_proto::fixtures::{Fixtures, serve_routes};

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A server on a free loopback port, stopped when dropped.
struct TestServer {
    addr: std::net::SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl TestServer {
    async fn start(routes: Routes) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve_routes(listener, routes, async {
            let _ = stopped.await;
        }));
        TestServer { addr, _stop: stop }
    }

    /// The fixtures of `root`, served.
    async fn fixtures(root: &Path) -> TestServer {
        let fixtures = Fixtures::load(root).expect("fixtures load");
        TestServer::start(fixtures.routes()).await
    }

    fn channel(&self) -> Channel {
        let uri = format!("http://{}", self.addr);
        tonic::transport::Endpoint::from_shared(uri)
            .expect("a loopback URI")
            .connect_lazy()
    }
}

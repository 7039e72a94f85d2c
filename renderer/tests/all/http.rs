//! The renderer's HTTP surface: methods, unknown paths, assets.

use crate::support::TestSite;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_paths_and_assets() {
    let site = TestSite::new(&[]);
    site.install_as("hello", "hello-v1");
    site.page("hello.toml", "route = \"/\"\nlayout = \"test.html\"\nteam = \"t\"\n[[slots]]\nname = \"hello\"\ncomponent = \"hello\"\n");
    let running = site.start().await.expect("site starts");

    let post = running
        .client
        .post(running.url("/"))
        .send()
        .await
        .expect("post");
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    let missing = running.get("/nope").await;
    assert_eq!(
        (missing.status, missing.header("cache-control")),
        (404, "no-store")
    );

    let hash = &running
        .renderer
        .site()
        .components
        .get("hello")
        .expect("hello")
        .hash
        .clone();
    let ok = running.get(&format!("/assets/hello/{hash}/hello.js")).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("content-type"), "text/javascript; charset=utf-8");
    for bad in [
        "/assets/hello/0000000000000000/hello.js".to_string(),
        format!("/assets/hello/{hash}/../component.wasm"),
        format!("/assets/hello/{hash}/%2e%2e/component.wasm"),
        format!("/assets/hello/{hash}/undeclared.js"),
    ] {
        assert_eq!(running.get(&bad).await.status, 404, "{bad}");
    }
}

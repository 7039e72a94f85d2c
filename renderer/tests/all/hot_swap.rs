//! A new component version installed while the renderer runs is served on the next
//! request, with its own assets, and no restart.

use std::time::{Duration, Instant};

use crate::support::TestSite;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_is_swapped_in_without_a_restart() {
    let site = TestSite::new(&[]);
    site.install_as("hello", "hello-v1");
    site.page("hello.toml", "route = \"/\"\nlayout = \"test.html\"\nteam = \"t\"\n[[slots]]\nname = \"hello\"\ncomponent = \"hello\"\n");
    let running = site.start().await.expect("site starts");
    running.renderer.watch(Duration::from_millis(50));
    let v1 = running.get("/").await;
    assert_eq!(v1.slot("hello"), "<p>hello v1</p>");
    let v1_asset = asset_url(&v1.body);

    site.install_as("hello", "hello-v2");
    let installed = Instant::now();
    loop {
        let page = running.get("/").await;
        assert_eq!(page.status, 200, "every request during the swap succeeds");
        if page.slot("hello") == "<p>hello v2</p>" {
            let v2_asset = asset_url(&page.body);
            assert_ne!(v1_asset, v2_asset, "a new version has new asset URLs");
            let asset = running
                .client
                .get(running.url(&v2_asset))
                .send()
                .await
                .expect("asset");
            assert_eq!(asset.status(), 200);
            assert_eq!(
                asset.headers()["cache-control"],
                "max-age=31536000, immutable"
            );
            assert_eq!(
                asset.text().await.expect("body"),
                "console.log('hello v2');\n"
            );
            // A page rendered just before the swap still finds its script.
            let old = running.get(&v1_asset).await;
            assert_eq!(
                (old.status, old.body.as_str()),
                (200, "console.log('hello v1');\n"),
                "a swapped-out version's assets stay available"
            );
            break;
        }
        assert!(
            installed.elapsed() < Duration::from_secs(5),
            "v2 was not swapped in"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_new_version_is_refused_and_the_old_one_kept() {
    let site = TestSite::new(&[]);
    site.install_as("hello", "hello-v1");
    site.page("hello.toml", "route = \"/\"\nlayout = \"test.html\"\nteam = \"t\"\n[[slots]]\nname = \"hello\"\ncomponent = \"hello\"\n");
    let running = site.start().await.expect("site starts");
    std::fs::write(
        site.path().join("components/hello/component.wasm"),
        b"\0asm garbage",
    )
    .expect("write");
    let err = running
        .renderer
        .reload_if_changed()
        .await
        .expect_err("garbage is refused");
    assert!(
        err.to_string()
            .contains("component hello: not a valid component"),
        "{err}"
    );
    assert_eq!(running.get("/").await.slot("hello"), "<p>hello v1</p>");
}

fn asset_url(body: &str) -> String {
    let start = body.find("/assets/hello/").expect("asset url");
    let end = start + body[start..].find('"').expect("end of url");
    body[start..end].to_string()
}

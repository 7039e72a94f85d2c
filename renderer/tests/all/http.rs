//! The renderer's HTTP surface: methods, unknown paths, assets.

use oberon_config::listen::ListenLimits;
use oberon_config::testing::assert_slow_clients_are_closed;

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

    let hash = running
        .renderer
        .site()
        .components
        .get("hello")
        .expect("hello")
        .assets["hello.js"]
        .hash
        .clone();
    let page = running.get("/").await;
    assert!(
        page.body
            .contains(&format!("/assets/hello/{hash}/hello.js")),
        "the layout links the content-hashed URL: {}",
        page.body
    );
    let ok = running.get(&format!("/assets/hello/{hash}/hello.js")).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("content-type"), "text/javascript; charset=utf-8");
    assert_eq!(ok.header("cache-control"), "max-age=31536000, immutable");
    assert_eq!(ok.header("x-content-type-options"), "nosniff");
    assert_eq!(ok.header("etag"), format!("\"{hash}\""));
    let same = running
        .get_with(
            &format!("/assets/hello/{hash}/hello.js"),
            &[("if-none-match", &format!("W/\"x\", \"{hash}\""))],
        )
        .await;
    assert_eq!((same.status, same.body.as_str()), (304, ""));
    assert_eq!(same.header("etag"), format!("\"{hash}\""));
    assert_eq!(same.header("cache-control"), "max-age=31536000, immutable");
    let other = running
        .get_with(
            &format!("/assets/hello/{hash}/hello.js"),
            &[("if-none-match", "\"0000000000000000\"")],
        )
        .await;
    assert_eq!(other.status, 200);

    for bad in [
        "/assets/hello/0000000000000000/hello.js".to_string(),
        format!("/assets/hello/{hash}/undeclared.js"),
        format!("/assets/hello/{hash}/../component.wasm"),
        format!("/assets/hello/{hash}/%2e%2e/component.wasm"),
        format!("/assets/hello/{hash}/%2E%2E%2Fcomponent.wasm"),
        format!("/assets/hello/{hash}/..%2fcomponent.wasm"),
        format!("/assets/hello/{hash}/..%5ccomponent.wasm"),
        format!("/assets/hello/{hash}/%252e%252e%252fcomponent.wasm"),
        format!("/assets/hello/{hash}/.%2e/.%2e/site.toml"),
        format!("/assets/hello/{hash}/sub/../hello.js"),
        format!("/assets/hello/{hash}/./hello.js"),
        format!("/assets/hello/{hash}//etc/passwd"),
        format!("/assets/hello/{hash}/%2fetc%2fpasswd"),
        format!("/assets/hello/{hash}/hello.js%00.png"),
        format!("/assets/%2e%2e/{hash}/hello.js"),
        "/assets/hello/%2e%2e/hello.js".to_string(),
        "/assets/hello/../../site.toml".to_string(),
    ] {
        // Sent byte for byte: an HTTP client would normalise `..` and `.` away.
        let (status, body) = raw_get(running.addr, &bad).await;
        assert!(status == 404 || status == 400, "{bad}: {status} {body}");
        assert!(!body.contains("asm") && !body.contains("hello v1"), "{bad}");
    }
}

/// GET `path` exactly as given, over a plain connection; the status and body.
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_are_gzipped_for_clients_that_accept_it() {
    let site = TestSite::new(&[]);
    site.install(&["ticket-picker"]);
    site.page("t.toml", "route = \"/\"\nlayout = \"test.html\"\nteam = \"t\"\n[[slots]]\nname = \"tickets\"\ncomponent = \"ticket-picker\"\n");
    let running = site.start().await.expect("site starts");
    let asset = running
        .renderer
        .site()
        .components
        .get("ticket-picker")
        .expect("loaded")
        .assets["ticket-picker.js"]
        .clone();
    let url = running.url(&format!(
        "/assets/ticket-picker/{}/ticket-picker.js",
        asset.hash
    ));
    // reqwest here is built without decompression: bodies come as sent.
    let plain = running.client.get(&url).send().await.expect("get");
    assert_eq!(plain.headers().get("content-encoding"), None);
    assert_eq!(plain.headers()["vary"], "Accept-Encoding");
    let plain_etag = plain.headers()["etag"].clone();
    assert_eq!(plain.bytes().await.expect("body"), asset.bytes);

    for accept in ["gzip", "br, gzip;q=0.8", "*", "deflate, GZIP"] {
        let zipped = running
            .client
            .get(&url)
            .header("accept-encoding", accept)
            .send()
            .await
            .expect("get");
        assert_eq!(zipped.status(), 200, "{accept}");
        assert_eq!(zipped.headers()["content-encoding"], "gzip", "{accept}");
        assert_eq!(zipped.headers()["vary"], "Accept-Encoding");
        assert_eq!(
            zipped.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        let etag = zipped.headers()["etag"].clone();
        assert_ne!(etag, plain_etag, "another representation, another tag");
        let body = zipped.bytes().await.expect("body");
        assert!(
            body.len() < asset.bytes.len() * 9 / 10,
            "{} bytes",
            body.len()
        );
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut unzipped)
            .expect("valid gzip");
        assert_eq!(unzipped, asset.bytes);
        let revalidated = running
            .client
            .get(&url)
            .header("accept-encoding", accept)
            .header("if-none-match", etag.clone())
            .send()
            .await
            .expect("get");
        assert_eq!(revalidated.status(), 304, "{accept}");
    }
    for refused in ["gzip;q=0", "identity", "br"] {
        let got = running
            .client
            .get(&url)
            .header("accept-encoding", refused)
            .send()
            .await
            .expect("get");
        assert_eq!(got.headers().get("content-encoding"), None, "{refused}");
    }
}

/// Slowloris: a connection that dribbles its head, one that sends nothing and a
/// kept-alive one left idle are all closed at the header-read timeout (10 s) rather
/// than holding a file descriptor for as long as the client likes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_silent_and_idle_connections_are_closed_at_the_header_read_timeout() {
    let site = TestSite::new(&[]);
    site.install_as("hello", "hello-v1");
    site.page("hello.toml", "route = \"/\"\nlayout = \"test.html\"\nteam = \"t\"\n[[slots]]\nname = \"hello\"\ncomponent = \"hello\"\n");
    let running = site.start().await.expect("site starts");
    let addr = running.addr.to_string();
    let timeout = ListenLimits::default().header_read_timeout;
    assert_slow_clients_are_closed(&addr, &addr, "/_oberon/livez", timeout).await;
    assert_eq!(running.get("/_oberon/livez").await.status, 200);
}

/// With `[errors] layout`, the renderer's own 404 and 503 are that layout, rendered with
/// their status, title, message and the site's language; never stored; and a critical
/// component's failure still gives the 503 with nothing of the failed page in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sites_error_pages_are_its_error_layout() {
    let site = TestSite::new(&[]);
    let toml = std::fs::read_to_string(site.path().join("site.toml")).expect("site.toml");
    std::fs::write(
        site.path().join("site.toml"),
        format!("locale = \"en-GB\"\n{toml}\n[errors]\nlayout = \"error.html\"\n"),
    )
    .expect("site.toml");
    site.layout(
        "error.html",
        "<!doctype html><html lang=\"{{ lang }}\"><title>{{ title }}</title>\
         <main><h1>{{ status }}: {{ title }}</h1><p>{{ message }}</p>{{ slots.main }}{{ head }}</main></html>",
    );
    site.install(&["misbehave"]);
    site.page(
        "broken.toml",
        "route = \"/broken\"\nlayout = \"test.html\"\nteam = \"t\"\n[[slots]]\nname = \"main\"\ncomponent = \"misbehave\"\nprops = { mode = \"trap\" }\ncritical = true\n",
    );
    let running = site.start().await.expect("site starts");

    let missing = running.get("/nope").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("cache-control"), "no-store");
    assert_eq!(missing.header("content-type"), "text/html; charset=utf-8");
    assert_eq!(
        missing.body,
        "<!doctype html><html lang=\"en-GB\"><title>Page not found</title><main><h1>404: Page not found</h1>\
         <p>There is no page at this address. It may have moved, or the link may be mistyped.</p></main></html>"
    );

    let broken = running.get("/broken").await;
    assert_eq!(broken.status, 503);
    assert_eq!(broken.header("cache-control"), "no-store");
    assert!(
        broken
            .body
            .starts_with("<!doctype html><html lang=\"en-GB\"><title>This page is unavailable right now</title><main><h1>503: "),
        "{}",
        broken.body
    );
    assert!(broken.body.contains("Please try again in a moment."));
}

/// `body` decoded from `coding` (`br` or `gzip`).
fn decoded(coding: &str, body: &[u8]) -> String {
    use std::io::Read as _;
    let mut out = String::new();
    match coding {
        "br" => brotli::Decompressor::new(body, 4096).read_to_string(&mut out),
        "gzip" => flate2::read::GzDecoder::new(body).read_to_string(&mut out),
        other => panic!("coding {other}"),
    }
    .expect("decodes");
    out
}

/// Whole pages in the coding the client prefers (`br`, then `gzip`), as one
/// representation among others: `Vary: Accept-Encoding`, an entity tag of their own
/// that still revalidates (304). A streamed page goes as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_compressed_for_clients_that_accept_it() {
    let slow = crate::support::backend().await;
    let site = TestSite::new(&[("slow", slow)]);
    site.install_as("hello", "hello-v1");
    site.install(&["site-footer", "recommendations"]);
    site.page("hello.toml", "route = \"/\"\nlayout = \"test.html\"\nteam = \"t\"\ncache = { class = \"public\", ttl_s = 60 }\n[[slots]]\nname = \"hello\"\ncomponent = \"hello\"\n");
    site.page(
        "late.toml",
        "route = \"/late\"\nlayout = \"test.html\"\nteam = \"t\"\n\
         [[data]]\ntopic = \"event\"\nurl = \"{bff.slow}/slow\"\ndeadline_ms = 900\n\
         [[slots]]\nname = \"first\"\ncomponent = \"site-footer\"\n\
         [[slots]]\nname = \"late\"\ncomponent = \"recommendations\"\n",
    );
    let running = site.start().await.expect("site starts");

    let plain = running.get("/").await;
    assert_eq!(plain.header("content-encoding"), "");
    assert_eq!(
        plain.header("vary"),
        "Cookie, Authorization, Accept-Encoding"
    );
    let plain_tag = plain.header("etag").to_string();
    for (accept, coding) in [
        ("gzip, deflate, br", "br"),
        ("gzip", "gzip"),
        ("br;q=0, *", "gzip"),
    ] {
        let response = running
            .client
            .get(running.url("/"))
            .header("accept-encoding", accept)
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 200);
        let headers = response.headers().clone();
        assert_eq!(headers["content-encoding"], coding, "{accept}");
        assert_eq!(headers["vary"], "Cookie, Authorization, Accept-Encoding");
        let tag = headers["etag"].to_str().unwrap().to_string();
        assert_eq!(
            tag,
            format!("{}-{coding}\"", plain_tag.trim_end_matches('"'))
        );
        let body = response.bytes().await.expect("body");
        assert!(body.len() < plain.body.len(), "{accept}: {}", body.len());
        assert_eq!(decoded(coding, &body), plain.body, "{accept}");

        let again = running
            .get_with("/", &[("accept-encoding", accept), ("if-none-match", &tag)])
            .await;
        assert_eq!(again.status, 304, "{accept}");
        assert_eq!(again.header("etag"), tag);
    }

    // Streamed: sent as it is, whatever the client accepts (a CDN decompressing for
    // another client could hold a compressed stream's parts until its end); the first
    // slot's part arrives while the late one waits.
    let started = std::time::Instant::now();
    let mut response = running
        .client
        .get(running.url("/late"))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .expect("get");
    assert_eq!(response.headers().get("content-encoding"), None);
    assert!(response.content_length().is_none(), "streamed");
    let mut body = String::new();
    while !body.contains("site-footer") {
        let chunk = response
            .chunk()
            .await
            .expect("chunk")
            .expect("more of the page");
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        started.elapsed() < std::time::Duration::from_millis(800),
        "the first part came at once, not with the late one: {:?}",
        started.elapsed()
    );
    assert!(!body.contains("recommendations"), "{body}");
    while let Some(chunk) = response.chunk().await.expect("chunk") {
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(body.ends_with("</html>"), "{body}");
}

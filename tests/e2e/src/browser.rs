//! A real browser: Debian's headless `chromium`, driven through `chromedriver` over
//! WebDriver (W3C JSON over HTTP, spoken with `reqwest`), for as long as the
//! [`Browser`] value lives.
//!
//! One session per [`Browser`], in a fresh profile. Chromium is told not to reach out
//! to anything but the pages it is sent to (component updates, sync, QUIC, ...): on a
//! closed network its background connections are refused and slow it down.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::platform::debian_program;
use crate::varnish::reserve_port;

/// How long a poll ([`Browser::wait_for`]) waits, and the session's page-load and
/// script timeouts: generous, for a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The W3C key codes of Backspace and End, for [`Browser::send_keys`].
pub const BACKSPACE: &str = "\u{E003}";
pub const END: &str = "\u{E010}";

/// The ticket picker's quantity field (the demo's and the test site's component).
pub const TICKET_QUANTITY: &str = "[data-oberon-component=\"ticket-picker\"] input[name=\"qty\"]";

/// A running `chromedriver` with one open session of headless `chromium`. Dropping it
/// ends the session (which quits the browser) and kills chromedriver.
pub struct Browser {
    chromedriver: Child,
    port: u16,
    session: String,
    http: reqwest::Client,
    /// The browser's profile and chromedriver's log.
    dir: TempDir,
}

impl Browser {
    /// Start chromedriver on a free loopback port, wait for it to be ready, and open a
    /// session of headless chromium.
    pub async fn start() -> Self {
        let chromium = debian_program("OBERON_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = debian_program("OBERON_CHROMEDRIVER", "/usr/bin/chromedriver");
        for binary in [&chromium, &chromedriver] {
            assert!(
                binary.exists(),
                "{} does not exist.\nThe browser tests need Debian's `chromium` and `chromium-driver` \
                 packages (tests/run installs them), or OBERON_CHROMIUM / OBERON_CHROMEDRIVER",
                binary.display()
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let profile = dir.path().join("profile");
        std::fs::create_dir(&profile).expect("mkdir profile");

        let port = reserve_port();
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log_path(dir.path()).display()))
            // Its own process group: whatever it leaves behind is killed with it.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {}: {e}\nThe browser tests need Debian's `chromium-driver` package \
                     (tests/run installs it), or OBERON_CHROMEDRIVER",
                    chromedriver.display()
                )
            });
        let http = reqwest::Client::builder()
            .timeout(PATIENCE * 2)
            .build()
            .expect("client");
        let mut browser = Self {
            chromedriver: child,
            port,
            session: String::new(),
            http,
            dir,
        };
        browser.wait_until_ready().await;
        browser.session = browser.new_session(&chromium, &profile).await;
        browser
    }

    async fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(Some(status)) = self.chromedriver.try_wait() {
                panic!(
                    "chromedriver exited ({status}) before it was ready:\n{}",
                    self.log()
                );
            }
            let status = self
                .http
                .get(format!("http://127.0.0.1:{}/status", self.port))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if let Ok(response) = status
                && let Ok(body) = response.bytes().await
                && serde_json::from_slice::<Value>(&body)
                    .is_ok_and(|status| status["value"]["ready"] == true)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver was not ready on port {} within {PATIENCE:?}:\n{}",
                self.port,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn new_session(&self, chromium: &Path, profile: &Path) -> String {
        let patience = u64::try_from(PATIENCE.as_millis()).expect("milliseconds");
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "pageLoadStrategy": "normal",
                "timeouts": { "implicit": 0, "pageLoad": patience, "script": patience },
                // Console messages, uncaught exceptions and failed loads, for `log`.
                "goog:loggingPrefs": { "browser": "ALL" },
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": [
                        "--headless",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-dev-shm-usage",
                        "--disable-quic",
                        "--no-first-run",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-sync",
                        format!("--user-data-dir={}", profile.display()),
                    ],
                },
            }},
        });
        let value = self.command("POST", "/session", Some(capabilities)).await;
        value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {value}"))
            .to_string()
    }

    /// A WebDriver command; its `value`. A WebDriver error is a panic with its message.
    async fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}\n{}", self.log()));
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        let reply: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "WebDriver {method} {path}: {status}, not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        });
        let value = reply["value"].clone();
        assert!(
            status.is_success(),
            "WebDriver {method} {path}: {status}: {} {}",
            value["error"],
            value["message"]
        );
        value
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Resize the window to `width` × `height` CSS pixels (the viewport is a little
    /// smaller: headless chromium draws no frame, so only by the scrollbar, if any).
    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.command(
            "POST",
            &self.session_path("/window/rect"),
            Some(json!({ "width": width, "height": height })),
        )
        .await;
    }

    /// Set the cookie `name=value` for the site of the page open now, on every path.
    pub async fn add_cookie(&self, name: &str, value: &str) {
        self.command(
            "POST",
            &self.session_path("/cookie"),
            Some(json!({ "cookie": { "name": name, "value": value, "path": "/" } })),
        )
        .await;
    }

    /// A PNG of what the window shows now, written to `path`.
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let value = self
            .command("GET", &self.session_path("/screenshot"), None)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().expect("a screenshot is base64 text"))
            .expect("base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Open `url` and wait for it to load.
    pub async fn goto(&self, url: &str) {
        self.command(
            "POST",
            &self.session_path("/url"),
            Some(json!({ "url": url })),
        )
        .await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        let value = self.command("GET", &self.session_path("/url"), None).await;
        value.as_str().unwrap_or_default().to_string()
    }

    /// Run `script` (a function body: `arguments`, `return`) in the page; what it returns.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        let body = json!({ "script": script, "args": args });
        self.command("POST", &self.session_path("/execute/sync"), Some(body))
            .await
    }

    /// Run `script` in the page and wait until it calls its last argument (a callback);
    /// what it passed.
    pub async fn execute_async(&self, script: &str, args: Value) -> Value {
        let body = json!({ "script": script, "args": args });
        self.command("POST", &self.session_path("/execute/async"), Some(body))
            .await
    }

    /// Poll `script` until it returns something truthy, and return that; after
    /// [`PATIENCE`], panic saying what was awaited and what the script last returned.
    pub async fn wait_for(&self, what: &str, script: &str, args: Value) -> Value {
        self.poll(what, script, args, |value| {
            !matches!(value, Value::Null | Value::Bool(false))
                && *value != json!(0)
                && *value != json!("")
        })
        .await
    }

    /// Poll `script` until it returns `expected`; after [`PATIENCE`], panic saying what
    /// was awaited and what the script last returned.
    pub async fn wait_for_value(&self, what: &str, script: &str, args: Value, expected: &Value) {
        self.poll(what, script, args, |value| value == expected)
            .await;
    }

    async fn poll(
        &self,
        what: &str,
        script: &str,
        args: Value,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let value = self.execute(script, args.clone()).await;
            if done(&value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "waited {PATIENCE:?} for {what}; last: {value}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The element `css` selects (the first); its WebDriver reference.
    pub async fn find(&self, css: &str) -> Element {
        let body = json!({ "using": "css selector", "value": css });
        let value = self
            .command("POST", &self.session_path("/element"), Some(body))
            .await;
        // The W3C element reference key.
        let id = value["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap_or_else(|| panic!("no element reference for {css}: {value}"))
            .to_string();
        Element { id }
    }

    /// Click `element` as a user would (scrolled into view, at its centre).
    pub async fn click(&self, element: &Element) {
        let path = self.session_path(&format!("/element/{}/click", element.id));
        self.command("POST", &path, Some(json!({}))).await;
    }

    /// Type `text` into `element` (focused first), key by key.
    pub async fn send_keys(&self, element: &Element, text: &str) {
        let path = self.session_path(&format!("/element/{}/value", element.id));
        self.command("POST", &path, Some(json!({ "text": text })))
            .await;
    }

    /// Edit the field `css` selects as a visitor does: click it, go to the end of its
    /// text, delete `erase` characters and type `text`, key by key.
    pub async fn retype(&self, css: &str, erase: usize, text: &str) {
        let field = self.find(css).await;
        self.click(&field).await;
        let keys = format!("{END}{}{text}", BACKSPACE.repeat(erase));
        self.send_keys(&field, &keys).await;
    }

    /// The browser's log since the last call: console messages, uncaught exceptions,
    /// failed loads. Each entry has `level` (`SEVERE` for errors) and `message`.
    pub async fn log_entries(&self) -> Vec<Value> {
        let value = self
            .command(
                "POST",
                &self.session_path("/se/log"),
                Some(json!({ "type": "browser" })),
            )
            .await;
        value.as_array().cloned().unwrap_or_default()
    }

    /// Run `source` in every document this session opens from now on, before the
    /// page's own scripts (Chrome DevTools' `Page.addScriptToEvaluateOnNewDocument`).
    pub async fn before_page_scripts(&self, source: &str) {
        let body = json!({
            "cmd": "Page.addScriptToEvaluateOnNewDocument",
            "params": { "source": source },
        });
        self.command("POST", &self.session_path("/goog/cdp/execute"), Some(body))
            .await;
    }

    /// What chromedriver logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(log_path(self.dir.path())).unwrap_or_default()
    }
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("chromedriver.log")
}

/// An element of the current page, as WebDriver refers to it.
#[derive(Debug, Clone)]
pub struct Element {
    id: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Drop cannot await: end the session with a plain blocking HTTP request.
        if !self.session.is_empty() {
            let _ = delete_blocking(self.port, &format!("/session/{}", self.session));
        }
        // Chromedriver and whatever of the browser is left: the process group
        // chromedriver leads (its id is chromedriver's).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.chromedriver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.chromedriver.kill();
        let _ = self.chromedriver.wait();
    }
}

/// `DELETE path` on loopback, its reply read (chromedriver keeps the connection open
/// whatever the request says: read up to the end of the body, not of the stream).
fn delete_blocking(port: u16, path: &str) -> std::io::Result<()> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "DELETE {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut reply = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            return Ok(());
        }
        reply.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&reply);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                return Ok(());
            }
        }
    }
}

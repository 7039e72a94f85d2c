//! What the soak serves, written into its scratch directory: the demo site with every
//! slot's fallback marked (so a response says whether it fell back), a chaos page of
//! misbehaving components, the backends' fixtures for many events and users, and the
//! gateway's configuration.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Put before every slot's fallback: a body containing it fell back somewhere.
pub const FALLBACK_MARK: &str = "<!--soak-fallback-->";
/// The chaos page's slots: (slot, `misbehave` mode). None of them is critical.
pub const CHAOS_SLOTS: &[(&str, &str)] = &[
    ("main", "trap"),
    ("tickets", "loop"),
    ("cart", "oom"),
    ("aside", "sleep"),
];

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The site: `site.toml` without components (they come from the registry), the demo's
/// layouts, its pages with marked fallbacks, and `/chaos/{id}`.
pub fn write_site(dir: &Path) -> anyhow::Result<()> {
    let demo = repo().join("demo");
    std::fs::create_dir_all(dir.join("pages"))?;
    std::fs::create_dir_all(dir.join("layouts"))?;
    let mut site: toml::Table = read_toml(&demo.join("site.toml"))?;
    site.remove("components");
    std::fs::write(dir.join("site.toml"), toml::to_string(&site)?)?;
    for entry in std::fs::read_dir(demo.join("layouts"))? {
        let entry = entry?;
        std::fs::copy(entry.path(), dir.join("layouts").join(entry.file_name()))?;
    }
    let base = std::fs::read_to_string(demo.join("layouts/base.html"))?;
    anyhow::ensure!(
        base.contains("{{ slots.footer }}"),
        "demo/layouts/base.html no longer places slots.footer; update bench/src/bin/soak/site.rs"
    );
    std::fs::write(
        dir.join("layouts/soak.html"),
        base.replace(
            "{{ slots.footer }}",
            "{{ slots.footer }}\n{{ slots.deployed }}",
        ),
    )?;
    for entry in std::fs::read_dir(demo.join("pages"))? {
        let entry = entry?;
        let mut page = read_toml(&entry.path())?;
        if entry.file_name() == "event.toml" {
            add_deployed_slot(&mut page);
        }
        mark_fallbacks(&mut page);
        std::fs::write(
            dir.join("pages").join(entry.file_name()),
            toml::to_string(&page)?,
        )?;
    }
    std::fs::write(dir.join("pages/chaos.toml"), chaos_page())?;
    Ok(())
}

fn read_toml(path: &Path) -> anyhow::Result<toml::Table> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{}", path.display()))
}

/// The event page in `soak.html`, with a slot of `hello`, the component the schedule
/// deploys (`hello-v2`) and rolls back (`hello-v1`): which one renders is in the page.
fn add_deployed_slot(page: &mut toml::Table) {
    page.insert("layout".into(), "soak.html".into());
    let mut slot = toml::Table::new();
    slot.insert("name".into(), "deployed".into());
    slot.insert("component".into(), DEPLOYED.into());
    slot.insert("fallback".into(), "".into());
    if let Some(toml::Value::Array(slots)) = page.get_mut("slots") {
        slots.push(toml::Value::Table(slot));
    }
}

/// The component deployed and rolled back on the schedule.
pub const DEPLOYED: &str = "hello";

fn mark_fallbacks(page: &mut toml::Table) {
    let Some(toml::Value::Array(slots)) = page.get_mut("slots") else {
        return;
    };
    for slot in slots.iter_mut().filter_map(toml::Value::as_table_mut) {
        let fallback = slot
            .get("fallback")
            .and_then(toml::Value::as_str)
            .unwrap_or("")
            .to_string();
        slot.insert(
            "fallback".into(),
            toml::Value::String(format!("{FALLBACK_MARK}{fallback}")),
        );
    }
}

fn chaos_page() -> String {
    let mut page = String::from(
        "# Components that trap, loop, exhaust their memory and sleep in WASI: every\n\
         # slot but the header and footer falls back, and the page is still served.\n\
         route = \"/chaos/{id}\"\nlayout = \"base.html\"\nteam = \"soak\"\n\
         cache = { class = \"public\", ttl_s = 60 }\n\n\
         [[slots]]\nname = \"header\"\ncomponent = \"site-header\"\n\
         props = { site_name = \"Oberon Tickets\" }\n",
    );
    page.push_str(&format!("fallback = \"{FALLBACK_MARK}\"\n"));
    for (slot, mode) in CHAOS_SLOTS {
        page.push_str(&format!(
            "\n[[slots]]\nname = \"{slot}\"\ncomponent = \"misbehave\"\n\
             props = {{ mode = \"{mode}\" }}\nfallback = \"{FALLBACK_MARK}<p>{mode}</p>\"\n"
        ));
    }
    page.push_str(&format!(
        "\n[[slots]]\nname = \"footer\"\ncomponent = \"site-footer\"\nfallback = \"{FALLBACK_MARK}\"\n"
    ));
    page
}

/// The events backend's fixtures: events `1..=events`, each the demo's event 42 under
/// its own id and name, related to its neighbours.
pub fn write_events(dir: &Path, events: u32) -> anyhow::Result<()> {
    let template: serde_json::Value = serde_json::from_slice(&std::fs::read(
        repo().join("demo/backends/events/events/42.json"),
    )?)?;
    std::fs::create_dir_all(dir.join("events"))?;
    for id in 1..=events {
        let mut event = template.clone();
        event["id"] = id.to_string().into();
        event["name"] = format!("Soak Night {id}").into();
        event["related_ids"] = serde_json::json!([
            (id % events + 1).to_string(),
            ((id + 1) % events + 1).to_string()
        ]);
        std::fs::write(
            dir.join(format!("events/{id}.json")),
            serde_json::to_vec(&event)?,
        )?;
    }
    Ok(())
}

/// A signed-in user's subject; their orders carry it, so a page showing another
/// user's orders is seen.
pub fn user(i: u32) -> String {
    format!("soak-user-{i}")
}

/// The checkout backend's fixtures: orders for every user of `issuer`, at the path
/// the checkout BFF asks for (`/issuers/{issuer}/users/{subject}/orders`, the issuer
/// percent-encoded in the URL and decoded by the backend into path segments).
pub fn write_orders(dir: &Path, issuer: &str, users: u32) -> anyhow::Result<()> {
    for i in 0..users {
        let subject = user(i);
        let path = dir
            .join("issuers")
            .join(issuer.replace("//", "/"))
            .join("users")
            .join(&subject);
        std::fs::create_dir_all(&path)?;
        let orders = serde_json::json!([{
            "id": format!("order-of-{subject}"),
            "event_id": "1",
            "event_name": "Soak Night 1",
            "quantity": 1 + i % 3,
            "total_cents": 4500,
            "currency": "EUR"
        }]);
        std::fs::write(path.join("orders.json"), serde_json::to_vec(&orders)?)?;
    }
    Ok(())
}

/// The gateway behind Varnish: Varnish is the trusted hop and proves itself with the
/// origin secret (from `OBERON_ORIGIN_SECRET`); the test identity provider's tokens;
/// the demo's routes and the chaos page; rate limits far above the soak's rate (every
/// request comes from one address).
pub fn gateway_config(
    public_url: &str,
    issuer: &str,
    jwks_url: &str,
    upstreams: &[(&str, String)],
) -> String {
    let mut config = format!(
        r#"public_url = "{public_url}"
trusted_hops = ["127.0.0.1/32"]

[session]
sign_in_url = "{issuer}/sign-in"
issuer = "{issuer}"

[origin]
header = "x-origin-verify"
secret_env = "OBERON_ORIGIN_SECRET"

[rate_limit]
per_client = {{ per_second = 100000, burst = 100000 }}
per_user = {{ per_second = 100000, burst = 100000 }}

[limits]
upstream_timeout_ms = 5000

[[issuers]]
issuer = "{issuer}"
jwks_url = "{jwks_url}"
audiences = ["oberon"]
algorithms = ["RS256"]

[upstreams]
"#
    );
    for (name, url) in upstreams {
        config.push_str(&format!("{name} = \"{url}\"\n"));
    }
    // As the demo: the renderer passes the user on to the checkout BFF only.
    config.push_str("\n[delegates]\nrenderer = [\"checkout\"]\n");
    config.push_str(ROUTES);
    config
}

const ROUTES: &str = r#"
[[routes]]
path = "/events/{id}"
upstream = "renderer"
kind = "page"
auth = "optional"

[[routes]]
path = "/chaos/{id}"
upstream = "renderer"
kind = "page"
auth = "optional"

[[routes]]
path = "/account"
upstream = "renderer"
kind = "page"
auth = "required"

[[routes]]
path = "/assets/{*path}"
upstream = "renderer"
kind = "api"
auth = "public"

[[routes]]
path = "/api/events/{*rest}"
upstream = "events"
kind = "api"
auth = "public"
strip_prefix = "/api/events"

[[routes]]
path = "/api/checkout/{*rest}"
upstream = "checkout"
kind = "api"
auth = "required"
roles = ["buyer"]
strip_prefix = "/api/checkout"
"#;

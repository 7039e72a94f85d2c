//! `gateway.toml`: routes, upstreams, identity providers and limits. Parsed with
//! `deny_unknown_fields`, then checked as a whole; every problem names the file, the
//! line and the fix, and the gateway does not start until there are none.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use oberon_config::{ConfigError, ConfigErrors, parse_toml};
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// `public_url = "https://tickets.example"`: the origin browsers use; sign-in
    /// callbacks are built from it.
    pub public_url: Spanned<String>,
    /// `trusted_hops = ["10.0.0.0/8"]`: addresses of the CDN in front. Only a request
    /// from one of them may say who the client is (`X-Forwarded-For`), which scheme it
    /// used, or bring its own request id. List every CDN address a request may come
    /// through, edges as well as shields: the client is the first `X-Forwarded-For`
    /// entry, right to left, that is not one of them.
    #[serde(default)]
    pub trusted_hops: Vec<Spanned<String>>,
    /// `assertion_key = "/run/secrets/gateway.pem"`: the Ed25519 key (PKCS#8 PEM) that
    /// signs identity assertions, shared by every replica. Without it each process
    /// makes its own, which is only right for a single gateway.
    pub assertion_key: Option<Spanned<PathBuf>>,
    /// `strip_headers = ["x-user-id"]`: more request headers to remove, beyond the
    /// platform's own identity headers (always removed).
    #[serde(default)]
    pub strip_headers: Vec<Spanned<String>>,
    #[serde(default)]
    pub session: SessionConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub rate_limit: RateLimits,
    /// `[upstreams] renderer = "http://127.0.0.1:8081"`. The name is also the
    /// upstream's audience: the identity assertion sent to it names it in `aud`, and
    /// the upstream accepts only assertions that do (its own name is its
    /// configuration: the renderer's `--identity-audience`, a BFF's `…_AUDIENCE`).
    pub upstreams: BTreeMap<String, Spanned<String>>,
    /// `[delegates] renderer = ["checkout"]`: the upstreams each upstream may pass the
    /// user's assertion on to (the renderer, to the BFFs of data sources that receive
    /// the user). They join the audiences of the assertions sent to it; an upstream
    /// not listed here gets assertions good at itself only.
    #[serde(default)]
    pub delegates: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    /// `[[issuers]]`: identity providers whose tokens are accepted.
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
    /// `[[routes]]`: matched in the order of their specificity, not of the file.
    pub routes: Vec<RouteConfig>,
    /// `[origin]`: the CDN's secret header, required on every request but the health
    /// endpoints' and the JWKS's (see [`crate::origin`]). Unset: no check.
    pub origin: Option<crate::origin::OriginConfig>,
    /// `[not_found]`: the page a visitor sees at a path no route has.
    pub not_found: Option<NotFoundConfig>,
}

/// `[not_found]`: what a browser gets at a path no route has (GET or HEAD): the page
/// `upstream` answers at `path` — asked anonymously, with the request's own query and
/// headers but never its path — sent with status 404. The renderer answers a path it
/// has no page for with the site's designed 404 (`[errors]` in `site.toml`). When the
/// upstream cannot answer, and for any other method, the gateway's plain 404.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotFoundConfig {
    /// `upstream = "renderer"`: a name from `[upstreams]`.
    pub upstream: Spanned<String>,
    /// `path = "/not-found"`: the path asked of it.
    pub path: Spanned<String>,
}

/// `[session]`: the browser's session cookie and where it signs in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// `cookie = "oberon_session"`: the cookie carrying the identity provider's token.
    pub cookie: String,
    /// `sign_in_url = "https://idp.example/authorize"`: the provider's authorization
    /// endpoint, where a page route sends a browser that must sign in (an OpenID
    /// Connect request: `scope`, `client_id`, `state`, `nonce`, `redirect_uri`).
    pub sign_in_url: Option<Spanned<String>>,
    /// `issuer = "https://idp.example"`: which `[[issuers]]` entry signs the sessions.
    pub issuer: Option<Spanned<String>>,
    /// `client_id = "oberon"`: this gateway's client id at the provider. The provider
    /// puts it in the ID token's `aud`, so it must be one of the session issuer's
    /// `audiences`. Default `"oberon"`, which is what the development provider expects.
    pub client_id: Spanned<String>,
    /// `scopes = ["profile", "email"]`: scopes asked for besides `openid`, which is
    /// always asked for. Default none.
    pub scopes: Vec<Spanned<String>>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            cookie: "oberon_session".into(),
            sign_in_url: None,
            issuer: None,
            client_id: Spanned::new(0..0, "oberon".into()),
            scopes: Vec::new(),
        }
    }
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body passed upstream (413 beyond it).
    pub body_bytes: u64,
    /// Largest total size of a request's headers (431 beyond it).
    pub header_bytes: usize,
    /// Default time an upstream has to start answering (504 after it).
    pub upstream_timeout_ms: u64,
    /// Time to connect to an upstream (502 after it).
    pub connect_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: 1 << 20,
            header_bytes: 16 << 10,
            upstream_timeout_ms: 10_000,
            connect_timeout_ms: 1_000,
        }
    }
}

/// `[rate_limit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    /// Per client address (as the trusted hop reports it).
    pub per_client: Rate,
    /// Per authenticated user, whatever address they come from.
    pub per_user: Rate,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_client: Rate {
                per_second: 100.0,
                burst: 200,
            },
            per_user: Rate {
                per_second: 50.0,
                burst: 100,
            },
        }
    }
}

/// `{ per_second = 50, burst = 100 }`: a steady rate, and how far above it a client
/// may go for a moment.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

/// `[[issuers]]`: one identity provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// `issuer = "https://idp.example"`: must equal the tokens' `iss`.
    pub issuer: Spanned<String>,
    /// `jwks_url = "https://idp.example/.well-known/jwks.json"`.
    pub jwks_url: Spanned<String>,
    /// `audiences = ["oberon"]`: the token's `aud` must contain one of them.
    pub audiences: Vec<String>,
    /// `algorithms = ["RS256"]`: the only algorithms accepted from this issuer.
    pub algorithms: Spanned<Vec<String>>,
    /// `leeway_s = 30`: clock skew tolerated on `exp` and `nbf`, at most
    /// [`MAX_LEEWAY_S`]: a token stays good this long past its `exp`.
    #[serde(default = "IssuerConfig::default_leeway")]
    pub leeway_s: Spanned<u64>,
    /// `roles_claim = "realm_access.roles"`: where the user's roles are (a dotted path).
    #[serde(default = "IssuerConfig::default_roles_claim")]
    pub roles_claim: String,
    /// `jwks_cooldown_s = 30`: at most one refetch of the keys per this.
    #[serde(default = "IssuerConfig::default_cooldown")]
    pub jwks_cooldown_s: u64,
    /// `access_token_typ = "at+jwt"`: the `typ` header this issuer puts on its access
    /// tokens, and on nothing else (RFC 9068 says `at+jwt`). Set, a bearer token must
    /// carry it. Set or not, a token typed as an access token (`at+jwt` by default) is
    /// never accepted as a session (an ID token), so neither kind stands in for the
    /// other. Leave it unset for an issuer that does not type its access tokens.
    pub access_token_typ: Option<Spanned<String>>,
}

impl IssuerConfig {
    fn default_leeway() -> Spanned<u64> {
        Spanned::new(0..0, 30)
    }
    fn default_roles_claim() -> String {
        "roles".into()
    }
    fn default_cooldown() -> u64 {
        30
    }
}

/// `[[routes]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// `path = "/events/{id}"` or `"/api/events/{*rest}"`: matched on the normalised
    /// path, never the query.
    pub path: Spanned<String>,
    /// `upstream = "renderer"`: a name from `[upstreams]`.
    pub upstream: Spanned<String>,
    /// `kind = "page" | "api"`: how an unauthenticated request is answered (a redirect to
    /// sign in, or 401).
    pub kind: RouteKind,
    /// `auth = "public" | "optional" | "required"`.
    pub auth: AuthPolicy,
    /// `roles = ["admin"]`: the user must have every one (403 otherwise).
    #[serde(default)]
    pub roles: Vec<String>,
    /// `claims = { tenant = "acme" }`: claims the token must carry with these values.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    /// `strip_prefix = "/api/events"`: removed from the path sent upstream.
    pub strip_prefix: Option<Spanned<String>>,
    /// `timeout_ms = 2000`: overrides `[limits] upstream_timeout_ms`.
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RouteKind {
    Page,
    Api,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthPolicy {
    /// No authentication: a token is neither checked nor passed on.
    Public,
    /// Anonymous is fine; a token that is present must be valid.
    Optional,
    /// A valid token is needed.
    Required,
}

/// A CIDR block (`10.0.0.0/8`, or a single address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Read and parse `file`, then check what serde cannot: names that refer to each other,
/// URLs, algorithms, addresses.
pub fn load(file: &Path) -> Result<(GatewayConfig, String), ConfigErrors> {
    let source = std::fs::read_to_string(file).map_err(|e| {
        ConfigError::new(file, format!("cannot read: {e}"))
            .help("point --config at the gateway's TOML file")
    })?;
    let config: GatewayConfig = parse_toml(file, &source)?;
    check(file, &source, &config)?;
    Ok((config, source))
}

/// Algorithms an issuer may pin. `none` and the HMAC family are not among them: a
/// published key set holds public keys, and a public key is never an HMAC secret.
pub const ASYMMETRIC_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// The largest `leeway_s`: leeway is for clocks that disagree by seconds, and every
/// second of it is a second a stolen, expired token still works.
pub const MAX_LEEWAY_S: u64 = 300;

/// What serde cannot check: names that refer to each other, URLs, addresses, algorithms
/// and route patterns. Every problem found, not only the first.
pub fn check(file: &Path, source: &str, c: &GatewayConfig) -> Result<(), ConfigErrors> {
    let err = |span: std::ops::Range<usize>, message: String, help: &str| {
        ConfigError::new(file, message)
            .at(source, span.start)
            .help(help.to_string())
    };
    let mut errors = check_addresses(c, &err);
    errors.extend(check_delegates(c, &err));
    errors.extend(check_issuers(c, &err));
    errors.extend(check_sign_in_request(c, &err));
    if let Some(url) = &c.session.sign_in_url
        && !is_http_url(url.get_ref())
    {
        errors.push(err(
            url.span(),
            format!("sign_in_url {:?} is not an http(s) URL", url.get_ref()),
            "give the identity provider's sign-in (authorisation) URL",
        ));
    }
    let mut router = matchit::Router::new();
    for route in &c.routes {
        errors.extend(check_route_path(route, &mut router, &err));
        errors.extend(check_route(c, route, &err));
    }
    errors.extend(c.not_found.iter().flat_map(|n| check_not_found(c, n, &err)));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

/// `public_url`, `trusted_hops`, `strip_headers` and `[upstreams]`: URLs, addresses
/// and header names.
fn check_addresses(
    c: &GatewayConfig,
    err: &impl Fn(std::ops::Range<usize>, String, &str) -> ConfigError,
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if !is_http_url(c.public_url.get_ref()) {
        errors.push(err(
            c.public_url.span(),
            format!(
                "public_url {:?} is not an http(s) URL",
                c.public_url.get_ref()
            ),
            "give the origin browsers use, e.g. \"https://tickets.example\"",
        ));
    }
    for hop in &c.trusted_hops {
        if Cidr::parse(hop.get_ref()).is_none() {
            errors.push(err(
                hop.span(),
                format!(
                    "trusted hop {:?} is not an address or CIDR block",
                    hop.get_ref()
                ),
                "write an address (\"10.1.2.3\") or a block (\"10.0.0.0/8\")",
            ));
        }
    }
    for h in &c.strip_headers {
        if http::HeaderName::from_bytes(h.get_ref().as_bytes()).is_err() {
            errors.push(err(
                h.span(),
                format!("{:?} is not a header name", h.get_ref()),
                "use a lower-case header name such as \"x-user-id\"",
            ));
        }
    }
    for (name, url) in &c.upstreams {
        if !is_http_url(url.get_ref()) {
            errors.push(err(
                url.span(),
                format!("upstream {name}: {:?} is not an http:// URL", url.get_ref()),
                "give the upstream's base URL, e.g. \"http://renderer:8081\"",
            ));
        }
    }
    errors
}

/// `[[issuers]]` (each once, a JWKS URL, pinned asymmetric algorithms, a bounded
/// leeway, audiences), and the session's issuer among them.
fn check_issuers(
    c: &GatewayConfig,
    err: &impl Fn(std::ops::Range<usize>, String, &str) -> ConfigError,
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut issuers = Vec::new();
    for issuer in &c.issuers {
        if issuers.contains(&issuer.issuer.get_ref()) {
            errors.push(err(
                issuer.issuer.span(),
                format!("issuer {:?} is configured twice", issuer.issuer.get_ref()),
                "keep one [[issuers]] entry per issuer",
            ));
        }
        issuers.push(issuer.issuer.get_ref());
        if !is_http_url(issuer.jwks_url.get_ref()) {
            errors.push(err(
                issuer.jwks_url.span(),
                format!(
                    "jwks_url {:?} is not an http(s) URL",
                    issuer.jwks_url.get_ref()
                ),
                "give the identity provider's JWKS URL (its `jwks_uri`)",
            ));
        }
        if issuer.algorithms.get_ref().is_empty() {
            errors.push(err(
                issuer.algorithms.span(),
                "no algorithms: no token could ever be accepted".into(),
                "pin the algorithm(s) this issuer signs with, e.g. [\"RS256\"]",
            ));
        }
        for alg in issuer.algorithms.get_ref() {
            if !ASYMMETRIC_ALGORITHMS.contains(&alg.as_str()) {
                errors.push(err(
                    issuer.algorithms.span(),
                    format!("algorithm {alg:?} is not accepted"),
                    &format!(
                        "use one of {}; `none` and HMAC (HS*) are refused so that no token can be forged from public keys",
                        ASYMMETRIC_ALGORITHMS.join(", ")
                    ),
                ));
            }
        }
        if *issuer.leeway_s.get_ref() > MAX_LEEWAY_S {
            errors.push(err(
                issuer.leeway_s.span(),
                format!(
                    "leeway_s = {} is more than {MAX_LEEWAY_S} s",
                    issuer.leeway_s.get_ref()
                ),
                "leeway covers clock skew, and an expired token is accepted for that long: use seconds, e.g. 30",
            ));
        }
        if let Some(typ) = &issuer.access_token_typ
            && (typ.get_ref().is_empty() || !typ.get_ref().bytes().all(|b| b.is_ascii_graphic()))
        {
            errors.push(err(
                typ.span(),
                format!("access_token_typ {:?} is not a media type", typ.get_ref()),
                "give the `typ` header of this issuer's access tokens, e.g. \"at+jwt\" (RFC 9068)",
            ));
        }
        if issuer.audiences.is_empty() {
            errors.push(err(
                issuer.issuer.span(),
                "no audiences: tokens meant for another service would be accepted".into(),
                "list the audiences (`aud`) tokens for this site carry, e.g. [\"oberon\"]",
            ));
        }
    }
    if let Some(session_issuer) = &c.session.issuer
        && !issuers.contains(&session_issuer.get_ref())
    {
        errors.push(err(
            session_issuer.span(),
            format!(
                "session issuer {:?} is not in [[issuers]]",
                session_issuer.get_ref()
            ),
            "name one of the [[issuers]] entries",
        ));
    }
    errors
}

/// A route's pattern: absolute, not the gateway's own, not reaching the services' own
/// paths, and distinct from the patterns before it (inserted into `router`).
fn check_route_path(
    route: &RouteConfig,
    router: &mut matchit::Router<()>,
    err: &impl Fn(std::ops::Range<usize>, String, &str) -> ConfigError,
) -> Option<ConfigError> {
    let path = route.path.get_ref();
    let (message, help) = if !path.starts_with('/') {
        (
            format!("route path {path:?} does not start with `/`"),
            "write an absolute path pattern such as \"/events/{id}\"".to_string(),
        )
    } else if path.starts_with("/_gateway") || path.starts_with("/.well-known/oberon") {
        (
            format!("route path {path:?} is the gateway's own"),
            "paths under /_gateway and /.well-known/oberon are reserved".to_string(),
        )
    } else if crate::path::pattern_reaches_reserved(path) {
        (
            format!(
                "route path {path:?} could match under {}",
                crate::path::SERVICES_OWN
            ),
            format!(
                "{} is where the services behind the gateway keep their own endpoints, never routed: start the pattern with a literal segment, e.g. \"/pages/{{*rest}}\"",
                crate::path::SERVICES_OWN
            ),
        )
    } else if let Err(e) = router.insert(path.as_str(), ()) {
        (
            format!("route path {path:?}: {e}"),
            "make each route's pattern distinct; `{name}` matches one segment, `{*name}` the rest"
                .to_string(),
        )
    } else {
        return None;
    };
    Some(err(route.path.span(), message, &help))
}

/// A route's upstream, and its auth policy against the rest of the configuration.
/// An upstream named where `[upstreams]` has none.
fn unknown_upstream(
    c: &GatewayConfig,
    name: &Spanned<String>,
    err: &impl Fn(std::ops::Range<usize>, String, &str) -> ConfigError,
) -> Option<ConfigError> {
    if c.upstreams.contains_key(name.get_ref()) {
        return None;
    }
    let known: Vec<&str> = c.upstreams.keys().map(String::as_str).collect();
    Some(err(
        name.span(),
        format!("unknown upstream {:?}", name.get_ref()),
        &format!("name one of [upstreams]: {}", known.join(", ")),
    ))
}

/// `[not_found]`: a known upstream, and a path it may be asked for.
fn check_not_found(
    c: &GatewayConfig,
    n: &NotFoundConfig,
    err: &impl Fn(std::ops::Range<usize>, String, &str) -> ConfigError,
) -> Vec<ConfigError> {
    let mut errors: Vec<ConfigError> = unknown_upstream(c, &n.upstream, err).into_iter().collect();
    let path = n.path.get_ref();
    if crate::path::normalise(path).ok().as_deref() != Some(path.as_str())
        || crate::path::is_reserved(path)
    {
        errors.push(err(
            n.path.span(),
            format!("[not_found] path {path:?} is not a path the upstream may be asked for"),
            "give a normalised absolute path outside the services' own, e.g. \"/not-found\"",
        ));
    }
    errors
}

fn check_route(
    c: &GatewayConfig,
    route: &RouteConfig,
    err: &impl Fn(std::ops::Range<usize>, String, &str) -> ConfigError,
) -> Vec<ConfigError> {
    let mut errors: Vec<ConfigError> = unknown_upstream(c, &route.upstream, err)
        .into_iter()
        .collect();
    let path = route.path.get_ref();
    if route.auth != AuthPolicy::Public && c.issuers.is_empty() {
        errors.push(err(
            route.path.span(),
            "this route authenticates but no [[issuers]] are configured".into(),
            "add an [[issuers]] entry, or make the route auth = \"public\"",
        ));
    }
    if route.auth != AuthPolicy::Required && (!route.roles.is_empty() || !route.claims.is_empty()) {
        errors.push(err(
            route.path.span(),
            "roles or claims are required but auth is not \"required\"".into(),
            "set auth = \"required\" on a route that needs roles or claims",
        ));
    }
    if route.kind == RouteKind::Page
        && route.auth == AuthPolicy::Required
        && c.session.sign_in_url.is_none()
    {
        errors.push(err(
            route.path.span(),
            "a page route requires sign-in but [session] has no sign_in_url".into(),
            "set [session] sign_in_url (and issuer) so browsers can sign in",
        ));
    }
    if let Some(prefix) = &route.strip_prefix {
        let literal = path.split('{').next().unwrap_or_default();
        if !literal.starts_with(prefix.get_ref().as_str()) || prefix.get_ref().ends_with('/') {
            errors.push(err(
                prefix.span(),
                format!(
                    "strip_prefix {:?} is not a prefix of {path:?}",
                    prefix.get_ref()
                ),
                "give the literal start of the route's path, without a trailing `/`",
            ));
        }
    }
    errors
}

/// `[delegates]`: every name is an upstream, and none delegates to itself.
fn check_delegates(
    c: &GatewayConfig,
    err: &impl Fn(std::ops::Range<usize>, String, &str) -> ConfigError,
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let known = || {
        format!(
            "name one of [upstreams]: {}",
            c.upstreams
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    for (from, to) in &c.delegates {
        if !c.upstreams.contains_key(from.get_ref()) {
            errors.push(err(
                from.span(),
                format!("[delegates]: unknown upstream {:?}", from.get_ref()),
                &known(),
            ));
        }
        for target in to {
            if !c.upstreams.contains_key(target.get_ref()) {
                errors.push(err(
                    target.span(),
                    format!(
                        "[delegates]: {:?} may pass the user on to unknown upstream {:?}",
                        from.get_ref(),
                        target.get_ref()
                    ),
                    &known(),
                ));
            } else if target.get_ref() == from.get_ref() {
                errors.push(err(
                    target.span(),
                    format!("[delegates]: {:?} delegates to itself", from.get_ref()),
                    "an upstream's assertions always name it: list only the services it passes them on to",
                ));
            }
        }
    }
    errors
}

/// The audiences of the assertions sent to `upstream`: itself, then its delegates.
pub fn audiences_of(c: &GatewayConfig, upstream: &str) -> Vec<String> {
    let delegates = c
        .delegates
        .iter()
        .filter(|(from, _)| from.get_ref() == upstream)
        .flat_map(|(_, to)| to.iter().map(|t| t.get_ref().clone()));
    let mut audiences = vec![upstream.to_string()];
    for d in delegates {
        if !audiences.contains(&d) {
            audiences.push(d);
        }
    }
    audiences
}

/// `[session]`'s `client_id` and `scopes`: what the sign-in redirect asks for.
fn check_sign_in_request(
    c: &GatewayConfig,
    err: &impl Fn(std::ops::Range<usize>, String, &str) -> ConfigError,
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let client_id = &c.session.client_id;
    if client_id.get_ref().is_empty() || client_id.get_ref().chars().any(char::is_control) {
        errors.push(err(
            client_id.span(),
            format!("client_id {:?} is not a client id", client_id.get_ref()),
            "give the client id the identity provider registered for this site",
        ));
    }
    // RFC 6749 §3.3: a scope is printable ASCII without space, `"` or `\`.
    for scope in &c.session.scopes {
        let s = scope.get_ref();
        if s.is_empty()
            || !s
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            errors.push(err(
                scope.span(),
                format!("scope {s:?} is not an OAuth scope"),
                "list one scope per string, e.g. scopes = [\"profile\", \"email\"]",
            ));
        }
    }
    if let Some(name) = &c.session.issuer
        && let Some(issuer) = c
            .issuers
            .iter()
            .find(|i| i.issuer.get_ref() == name.get_ref())
        && !issuer.audiences.contains(client_id.get_ref())
    {
        // A default client id has no place in the file: point at the session issuer.
        let span = if client_id.span().is_empty() {
            name.span()
        } else {
            client_id.span()
        };
        errors.push(err(
            span,
            format!(
                "session client_id {:?} is not among the audiences of issuer {:?}",
                client_id.get_ref(),
                name.get_ref()
            ),
            "ID tokens carry the client id in `aud`: add it to that issuer's audiences, or set [session] client_id",
        ));
    }
    errors
}

fn is_http_url(s: &str) -> bool {
    s.parse::<http::Uri>()
        .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(src: &str) -> String {
        let file = Path::new("gateway.toml");
        match parse_toml::<GatewayConfig>(file, src) {
            Err(e) => e.to_string(),
            Ok(c) => match check(file, src, &c) {
                Ok(()) => String::new(),
                Err(e) => e.to_string(),
            },
        }
    }

    const BASE: &str = r#"
public_url = "http://127.0.0.1:8080"
[upstreams]
renderer = "http://127.0.0.1:8081"
[[issuers]]
issuer = "https://idp.example"
jwks_url = "https://idp.example/jwks.json"
audiences = ["oberon"]
algorithms = ["RS256"]
"#;

    #[test]
    fn a_good_config_passes() {
        let src = format!(
            "{BASE}\n[[routes]]\npath = \"/events/{{id}}\"\nupstream = \"renderer\"\nkind = \"page\"\nauth = \"optional\"\n"
        );
        assert_eq!(errors_of(&src), "");
    }

    #[test]
    fn hmac_and_none_are_refused_with_the_line() {
        let src = "routes = []".to_string() + &BASE.replace(r#"["RS256"]"#, r#"["HS256", "none"]"#);
        let text = errors_of(&src);
        assert!(
            text.contains("gateway.toml:9:14: algorithm \"HS256\" is not accepted"),
            "{text}"
        );
        assert!(
            text.contains("algorithm \"none\" is not accepted"),
            "{text}"
        );
        assert!(text.contains("help: use one of RS256"), "{text}");
    }

    #[test]
    fn the_not_found_page_names_an_upstream_and_a_path_it_may_be_asked_for() {
        let not_found = |upstream: &str, path: &str| {
            format!(
                "routes = []\n{BASE}\n[not_found]\nupstream = \"{upstream}\"\npath = \"{path}\"\n"
            )
        };
        assert_eq!(errors_of(&not_found("renderer", "/not-found")), "");
        assert_eq!(
            errors_of(&not_found("renderr", "/not-found")),
            "1 configuration error:\n\
             gateway.toml:13:12: unknown upstream \"renderr\"\n  \
             help: name one of [upstreams]: renderer\n"
        );
        for path in ["not-found", "/a/../b", "/_oberon/status", "/%5Foberon/x"] {
            let text = errors_of(&not_found("renderer", path));
            assert!(
                text.contains(&format!(
                    "gateway.toml:14:8: [not_found] path {path:?} is not a path the upstream may be asked for"
                )),
                "{path}: {text}"
            );
        }
    }

    #[test]
    fn routes_are_cross_checked() {
        let src = format!(
            "{BASE}\n[[routes]]\npath = \"/account\"\nupstream = \"renderr\"\nkind = \"page\"\nauth = \"required\"\n\n[[routes]]\npath = \"/admin\"\nupstream = \"renderer\"\nkind = \"api\"\nauth = \"optional\"\nroles = [\"admin\"]\n"
        );
        let text = errors_of(&src);
        assert!(text.contains("unknown upstream \"renderr\""), "{text}");
        assert!(
            text.contains("help: name one of [upstreams]: renderer"),
            "{text}"
        );
        assert!(text.contains("no sign_in_url"), "{text}");
        assert!(
            text.contains("roles or claims are required but auth is not"),
            "{text}"
        );
        assert!(text.starts_with("3 configuration errors"), "{text}");
    }

    #[test]
    fn no_route_may_reach_the_services_own_endpoints() {
        let route = |path: &str| {
            format!(
                "{BASE}\n[[routes]]\npath = \"{path}\"\nupstream = \"renderer\"\nkind = \"page\"\nauth = \"public\"\n"
            )
        };
        assert_eq!(
            errors_of(&route("/{*rest}")),
            "1 configuration error:\n\
             gateway.toml:12:8: route path \"/{*rest}\" could match under /_oberon\n  \
             help: /_oberon is where the services behind the gateway keep their own endpoints, never routed: start the pattern with a literal segment, e.g. \"/pages/{*rest}\"\n"
        );
        assert!(errors_of(&route("/_oberon/status")).contains("could match under /_oberon"),);
        assert_eq!(errors_of(&route("/events/{*rest}")), "");
    }

    #[test]
    fn delegates_name_upstreams() {
        let src = |delegates: &str| {
            format!(
                "routes = []{}[delegates]\n{delegates}\n",
                BASE.replace(
                    "renderer = \"http://127.0.0.1:8081\"",
                    "renderer = \"http://127.0.0.1:8081\"\ncheckout = \"http://127.0.0.1:8083\""
                )
            )
        };
        assert_eq!(errors_of(&src("renderer = [\"checkout\"]")), "");
        assert_eq!(
            errors_of(&src("renderer = [\"chekout\", \"renderer\"]\nrendrer = []")),
            "3 configuration errors:\n\
             gateway.toml:12:13: [delegates]: \"renderer\" may pass the user on to unknown upstream \"chekout\"\n  \
             help: name one of [upstreams]: checkout, renderer\n\
             gateway.toml:12:24: [delegates]: \"renderer\" delegates to itself\n  \
             help: an upstream's assertions always name it: list only the services it passes them on to\n\
             gateway.toml:13:1: [delegates]: unknown upstream \"rendrer\"\n  \
             help: name one of [upstreams]: checkout, renderer\n"
        );
        let file = Path::new("gateway.toml");
        let text = src("renderer = [\"checkout\", \"checkout\"]");
        let config: GatewayConfig = parse_toml(file, &text).unwrap();
        assert_eq!(audiences_of(&config, "renderer"), ["renderer", "checkout"]);
        assert_eq!(audiences_of(&config, "checkout"), ["checkout"]);
    }

    #[test]
    fn unknown_fields_are_located() {
        let text = errors_of(&format!("routes = []\ncolour = 1{BASE}"));
        assert!(
            text.contains("gateway.toml:2:1: unknown field `colour`"),
            "{text}"
        );
    }

    #[test]
    fn leeway_is_bounded() {
        let src = format!("routes = []{BASE}leeway_s = 3600\n");
        let text = errors_of(&src);
        assert!(
            text.contains("gateway.toml:10:12: leeway_s = 3600 is more than 300 s"),
            "{text}"
        );
        assert!(text.contains("help: leeway covers clock skew"), "{text}");
        assert_eq!(errors_of(&format!("routes = []{BASE}leeway_s = 300\n")), "");
    }

    #[test]
    fn access_token_typ_is_a_media_type() {
        assert_eq!(
            errors_of(&format!("routes = []{BASE}access_token_typ = \"at jwt\"\n")),
            "1 configuration error:\n\
             gateway.toml:10:20: access_token_typ \"at jwt\" is not a media type\n  \
             help: give the `typ` header of this issuer's access tokens, e.g. \"at+jwt\" (RFC 9068)\n"
        );
        assert_eq!(
            errors_of(&format!("routes = []{BASE}access_token_typ = \"at+jwt\"\n")),
            ""
        );
    }

    #[test]
    fn the_sign_in_request_is_checked() {
        let session = "[session]\nissuer = \"https://idp.example\"\n";
        // The default client id, "oberon", is among the audiences.
        assert_eq!(errors_of(&format!("routes = []{BASE}{session}")), "");
        let text = errors_of(&format!(
            "routes = []{BASE}{session}client_id = \"web\"\nscopes = [\"profile\", \"a b\"]\n"
        ));
        assert!(
            text.contains(
                "gateway.toml:12:13: session client_id \"web\" is not among the audiences of issuer \"https://idp.example\""
            ),
            "{text}"
        );
        assert!(
            text.contains("help: ID tokens carry the client id in `aud`"),
            "{text}"
        );
        assert!(
            text.contains("gateway.toml:13:22: scope \"a b\" is not an OAuth scope"),
            "{text}"
        );
        assert!(text.starts_with("2 configuration errors"), "{text}");
    }

    #[test]
    fn cidr_blocks() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(
            Cidr::parse("127.0.0.1")
                .unwrap()
                .contains("127.0.0.1".parse().unwrap())
        );
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("ten").is_none());
    }
}

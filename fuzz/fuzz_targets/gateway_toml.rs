//! `gateway.toml` as an operator writes it: parsed, checked as `Gateway::load` checks
//! it, and — when it passes — built into a gateway (routes inserted, issuers, limits).
//! Properties: nothing panics, every error renders with its location, and every route
//! of a configuration that passed is reachable at its own literal path when that path
//! is in normal form.
#![no_main]

use std::collections::HashMap;
use std::path::Path;

use oberon_gateway::Gateway;
use oberon_gateway::config::{GatewayConfig, check};
use oberon_gateway::path::normalise;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("gateway.toml");
    let config: GatewayConfig = match oberon_config::parse_toml(file, source) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    if let Err(e) = check(file, source, &config) {
        let _ = e.to_string();
        return;
    }
    let literal_routes: Vec<String> = config
        .routes
        .iter()
        .map(|r| r.path.get_ref().clone())
        .filter(|p| !p.contains(['{', '}']))
        .collect();
    let gateway = Gateway::build(config, oberon_identity::Signer::generate(), &HashMap::new());
    for pattern in literal_routes {
        if normalise(&pattern).as_deref() == Ok(pattern.as_str()) {
            let routed = gateway.route(&pattern).expect("a checked route is routed");
            assert_eq!(routed.pattern, pattern);
        }
    }
});

//! Tokens minted by PyJWT (a widely used JWT library outside Rust) with RSA, RSA-PSS,
//! ECDSA and Ed25519 keys are accepted, roles are read from a nested claim, and the
//! identity reaches the upstream as the gateway's assertion. Needs Debian's
//! `python3-jwt` and `python3-cryptography` (`tests/run` installs them).

use crate::support::*;
use axum::Router;
use oberon_identity::Verifier;
use oberon_identity::assertion::HEADER as IDENTITY;

const PY_ISSUER: &str = "https://py.test";

fn python() -> String {
    std::env::var("OBERON_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into())
}

#[tokio::test]
async fn tokens_minted_by_pyjwt_are_accepted() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pyjwt_mint.py");
    let output = std::process::Command::new(python())
        .args([script, PY_ISSUER, AUDIENCE, "alice"])
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python()));
    assert!(
        output.status.success(),
        "PyJWT minting failed (install Debian's python3-jwt and python3-cryptography; tests/run installs them as root, or prints the command):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let minted: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let jwks = minted["jwks"].clone();
    let jwks_url = serve(Router::new().route(
        "/jwks",
        axum::routing::get(move || async move { axum::Json(jwks) }),
    ))
    .await
        + "/jwks";

    let config = format!(
        r#"{CONFIG}
[[issuers]]
issuer = "{PY_ISSUER}"
jwks_url = "https://py.test/jwks"
audiences = ["oberon"]
algorithms = ["RS256", "PS256", "ES256", "EdDSA"]
roles_claim = "realm_access.roles"
"#
    );
    let (upstream, upstream_url) = Upstream::start().await;
    let (gateway, url, _dir) = gateway(&config, &upstream_url, &[(PY_ISSUER, &jwks_url)]).await;
    let verifier = Verifier::fixed(&gateway.signer().jwks(), "echo");
    for alg in ["RS256", "PS256", "ES256", "EdDSA"] {
        let token = minted["tokens"][alg].as_str().unwrap();
        let r = client()
            .get(format!("{url}/req/x"))
            .header("x-case", alg)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "PyJWT {} {alg}", minted["pyjwt"]);
        let seen = &upstream.saw(alg)[0];
        let identity = verifier
            .verify(
                seen.headers[IDENTITY].to_str().unwrap(),
                seen.headers["x-request-id"].to_str().unwrap(),
            )
            .await
            .unwrap()
            .identity;
        assert_eq!(identity.subject, "alice", "{alg}");
        assert_eq!(identity.issuer, PY_ISSUER, "{alg}");
        assert_eq!(identity.roles, ["buyer", "organiser"], "{alg}");
        assert_eq!(identity.name.as_deref(), Some("alice"), "{alg}");
    }
}

//! JWKS documents as a key set's fetch reads them (`Keys::from_json`), from an
//! identity provider or the gateway. Properties: nothing panics; a key found for an
//! algorithm is of that algorithm's family; no key is ever found for HMAC or `none`
//! (a published key is never a shared secret).
#![no_main]

use jsonwebtoken::Algorithm;
use oberon_identity::{KeyError, Keys};

const ALGORITHMS: [Algorithm; 12] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(keys) = Keys::from_json(data) else {
        return;
    };
    let kids: Vec<Option<String>> = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| {
            v.get("keys")?.as_array().map(|keys| {
                keys.iter()
                    .map(|k| k.get("kid").and_then(|k| k.as_str()).map(String::from))
                    .collect()
            })
        })
        .unwrap_or_default();
    for kid in kids
        .iter()
        .map(Option::as_deref)
        .chain([None, Some("no-such-kid")])
    {
        for alg in ALGORITHMS {
            match keys.find(kid, alg) {
                Ok(key) => {
                    assert_eq!(key.family(), alg.family(), "{alg:?} with kid {kid:?}");
                    assert_ne!(key.family(), jsonwebtoken::AlgorithmFamily::Hmac);
                }
                Err(
                    KeyError::UnknownKid(_) | KeyError::NoKid(_) | KeyError::WrongAlgorithm { .. },
                ) => {}
            }
        }
    }
});

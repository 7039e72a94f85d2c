//! Signed-in visitors' tokens, from the test identity provider the gateway trusts.
//! Its tokens live 10 minutes; each user's is minted again after 5, so none expires
//! in flight however long the soak runs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oberon_e2e_tests::origin::Issuer;

const REMINT_AFTER: Duration = Duration::from_secs(300);

pub struct Tokens {
    issuer: Arc<Issuer>,
    /// Per user: the token and when it was minted.
    minted: Mutex<Vec<Option<(String, Instant)>>>,
}

impl Tokens {
    pub fn new(issuer: Arc<Issuer>, users: u32) -> Self {
        Self {
            issuer,
            minted: Mutex::new(vec![None; users as usize]),
        }
    }

    /// User `i`'s token (`crate::site::user(i)`).
    pub fn get(&self, i: u32) -> String {
        let mut minted = self.minted.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut minted[i as usize];
        match slot {
            Some((token, at)) if at.elapsed() < REMINT_AFTER => token.clone(),
            _ => {
                let token = self.issuer.token(&crate::site::user(i));
                *slot = Some((token.clone(), Instant::now()));
                token
            }
        }
    }
}

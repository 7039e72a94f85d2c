//! Identity between Oberon's services.
//!
//! - [`keys`]: public keys from a JWKS document, cached and refreshed on an unknown `kid`
//!   with a cooldown. The gateway uses it for identity providers' keys; upstreams for the
//!   gateway's.
//! - [`assertion`]: the gateway's signed identity assertion, which is the only way a
//!   user's identity reaches the renderer and the BFFs.

pub mod assertion;
pub mod keys;

pub use assertion::{Asserted, Identity, Signer, Verifier, VerifyError};
pub use keys::{KeyError, KeySetStats, Keys, RemoteKeySet, RemoteKeySetOptions};

//! Bearer-token authentication: JWS/JWT verification with our own header and claims checks,
//! keys (PEM, JWK, JWKS, JWKS URLs with rotation), token issuing, and the gate's auth stage.

pub mod alg;
pub mod encode;
pub mod error;
pub mod jwks;
pub mod keys;
pub mod revocation;
pub mod settings;
pub mod stage;
pub mod verifier;

pub use alg::Algorithm;
pub use error::{KeyError, TokenError};
pub use verifier::{Claims, Validation, Verified, Verifier};

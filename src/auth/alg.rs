//! JWS algorithms (RFC 7518 §3, RFC 8037) and the key family each needs.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::signature;

/// The algorithms we verify and sign. `none` is deliberately absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
}

/// What kind of key an algorithm needs. A key is bound to one family, so an RSA public key can
/// never be used as an HMAC secret (the classic algorithm-confusion attack).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Hmac,
    Rsa,
    EcP256,
    EcP384,
    EcP521,
    Ed25519,
}

impl Algorithm {
    pub const ALL: [Algorithm; 13] = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::ES512,
        Algorithm::EdDSA,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::ES512 => "ES512",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// An HMAC algorithm's output length in bytes (the shortest secret RFC 7518 §3.2 allows).
    #[must_use]
    pub fn hmac_output_len(self) -> Option<usize> {
        match self {
            Algorithm::HS256 => Some(32),
            Algorithm::HS384 => Some(48),
            Algorithm::HS512 => Some(64),
            _ => None,
        }
    }

    #[must_use]
    pub fn family(self) -> Family {
        match self {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Family::Hmac,
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => Family::Rsa,
            Algorithm::ES256 => Family::EcP256,
            Algorithm::ES384 => Family::EcP384,
            Algorithm::ES512 => Family::EcP521,
            Algorithm::EdDSA => Family::Ed25519,
        }
    }

    /// Whether checking a signature costs enough to release the GIL for.
    #[must_use]
    pub fn is_asymmetric(self) -> bool {
        self.family() != Family::Hmac
    }

    /// The same algorithm in jsonwebtoken, which verifies and signs all of them but ES512.
    pub(crate) fn crate_alg(self) -> Option<jsonwebtoken::Algorithm> {
        use jsonwebtoken::Algorithm as J;
        Some(match self {
            Algorithm::HS256 => J::HS256,
            Algorithm::HS384 => J::HS384,
            Algorithm::HS512 => J::HS512,
            Algorithm::RS256 => J::RS256,
            Algorithm::RS384 => J::RS384,
            Algorithm::RS512 => J::RS512,
            Algorithm::PS256 => J::PS256,
            Algorithm::PS384 => J::PS384,
            Algorithm::PS512 => J::PS512,
            Algorithm::ES256 => J::ES256,
            Algorithm::ES384 => J::ES384,
            Algorithm::EdDSA => J::EdDSA,
            Algorithm::ES512 => return None,
        })
    }

    /// The aws-lc-rs verification algorithm of a public-key family: what validates a key once at
    /// load, and what checks ES512. RSA keys must have at least 2048 bits.
    pub(crate) fn verification(self) -> Option<&'static dyn signature::VerificationAlgorithm> {
        Some(match self {
            Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            // JWS ECDSA signatures are the fixed-width r||s, never DER (RFC 7518 §3.4).
            Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
            Algorithm::ES512 => &signature::ECDSA_P521_SHA512_FIXED,
            Algorithm::EdDSA => &signature::ED25519,
            _ => return None,
        })
    }
}

impl Family {
    /// An aws-lc-rs algorithm that parses keys of this family (and only this curve, for EC).
    pub(crate) fn probe(self) -> Option<&'static dyn signature::VerificationAlgorithm> {
        Some(match self {
            Family::EcP256 => &signature::ECDSA_P256_SHA256_FIXED,
            Family::EcP384 => &signature::ECDSA_P384_SHA384_FIXED,
            Family::EcP521 => &signature::ECDSA_P521_SHA512_FIXED,
            _ => return None,
        })
    }
}

impl FromStr for Algorithm {
    type Err = ();

    /// Exact, case-sensitive names (RFC 7515 §4.1.1): `hs256` and `none` are not algorithms here.
    fn from_str(s: &str) -> Result<Self, ()> {
        Algorithm::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == s)
            .ok_or(())
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

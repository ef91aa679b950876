//! Verification keys: HMAC secrets, PEM public keys, JWKs and JWK Sets, each bound to one family.
//!
//! Key material is parsed by the crates: the `pem` crate reads the PEM framing, jsonwebtoken
//! builds its `DecodingKey` (from the PEM, from a JWK's components, from a secret) and checks
//! signatures with it (its aws-lc-rs backend). aws-lc-rs also validates every public key once at
//! load, so a key that cannot verify is a start-up error rather than a refusal per request, and it
//! verifies ES512, which jsonwebtoken lacks (see [`Material::P521`]). Our own rules sit on top:
//! a key is bound to one family (no algorithm confusion), RSA moduli of 2048 to 8192 bits, and the
//! JWK members `use`, `key_ops` and `alg` restrict what a key may verify.

use std::str::FromStr;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::PublicKeyComponents;
use aws_lc_rs::signature::ParsedPublicKey;
use base64::Engine as _;
use jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
use jsonwebtoken::{DecodingKey, DecodingKeyKind};
use serde_json::{Map, Value};

use super::alg::{Algorithm, Family};
use super::error::KeyError;

/// Key material, parsed once.
pub enum Material {
    /// Checked through jsonwebtoken: HMAC secrets, RSA, P-256, P-384 and Ed25519 keys.
    Crate(Family, DecodingKey),
    /// ES512: jsonwebtoken has no P-521, so this one algorithm is checked on aws-lc-rs directly,
    /// on the key it parsed and validated at load.
    P521(ParsedPublicKey),
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        match self {
            Material::Crate(family, _) => write!(f, "Crate({family:?})"),
            Material::P521(_) => f.write_str("P521(..)"),
        }
    }
}

/// A verification key: material plus the JWK metadata that restricts its use.
#[derive(Debug)]
pub struct Key {
    pub kid: Option<String>,
    /// A JWK's `alg`: the only algorithm this key may verify.
    pub alg: Option<Algorithm>,
    pub material: Material,
    /// An HMAC secret's length in bytes (RFC 7518 §3.2 asks for at least the hash's output).
    pub secret_len: Option<usize>,
}

impl Key {
    #[must_use]
    pub fn family(&self) -> Family {
        match &self.material {
            Material::Crate(f, _) => *f,
            Material::P521(_) => Family::EcP521,
        }
    }

    /// Whether this key may check a token signed with `alg`.
    #[must_use]
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.family() == alg.family() && self.alg.is_none_or(|a| a == alg)
    }

    /// Checks `signature` over `message` with `alg`; false on any mismatch.
    #[must_use]
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        if !self.accepts(alg) {
            return false;
        }
        match &self.material {
            Material::Crate(_, key) => alg.crate_alg().is_some_and(|a| {
                (DEFAULT_PROVIDER.verifier_factory)(&a, key)
                    .is_ok_and(|v| v.verify(message, &signature.to_vec()).is_ok())
            }),
            Material::P521(key) => key.verify_sig(message, signature).is_ok(),
        }
    }

    /// An HMAC secret. Refuses PEM text: a public key must never become an HMAC secret.
    pub fn hmac(secret: &[u8], kid: Option<String>) -> Result<Key, KeyError> {
        if secret.is_empty() {
            return Err(KeyError::Invalid("an HMAC secret must not be empty".into()));
        }
        if looks_like_pem_or_ssh(secret) {
            return Err(KeyError::Invalid(
                "this HMAC secret is a PEM/SSH public or private key; asymmetric keys cannot be HMAC secrets".into(),
            ));
        }
        Ok(Key {
            kid,
            alg: None,
            material: Material::Crate(Family::Hmac, DecodingKey::from_secret(secret)),
            secret_len: Some(secret.len()),
        })
    }

    /// A PEM public key (`PUBLIC KEY`, `RSA PUBLIC KEY`).
    pub fn from_pem(pem_text: &str, kid: Option<String>) -> Result<Key, KeyError> {
        let block = pem::parse(pem_text).map_err(|e| {
            KeyError::Invalid(if pem_text.contains("-----BEGIN ") {
                format!("malformed PEM block: {e}")
            } else {
                "not a PEM key (no -----BEGIN line)".into()
            })
        })?;
        match block.tag() {
            "PUBLIC KEY" | "RSA PUBLIC KEY" => {}
            "CERTIFICATE" => {
                return Err(KeyError::Invalid(
                    "certificates are not accepted; give the public key (openssl x509 -pubkey -noout)".into(),
                ));
            }
            l if l.contains("PRIVATE KEY") => {
                return Err(KeyError::Invalid(
                    "a private key was given where a public key is needed for verification".into(),
                ));
            }
            other => {
                return Err(KeyError::Invalid(format!(
                    "unsupported PEM block {other:?}"
                )));
            }
        }
        let bytes = pem_text.as_bytes();
        // jsonwebtoken classifies the key by its algorithm identifier; each constructor accepts
        // only its own kind.
        if let Ok(key) = DecodingKey::from_rsa_pem(bytes) {
            return public(Family::Rsa, key, kid, None);
        }
        if let Ok(key) = DecodingKey::from_ed_pem(bytes) {
            return public(Family::Ed25519, key, kid, None);
        }
        if let Ok(key) = DecodingKey::from_ec_pem(bytes) {
            // The curve: aws-lc-rs reads the SPKI's named curve and refuses any other.
            let spki = block.contents();
            let family = [Family::EcP256, Family::EcP384, Family::EcP521]
                .into_iter()
                .find(|f| {
                    f.probe()
                        .is_some_and(|a| ParsedPublicKey::new(a, spki).is_ok())
                })
                .ok_or_else(|| {
                    KeyError::Invalid("unsupported or invalid EC key (P-256/384/521 are)".into())
                })?;
            return public(family, key, kid, None);
        }
        Err(KeyError::Invalid(
            "unsupported public key type (RSA, EC P-256/384/521 and Ed25519 are)".into(),
        ))
    }

    /// A JWK (RFC 7517) as a JSON object.
    pub fn from_jwk(jwk: &Map<String, Value>) -> Result<Key, KeyError> {
        let text = |name: &str| -> Result<Option<&str>, KeyError> {
            match jwk.get(name) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(KeyError::Invalid(format!(
                    "JWK member {name:?} must be a string"
                ))),
            }
        };
        let bytes = |name: &str| -> Result<Vec<u8>, KeyError> {
            let s =
                text(name)?.ok_or_else(|| KeyError::Invalid(format!("JWK is missing {name:?}")))?;
            b64url(s)
                .ok_or_else(|| KeyError::Invalid(format!("JWK member {name:?} is not base64url")))
        };
        if let Some(u) = text("use")? {
            if u != "sig" {
                return Err(KeyError::Invalid(format!(
                    "JWK \"use\" is {u:?}, not \"sig\""
                )));
            }
        }
        if let Some(ops) = jwk.get("key_ops") {
            let ok = ops
                .as_array()
                .is_some_and(|a| a.iter().any(|o| o == "verify"));
            if !ok {
                return Err(KeyError::Invalid(
                    "JWK \"key_ops\" does not include \"verify\"".into(),
                ));
            }
        }
        let kid = text("kid")?.map(str::to_owned);
        let alg =
            match text("alg")? {
                None => None,
                Some(a) => Some(Algorithm::from_str(a).map_err(|()| {
                    KeyError::Invalid(format!("JWK \"alg\" {a:?} is not supported"))
                })?),
            };
        let key = match text("kty")? {
            Some("oct") => {
                let mut k = Key::hmac(&bytes("k")?, kid)?;
                k.alg = alg;
                k
            }
            Some("RSA") => {
                // aws-lc-rs refuses components with leading zero octets, which some JWK Sets
                // carry; the integer is the same without them.
                let (n, e) = (bytes("n")?, bytes("e")?);
                let trim =
                    |b: &[u8]| b[b.iter().position(|x| *x != 0).unwrap_or(b.len())..].to_vec();
                let key = DecodingKey::from_rsa_raw_components(&trim(&n), &trim(&e));
                public(Family::Rsa, key, kid, alg)?
            }
            Some("EC") => {
                let coords = (bytes("x")?.len(), bytes("y")?.len());
                let text_of = |n: &str| text(n).map(Option::unwrap_or_default);
                let key = ec_components(text("crv")?, coords, text_of("x")?, text_of("y")?)?;
                public(key.0, key.1, kid, alg)?
            }
            Some("OKP") => match text("crv")? {
                Some("Ed25519") => {
                    bytes("x")?;
                    let key = DecodingKey::from_ed_components(text("x")?.unwrap_or_default())
                        .map_err(|e| KeyError::Invalid(format!("not a valid OKP JWK: {e}")))?;
                    public(Family::Ed25519, key, kid, alg)?
                }
                other => {
                    return Err(KeyError::Invalid(format!(
                        "unsupported OKP curve {other:?}"
                    )));
                }
            },
            other => {
                return Err(KeyError::Invalid(format!(
                    "unsupported JWK \"kty\" {other:?}"
                )));
            }
        };
        if let Some(a) = key.alg {
            if a.family() != key.family() {
                return Err(KeyError::Invalid(format!(
                    "JWK \"alg\" {a} does not fit its key type"
                )));
            }
        }
        Ok(key)
    }
}

/// An EC JWK's family and key: `coords` are the lengths of the strictly decoded coordinates
/// (checked against the curve here), `x` and `y` their text, from which jsonwebtoken builds the key.
fn ec_components(
    crv: Option<&str>,
    coords: (usize, usize),
    x: &str,
    y: &str,
) -> Result<(Family, DecodingKey), KeyError> {
    let (family, len) = match crv {
        Some("P-256") => (Family::EcP256, 32),
        Some("P-384") => (Family::EcP384, 48),
        Some("P-521") => (Family::EcP521, 66),
        other => return Err(KeyError::Invalid(format!("unsupported EC curve {other:?}"))),
    };
    if coords != (len, len) {
        return Err(KeyError::Invalid(
            "EC JWK coordinates have the wrong length".into(),
        ));
    }
    let key = DecodingKey::from_ec_components(x, y)
        .map_err(|e| KeyError::Invalid(format!("not a valid EC JWK: {e}")))?;
    Ok((family, key))
}

/// Parses a JWK Set, skipping keys that are not for signatures or not supported (a JWKS
/// endpoint may publish encryption keys too); fails if no usable key is left.
pub fn keys_from_jwks(jwks: &Value) -> Result<Vec<Key>, KeyError> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| KeyError::Invalid("a JWK Set is an object with a \"keys\" list".into()))?;
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        match k.as_object().map(Key::from_jwk) {
            Some(Ok(key)) => out.push(key),
            Some(Err(e)) => skipped.push(format!("keys[{i}]: {e}")),
            None => skipped.push(format!("keys[{i}]: not an object")),
        }
    }
    if out.is_empty() {
        return Err(KeyError::Invalid(format!(
            "no usable signature key in the JWK Set ({})",
            skipped.join("; ")
        )));
    }
    Ok(out)
}

/// A public key of `family`, validated by aws-lc-rs for every algorithm it may verify.
fn public(
    family: Family,
    key: DecodingKey,
    kid: Option<String>,
    alg: Option<Algorithm>,
) -> Result<Key, KeyError> {
    let invalid = |a: Algorithm, e: &dyn std::fmt::Display| {
        KeyError::Invalid(format!("not a valid {family:?} public key for {a}: {e}"))
    };
    // What aws-lc-rs validates: the DER or point the crate read, or for a JWK's RSA components
    // the SubjectPublicKeyInfo aws-lc-rs builds from them.
    let raw: Vec<u8> = match key.kind() {
        DecodingKeyKind::SecretOrDer(der) => der.clone(),
        DecodingKeyKind::RsaModulusExponent { n, e } => PublicKeyComponents {
            n: n.as_slice(),
            e: e.as_slice(),
        }
        .as_der()
        .map(|d| d.as_ref().to_vec())
        .map_err(|_| KeyError::Invalid("not a valid RSA public key".into()))?,
    };
    if family == Family::Rsa {
        let bits = rsa_modulus_bits(&key, &raw)
            .ok_or_else(|| KeyError::Invalid("not a valid RSA public key".into()))?;
        if !(2048..=8192).contains(&bits) {
            return Err(KeyError::Invalid(format!(
                "RSA keys must have 2048 to 8192 bits, this one has {bits}"
            )));
        }
    }
    let mut p521 = None;
    for a in Algorithm::ALL
        .into_iter()
        .filter(|a| a.family() == family && alg.is_none_or(|x| x == *a))
    {
        let Some(v) = a.verification() else { continue };
        let parsed = ParsedPublicKey::new(v, &raw).map_err(|e| invalid(a, &e))?;
        if a == Algorithm::ES512 {
            p521 = Some(parsed);
        }
    }
    let material = match p521 {
        Some(parsed) => Material::P521(parsed),
        None if family == Family::EcP521 => {
            return Err(KeyError::Invalid(
                "a P-521 key restricted to another algorithm verifies nothing".into(),
            ));
        }
        None => Material::Crate(family, key),
    };
    Ok(Key {
        kid,
        alg,
        material,
        secret_len: None,
    })
}

/// The modulus size of an RSA key, from the components the crate read.
fn rsa_modulus_bits(key: &DecodingKey, der: &[u8]) -> Option<usize> {
    let n = match key.kind() {
        DecodingKeyKind::RsaModulusExponent { n, .. } => n.clone(),
        DecodingKeyKind::SecretOrDer(_) => {
            (DEFAULT_PROVIDER
                .key_utils
                .rsa_pub_components_from_public_key)(der)
            .ok()?
            .0
        }
    };
    let significant = &n[n.iter().position(|b| *b != 0)?..];
    let top = significant.first()?;
    Some((significant.len() - 1) * 8 + (8 - top.leading_zeros() as usize))
}

fn looks_like_pem_or_ssh(secret: &[u8]) -> bool {
    let s = String::from_utf8_lossy(&secret[..secret.len().min(64)]);
    let t = s.trim_start();
    t.starts_with("-----BEGIN")
        || t.starts_with("ssh-rsa ")
        || t.starts_with("ssh-ed25519 ")
        || t.starts_with("ecdsa-sha2-")
}

/// Strict base64url without padding (RFC 7515 §2), rejecting non-canonical trailing bits.
#[must_use]
pub fn b64url(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self as sig, KeyPair as _};
    use serde_json::json;

    use super::*;
    use crate::auth::encode::encode;

    fn pem_of(label: &str, der: &[u8]) -> String {
        pem::encode(&pem::Pem::new(label, der.to_vec()))
    }

    /// A fresh key pair of `alg`'s family: (private PKCS#8 PEM, public SPKI PEM).
    fn pair(alg: Algorithm) -> (String, String) {
        let rng = SystemRandom::new();
        let (private, public): (Vec<u8>, Vec<u8>) = match alg.family() {
            Family::Rsa => {
                let k =
                    aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
                let pkcs8 =
                    aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&k)
                        .unwrap();
                let spki = k.public_key().as_der().unwrap();
                (pkcs8.as_ref().to_vec(), spki.as_ref().to_vec())
            }
            Family::Ed25519 => {
                let doc = sig::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
                let k = sig::Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
                let spki = k.public_key().as_der().unwrap();
                (doc.as_ref().to_vec(), spki.as_ref().to_vec())
            }
            f => {
                let signing = match f {
                    Family::EcP256 => &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
                    Family::EcP384 => &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
                    _ => &sig::ECDSA_P521_SHA512_FIXED_SIGNING,
                };
                let doc = sig::EcdsaKeyPair::generate_pkcs8(signing, &rng).unwrap();
                let k = sig::EcdsaKeyPair::from_pkcs8(signing, doc.as_ref()).unwrap();
                let spki = k.public_key().as_der().unwrap();
                (doc.as_ref().to_vec(), spki.as_ref().to_vec())
            }
        };
        (
            pem_of("PRIVATE KEY", &private),
            pem_of("PUBLIC KEY", &public),
        )
    }

    fn split(token: &str) -> (&[u8], Vec<u8>) {
        let at = token.rfind('.').unwrap();
        (&token.as_bytes()[..at], b64url(&token[at + 1..]).unwrap())
    }

    #[test]
    fn every_algorithm_signs_and_verifies_through_the_loaded_keys() {
        for alg in Algorithm::ALL
            .into_iter()
            .filter(|a| a.family() != Family::Hmac)
        {
            let (private, public) = pair(alg);
            let key = Key::from_pem(&public, None).unwrap();
            assert_eq!(key.family(), alg.family(), "{alg}");
            assert_eq!(
                matches!(key.material, Material::P521(_)),
                alg == Algorithm::ES512
            );
            let token = encode(
                json!({"sub": "a"}).as_object().unwrap(),
                private.as_bytes(),
                alg,
                &Map::new(),
            )
            .unwrap();
            let (message, signature) = split(&token);
            assert!(key.verify(alg, message, &signature), "{alg}");
            let mut forged = signature.clone();
            forged[3] ^= 1;
            assert!(!key.verify(alg, message, &forged), "{alg} forged");
            let other = Algorithm::ALL
                .into_iter()
                .find(|a| a.family() != alg.family())
                .unwrap();
            assert!(
                !key.verify(other, message, &signature),
                "{alg} under {other}"
            );
        }
        let key = Key::hmac(b"0123456789abcdef0123456789abcdef", None).unwrap();
        let token = encode(
            json!({"sub": "a"}).as_object().unwrap(),
            b"0123456789abcdef0123456789abcdef",
            Algorithm::HS384,
            &Map::new(),
        )
        .unwrap();
        let (message, signature) = split(&token);
        assert!(key.verify(Algorithm::HS384, message, &signature));
        assert!(!key.verify(Algorithm::HS256, message, &signature));
    }

    #[test]
    fn a_sec1_ec_private_key_signs_too() {
        let (pkcs8, public) = pair(Algorithm::ES384);
        let der = pem::parse(&pkcs8).unwrap();
        let k =
            sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P384_SHA384_FIXED_SIGNING, der.contents())
                .unwrap();
        let sec1 =
            aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::EcPrivateKeyRfc5915Der>::as_der(
                &k.private_key(),
            )
            .unwrap();
        let sec1 = pem_of("EC PRIVATE KEY", sec1.as_ref());
        let token = encode(
            json!({}).as_object().unwrap(),
            sec1.as_bytes(),
            Algorithm::ES384,
            &Map::new(),
        )
        .unwrap();
        let (message, signature) = split(&token);
        assert!(Key::from_pem(&public, None).unwrap().verify(
            Algorithm::ES384,
            message,
            &signature
        ));
        assert!(
            encode(
                json!({}).as_object().unwrap(),
                sec1.as_bytes(),
                Algorithm::ES256,
                &Map::new()
            )
            .is_err(),
            "a P-384 key does not sign ES256"
        );
    }

    #[test]
    fn jwk_components_load_as_their_pem_does() {
        let (private, public) = pair(Algorithm::ES256);
        let block = pem::parse(&public).unwrap();
        let point = &block.contents()[block.contents().len() - 65..];
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..]), "kid": "k1"});
        let key = Key::from_jwk(jwk.as_object().unwrap()).unwrap();
        let token = encode(
            json!({}).as_object().unwrap(),
            private.as_bytes(),
            Algorithm::ES256,
            &Map::new(),
        )
        .unwrap();
        let (message, signature) = split(&token);
        assert!(key.verify(Algorithm::ES256, message, &signature));
        let wrong_curve =
            json!({"kty": "EC", "crv": "P-384", "x": b64(&point[1..33]), "y": b64(&point[33..])});
        assert!(Key::from_jwk(wrong_curve.as_object().unwrap()).is_err());
        let off_curve =
            json!({"kty": "EC", "crv": "P-256", "x": b64(&[7; 32]), "y": b64(&[9; 32])});
        assert!(Key::from_jwk(off_curve.as_object().unwrap()).is_err());
    }

    #[test]
    fn bad_pem_is_an_error_never_a_panic() {
        let (private, public) = pair(Algorithm::EdDSA);
        let cases = [
            String::new(),
            "-----BEGIN PUBLIC KEY-----\n".into(),
            "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n".into(),
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into(),
            "-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n".into(),
            public.replace("PUBLIC KEY", "CERTIFICATE"),
            public.replace("PUBLIC KEY", "OPENSSH KEY"),
            private.clone(),
            public[..public.len() / 2].to_owned(),
        ];
        for case in cases {
            assert!(Key::from_pem(&case, None).is_err(), "{case:?}");
        }
        assert!(Key::from_pem(&public, None).is_ok());
    }

    #[test]
    fn small_rsa_keys_are_refused_with_their_size() {
        let k = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let n = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(k.public_key()).n;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        // 1024 bits of the modulus, with a leading zero octet as some JWK Sets carry.
        let mut short = vec![0u8];
        short.extend_from_slice(&n[..128]);
        let jwk = json!({"kty": "RSA", "n": b64(&short), "e": "AQAB"});
        let err = Key::from_jwk(jwk.as_object().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("this one has 1024"), "{err}");
        let mut padded = vec![0u8];
        padded.extend_from_slice(&n);
        let jwk = json!({"kty": "RSA", "n": b64(&padded), "e": "AQAB"});
        assert_eq!(
            Key::from_jwk(jwk.as_object().unwrap()).unwrap().family(),
            Family::Rsa
        );
    }

    #[test]
    fn base64url_is_strict() {
        assert_eq!(b64url("AQAB").unwrap(), vec![1, 0, 1]);
        assert!(b64url("AQAB=").is_none(), "padding");
        assert!(b64url("AQ+B").is_none(), "standard alphabet");
        assert!(b64url("AR").is_none(), "non-canonical trailing bits");
        assert_eq!(b64url("AQ").unwrap(), vec![1]);
    }

    #[test]
    fn pem_secrets_are_not_hmac_keys() {
        assert!(
            Key::hmac(
                b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
                None
            )
            .is_err()
        );
        assert!(Key::hmac(b"", None).is_err());
        assert!(
            Key::hmac(b"secret", None)
                .unwrap()
                .accepts(Algorithm::HS384)
        );
        assert!(
            !Key::hmac(b"secret", None)
                .unwrap()
                .accepts(Algorithm::RS256)
        );
    }
}

//! Issuing tokens: `ferrogate.encode`.
//!
//! The header and claims are serialised here (the header may carry any members the caller adds,
//! which jsonwebtoken's fixed `Header` cannot), and jsonwebtoken reads the key (`EncodingKey`
//! from the PEM or secret) and signs. ES512, which the crate lacks, is signed with aws-lc-rs.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair, EcdsaSigningAlgorithm};
use base64::Engine as _;
use jsonwebtoken::EncodingKey;
use serde_json::{Map, Value};

use super::alg::{Algorithm, Family};
use super::error::KeyError;

/// Signs `claims` with `alg` and returns the compact JWS. `key` is an HMAC secret for HS*, a
/// private key PEM (PKCS#8, or PKCS#1 for RSA, SEC1 for EC) otherwise. `headers` may add `kid`,
/// `typ` and other members; `alg` is always the one given here.
pub fn encode(
    claims: &Map<String, Value>,
    key: &[u8],
    alg: Algorithm,
    headers: &Map<String, Value>,
) -> Result<String, KeyError> {
    let mut header = Map::new();
    header.insert("alg".into(), alg.as_str().into());
    header.insert("typ".into(), "JWT".into());
    for (k, v) in headers {
        if k != "alg" {
            header.insert(k.clone(), v.clone());
        }
    }
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let h = b64.encode(
        serde_json::to_vec(&Value::Object(header)).map_err(|e| KeyError::Invalid(e.to_string()))?,
    );
    let p = b64.encode(
        serde_json::to_vec(&Value::Object(claims.clone()))
            .map_err(|e| KeyError::Invalid(e.to_string()))?,
    );
    let message = format!("{h}.{p}");
    let sig = sign(message.as_bytes(), key, alg)?;
    Ok(format!("{message}.{sig}"))
}

/// The base64url signature of `message`.
fn sign(message: &[u8], key: &[u8], alg: Algorithm) -> Result<String, KeyError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| KeyError::Invalid(format!("{what}: {e}"));
    if alg.family() == Family::Hmac {
        if key.is_empty() {
            return Err(KeyError::Invalid("an HMAC secret must not be empty".into()));
        }
        if String::from_utf8_lossy(&key[..key.len().min(32)])
            .trim_start()
            .starts_with("-----BEGIN")
        {
            return Err(KeyError::Invalid(
                "a PEM key cannot be an HMAC secret".into(),
            ));
        }
        return crate_sign(message, &EncodingKey::from_secret(key), alg);
    }
    let text = std::str::from_utf8(key)
        .map_err(|_| KeyError::Invalid("the private key must be PEM text".into()))?;
    let block = pem::parse(text).map_err(|e| bad("not a PEM private key", &e))?;
    let label = block.tag();
    if !label.contains("PRIVATE KEY") {
        return Err(KeyError::Invalid(format!(
            "signing needs a private key, got a {label:?} block"
        )));
    }
    match alg.family() {
        Family::Rsa => {
            let key =
                EncodingKey::from_rsa_pem(key).map_err(|e| bad("not an RSA private key", &e))?;
            crate_sign(message, &key, alg)
        }
        Family::EcP256 | Family::EcP384 => {
            let signing = match alg {
                Algorithm::ES256 => &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                _ => &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            };
            // The crate reads PKCS#8; a SEC1 key (`EC PRIVATE KEY`) is rewrapped by aws-lc-rs.
            let pkcs8 = if label == "EC PRIVATE KEY" {
                ec_pair(signing, block.contents(), alg)?
                    .to_pkcs8v1()
                    .map_err(|e| bad("not an EC private key", &e))?
                    .as_ref()
                    .to_vec()
            } else {
                ec_pair(signing, block.contents(), alg)?;
                block.contents().to_vec()
            };
            crate_sign(message, &EncodingKey::from_ec_der(&pkcs8), alg)
        }
        Family::EcP521 => {
            // ES512: jsonwebtoken has no P-521, so aws-lc-rs signs directly.
            let pair = ec_pair(&ECDSA_P521_SHA512_FIXED_SIGNING, block.contents(), alg)?;
            let sig = pair
                .sign(&SystemRandom::new(), message)
                .map_err(|e| bad("ECDSA signing failed", &e))?;
            Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.as_ref()))
        }
        Family::Ed25519 => {
            let key =
                EncodingKey::from_ed_pem(key).map_err(|e| bad("not an Ed25519 private key", &e))?;
            crate_sign(message, &key, alg)
        }
        Family::Hmac => unreachable!("HMAC handled above"),
    }
}

/// An EC key pair from PKCS#8 or SEC1 DER, checked against the algorithm's curve.
fn ec_pair(
    signing: &'static EcdsaSigningAlgorithm,
    der: &[u8],
    alg: Algorithm,
) -> Result<EcdsaKeyPair, KeyError> {
    EcdsaKeyPair::from_pkcs8(signing, der)
        .or_else(|_| EcdsaKeyPair::from_private_key_der(signing, der))
        .map_err(|e| KeyError::Invalid(format!("not a private key for {alg}: {e}")))
}

fn crate_sign(message: &[u8], key: &EncodingKey, alg: Algorithm) -> Result<String, KeyError> {
    let a = alg
        .crate_alg()
        .ok_or_else(|| KeyError::Invalid(format!("{alg} is not signed by jsonwebtoken")))?;
    jsonwebtoken::crypto::sign(message, key, a)
        .map_err(|e| KeyError::Invalid(format!("signing with {alg} failed: {e}")))
}

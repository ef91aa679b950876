//! Issuing tokens: `ferrogate.encode`.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use base64::Engine as _;
use serde_json::{Map, Value};

use super::alg::{Algorithm, Family};
use super::error::KeyError;
use super::keys::pem_decode;

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
    Ok(format!("{message}.{}", b64.encode(sig)))
}

fn sign(message: &[u8], key: &[u8], alg: Algorithm) -> Result<Vec<u8>, KeyError> {
    let rng = SystemRandom::new();
    let bad = |what: &str, e: &dyn std::fmt::Display| KeyError::Invalid(format!("{what}: {e}"));
    if let Some(h) = alg.hmac() {
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
        return Ok(hmac::sign(&hmac::Key::new(h, key), message)
            .as_ref()
            .to_vec());
    }
    let pem = std::str::from_utf8(key)
        .map_err(|_| KeyError::Invalid("the private key must be PEM text".into()))?;
    let (label, der) = pem_decode(pem)?;
    if !label.contains("PRIVATE KEY") {
        return Err(KeyError::Invalid(format!(
            "signing needs a private key, got a {label:?} block"
        )));
    }
    match alg.family() {
        Family::Rsa => {
            let pair = if label == "RSA PRIVATE KEY" {
                RsaKeyPair::from_der(&der)
            } else {
                RsaKeyPair::from_pkcs8(&der)
            }
            .map_err(|e| bad("not an RSA private key", &e))?;
            let padding: &'static dyn signature::RsaEncoding = match alg {
                Algorithm::RS256 => &signature::RSA_PKCS1_SHA256,
                Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
                Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
                Algorithm::PS256 => &signature::RSA_PSS_SHA256,
                Algorithm::PS384 => &signature::RSA_PSS_SHA384,
                _ => &signature::RSA_PSS_SHA512,
            };
            let mut out = vec![0; pair.public_modulus_len()];
            pair.sign(padding, &rng, message, &mut out)
                .map_err(|e| bad("RSA signing failed", &e))?;
            Ok(out)
        }
        Family::EcP256 | Family::EcP384 | Family::EcP521 => {
            let signing = match alg {
                Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                _ => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
            };
            let pair = EcdsaKeyPair::from_pkcs8(signing, &der)
                .or_else(|_| EcdsaKeyPair::from_private_key_der(signing, &der))
                .map_err(|e| bad(&format!("not a private key for {alg}"), &e))?;
            let sig = pair
                .sign(&rng, message)
                .map_err(|e| bad("ECDSA signing failed", &e))?;
            Ok(sig.as_ref().to_vec())
        }
        Family::Ed25519 => {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
                .map_err(|e| bad("not an Ed25519 private key", &e))?;
            Ok(pair.sign(message).as_ref().to_vec())
        }
        Family::Hmac => unreachable!("HMAC handled above"),
    }
}

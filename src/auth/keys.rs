//! Verification keys: HMAC secrets, PEM public keys, JWKs and JWK Sets, each bound to one family.

use std::collections::HashMap;
use std::str::FromStr;

use aws_lc_rs::hmac;
use aws_lc_rs::signature::ParsedPublicKey;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::alg::{Algorithm, Family};
use super::error::KeyError;

/// Key material, parsed once.
pub enum Material {
    /// One `hmac::Key` per HMAC algorithm, built from the same secret.
    Hmac(HashMap<Algorithm, hmac::Key>),
    /// One parsed public key per algorithm of the family (RSA serves RS* and PS*).
    Public(Family, HashMap<Algorithm, ParsedPublicKey>),
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        match self {
            Material::Hmac(_) => f.write_str("Hmac(..)"),
            Material::Public(family, _) => write!(f, "Public({family:?})"),
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
            Material::Hmac(_) => Family::Hmac,
            Material::Public(f, _) => *f,
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
        match &self.material {
            Material::Hmac(keys) => keys
                .get(&alg)
                .is_some_and(|k| hmac::verify(k, message, signature).is_ok()),
            Material::Public(_, keys) => keys
                .get(&alg)
                .is_some_and(|k| k.verify_sig(message, signature).is_ok()),
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
        let keys = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]
            .into_iter()
            .filter_map(|a| a.hmac().map(|h| (a, hmac::Key::new(h, secret))))
            .collect();
        Ok(Key {
            kid,
            alg: None,
            material: Material::Hmac(keys),
            secret_len: Some(secret.len()),
        })
    }

    /// A PEM public key (`PUBLIC KEY`, `RSA PUBLIC KEY`).
    pub fn from_pem(pem: &str, kid: Option<String>) -> Result<Key, KeyError> {
        let (label, der) = pem_decode(pem)?;
        let family = match label.as_str() {
            "PUBLIC KEY" => spki_family(&der)?,
            "RSA PUBLIC KEY" => Family::Rsa,
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
        };
        public(family, &der, kid, None)
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
            Some("RSA") => public(
                Family::Rsa,
                &rsa_pkcs1_der(&bytes("n")?, &bytes("e")?),
                kid,
                alg,
            )?,
            Some("EC") => {
                let (family, len) = match text("crv")? {
                    Some("P-256") => (Family::EcP256, 32),
                    Some("P-384") => (Family::EcP384, 48),
                    Some("P-521") => (Family::EcP521, 66),
                    other => {
                        return Err(KeyError::Invalid(format!("unsupported EC curve {other:?}")));
                    }
                };
                let (x, y) = (bytes("x")?, bytes("y")?);
                if x.len() != len || y.len() != len {
                    return Err(KeyError::Invalid(
                        "EC JWK coordinates have the wrong length".into(),
                    ));
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                public(family, &point, kid, alg)?
            }
            Some("OKP") => match text("crv")? {
                Some("Ed25519") => public(Family::Ed25519, &bytes("x")?, kid, alg)?,
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

fn public(
    family: Family,
    der: &[u8],
    kid: Option<String>,
    alg: Option<Algorithm>,
) -> Result<Key, KeyError> {
    if family == Family::Rsa {
        let bits = rsa_modulus_bits(der)
            .ok_or_else(|| KeyError::Invalid("not a valid RSA public key".into()))?;
        if !(2048..=8192).contains(&bits) {
            return Err(KeyError::Invalid(format!(
                "RSA keys must have 2048 to 8192 bits, this one has {bits}"
            )));
        }
    }
    let mut keys = HashMap::new();
    for a in Algorithm::ALL
        .into_iter()
        .filter(|a| a.family() == family && alg.is_none_or(|x| x == *a))
    {
        let Some(v) = a.verification() else { continue };
        let parsed = ParsedPublicKey::new(v, der).map_err(|e| {
            KeyError::Invalid(format!("not a valid {family:?} public key for {a}: {e}"))
        })?;
        keys.insert(a, parsed);
    }
    Ok(Key {
        kid,
        alg,
        material: Material::Public(family, keys),
        secret_len: None,
    })
}

/// One DER TLV: (tag, content, rest).
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The modulus size of an RSA public key in PKCS#1 or `SubjectPublicKeyInfo` DER.
fn rsa_modulus_bits(der: &[u8]) -> Option<usize> {
    let (tag, body, _) = der_tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (first_tag, first, rest) = der_tlv(body)?;
    let modulus = match first_tag {
        0x02 => first,
        0x30 => {
            // SPKI: AlgorithmIdentifier, then BIT STRING { 0 unused bits, RSAPublicKey }.
            let (bit_tag, bits, _) = der_tlv(rest)?;
            let inner = bits.strip_prefix(&[0u8]).filter(|_| bit_tag == 0x03)?;
            let (seq_tag, seq, _) = der_tlv(inner)?;
            let (int_tag, n, _) = der_tlv(seq)?;
            if seq_tag != 0x30 || int_tag != 0x02 {
                return None;
            }
            n
        }
        _ => return None,
    };
    let significant = modulus
        .iter()
        .position(|b| *b != 0)
        .map(|i| &modulus[i..])?;
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

/// The first PEM block: its label and DER bytes.
pub fn pem_decode(pem: &str) -> Result<(String, Vec<u8>), KeyError> {
    let bad = |m: &str| KeyError::Invalid(m.to_owned());
    let start = pem
        .find("-----BEGIN ")
        .ok_or_else(|| bad("not a PEM key (no -----BEGIN line)"))?;
    let rest = &pem[start + 11..];
    let label_end = rest
        .find("-----")
        .ok_or_else(|| bad("malformed PEM header"))?;
    let label = rest[..label_end].to_owned();
    let body_start = label_end + 5;
    let end_marker = format!("-----END {label}-----");
    let body_end = rest
        .find(&end_marker)
        .ok_or_else(|| bad("PEM block has no matching END line"))?;
    let body: String = rest[body_start..body_end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| bad("PEM body is not base64"))?;
    Ok((label, der))
}

/// The key family named by a `SubjectPublicKeyInfo`'s algorithm identifier.
fn spki_family(der: &[u8]) -> Result<Family, KeyError> {
    const RSA: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    const EC: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
    const P521: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
    const ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
    // The AlgorithmIdentifier sits in the first bytes of the SPKI.
    let head = &der[..der.len().min(32)];
    let has = |oid: &[u8]| head.windows(oid.len()).any(|w| w == oid);
    if has(RSA) {
        Ok(Family::Rsa)
    } else if has(EC) && has(P256) {
        Ok(Family::EcP256)
    } else if has(EC) && has(P384) {
        Ok(Family::EcP384)
    } else if has(EC) && has(P521) {
        Ok(Family::EcP521)
    } else if has(ED25519) {
        Ok(Family::Ed25519)
    } else {
        Err(KeyError::Invalid(
            "unsupported public key type (RSA, EC P-256/384/521 and Ed25519 are)".into(),
        ))
    }
}

/// DER `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` (RFC 8017).
fn rsa_pkcs1_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn integer(bytes: &[u8]) -> Vec<u8> {
        let trimmed: &[u8] = {
            let first = bytes
                .iter()
                .position(|b| *b != 0)
                .unwrap_or(bytes.len().saturating_sub(1));
            &bytes[first.min(bytes.len())..]
        };
        let mut body = Vec::with_capacity(trimmed.len() + 1);
        if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
            body.push(0);
        }
        body.extend_from_slice(trimmed);
        let mut out = vec![0x02];
        out.extend(der_len(body.len()));
        out.extend(body);
        out
    }
    let mut content = integer(n);
    content.extend(integer(e));
    let mut out = vec![0x30];
    out.extend(der_len(content.len()));
    out.extend(content);
    out
}

fn der_len(len: usize) -> Vec<u8> {
    if len < 0x80 {
        #[allow(clippy::cast_possible_truncation)] // < 0x80
        return vec![len as u8];
    }
    let bytes: Vec<u8> = len
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    #[allow(clippy::cast_possible_truncation)] // at most 8 length bytes
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn der_lengths() {
        assert_eq!(der_len(5), vec![5]);
        assert_eq!(der_len(0x80), vec![0x81, 0x80]);
        assert_eq!(der_len(300), vec![0x82, 0x01, 0x2c]);
        assert_eq!(
            rsa_pkcs1_der(&[0x80], &[1, 0, 1]),
            vec![0x30, 9, 0x02, 2, 0, 0x80, 0x02, 3, 1, 0, 1]
        );
    }
}

//! `ferrogate.JWTVerifier`, `ferrogate.encode` and the Python-backed HTTP fetcher for JWKS.

use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString};
use serde_json::{Map, Value};

use super::convert::to_value;
use super::errors::Error;
use crate::auth::jwks::{Fetcher, Jwks};
use crate::auth::{Algorithm, Claims, KeyError, TokenError, Verified, Verifier};
use crate::clock::{SharedClock, system};
use crate::issues::{ConfigError, Issues};

/// Fetches with `ferrogate._http.fetch`, attaching to the interpreter from whatever thread asks.
#[derive(Debug)]
pub struct PyFetcher;

impl Fetcher for PyFetcher {
    fn get(&self, url: &str, timeout: Duration) -> Result<(Vec<u8>, Option<String>), String> {
        Python::attach(|py| {
            let fetch = py
                .import("ferrogate._http")
                .and_then(|m| m.getattr("fetch"))
                .map_err(|e| e.to_string())?;
            let out = fetch
                .call1((url, timeout.as_secs_f64()))
                .map_err(|e| e.to_string())?;
            let (body, cc): (Vec<u8>, Option<String>) =
                out.extract().map_err(|e: PyErr| e.to_string())?;
            Ok((body, cc))
        })
    }
}

/// The fetcher gates and verifiers built from Python use.
pub fn fetcher() -> Arc<dyn Fetcher> {
    Arc::new(PyFetcher)
}

/// JSON value to Python object.
pub fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                PyInt::new(py, i).into_any()
            } else if let Some(u) = n.as_u64() {
                PyInt::new(py, u).into_any()
            } else {
                PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(m) => members_to_dict(py, m.iter().map(|(k, v)| (k.as_str(), v)))?.into_any(),
    })
}

/// A member name as a Python string: the names the parser knows (registered claims, the usual
/// OAuth and `OpenID` ones) are interned once, which also spares the dict from hashing them again.
fn claim_name<'py>(py: Python<'py>, name: &str) -> Bound<'py, PyString> {
    macro_rules! known {
        ($($n:literal),*) => {
            match name {
                $($n => pyo3::intern!(py, $n).clone(),)*
                _ => PyString::new(py, name),
            }
        };
    }
    crate::with_known_member_names!(known)
}

fn members_to_dict<'py, 'a>(
    py: Python<'py>,
    members: impl Iterator<Item = (&'a str, &'a Value)>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in members {
        d.set_item(claim_name(py, k), to_py(py, v)?)?;
    }
    Ok(d)
}

fn map_to_dict<'py>(py: Python<'py>, m: &Claims) -> PyResult<Bound<'py, PyDict>> {
    members_to_dict(py, m.iter())
}

/// Claims dicts of tokens seen more than once, by [`Verified::id`]: direct-mapped, so a lookup is
/// one uncontended lock and one compare, and a newer token takes its slot from an older one. Ids
/// are never reused, so a slot never answers for another token.
const CLAIMS_SLOTS: usize = 4096;
type ClaimsSlot = Mutex<Option<(u64, Py<PyDict>)>>;
static CLAIMS_DICTS: LazyLock<Box<[ClaimsSlot]>> =
    LazyLock::new(|| (0..CLAIMS_SLOTS).map(|_| Mutex::new(None)).collect());

/// The claims as a fresh dict. From a token's second use on, a master copy is kept, so a
/// cache hit costs a dict copy, not a JSON walk.
pub fn claims_dict<'py>(py: Python<'py>, v: &Verified) -> PyResult<Bound<'py, PyDict>> {
    // The modulo keeps the index below CLAIMS_SLOTS, which fits usize.
    #[allow(clippy::cast_possible_truncation)]
    let slot = &CLAIMS_DICTS[(v.id() % CLAIMS_SLOTS as u64) as usize];
    let kept = match &*slot.lock().unwrap_or_else(PoisonError::into_inner) {
        Some((id, d)) if *id == v.id() => Some(d.clone_ref(py)),
        _ => None,
    };
    if let Some(d) = kept {
        return d.bind(py).copy();
    }
    if !v.seen_before() {
        // First use: most tokens are seen once (or the cache is off), so skip keeping a master.
        return map_to_dict(py, &v.claims);
    }
    let d = map_to_dict(py, &v.claims)?;
    // The previous occupant is dropped with the GIL held (it may be the last reference).
    let old = slot
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .replace((v.id(), d.clone().unbind()));
    drop(old);
    d.copy()
}

/// Verifies `token` at `now` with the GIL released for the signature check on a cache miss,
/// when that check is slow (asymmetric, or keys to fetch). An HMAC takes less than releasing and
/// retaking the GIL does, as the Gate's own auth stage also decides.
pub fn verify_releasing(
    py: Python<'_>,
    verifier: &Verifier,
    token: &str,
    now: f64,
) -> Result<Arc<Verified>, TokenError> {
    if let Some(r) = verifier.cached(token, now) {
        return r;
    }
    super::release_if(py, verifier.may_block(), || {
        verifier.verify_uncached(token, now)
    })
}

fn token_text<'a>(token: &'a Bound<'_, PyAny>) -> Result<std::borrow::Cow<'a, str>, TokenError> {
    if let Ok(s) = token.cast::<PyString>() {
        return s
            .to_str()
            .map(std::borrow::Cow::Borrowed)
            .map_err(|_| TokenError::Decode("the token is not valid text".into()));
    }
    if let Ok(b) = token.cast::<PyBytes>() {
        return std::str::from_utf8(b.as_bytes())
            .map(|s| std::borrow::Cow::Owned(s.to_owned()))
            .map_err(|_| TokenError::Decode("the token is not ASCII".into()));
    }
    Err(TokenError::Decode("the token must be str or bytes".into()))
}

/// Python `key=` values as config values: bytes become text (PEM, UTF-8 secrets) or, when not
/// UTF-8, an `oct` JWK, so any secret bytes work.
fn key_value(key: &Bound<'_, PyAny>) -> Result<Value, ConfigError> {
    if let Ok(b) = key.cast::<PyBytes>() {
        let bytes = b.as_bytes();
        return Ok(match std::str::from_utf8(bytes) {
            Ok(s) => Value::String(s.to_owned()),
            Err(_) => {
                use base64::Engine as _;
                let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
                serde_json::json!({"kty": "oct", "k": k})
            }
        });
    }
    to_value(key)
}

/// Verifies JWS/JWT tokens; every option is in docs/configuration.md (`[jwt]`).
#[pyclass(name = "JWTVerifier", module = "ferrogate._native", frozen)]
pub struct PyJWTVerifier {
    inner: Arc<Verifier>,
    jwks: Option<Jwks>,
}

#[pymethods]
impl PyJWTVerifier {
    #[new]
    #[pyo3(signature = (
        algorithms, *, key=None, keys=None, jwks=None, jwks_url=None, issuer=None, discovery=false,
        audience=None, leeway=None, required_claims=None, verify_exp=true, require_exp=false,
        token_type=None, token_type_claim=None, token_type_required=false, max_token_bytes=None,
        cache_size=None, jwks_ttl=None, kid_cooldown=None, timeout=None
    ))]
    #[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)] // the Python keyword arguments
    fn new(
        algorithms: &Bound<'_, PyAny>,
        key: Option<&Bound<'_, PyAny>>,
        keys: Option<&Bound<'_, PyAny>>,
        jwks: Option<&Bound<'_, PyAny>>,
        jwks_url: Option<&Bound<'_, PyAny>>,
        issuer: Option<&Bound<'_, PyAny>>,
        discovery: bool,
        audience: Option<&Bound<'_, PyAny>>,
        leeway: Option<&Bound<'_, PyAny>>,
        required_claims: Option<&Bound<'_, PyAny>>,
        verify_exp: bool,
        require_exp: bool,
        token_type: Option<&Bound<'_, PyAny>>,
        token_type_claim: Option<&Bound<'_, PyAny>>,
        token_type_required: bool,
        max_token_bytes: Option<&Bound<'_, PyAny>>,
        cache_size: Option<&Bound<'_, PyAny>>,
        jwks_ttl: Option<&Bound<'_, PyAny>>,
        kid_cooldown: Option<&Bound<'_, PyAny>>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mut m = Map::new();
        let result: Result<(), ConfigError> = (|| {
            let given = [
                ("algorithms", Some(algorithms)),
                ("jwks", jwks),
                ("jwks_url", jwks_url),
                ("issuer", issuer),
                ("audience", audience),
                ("leeway", leeway),
                ("required_claims", required_claims),
                ("token_type", token_type),
                ("token_type_claim", token_type_claim),
                ("max_token_bytes", max_token_bytes),
                ("cache_size", cache_size),
                ("jwks_ttl", jwks_ttl),
                ("kid_cooldown", kid_cooldown),
                ("timeout", timeout),
            ];
            for (name, v) in given {
                if let Some(v) = v {
                    m.insert(name.to_owned(), to_value(v)?);
                }
            }
            if let Some(k) = key {
                m.insert("key".into(), key_value(k)?);
            }
            if let Some(list) = keys {
                let items: Vec<Value> = list
                    .try_iter()
                    .map_err(|_| ConfigError::single("keys", "expected a list of keys"))?
                    .map(|k| {
                        k.map_err(|e| ConfigError::single("keys", e.to_string()))
                            .and_then(|k| key_value(&k))
                    })
                    .collect::<Result<_, _>>()?;
                m.insert("keys".into(), Value::Array(items));
            }
            Ok(())
        })();
        result.map_err(Error::from)?;
        if discovery {
            m.insert("discovery".into(), Value::Bool(true));
        }
        m.insert("verify_exp".into(), Value::Bool(verify_exp));
        m.insert("require_exp".into(), Value::Bool(require_exp));
        m.insert(
            "token_type_required".into(),
            Value::Bool(token_type_required),
        );
        let clock: SharedClock = system();
        let fetcher = fetcher();
        let mut problems = Issues::default();
        let settings = crate::auth::settings::parse(
            &Value::Object(m),
            "",
            &clock,
            Some(&fetcher),
            crate::auth::settings::Defaults::Library,
            &mut problems,
        );
        match (settings, problems.finish(())) {
            (Some(s), Ok(())) => Ok(Self {
                inner: s.verifier,
                jwks: s.jwks,
            }),
            (_, Err(e)) => Err(Error::key_config(e).into()),
            (None, Ok(())) => {
                Err(Error::from(ConfigError::single("", "invalid verifier options")).into())
            }
        }
    }

    /// The verified claims of `token`, or an `InvalidTokenError` subclass saying why not.
    /// `now` (seconds since the epoch) replaces the clock, for tests.
    #[pyo3(signature = (token, *, now=None))]
    fn verify<'py>(
        &self,
        py: Python<'py>,
        token: &Bound<'py, PyAny>,
        now: Option<f64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let text = token_text(token).map_err(Error::from)?;
        let now = match now {
            Some(n) if n.is_finite() => n,
            Some(_) => {
                return Err(
                    Error::from(TokenError::Decode("now must be a finite number".into())).into(),
                );
            }
            None => self.inner.now(),
        };
        let verified = verify_releasing(py, &self.inner, &text, now).map_err(Error::from)?;
        claims_dict(py, &verified)
    }

    /// Checks a JWS's header and signature only and returns its payload bytes (for JWS that are
    /// not JWTs).
    fn verify_jws<'py>(
        &self,
        py: Python<'py>,
        token: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let text = token_text(token).map_err(Error::from)?;
        let verifier = &self.inner;
        let (_, payload) = py
            .detach(|| verifier.check_jws(&text))
            .map_err(Error::from)?;
        Ok(PyBytes::new(py, &payload))
    }

    /// Fetches the JWKS now (no-op for fixed keys).
    fn refresh(&self, py: Python<'_>) {
        if let Some(j) = &self.jwks {
            let j = j.clone();
            py.detach(move || j.refresh());
        }
    }

    /// JWKS documents fetched so far (discovery included); 0 for fixed keys.
    #[getter]
    fn fetch_count(&self) -> u64 {
        self.jwks.as_ref().map_or(0, Jwks::fetches)
    }

    /// The last JWKS fetch error, or None.
    #[getter]
    fn last_error(&self) -> Option<String> {
        self.jwks.as_ref().and_then(Jwks::last_error)
    }

    #[getter]
    fn algorithms(&self) -> Vec<&'static str> {
        self.inner
            .validation()
            .algorithms
            .iter()
            .map(|a| a.as_str())
            .collect()
    }
}

/// Signs `claims` (a dict) into a compact JWS.
#[pyfunction]
#[pyo3(signature = (claims, key, algorithm, headers=None))]
fn encode(
    claims: &Bound<'_, PyAny>,
    key: &Bound<'_, PyAny>,
    algorithm: &str,
    headers: Option<&Bound<'_, PyAny>>,
) -> PyResult<String> {
    let alg: Algorithm = algorithm.parse().map_err(|()| {
        Error::from(KeyError::Invalid(format!(
            "unsupported algorithm {algorithm:?}"
        )))
    })?;
    let Value::Object(claims) = to_value(claims).map_err(Error::from)? else {
        return Err(Error::from(ConfigError::single("claims", "claims must be a dict")).into());
    };
    let headers = match headers.map(to_value).transpose().map_err(Error::from)? {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(
                Error::from(ConfigError::single("headers", "headers must be a dict")).into(),
            );
        }
    };
    let key_bytes: Vec<u8> = if let Ok(b) = key.cast::<PyBytes>() {
        b.as_bytes().to_vec()
    } else if let Ok(s) = key.cast::<PyString>() {
        s.to_str()?.as_bytes().to_vec()
    } else {
        return Err(Error::from(KeyError::Invalid("the key must be str or bytes".into())).into());
    };
    Ok(crate::auth::encode::encode(&claims, &key_bytes, alg, &headers).map_err(Error::from)?)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyJWTVerifier>()?;
    m.add_function(wrap_pyfunction!(encode, m)?)
}

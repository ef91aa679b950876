//! Python values to the JSON-shaped values the core config reads.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

use crate::issues::{ConfigError, Issues, join};

/// Nesting deeper than this is a config mistake (or a cycle), not a real config.
const MAX_DEPTH: usize = 32;

/// Converts a config object (dicts, lists, strings, numbers, booleans, None), reporting every
/// unsupported value with its key path.
pub fn to_value(obj: &Bound<'_, PyAny>) -> Result<Value, ConfigError> {
    let mut issues = Issues::default();
    let v = walk(obj, "", 0, &mut issues);
    issues.finish(v)
}

fn walk(obj: &Bound<'_, PyAny>, at: &str, depth: usize, issues: &mut Issues) -> Value {
    if depth > MAX_DEPTH {
        issues.push(at, format!("nested more than {MAX_DEPTH} levels deep"));
        return Value::Null;
    }
    if obj.is_none() {
        return Value::Null;
    }
    // bool before int: Python's True is an int too.
    if let Ok(b) = obj.cast::<PyBool>() {
        return Value::Bool(b.is_true());
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        if let Ok(v) = i.extract::<i64>() {
            return Value::from(v);
        }
        if let Ok(v) = i.extract::<u64>() {
            return Value::from(v);
        }
        issues.push(at, "integer out of range");
        return Value::Null;
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let x = f.value();
        return Number::from_f64(x).map_or_else(
            || {
                issues.push(at, format!("expected a finite number, got {x}"));
                Value::Null
            },
            Value::Number,
        );
    }
    if let Ok(s) = obj.cast::<PyString>() {
        if let Ok(s) = s.to_str() {
            return Value::String(s.to_owned());
        }
        issues.push(at, "string is not valid Unicode (lone surrogate)");
        return Value::Null;
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut m = Map::new();
        for (k, v) in d.iter() {
            let Ok(key) = k
                .cast::<PyString>()
                .map_err(|_| ())
                .and_then(|s| s.to_str().map(str::to_owned).map_err(|_| ()))
            else {
                issues.push(at, format!("keys must be strings, got {}", type_name(&k)));
                continue;
            };
            let child = walk(&v, &join(at, &key), depth + 1, issues);
            m.insert(key, child);
        }
        return Value::Object(m);
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        if let Ok(iter) = obj.try_iter() {
            for (i, item) in iter.enumerate() {
                match item {
                    Ok(item) => out.push(walk(&item, &format!("{at}[{i}]"), depth + 1, issues)),
                    Err(e) => issues.push(format!("{at}[{i}]"), e.to_string()),
                }
            }
        }
        return Value::Array(out);
    }
    issues.push(at, format!("unsupported value of type {}", type_name(obj)));
    Value::Null
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

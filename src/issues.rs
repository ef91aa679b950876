//! The config issue collector: every part of the config is checked in one walk, and each problem
//! is reported with its key path (`routes[2].access`) and the bad value, so a user fixes a config
//! in one round instead of one error at a time.

use std::fmt;

use serde_json::{Map, Value};

/// One problem in a config: where (`routes[2].access`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            if self.key.is_empty() {
                "<root>"
            } else {
                &self.key
            },
            self.message
        )
    }
}

/// Every problem found in a config. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub issues: Vec<Issue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        write!(
            f,
            "{n} problem{} in ferrogate config:",
            if n == 1 { "" } else { "s" }
        )?;
        for issue in &self.issues {
            write!(f, "\n  {issue}")?;
        }
        Ok(())
    }
}

impl ConfigError {
    #[must_use]
    pub fn single(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            issues: vec![Issue {
                key: key.into(),
                message: message.into(),
            }],
        }
    }
}

/// Collects problems while a config is walked.
#[derive(Debug, Default)]
pub struct Issues(Vec<Issue>);

impl Issues {
    pub fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Issue {
            key: key.into(),
            message: message.into(),
        });
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many problems were reported so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `Ok(value)` when nothing was reported.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError { issues: self.0 })
        }
    }

    /// Reports keys of `map` that are not in `allowed`.
    pub fn unknown_keys(&mut self, map: &Map<String, Value>, allowed: &[&str], at: &str) {
        for k in map.keys() {
            if !allowed.contains(&k.as_str()) {
                self.push(
                    join(at, k),
                    format!("unknown key (expected one of: {})", allowed.join(", ")),
                );
            }
        }
    }

    /// The value as an object, or a reported problem.
    pub fn object<'v>(&mut self, v: &'v Value, at: &str) -> Option<&'v Map<String, Value>> {
        if let Value::Object(m) = v {
            Some(m)
        } else {
            self.push(at, format!("expected a table/dict, got {}", show(v)));
            None
        }
    }

    pub fn string<'v>(&mut self, v: &'v Value, at: &str) -> Option<&'v str> {
        if let Value::String(s) = v {
            Some(s)
        } else {
            self.push(at, format!("expected a string, got {}", show(v)));
            None
        }
    }

    pub fn boolean(&mut self, v: &Value, at: &str) -> Option<bool> {
        if let Value::Bool(b) = v {
            Some(*b)
        } else {
            self.push(at, format!("expected true or false, got {}", show(v)));
            None
        }
    }

    /// A non-negative number (integer or float), e.g. seconds.
    pub fn non_negative(&mut self, v: &Value, at: &str) -> Option<f64> {
        match v.as_f64() {
            Some(x) if x.is_finite() && x >= 0.0 && !v.is_string() => Some(x),
            _ => {
                self.push(
                    at,
                    format!("expected a non-negative number, got {}", show(v)),
                );
                None
            }
        }
    }

    /// A positive integer that fits `u64`.
    pub fn positive_int(&mut self, v: &Value, at: &str) -> Option<u64> {
        match v.as_u64() {
            Some(x) if x > 0 => Some(x),
            _ => {
                self.push(at, format!("expected a positive integer, got {}", show(v)));
                None
            }
        }
    }

    /// A list of strings.
    pub fn strings<'v>(&mut self, v: &'v Value, at: &str) -> Option<Vec<&'v str>> {
        let Value::Array(items) = v else {
            self.push(at, format!("expected a list of strings, got {}", show(v)));
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.string(item, &format!("{at}[{i}]")) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A list of HTTP methods, each an upper-case token (methods are case-sensitive, RFC 9110
    /// §9.1: a lower-case entry would never match the request it was meant for).
    pub fn methods(&mut self, v: &Value, at: &str) -> Option<Vec<String>> {
        let list = self.strings(v, at)?;
        let mut good = true;
        for (i, s) in list.iter().enumerate() {
            if !crate::http::is_token(s) || s.bytes().any(|b| b.is_ascii_lowercase()) {
                self.push(
                    format!("{at}[{i}]"),
                    format!("not an upper-case HTTP method: {}", show(&Value::from(*s))),
                );
                good = false;
            }
        }
        good.then(|| list.into_iter().map(str::to_owned).collect())
    }

    /// One of a fixed set of strings.
    pub fn one_of<'v>(&mut self, v: &'v Value, choices: &[&str], at: &str) -> Option<&'v str> {
        match v {
            Value::String(s) if choices.contains(&s.as_str()) => Some(s),
            _ => {
                self.push(
                    at,
                    format!("expected one of {}, got {}", choices.join(" | "), show(v)),
                );
                None
            }
        }
    }
}

/// Joins a key path: `join("routes[1]", "access")` is `routes[1].access`.
#[must_use]
pub fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

/// A value as it should appear in an error message: JSON, cut short when long.
#[must_use]
pub fn show(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 80 {
        let mut cut = 77;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

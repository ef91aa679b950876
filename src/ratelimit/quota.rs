//! Quota strings, as Flask-Limiter users write them: `"100/minute"`, `"5 per second"`,
//! `"10/5 minutes; 1000/day"`, `"20/second burst 40"`.
//!
//! Grammar (case-insensitive, blanks allowed around every token):
//!
//! ```text
//! quotas := quota ((";" | ",") quota)*
//! quota  := COUNT ("/" | "per") [N] UNIT ["burst" BURST]
//! UNIT   := second | sec | s | minute | min | m | hour | hr | h | day | d | month | year  (+ "s")
//! ```
//!
//! A month is 30 days and a year 365 days, as in the `limits` library. Anything else is an error
//! that quotes the whole string: a quota is never silently replaced by a default.

use std::fmt;

use super::error::RateLimitError;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// One quota: `count` requests per `period_secs` seconds, with up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub count: u64,
    pub period_secs: u64,
    /// How many requests may arrive back to back on a fresh key. Defaults to `count`.
    pub burst: u64,
}

impl Quota {
    /// `count` per `period_secs`, burst = count.
    pub fn new(count: u64, period_secs: u64) -> Result<Self, RateLimitError> {
        Self::with_burst(count, period_secs, count)
    }

    pub fn with_burst(count: u64, period_secs: u64, burst: u64) -> Result<Self, RateLimitError> {
        let q = Self {
            count,
            period_secs,
            burst,
        };
        q.check().map_err(|reason| RateLimitError::InvalidQuota {
            quota: q.to_string(),
            reason,
        })?;
        Ok(q)
    }

    fn check(&self) -> Result<(), String> {
        if self.count == 0 {
            return Err("the count must be at least 1".into());
        }
        if self.period_secs == 0 {
            return Err("the period must be at least 1 second".into());
        }
        if self.burst == 0 {
            return Err("the burst must be at least 1".into());
        }
        let period = self
            .period_nanos()
            .ok_or_else(|| "the period is too long".to_owned())?;
        if period / self.count == 0 {
            return Err("more than one request per nanosecond is not a rate limit".into());
        }
        if self.tolerance_nanos().is_none() {
            return Err("the burst is too large for the period".into());
        }
        Ok(())
    }

    fn period_nanos(&self) -> Option<u64> {
        self.period_secs.checked_mul(NANOS_PER_SEC)
    }

    /// GCRA emission interval `T` = period / count, in nanoseconds (rounded to nearest; the error
    /// is below one nanosecond per request and bursts stay exact because the tolerance is
    /// `burst * T`).
    #[must_use]
    pub fn emission_nanos(&self) -> u64 {
        let p = u128::from(self.period_nanos().unwrap_or(u64::MAX));
        let c = u128::from(self.count.max(1));
        u64::try_from((p + c / 2) / c).unwrap_or(u64::MAX).max(1)
    }

    /// GCRA delay tolerance `burst * T`: how far ahead of `now` the theoretical arrival time may
    /// run before requests are refused.
    #[must_use]
    pub fn tolerance_nanos(&self) -> Option<u64> {
        self.emission_nanos().checked_mul(self.burst)
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, unit) = match self.period_secs {
            s if s % 86_400 == 0 => (s / 86_400, "day"),
            s if s % 3_600 == 0 => (s / 3_600, "hour"),
            s if s % 60 == 0 => (s / 60, "minute"),
            s => (s, "second"),
        };
        if n == 1 {
            write!(f, "{}/{unit}", self.count)?;
        } else {
            write!(f, "{}/{n} {unit}s", self.count)?;
        }
        if self.burst != self.count {
            write!(f, " burst {}", self.burst)?;
        }
        Ok(())
    }
}

/// Parses one or more quotas separated by `;` or `,`.
pub fn parse_quotas(text: &str) -> Result<Vec<Quota>, RateLimitError> {
    let err = |reason: String| RateLimitError::InvalidQuota {
        quota: text.to_owned(),
        reason,
    };
    if text.trim().is_empty() {
        return Err(err("empty quota (expected e.g. \"100/minute\")".into()));
    }
    let mut out = Vec::new();
    for (i, part) in text.split([';', ',']).enumerate() {
        let q = parse_one(part).map_err(|r| {
            if text.contains([';', ',']) {
                err(format!("quota #{}: {r}", i + 1))
            } else {
                err(r)
            }
        })?;
        out.push(q);
    }
    Ok(out)
}

fn parse_one(part: &str) -> Result<Quota, String> {
    let lower = part.trim().to_ascii_lowercase();
    if lower.is_empty() {
        return Err("empty quota between separators".into());
    }
    let mut rest = lower.as_str();
    let count = take_number(&mut rest).ok_or("expected a count such as \"100\" first")?;
    rest = rest.trim_start();
    if let Some(r) = rest.strip_prefix('/') {
        rest = r;
    } else if let Some(r) = rest.strip_prefix("per") {
        if !r.starts_with(char::is_whitespace) && !r.starts_with(|c: char| c.is_ascii_digit()) {
            return Err("expected \"/\" or \"per\" after the count".into());
        }
        rest = r;
    } else {
        return Err("expected \"/\" or \"per\" after the count".into());
    }
    rest = rest.trim_start();
    let multiple = if rest.starts_with(|c: char| c.is_ascii_digit()) {
        take_number(&mut rest).ok_or("the period multiple is too large")?
    } else {
        1
    };
    rest = rest.trim_start();
    let unit_end = rest
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    let (unit, after) = rest.split_at(unit_end);
    let unit_secs = unit_seconds(unit).ok_or_else(|| {
        if unit.is_empty() {
            "expected a unit (second, minute, hour, day, month, year)".to_owned()
        } else {
            format!(
                "unknown unit {unit:?} (expected second, minute, hour, day, month or year; \
                 the smallest is a second)"
            )
        }
    })?;
    let mut rest = after.trim_start();
    let mut burst = count;
    if let Some(r) = rest.strip_prefix("burst") {
        let mut r = r.trim_start();
        burst = take_number(&mut r).ok_or("expected a number after \"burst\"")?;
        rest = r.trim_start();
    }
    if !rest.is_empty() {
        return Err(format!("unexpected {rest:?} after the quota"));
    }
    if multiple == 0 {
        return Err("the period must be at least 1".into());
    }
    let period_secs = multiple
        .checked_mul(unit_secs)
        .ok_or("the period is too long")?;
    let q = Quota {
        count,
        period_secs,
        burst,
    };
    q.check()?;
    Ok(q)
}

fn take_number(rest: &mut &str) -> Option<u64> {
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if end == 0 {
        return None;
    }
    let n = rest.get(..end)?.parse::<u64>().ok()?;
    *rest = rest.get(end..)?;
    Some(n)
}

fn unit_seconds(unit: &str) -> Option<u64> {
    // Only a word takes a plural "s": `ms` is not "m" pluralised (it would read milliseconds as
    // minutes), and neither is `hs` nor `ds`.
    let singular = unit
        .strip_suffix('s')
        .filter(|u| u.len() > 1)
        .unwrap_or(unit);
    Some(match singular {
        "second" | "sec" | "s" => 1,
        "minute" | "min" | "m" => 60,
        "hour" | "hr" | "h" => 3_600,
        "day" | "d" => 86_400,
        "month" => 30 * 86_400,
        "year" => 365 * 86_400,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Quota {
        let v = parse_quotas(s).unwrap();
        assert_eq!(v.len(), 1, "{s}");
        v[0]
    }

    #[test]
    fn flask_limiter_forms() {
        assert_eq!(one("100/minute"), Quota::new(100, 60).unwrap());
        assert_eq!(one("5 per second"), Quota::new(5, 1).unwrap());
        assert_eq!(one("5 PER Seconds"), Quota::new(5, 1).unwrap());
        assert_eq!(one("10/5 minutes"), Quota::new(10, 300).unwrap());
        assert_eq!(one("10 per 5 minute"), Quota::new(10, 300).unwrap());
        assert_eq!(one("1/day"), Quota::new(1, 86_400).unwrap());
        assert_eq!(one("2/hours"), Quota::new(2, 3_600).unwrap());
        assert_eq!(one("3/month"), Quota::new(3, 30 * 86_400).unwrap());
        assert_eq!(one("3/year"), Quota::new(3, 365 * 86_400).unwrap());
        assert_eq!(one(" 7 / 2 s "), Quota::new(7, 2).unwrap());
        assert_eq!(
            one("20/second burst 40"),
            Quota::with_burst(20, 1, 40).unwrap()
        );
        let many = parse_quotas("10/5 minutes; 1000/day").unwrap();
        assert_eq!(
            many,
            vec![
                Quota::new(10, 300).unwrap(),
                Quota::new(1000, 86_400).unwrap()
            ]
        );
        assert_eq!(parse_quotas("1/second, 2/minute").unwrap().len(), 2);
    }

    #[test]
    fn malformed_quotas_quote_the_string() {
        for bad in [
            "",
            "  ",
            "100",
            "100/",
            "100/fortnight",
            "/minute",
            "-1/minute",
            "0/minute",
            "1/0 minutes",
            "1.5/minute",
            "100 minute",
            "100/minute extra",
            "100/minute;",
            "100/minute burst",
            "100/minute burst 0",
            "99999999999999999999999/second",
            "1/99999999999999999 years",
            "2000000000/second",
            "10 persecond",
            // Not a unit pluralised: milliseconds must never read as minutes.
            "10/ms",
            "10/hs",
            "10/ds",
            "10/millisecond",
        ] {
            let e = parse_quotas(bad).unwrap_err();
            let RateLimitError::InvalidQuota { quota, .. } = &e else {
                panic!("{e:?}")
            };
            assert_eq!(quota, bad);
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn emission_interval_and_display() {
        let q = one("100/minute");
        assert_eq!(q.emission_nanos(), 600_000_000);
        assert_eq!(q.tolerance_nanos(), Some(60_000_000_000));
        assert_eq!(one("3/second").emission_nanos(), 333_333_333);
        assert_eq!(q.to_string(), "100/minute");
        assert_eq!(one("10/5 minutes").to_string(), "10/5 minutes");
        assert_eq!(one("1/90s").to_string(), "1/90 seconds");
        assert_eq!(one("5/second burst 9").to_string(), "5/second burst 9");
    }
}

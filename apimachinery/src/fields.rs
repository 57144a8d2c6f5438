//! Field selectors (apimachinery `pkg/fields`): `f=v`, `f==v`, `f!=v`,
//! comma-separated and ANDed, with `\,` `\=` `\\` escapes in values. Which
//! fields a kind supports is the server's business, not this module's.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldSelectorError {
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    Term { selector: String, term: String },
    #[error("invalid field selector value {value:?}: {reason}")]
    Value { value: String, reason: &'static str },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Equals,
    DoubleEquals,
    NotEquals,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub field: String,
    pub operator: Operator,
    /// Unescaped.
    pub value: String,
}

impl Requirement {
    pub fn matches(&self, have: &str) -> bool {
        (have == self.value) != (self.operator == Operator::NotEquals)
    }
}

/// A parsed field selector; the default selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

impl Selector {
    /// Upstream's ParseSelector: empty terms are skipped, nothing is trimmed.
    pub fn parse(s: &str) -> Result<Selector, FieldSelectorError> {
        let mut requirements = Vec::new();
        for term in split_unescaped(s, ',') {
            if term.is_empty() {
                continue;
            }
            let (field, operator, raw) = split_term(term)
                .ok_or_else(|| FieldSelectorError::Term { selector: s.to_string(), term: term.to_string() })?;
            requirements.push(Requirement { field: field.to_string(), operator, value: unescape(raw)? });
        }
        Ok(Selector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// `field` reads an object's value for a field label; an absent field
    /// reads as the empty string, as upstream's fields.Set.
    pub fn matches<S: AsRef<str>>(&self, mut field: impl FnMut(&str) -> Option<S>) -> bool {
        self.requirements.iter().all(|r| match field(&r.field) {
            Some(v) => r.matches(v.as_ref()),
            None => r.matches(""),
        })
    }

    /// Upstream's RequiresExactMatch: the value an `=`/`==` term pins `field` to.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator != Operator::NotEquals)
            .map(|r| r.value.as_str())
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            let op = match r.operator {
                Operator::Equals => "=",
                Operator::DoubleEquals => "==",
                Operator::NotEquals => "!=",
            };
            write!(f, "{}{}{op}{}", if i > 0 { "," } else { "" }, r.field, escape(&r.value))?;
        }
        Ok(())
    }
}

/// Escapes `\`, `,` and `=` so a value survives a selector string.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn unescape(raw: &str) -> Result<String, FieldSelectorError> {
    let fail = |reason| Err(FieldSelectorError::Value { value: raw.to_string(), reason });
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                _ => return fail("invalid escape sequence"),
            },
            ',' | '=' => return fail("unescaped ',' or '=' in value"),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// The leftmost operator wins; at one position `!=` before `==` before `=`.
fn split_term(term: &str) -> Option<(&str, Operator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (token, op) in [("!=", Operator::NotEquals), ("==", Operator::DoubleEquals), ("=", Operator::Equals)] {
            if let Some(value) = rest.strip_prefix(token) {
                return Some((&term[..i], op, value));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_field(f: &str) -> Option<&'static str> {
        match f {
            "metadata.name" => Some("a"),
            "spec.nodeName" => Some("n1"),
            "status.phase" => Some("Running"),
            _ => None,
        }
    }

    #[test]
    fn operators_and_conjunction() {
        for (s, want) in [
            ("", true),
            ("spec.nodeName=n1", true),
            ("spec.nodeName==n1", true),
            ("spec.nodeName!=n1", false),
            ("spec.nodeName=n1,status.phase!=Succeeded,status.phase!=Failed", true),
            ("status.phase!=Running", false),
            ("spec.nodeName=", false),
            ("spec.schedulerName=", true),
            ("metadata.name=a,", true),
        ] {
            assert_eq!(Selector::parse(s).unwrap().matches(pod_field), want, "{s:?}");
        }
    }

    #[test]
    fn escapes_round_trip() {
        let s = Selector::parse(r"a=x\,y\=z\\").unwrap();
        assert_eq!(s.requirements[0].value, r"x,y=z\");
        assert_eq!(s.to_string(), r"a=x\,y\=z\\");
        assert_eq!(Selector::parse(&s.to_string()).unwrap(), s);
    }

    #[test]
    fn bad_terms() {
        assert!(matches!(Selector::parse("garbage"), Err(FieldSelectorError::Term { .. })));
        assert!(Selector::parse("a=b=c").is_err(), "unescaped = in a value");
        assert!(Selector::parse(r"a=\x").is_err());
    }

    #[test]
    fn leftmost_operator_wins_and_nothing_is_trimmed() {
        let s = Selector::parse("a!=b==c").unwrap_err();
        assert!(matches!(s, FieldSelectorError::Value { .. }));
        let s = Selector::parse("x = y").unwrap();
        assert_eq!((s.requirements[0].field.as_str(), s.requirements[0].value.as_str()), ("x ", " y"));
    }

    #[test]
    fn exact_match() {
        let s = Selector::parse("metadata.namespace=d,metadata.name==a").unwrap();
        assert_eq!(s.requires_exact_match("metadata.name"), Some("a"));
        assert_eq!(Selector::parse("metadata.name!=a").unwrap().requires_exact_match("metadata.name"), None);
    }
}

//! Label selectors (apimachinery `pkg/labels` and `metav1.LabelSelector`):
//! the string syntax `a=b,c!=d,e in (x,y),!f`, the structured selector
//! objects carry, and one matcher behind both.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("unable to parse requirement: {0}")]
    Parse(String),
    #[error("invalid label key {key:?}: {reason}")]
    Key { key: String, reason: String },
    #[error("invalid label value {value:?}: {reason}")]
    Value { value: String, reason: String },
    #[error("{0:?} is not a valid label selector operator")]
    Operator(String),
    #[error("{operator}: {reason}")]
    Values { operator: Operator, reason: &'static str },
}

/// Anything labels can be read from.
pub trait Labels {
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl Labels for serde_json::Map<String, serde_json::Value> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(serde_json::Value::as_str)
    }
}

impl<L: Labels + ?Sized> Labels for &L {
    fn label(&self, key: &str) -> Option<&str> {
        (**self).label(key)
    }
}

/// No labels at all (`metadata.labels` absent) for `None`.
impl<L: Labels> Labels for Option<L> {
    fn label(&self, key: &str) -> Option<&str> {
        self.as_ref().and_then(|l| l.label(key))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

impl Operator {
    /// A `matchExpressions` operator name.
    pub fn from_expression(op: &str) -> Result<Operator, SelectorError> {
        match op {
            "In" => Ok(Operator::In),
            "NotIn" => Ok(Operator::NotIn),
            "Exists" => Ok(Operator::Exists),
            "DoesNotExist" => Ok(Operator::DoesNotExist),
            other => Err(SelectorError::Operator(other.to_string())),
        }
    }

    /// The value-count rules upstream's NewRequirement enforces.
    pub fn check_values(self, values: &[String]) -> Result<(), SelectorError> {
        let fail = |reason| Err(SelectorError::Values { operator: self, reason });
        match self {
            Operator::In | Operator::NotIn if values.is_empty() => fail("for 'in', 'notin' operators, values set can't be empty"),
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals if values.len() != 1 => {
                fail("exact-match compatibility requires one single value")
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                fail("values set must be empty for exists and does not exist")
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 || values[0].parse::<i64>().is_err() {
                    fail("for 'Gt', 'Lt' operators, exactly one integer value is required")
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Does a label (or its absence) satisfy `key <op> values`?
    pub fn matches(self, have: Option<&str>, values: &[String]) -> bool {
        let listed = |v: &str| values.iter().any(|x| x == v);
        match self {
            Operator::Equals | Operator::DoubleEquals | Operator::In => have.is_some_and(listed),
            Operator::NotEquals | Operator::NotIn => !have.is_some_and(listed),
            Operator::Exists => have.is_some(),
            Operator::DoesNotExist => have.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(h), Some(bound)) = (have.and_then(|h| h.parse::<i64>().ok()), values.first().and_then(|v| v.parse::<i64>().ok())) else {
                    return false;
                };
                if self == Operator::GreaterThan {
                    h > bound
                } else {
                    h < bound
                }
            }
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        })
    }
}

/// One validated `key <op> values` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    /// Sorted and deduplicated, as upstream's string set.
    pub values: Vec<String>,
}

impl Requirement {
    /// Upstream's NewRequirement: key, values and their count are checked.
    pub fn new(key: &str, operator: Operator, mut values: Vec<String>) -> Result<Requirement, SelectorError> {
        validate_key(key)?;
        operator.check_values(&values)?;
        for v in &values {
            validate_value(v)?;
        }
        values.sort();
        values.dedup();
        Ok(Requirement { key: key.to_string(), operator, values })
    }

    pub fn matches(&self, labels: &impl Labels) -> bool {
        self.operator.matches(labels.label(&self.key), &self.values)
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (k, vs) = (&self.key, self.values.join(","));
        match self.operator {
            Operator::Exists => write!(f, "{k}"),
            Operator::DoesNotExist => write!(f, "!{k}"),
            Operator::In | Operator::NotIn => write!(f, "{k} {} ({vs})", self.operator),
            Operator::GreaterThan => write!(f, "{k}>{vs}"),
            Operator::LessThan => write!(f, "{k}<{vs}"),
            op => write!(f, "{k}{op}{vs}"),
        }
    }
}

/// A parsed selector: its requirements ANDed. The default selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl Selector {
    pub fn everything() -> Selector {
        Selector::default()
    }

    /// What a missing (`null`) selector selects.
    pub fn nothing() -> Selector {
        Selector { requirements: vec![], nothing: true }
    }

    /// Parses upstream's selector syntax; an empty string selects everything.
    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        let mut requirements = Parser { tokens: lex(s), pos: 0 }.parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector { requirements, nothing: false })
    }

    /// Upstream's LabelSelectorAsSelector for a present selector.
    pub fn from_label_selector(sel: &LabelSelector) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            requirements.push(Requirement::new(k, Operator::Equals, vec![v.clone()])?);
        }
        for e in sel.match_expressions.iter().flatten() {
            let op = Operator::from_expression(&e.operator)?;
            requirements.push(Requirement::new(&e.key, op, e.values.clone().unwrap_or_default())?);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector { requirements, nothing: false })
    }

    /// Upstream's SelectorFromSet: every pair must match.
    pub fn from_set(set: &BTreeMap<String, String>) -> Selector {
        let requirements = set
            .iter()
            .map(|(k, v)| Requirement { key: k.clone(), operator: Operator::Equals, values: vec![v.clone()] })
            .collect();
        Selector { requirements, nothing: false }
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Selects everything.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &impl Labels) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Upstream's LabelSelectorAsSelector: `None` selects nothing, an empty
/// selector everything.
pub fn label_selector_as_selector(sel: Option<&LabelSelector>) -> Result<Selector, SelectorError> {
    match sel {
        None => Ok(Selector::nothing()),
        Some(sel) => Selector::from_label_selector(sel),
    }
}

/// Matches a `metav1.LabelSelector` without building a [`Selector`], for hot
/// loops. Operators and value counts are checked; key syntax is not (the
/// apiserver validated the object holding the selector).
pub fn label_selector_matches(sel: &LabelSelector, labels: &impl Labels) -> Result<bool, SelectorError> {
    let mut ok = sel.match_labels.iter().flatten().all(|(k, v)| labels.label(k) == Some(v.as_str()));
    for e in sel.match_expressions.iter().flatten() {
        let op = Operator::from_expression(&e.operator)?;
        let values = e.values.as_deref().unwrap_or(&[]);
        op.check_values(values)?;
        ok = ok && op.matches(labels.label(&e.key), values);
    }
    Ok(ok)
}

/// Upstream's `SelectorFromSet(set).Matches(labels)`: nodeSelector and
/// Service selectors. An empty set matches everything.
pub fn set_matches(set: &BTreeMap<String, String>, labels: &impl Labels) -> bool {
    set.iter().all(|(k, v)| labels.label(k) == Some(v.as_str()))
}

/// A qualified name: optional DNS-subdomain prefix and `/`, then a name of
/// at most 63 alphanumerics, `-`, `_`, `.`, alphanumeric at both ends.
pub fn validate_key(key: &str) -> Result<(), SelectorError> {
    let err = |reason: &str| Err(SelectorError::Key { key: key.to_string(), reason: reason.to_string() });
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            return err("prefix part must be non-empty");
        }
        if p.len() > 253 || !is_dns_subdomain(p) {
            return err("prefix part must be a lowercase RFC 1123 subdomain");
        }
    }
    if name.is_empty() {
        return err("name part must be non-empty");
    }
    if name.len() > 63 {
        return err("name part must be no more than 63 characters");
    }
    if !is_name(name) {
        return err("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character");
    }
    Ok(())
}

/// Empty, or a name part of at most 63 characters.
pub fn validate_value(value: &str) -> Result<(), SelectorError> {
    if value.is_empty() {
        return Ok(());
    }
    let reason = if value.len() > 63 {
        "must be no more than 63 characters"
    } else if !is_name(value) {
        "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
    } else {
        return Ok(());
    };
    Err(SelectorError::Value { value: value.to_string(), reason: reason.to_string() })
}

fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

fn is_dns_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && label.len() <= 63
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Bang,
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Gt,
    Lt,
    Comma,
    Open,
    Close,
}

impl Token {
    /// In a value position the keywords are plain words.
    fn as_value(&self) -> Option<String> {
        match self {
            Token::Ident(s) => Some(s.clone()),
            Token::In => Some("in".into()),
            Token::NotIn => Some("notin".into()),
            _ => None,
        }
    }
}

fn lex(s: &str) -> Vec<Token> {
    let special = |c: char| "=!(),<>".contains(c);
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next_is_eq = chars.peek().is_some_and(|(_, n)| *n == '=');
        let tok = match c {
            ' ' | '\t' | '\r' | '\n' => continue,
            '!' if next_is_eq => {
                chars.next();
                Token::NotEquals
            }
            '!' => Token::Bang,
            '=' if next_is_eq => {
                chars.next();
                Token::DoubleEquals
            }
            '=' => Token::Equals,
            '(' => Token::Open,
            ')' => Token::Close,
            ',' => Token::Comma,
            '>' => Token::Gt,
            '<' => Token::Lt,
            _ => {
                let mut end = i + c.len_utf8();
                while let Some((j, n)) = chars.peek().copied() {
                    if n.is_whitespace() || special(n) {
                        break;
                    }
                    end = j + n.len_utf8();
                    chars.next();
                }
                match &s[i..end] {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    word => Token::Ident(word.to_string()),
                }
            }
        };
        out.push(tok);
    }
    out
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn fail<T>(&self, what: &str) -> Result<T, SelectorError> {
        let found = self.tokens.get(self.pos.saturating_sub(1)).map(|t| format!("{t:?}")).unwrap_or_default();
        Err(SelectorError::Parse(format!("found {found}, expected: {what}")))
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut out = Vec::new();
        if self.peek().is_none() {
            return Ok(out);
        }
        loop {
            out.push(self.requirement()?);
            match self.next() {
                None => return Ok(out),
                Some(Token::Comma) if self.peek().is_some() => continue,
                Some(Token::Comma) => return self.fail("identifier after ','"),
                Some(_) => return self.fail("',' or 'end of string'"),
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let key = match self.next() {
            Some(Token::Bang) => match self.next() {
                Some(Token::Ident(k)) => return Requirement::new(&k, Operator::DoesNotExist, vec![]),
                _ => return self.fail("identifier after '!'"),
            },
            Some(Token::Ident(k)) => k,
            _ => return self.fail("!, identifier, or 'end of string'"),
        };
        if matches!(self.peek(), None | Some(Token::Comma)) {
            return Requirement::new(&key, Operator::Exists, vec![]);
        }
        let op = match self.next() {
            Some(Token::Equals) => Operator::Equals,
            Some(Token::DoubleEquals) => Operator::DoubleEquals,
            Some(Token::NotEquals) => Operator::NotEquals,
            Some(Token::In) => Operator::In,
            Some(Token::NotIn) => Operator::NotIn,
            Some(Token::Gt) => Operator::GreaterThan,
            Some(Token::Lt) => Operator::LessThan,
            _ => return self.fail("=, !=, ==, in, notin, >, <"),
        };
        let values = if matches!(op, Operator::In | Operator::NotIn) {
            self.set_values()?
        } else {
            match self.peek() {
                None | Some(Token::Comma) => vec![String::new()],
                Some(t) => match t.as_value() {
                    Some(v) => {
                        self.pos += 1;
                        vec![v]
                    }
                    None => {
                        self.pos += 1;
                        return self.fail("identifier as value");
                    }
                },
            }
        };
        Requirement::new(&key, op, values)
    }

    /// `(a,b)`; an empty slot between commas is the empty value, as upstream.
    fn set_values(&mut self) -> Result<Vec<String>, SelectorError> {
        if self.next() != Some(Token::Open) {
            return self.fail("'('");
        }
        let mut values = Vec::new();
        let mut expect_value = true;
        loop {
            match self.next() {
                Some(Token::Close) => {
                    // `(a,)`: the slot after a trailing comma is the empty value.
                    if expect_value && !values.is_empty() {
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                Some(Token::Comma) => {
                    if expect_value {
                        values.push(String::new());
                    }
                    expect_value = true;
                }
                Some(t) if expect_value => match t.as_value() {
                    Some(v) => {
                        values.push(v);
                        expect_value = false;
                    }
                    None => return self.fail("identifier or ')'"),
                },
                _ => return self.fail("',' or ')'"),
            }
        }
    }
}

#[cfg(test)]
#[path = "labels_tests.rs"]
mod tests;

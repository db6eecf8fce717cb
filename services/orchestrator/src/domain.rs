//! Domain values the API validates and the store keeps: labels, selectors,
//! consumer states and roles. Validation lives here, once, with messages an
//! operator can act on.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Most labels a consumer may carry.
pub const MAX_LABELS: usize = 32;
/// Longest label key or value.
pub const MAX_LABEL_LEN: usize = 63;

/// A validation failure, naming the field and the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct Invalid {
    /// The field, as the API names it.
    pub field: String,
    /// What the value must be.
    pub rule: String,
}

impl Invalid {
    /// A failure of `field` against `rule`.
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self { field: field.into(), rule: rule.into() }
    }
}

fn label_part_ok(s: &str) -> bool {
    let first_ok = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let all_ok = s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    first_ok && all_ok && s.len() <= MAX_LABEL_LEN
}

const LABEL_RULE: &str =
    "1 to 63 characters of letters, digits, '-', '_', '.', '/', starting with a letter or digit";

/// A consumer's labels: a small map of validated keys to validated values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    /// Validates a map of labels.
    pub fn new(map: BTreeMap<String, String>) -> Result<Self, Invalid> {
        if map.len() > MAX_LABELS {
            return Err(Invalid::new("labels", format!("at most {MAX_LABELS} labels")));
        }
        for (k, v) in &map {
            if !label_part_ok(k) {
                return Err(Invalid::new(
                    format!("labels.{k}"),
                    format!("key must be {LABEL_RULE}"),
                ));
            }
            if !label_part_ok(v) {
                return Err(Invalid::new(
                    format!("labels.{k}"),
                    format!("value must be {LABEL_RULE}"),
                ));
            }
        }
        Ok(Self(map))
    }

    /// The labels in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    /// Canonical JSON (keys sorted), as stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Parses stored JSON.
    pub fn from_json(text: &str) -> Result<Self, Invalid> {
        let map = serde_json::from_str(text)
            .map_err(|_| Invalid::new("labels", "a JSON object of strings"))?;
        Self::new(map)
    }

    /// Whether every requirement of `selector` holds.
    pub fn matches(&self, selector: &Selector) -> bool {
        selector.0.iter().all(|(k, v)| self.0.get(k) == Some(v))
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(d)?;
        Labels::new(map).map_err(serde::de::Error::custom)
    }
}

/// A label selector: `key=value` pairs joined by commas, all of which must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector(BTreeMap<String, String>);

impl Selector {
    /// The required pairs.
    pub fn pairs(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for Selector {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Invalid> {
        let mut map = BTreeMap::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let Some((k, v)) = term.split_once('=') else {
                return Err(Invalid::new("selector", format!("'{term}' is not key=value")));
            };
            let (k, v) = (k.trim(), v.trim());
            if !label_part_ok(k) || !label_part_ok(v) {
                return Err(Invalid::new(
                    "selector",
                    format!("'{term}': keys and values must be {LABEL_RULE}"),
                ));
            }
            if map.insert(k.to_owned(), v.to_owned()).is_some() {
                return Err(Invalid::new("selector", format!("'{k}' appears twice")));
            }
        }
        if map.len() > MAX_LABELS {
            return Err(Invalid::new("selector", format!("at most {MAX_LABELS} terms")));
        }
        Ok(Self(map))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let terms: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        f.write_str(&terms.join(","))
    }
}

/// Where a consumer is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerState {
    /// Registered; its agent has not enrolled yet.
    PendingEnrollment,
    /// Enrolled: holds a PSK.
    Enrolled,
    /// Revoked: never served again.
    Revoked,
}

impl ConsumerState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerState::PendingEnrollment => "pending_enrollment",
            ConsumerState::Enrolled => "enrolled",
            ConsumerState::Revoked => "revoked",
        }
    }

    /// Parses [`ConsumerState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::PendingEnrollment, Self::Enrolled, Self::Revoked]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// What an API token may do. Ordered: each role may do what the ones below it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read everything except secrets.
    Viewer,
    /// Register consumers, issue enrollment tokens, run campaigns.
    Operator,
    /// Manage API tokens and revoke consumers.
    Admin,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses [`Role::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Viewer, Self::Operator, Self::Admin].into_iter().find(|x| x.as_str() == s)
    }
}

/// Validates a consumer or token name: 1 to 128 printable characters, no control
/// characters, no surrounding whitespace.
pub fn validate_name(field: &str, name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.trim() == name
        && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(field, "1 to 128 characters, no control characters or surrounding spaces"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_validated_with_a_named_field() {
        let ok: BTreeMap<_, _> = [("env".into(), "prod".into())].into();
        assert!(Labels::new(ok).is_ok());
        let bad: BTreeMap<_, _> = [("env".into(), "pr od".into())].into();
        assert_eq!(Labels::new(bad).unwrap_err().field, "labels.env");
        let empty_key: BTreeMap<_, _> = [("".into(), "x".into())].into();
        assert!(Labels::new(empty_key).is_err());
    }

    #[test]
    fn selectors_parse_match_and_reject_nonsense() {
        let s: Selector = "env=prod, region=eu".parse().unwrap();
        assert_eq!(s.to_string(), "env=prod,region=eu");
        let labels = Labels::from_json(r#"{"env":"prod","region":"eu","x":"y"}"#).unwrap();
        assert!(labels.matches(&s));
        assert!(!Labels::from_json(r#"{"env":"prod"}"#).unwrap().matches(&s));
        assert!("env".parse::<Selector>().is_err());
        assert!("env=a,env=b".parse::<Selector>().is_err());
        assert!("".parse::<Selector>().unwrap().is_empty());
    }

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
        assert_eq!(Role::parse("operator"), Some(Role::Operator));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn names_refuse_control_characters_and_padding() {
        assert!(validate_name("name", "web-01.example").is_ok());
        assert!(validate_name("name", " web").is_err());
        assert!(validate_name("name", "a\nb").is_err());
        assert!(validate_name("name", "").is_err());
    }
}

//! Escape campaigns: what an administrator prepares, arms and fires.
//!
//! A campaign is created as a draft (an escape plan), reviewed with a preview of
//! exactly whom it targets, armed (its ML-DSA-65 manifest is signed then, once for
//! the whole campaign), and fired in one call. Running campaigns may be paused,
//! resumed or cancelled. Delivery itself belongs to the campaign engine.

use pqescape_message::freshness::MAX_VALIDITY_SECS;
use pqescape_message::message::{MAX_DIRECTIVES_LEN, MAX_SELECTOR_LEN};
use pqescape_message::types::Suite;
use serde::{Deserialize, Serialize};

use crate::domain::{Invalid, Selector, validate_name};

/// Most waves a campaign may have.
pub const MAX_WAVES: usize = 10;
/// Largest in-flight cap.
pub const MAX_IN_FLIGHT: u32 = 1_000_000;

/// Where a campaign is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    /// Prepared, editable, not yet signed: an escape plan.
    Draft,
    /// Manifest signed; ready to fire in one call.
    Armed,
    /// Escapes are being delivered.
    Running,
    /// Delivery held (by an operator, or by the failure threshold).
    Paused,
    /// Every target reached an end state.
    Completed,
    /// Stopped for good by an operator.
    Cancelled,
}

impl CampaignState {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Armed => "armed",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses [`CampaignState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        use CampaignState::*;
        [Draft, Armed, Running, Paused, Completed, Cancelled].into_iter().find(|x| x.as_str() == s)
    }
}

/// An operator's transition request and the states it may start from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Draft to armed (signs the manifest).
    Arm,
    /// Armed to running.
    Fire,
    /// Running to paused.
    Pause,
    /// Paused to running.
    Resume,
    /// Anything not finished to cancelled.
    Cancel,
}

impl Transition {
    /// States the transition may start from, and the state it leads to.
    pub fn rule(self) -> (&'static [CampaignState], CampaignState) {
        use CampaignState::*;
        match self {
            Transition::Arm => (&[Draft], Armed),
            Transition::Fire => (&[Armed], Running),
            Transition::Pause => (&[Running], Paused),
            Transition::Resume => (&[Paused], Running),
            Transition::Cancel => (&[Draft, Armed, Running, Paused], Cancelled),
        }
    }

    /// Audit action name.
    pub fn action(self) -> &'static str {
        match self {
            Transition::Arm => "campaign.arm",
            Transition::Fire => "campaign.fire",
            Transition::Pause => "campaign.pause",
            Transition::Resume => "campaign.resume",
            Transition::Cancel => "campaign.cancel",
        }
    }
}

/// A campaign request as the API receives it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignRequest {
    /// Operator's name for it.
    pub name: String,
    /// Label selector of the targets (`key=value,...`; empty selects every consumer).
    #[serde(default)]
    pub selector: String,
    /// Suite name to escape to.
    pub target_suite: String,
    /// Cumulative percentages of the targets per wave; the first is the canary.
    #[serde(default = "default_waves")]
    pub waves: Vec<u8>,
    /// Most consumers between escape sent and an end state at once.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: u32,
    /// Percentage of failed targets (of those attempted) that pauses the campaign.
    #[serde(default = "default_threshold")]
    pub failure_threshold_percent: u8,
    /// Unix seconds; escapes are void after it.
    pub deadline: i64,
    /// Exercise every step without migrating anyone.
    #[serde(default)]
    pub drill: bool,
    /// Sign every handshake response with ML-DSA-65 (about 1.5 ms each).
    #[serde(default)]
    pub sign_handshakes: bool,
    /// Instructions for the agents' hooks (at most 512 bytes).
    #[serde(default)]
    pub directives: String,
}

fn default_waves() -> Vec<u8> {
    vec![100]
}
fn default_in_flight() -> u32 {
    1000
}
fn default_threshold() -> u8 {
    5
}

/// A validated campaign definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CampaignSpec {
    /// Name.
    pub name: String,
    /// Selector (canonical form).
    #[serde(serialize_with = "as_string")]
    pub selector: Selector,
    /// Target suite.
    #[serde(serialize_with = "suite_name")]
    pub target_suite: Suite,
    /// Cumulative wave percentages.
    pub waves: Vec<u8>,
    /// In-flight cap.
    pub max_in_flight: u32,
    /// Failure threshold, percent.
    pub failure_threshold_percent: u8,
    /// Deadline, Unix seconds.
    pub deadline: i64,
    /// Drill.
    pub drill: bool,
    /// Signed handshakes.
    pub sign_handshakes: bool,
    /// Directives for hooks.
    pub directives: String,
}

fn as_string<S: serde::Serializer>(s: &Selector, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(&s.to_string())
}

fn suite_name<S: serde::Serializer>(s: &Suite, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.name())
}

impl CampaignRequest {
    /// Validates every field at time `now`, reporting all failures at once.
    pub fn validate(self, now: i64) -> Result<CampaignSpec, Vec<Invalid>> {
        let mut errors = Vec::new();
        if let Err(e) = validate_name("name", &self.name) {
            errors.push(e);
        }
        let selector: Selector =
            self.selector.parse().map_err(|e| errors.push(e)).unwrap_or_default();
        if selector.to_string().len() > MAX_SELECTOR_LEN {
            errors.push(Invalid::new("selector", format!("at most {MAX_SELECTOR_LEN} bytes")));
        }
        let suite = match Suite::from_name(&self.target_suite) {
            Some(s) if s.is_post_quantum() => s,
            _ => {
                errors.push(Invalid::new("target_suite", "x25519-mlkem768 or x25519-mlkem1024"));
                Suite::X25519MlKem768
            }
        };
        check_waves(&self.waves, &mut errors);
        if !(1..=MAX_IN_FLIGHT).contains(&self.max_in_flight) {
            errors.push(Invalid::new("max_in_flight", format!("between 1 and {MAX_IN_FLIGHT}")));
        }
        if self.failure_threshold_percent > 100 {
            errors.push(Invalid::new("failure_threshold_percent", "between 0 and 100"));
        }
        let latest = now.saturating_add(i64::try_from(MAX_VALIDITY_SECS).unwrap_or(i64::MAX));
        if self.deadline <= now.saturating_add(60) || self.deadline > latest {
            errors.push(Invalid::new(
                "deadline",
                "Unix seconds, at least a minute and at most 90 days ahead",
            ));
        }
        if self.directives.len() > MAX_DIRECTIVES_LEN {
            errors.push(Invalid::new("directives", format!("at most {MAX_DIRECTIVES_LEN} bytes")));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(CampaignSpec {
            name: self.name,
            selector,
            target_suite: suite,
            waves: self.waves,
            max_in_flight: self.max_in_flight,
            failure_threshold_percent: self.failure_threshold_percent,
            deadline: self.deadline,
            drill: self.drill,
            sign_handshakes: self.sign_handshakes,
            directives: self.directives,
        })
    }
}

fn check_waves(waves: &[u8], errors: &mut Vec<Invalid>) {
    let rising = waves.windows(2).all(|w| matches!(w, [a, b] if a < b));
    let ok = !waves.is_empty()
        && waves.len() <= MAX_WAVES
        && rising
        && waves.first().is_some_and(|&w| w >= 1)
        && waves.last() == Some(&100);
    if !ok {
        let rule = format!(
            "1 to {MAX_WAVES} rising cumulative percentages ending at 100, e.g. [1, 10, 100]"
        );
        errors.push(Invalid::new("waves", rule));
    }
}

/// A stored campaign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Campaign {
    /// UUID.
    pub id: String,
    /// The definition.
    #[serde(flatten)]
    pub spec: CampaignSpec,
    /// State.
    pub state: CampaignState,
    /// SHA-256 of the signed manifest, hex, once armed.
    pub manifest_digest: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// When armed.
    pub armed_at: Option<i64>,
    /// When first fired.
    pub fired_at: Option<i64>,
    /// When completed or cancelled.
    pub finished_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> CampaignRequest {
        serde_json::from_value(serde_json::json!({
            "name": "q-day", "selector": "env=prod", "target_suite": "x25519-mlkem768",
            "deadline": 10_000, "waves": [1, 10, 100]
        }))
        .unwrap()
    }

    #[test]
    fn a_sound_request_validates_with_defaults() {
        let spec = request().validate(1_000).unwrap();
        assert_eq!((spec.max_in_flight, spec.failure_threshold_percent), (1000, 5));
        assert_eq!(spec.selector.to_string(), "env=prod");
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let bad = CampaignRequest {
            name: String::new(),
            target_suite: "classical".into(),
            waves: vec![50, 10],
            max_in_flight: 0,
            failure_threshold_percent: 101,
            deadline: 1_001,
            directives: "x".repeat(513),
            ..request()
        };
        let fields: Vec<_> =
            bad.validate(1_000).unwrap_err().into_iter().map(|e| e.field).collect();
        let expected = [
            "name",
            "target_suite",
            "waves",
            "max_in_flight",
            "failure_threshold_percent",
            "deadline",
            "directives",
        ];
        assert_eq!(fields, expected);
    }

    #[test]
    fn transitions_start_only_from_their_states() {
        assert_eq!(Transition::Fire.rule(), (&[CampaignState::Armed][..], CampaignState::Running));
        assert!(!Transition::Cancel.rule().0.contains(&CampaignState::Completed));
    }
}

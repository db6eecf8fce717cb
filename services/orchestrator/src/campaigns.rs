//! The administrator's campaign operations: prepare, preview, arm, fire, steer.

use pqescape_message::campaign::{ManifestOrder, sign_manifest};
use pqescape_message::types::CampaignId;
use serde::Serialize;
use serde_json::json;

use crate::Orchestrator;
use crate::admin::{AdminError, Caller};
use crate::campaign::{Campaign, CampaignRequest, CampaignState, Transition};
use crate::clock::now;
use crate::domain::{ConsumerState, Role, Selector};
use crate::store::{Consumer, ConsumerQuery, Page};

/// A campaign's progress at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Campaign id.
    pub campaign: String,
    /// Campaign state.
    pub state: CampaignState,
    /// The open wave (0 is the canary).
    pub current_wave: u32,
    /// Deliveries in all.
    pub total: u64,
    /// Deliveries by state, every state listed.
    pub deliveries: std::collections::BTreeMap<String, u64>,
}

/// Consumers shown in a preview.
pub const PREVIEW_SAMPLE: u32 = 20;

/// Who a campaign would target, before anything is sent.
#[derive(Clone, Debug, Serialize)]
pub struct Preview {
    /// How many enrolled consumers the selector picks that are not yet on the suite.
    pub targets: u64,
    /// The first of them, by id.
    pub sample: Vec<Consumer>,
    /// How many of the first wave (the canary) would receive the escape.
    pub first_wave: u64,
}

fn targets_query(
    selector: &Selector,
    suite: pqescape_message::types::Suite,
    limit: u32,
) -> ConsumerQuery {
    ConsumerQuery {
        selector: selector.clone(),
        state: Some(ConsumerState::Enrolled),
        exclude_suite: Some(suite.name().to_owned()),
        limit,
        ..ConsumerQuery::default()
    }
}

/// Size of a cumulative wave: at least one consumer when there are any targets.
pub fn wave_size(targets: u64, percent: u8) -> u64 {
    let size = (targets * u64::from(percent)).div_ceil(100);
    size.min(targets)
}

impl Orchestrator {
    /// Stores a campaign as a draft (an escape plan).
    pub async fn create_campaign(
        &self,
        caller: &Caller,
        req: CampaignRequest,
    ) -> Result<Campaign, AdminError> {
        caller.require(Role::Operator)?;
        let at = now();
        let spec = req.validate(at).map_err(AdminError::Invalid)?;
        let campaign = Campaign {
            id: uuid::Uuid::new_v4().to_string(),
            spec,
            state: CampaignState::Draft,
            manifest_digest: None,
            created_by: caller.name.clone(),
            created_at: at,
            updated_at: at,
            armed_at: None,
            fired_at: None,
            finished_at: None,
        };
        self.store.insert_campaign(&campaign).await?;
        self.record_change(
            caller,
            "campaign.create",
            &campaign.id,
            json!({ "spec": campaign.spec }),
        )
        .await?;
        Ok(campaign)
    }

    /// One campaign.
    pub async fn campaign(&self, caller: &Caller, id: &str) -> Result<Campaign, AdminError> {
        caller.require(Role::Viewer)?;
        self.store.campaign(id).await?.ok_or(AdminError::NotFound("campaign"))
    }

    /// A page of campaigns.
    pub async fn list_campaigns(
        &self,
        caller: &Caller,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Campaign>, AdminError> {
        caller.require(Role::Viewer)?;
        Ok(self.store.list_campaigns(after, limit).await?)
    }

    /// Who a selector and suite would target now.
    pub async fn preview(
        &self,
        caller: &Caller,
        selector: &Selector,
        suite: pqescape_message::types::Suite,
        first_wave_percent: u8,
    ) -> Result<Preview, AdminError> {
        caller.require(Role::Viewer)?;
        let targets = self.store.count_consumers(&targets_query(selector, suite, 0)).await?;
        let sample =
            self.store.list_consumers(&targets_query(selector, suite, PREVIEW_SAMPLE)).await?.items;
        Ok(Preview { targets, sample, first_wave: wave_size(targets, first_wave_percent) })
    }

    /// Who a stored campaign would target now.
    pub async fn campaign_preview(&self, caller: &Caller, id: &str) -> Result<Preview, AdminError> {
        let c = self.campaign(caller, id).await?;
        let first = c.spec.waves.first().copied().unwrap_or(100);
        self.preview(caller, &c.spec.selector, c.spec.target_suite, first).await
    }

    /// Applies an operator's transition. Arming signs the manifest; firing requires
    /// `confirm` to repeat the campaign id.
    pub async fn transition(
        &self,
        caller: &Caller,
        id: &str,
        t: Transition,
        confirm: Option<&str>,
    ) -> Result<Campaign, AdminError> {
        caller.require(Role::Operator)?;
        let current = self.campaign(caller, id).await?;
        if t == Transition::Fire && confirm != Some(id) {
            let rule = "must repeat the campaign id to fire it";
            return Err(crate::domain::Invalid::new("confirm", rule).into());
        }
        let manifest = match t {
            Transition::Arm => Some(self.sign_campaign(&current)?),
            _ => None,
        };
        let (from, to) = t.rule();
        // The outbox is filled before the campaign runs: a sweep that saw it running
        // with no delivery yet would complete it at once. Deliveries of a campaign
        // that is not running are never sent, and filling is idempotent, so a fire
        // that fails or is repeated after a crash leaves nothing wrong behind.
        let deliveries = match t {
            Transition::Fire if from.contains(&current.state) => {
                Some(self.materialize(&current).await?)
            }
            _ => None,
        };
        // The change and its audit entry are stored in one transaction.
        let digest = match &manifest {
            Some(m) => Some(hex::encode(pqescape_message::campaign::manifest_digest(m))),
            None => current.manifest_digest.clone(),
        };
        let detail = json!({
            "from": current.state,
            "to": to,
            "manifest_digest": digest,
            "deliveries": deliveries,
        });
        let at = now();
        let entry = Self::audit_entry(caller, t.action(), id, &detail, at);
        let updated = self
            .store
            .transition_campaign(id, from, to, at, manifest.as_deref(), Some(&entry))
            .await?;
        let updated = updated.ok_or_else(|| {
            AdminError::Conflict(format!(
                "campaign is {}; cannot {}",
                current.state.as_str(),
                t.action()
            ))
        })?;
        if updated.state == CampaignState::Running {
            self.wake.notify_one();
        }
        Ok(updated)
    }

    fn sign_campaign(&self, c: &Campaign) -> Result<Vec<u8>, AdminError> {
        let uuid = uuid::Uuid::parse_str(&c.id).map_err(|e| AdminError::Internal(e.to_string()))?;
        let at = now();
        let order = ManifestOrder {
            campaign: CampaignId(*uuid.as_bytes()),
            suite: c.spec.target_suite,
            drill: c.spec.drill,
            issued_at: u64::try_from(at).unwrap_or(0),
            not_after: u64::try_from(c.spec.deadline).unwrap_or(0),
            selector: &c.spec.selector.to_string(),
        };
        sign_manifest(&order, &self.signer).map_err(|_| {
            AdminError::Conflict(
                "the campaign's deadline has passed or is too far away; create a new one".into(),
            )
        })
    }

    /// A campaign's progress: its state, open wave and deliveries by state.
    pub async fn progress(&self, caller: &Caller, id: &str) -> Result<Progress, AdminError> {
        let campaign = self.campaign(caller, id).await?;
        let counts = self.store.delivery_counts(id).await?;
        let deliveries = crate::delivery::DeliveryState::ALL
            .into_iter()
            .map(|s| {
                (s.as_str().to_owned(), counts.iter().find(|(c, _)| *c == s).map_or(0, |(_, n)| *n))
            })
            .collect();
        let total = counts.iter().map(|(_, n)| n).sum();
        let current_wave = self.store.current_wave(id).await?;
        Ok(Progress {
            campaign: campaign.id,
            state: campaign.state,
            current_wave,
            total,
            deliveries,
        })
    }

    /// A campaign's signed manifest, once armed.
    pub async fn campaign_manifest(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Vec<u8>, AdminError> {
        caller.require(Role::Viewer)?;
        self.store.campaign_manifest(id).await?.ok_or(AdminError::NotFound("campaign manifest"))
    }
}

#[cfg(test)]
mod tests {
    use super::wave_size;

    #[test]
    fn waves_round_up_and_never_exceed_the_fleet() {
        assert_eq!(wave_size(1000, 1), 10);
        assert_eq!(wave_size(50, 1), 1);
        assert_eq!(wave_size(0, 1), 0);
        assert_eq!(wave_size(7, 100), 7);
    }
}

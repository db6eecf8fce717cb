//! The orchestrator's core object: the store, the master key and the signing key,
//! checked against each other at start.

use std::sync::Arc;

use pqescape_message::sign::OrchestratorSigningKey;
use serde_json::json;

use crate::clock::now;
use crate::domain::Role;
use crate::secrets::{MasterKey, Purpose};
use crate::store::{NewAuditEntry, Store, StoreError, StoredSigningKey};

/// Limits an operator may tune.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Enrollment token lifetime when none is asked for.
    pub default_token_ttl_secs: u64,
    /// Longest enrollment token lifetime.
    pub max_token_ttl_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { default_token_ttl_secs: 24 * 3600, max_token_ttl_secs: 30 * 24 * 3600 }
    }
}

/// Why the orchestrator refused to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The master key does not open what this database holds.
    #[error("the master key does not match this database (it was set up with another key)")]
    WrongMasterKey,
    /// The stored signing key does not match its recorded public key.
    #[error("the stored signing key is inconsistent with its public key")]
    SigningKeyMismatch,
}

const KEY_CHECK: &[u8] = b"pqescape master key check";

/// The service provider: everything the APIs and the agent gateway act through.
pub struct Orchestrator {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) master: MasterKey,
    pub(crate) signer: OrchestratorSigningKey,
    pub(crate) limits: Limits,
    pub(crate) connections: crate::connections::Connections,
    /// Wakes the campaign engine before its next tick (a campaign just started).
    pub(crate) wake: tokio::sync::Notify,
    /// Whether each campaign signs its handshake responses, read once: a campaign's
    /// spec never changes after creation, and every acknowledgement asks.
    pub(crate) signs_handshakes: std::sync::Mutex<std::collections::HashMap<String, bool>>,
    /// The pending context this replica stored last for each consumer's ack.
    pub(crate) answered: crate::recent::Recent<crate::engine::Answered>,
    /// The PSK this replica committed last for each migrated consumer.
    pub(crate) committed: crate::recent::Recent<crate::store::SealedPsk>,
    /// The escapes this replica sent since each campaign's shared count.
    pub(crate) tallies: crate::tally::Tallies,
}

impl Orchestrator {
    /// Checks the master key against the store and loads (or creates) the signing key.
    pub async fn start(
        store: Arc<dyn Store>,
        master: MasterKey,
        limits: Limits,
    ) -> Result<Self, StartError> {
        let check = master.seal(Purpose::KeyCheck, "", KEY_CHECK);
        let stored = store.init_setting("master_key_check", &check).await?;
        match master.open(Purpose::KeyCheck, "", &stored) {
            Ok(plain) if plain.as_slice() == KEY_CHECK => {}
            _ => return Err(StartError::WrongMasterKey),
        }
        let signer = load_signing_key(store.as_ref(), &master).await?;
        let (connections, wake) = (Default::default(), tokio::sync::Notify::new());
        Ok(Self {
            store,
            master,
            signer,
            limits,
            connections,
            wake,
            signs_handshakes: Default::default(),
            answered: Default::default(),
            committed: Default::default(),
            tallies: Default::default(),
        })
    }

    /// The store in use.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The agents connected to this replica.
    pub fn connections(&self) -> &crate::connections::Connections {
        &self.connections
    }

    /// The ML-DSA-65 key agents pin.
    pub fn verifying_key(&self) -> pqescape_message::sign::OrchestratorVerifyingKey {
        self.signer.verifying_key()
    }

    /// On the very first start (no API token exists), creates an admin token and returns
    /// its secret, to be shown once. Replicas starting together create only one.
    pub async fn bootstrap_admin(&self) -> Result<Option<String>, crate::admin::AdminError> {
        if !self.store.list_api_tokens().await?.is_empty() {
            return Ok(None);
        }
        let claim = uuid::Uuid::new_v4().to_string();
        let winner = self.store.init_setting("bootstrap_claim", claim.as_bytes()).await?;
        if winner != claim.as_bytes() {
            return Ok(None);
        }
        let (token, secret) = self.insert_api_token("bootstrap-admin", Role::Admin).await?;
        let entry = NewAuditEntry {
            at: now(),
            actor: "system".into(),
            action: "api_token.bootstrap".into(),
            target: token.id,
            detail: json!({ "name": "bootstrap-admin", "role": "admin" }).to_string(),
        };
        self.store.append_audit(&entry).await?;
        Ok(Some(secret))
    }
}

async fn load_signing_key(
    store: &dyn Store,
    master: &MasterKey,
) -> Result<OrchestratorSigningKey, StartError> {
    let stored = match store.signing_key().await? {
        Some(key) => key,
        None => {
            let fresh =
                OrchestratorSigningKey::generate(&mut rand_core::UnwrapErr(getrandom::SysRng));
            let public = fresh.verifying_key();
            let id = hex::encode(&public.fingerprint()[..8]);
            let candidate = StoredSigningKey {
                seed_sealed: master.seal(Purpose::SigningKey, &id, fresh.to_seed().as_ref()),
                public_key: public.as_bytes().to_vec(),
                id,
            };
            store.init_signing_key(&candidate, now()).await?
        }
    };
    let seed = master
        .open32(Purpose::SigningKey, &stored.id, &stored.seed_sealed)
        .map_err(|_| StartError::WrongMasterKey)?;
    let key = OrchestratorSigningKey::from_seed(&seed);
    if key.verifying_key().as_bytes() != stored.public_key.as_slice() {
        return Err(StartError::SigningKeyMismatch);
    }
    Ok(key)
}

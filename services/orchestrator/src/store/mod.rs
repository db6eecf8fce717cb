//! The store: everything the orchestrator must not lose.
//!
//! One trait, [`Store`], with two implementations on sqlx: PostgreSQL, the
//! production store that several replicas share, and an embedded SQLite file for a
//! first run and single-node use. Both run the same SQL (written once in `sql.rs`)
//! against their own migrations (migrations/postgres, migrations/sqlite), and one
//! conformance suite (tests/store_conformance.rs) holds them to the same behaviour.
//!
//! Secret columns only ever hold values sealed under the master key; the store
//! never sees a PSK or a signing key in clear.

mod lease;
mod postgres;
mod report;
mod sql;
mod sqlite;

use async_trait::async_trait;
use serde::Serialize;

use crate::campaign::{Campaign, CampaignState};
use crate::delivery::{Delivery, DeliveryState, DeliveryTally, Migration};
use crate::domain::{ConsumerState, Labels, Role, Selector};
use crate::tally::{Counted, SharedTally};

pub use postgres::PgStore;
pub use report::{DeliveryQuery, DeliveryRow, EndedInBucket};
pub use sqlite::SqliteStore;

/// Unix seconds.
pub type Timestamp = i64;

/// Failures of the store, sorted by what the caller can do about them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (a consumer name already taken, say).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The database failed or could not be reached. The detail is for logs only.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration could not be applied.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value is not what this version wrote.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What is wrong.
        detail: String,
    },
}

/// Result of store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// A consumer as the store holds it, without its PSK.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Consumer {
    /// UUID.
    pub id: String,
    /// Unique, operator-chosen name (a host name, say).
    pub name: String,
    /// Labels campaigns select on.
    pub labels: Labels,
    /// Lifecycle state.
    pub state: ConsumerState,
    /// Current suite name (`classical` until migrated).
    pub suite: String,
    /// Key id of the current PSK (0 before enrollment).
    pub key_id: u32,
    /// Last escape sequence number issued to this consumer.
    pub last_sequence: u64,
    /// When the agent was last connected.
    pub last_seen: Option<Timestamp>,
    /// Version the agent reported.
    pub agent_version: Option<String>,
    /// Registration time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A consumer about to be registered.
#[derive(Clone, Debug)]
pub struct NewConsumer {
    /// UUID.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Labels.
    pub labels: Labels,
    /// Registration time.
    pub now: Timestamp,
}

/// A one-time enrollment token, as stored: only a verifier of its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollmentTokenRow {
    /// Hex of the token's public id.
    pub id: String,
    /// The consumer the token enrolls.
    pub consumer_id: String,
    /// SHA-256 verifier of the token secret (protocol.md §8.3).
    pub verifier: Vec<u8>,
    /// Issue time.
    pub created_at: Timestamp,
    /// The token is void after this time.
    pub expires_at: Timestamp,
}

/// A consumer as its agent's channel hello finds it (see
/// [`Store::channel_credentials`]).
#[derive(Clone, Debug)]
pub struct ChannelCredentials {
    /// The consumer.
    pub consumer: Consumer,
    /// Its sealed PSK, once enrolled.
    pub psk: Option<SealedPsk>,
    /// Whether an open delivery of a running campaign waits for it, as
    /// [`Store::open_delivery_for`] would find.
    pub owed: bool,
}

/// The sealed PSK of a consumer and its key id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedPsk {
    /// Key id.
    pub key_id: u32,
    /// PSK sealed under the master key for this consumer's row.
    pub sealed: Vec<u8>,
}

/// Most consumers one dispatch query names (and rows one batched statement writes).
pub const DISPATCH_CHUNK: usize = 500;

/// One delivery to mark sent: its consumer, the state it must be in, and the
/// escape when it is sent for the first time.
#[derive(Clone, Debug)]
pub struct Dispatch {
    /// The consumer.
    pub consumer_id: String,
    /// `Pending` (first send) or `Sent` (a retry).
    pub from: crate::delivery::DeliveryState,
    /// The sealed escape, on the first send.
    pub escape: Option<Vec<u8>>,
}

/// A consumer listing request: a label selector and a keyset page.
#[derive(Clone, Debug, Default)]
pub struct ConsumerQuery {
    /// Labels every returned consumer carries.
    pub selector: Selector,
    /// Free-text match on the name (substring, case-insensitive).
    pub name_contains: Option<String>,
    /// Only consumers in this state.
    pub state: Option<ConsumerState>,
    /// Leave out consumers already on this suite.
    pub exclude_suite: Option<String>,
    /// Return consumers whose id sorts after this one.
    pub after: Option<String>,
    /// Page size.
    pub limit: u32,
}

/// One page of a listing.
#[derive(Clone, Debug, Serialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Cursor for the next page, if there may be one.
    pub next: Option<String>,
}

/// An API token as stored (its hash never leaves the store).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// UUID.
    pub id: String,
    /// Who or what holds it.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Issue time.
    pub created_at: Timestamp,
    /// Revocation time.
    pub revoked_at: Option<Timestamp>,
}

/// An audit entry to append.
#[derive(Clone, Debug)]
pub struct NewAuditEntry {
    /// When.
    pub at: Timestamp,
    /// Who: an API token's name and id.
    pub actor: String,
    /// What, as `noun.verb`.
    pub action: String,
    /// On what: an id.
    pub target: String,
    /// JSON detail; never a secret.
    pub detail: String,
}

/// A stored audit entry with its place in the hash chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Position, from 1.
    pub seq: u64,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// JSON detail.
    pub detail: String,
    /// Hash of the previous entry (zeros for the first).
    #[serde(serialize_with = "hex_bytes")]
    pub prev_hash: Vec<u8>,
    /// SHA-256 over `prev_hash` and this entry (audit.rs).
    #[serde(serialize_with = "hex_bytes")]
    pub hash: Vec<u8>,
}

fn hex_bytes<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

/// The orchestrator's signing key as stored.
#[derive(Clone, Debug)]
pub struct StoredSigningKey {
    /// Key id (hex fingerprint prefix).
    pub id: String,
    /// Seed sealed under the master key.
    pub seed_sealed: Vec<u8>,
    /// Encoded ML-DSA-65 verifying key.
    pub public_key: Vec<u8>,
}

/// Everything the orchestrator keeps. See the module docs.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// "postgres" or "sqlite".
    fn backend(&self) -> &'static str;
    /// Cheap round trip, for readiness.
    async fn ping(&self) -> StoreResult<()>;

    /// A setting's value.
    async fn setting(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Stores a setting unless one exists; returns the value now stored.
    async fn init_setting(&self, key: &str, value: &[u8]) -> StoreResult<Vec<u8>>;

    /// Registers a consumer together with its first enrollment token.
    async fn insert_consumer(&self, c: &NewConsumer, token: &EnrollmentTokenRow)
    -> StoreResult<()>;
    /// One consumer.
    async fn consumer(&self, id: &str) -> StoreResult<Option<Consumer>>;
    /// A page of consumers.
    async fn list_consumers(&self, q: &ConsumerQuery) -> StoreResult<Page<Consumer>>;
    /// Replaces a consumer's labels.
    async fn set_labels(
        &self,
        id: &str,
        labels: &Labels,
        now: Timestamp,
    ) -> StoreResult<Option<Consumer>>;
    /// Marks a consumer revoked and voids its unused enrollment tokens.
    async fn revoke_consumer(&self, id: &str, now: Timestamp) -> StoreResult<Option<Consumer>>;
    /// The consumer's sealed PSK, once enrolled.
    async fn consumer_psk(&self, id: &str) -> StoreResult<Option<SealedPsk>>;
    /// What a channel hello is checked against, in one read: the consumer, its
    /// sealed PSK and whether it is owed an open delivery.
    async fn channel_credentials(&self, id: &str) -> StoreResult<Option<ChannelCredentials>>;
    /// How many consumers a query selects (its page bounds ignored).
    async fn count_consumers(&self, q: &ConsumerQuery) -> StoreResult<u64>;
    /// Records that these consumers' agents were seen at `now`, in one statement per
    /// [`DISPATCH_CHUNK`] of them.
    async fn touch_consumers(&self, ids: &[String], now: Timestamp) -> StoreResult<()>;
    /// Records that the consumer's agent was seen now, with the version it reported.
    async fn touch_consumer(
        &self,
        id: &str,
        now: Timestamp,
        agent_version: Option<&str>,
    ) -> StoreResult<()>;
    /// Counts of consumers by state and suite.
    async fn consumer_counts(&self) -> StoreResult<Vec<(ConsumerState, String, u64)>>;

    /// Issues another enrollment token for an existing consumer.
    async fn insert_enrollment_token(&self, token: &EnrollmentTokenRow) -> StoreResult<()>;
    /// A live (unused, unexpired) token for a consumer that is not revoked.
    async fn live_enrollment_token(
        &self,
        token_id: &str,
        now: Timestamp,
    ) -> StoreResult<Option<EnrollmentTokenRow>>;
    /// Starts an enrollment: the token must be live, unused and for a consumer that is
    /// not revoked. Stores the sealed session and returns the token row.
    async fn begin_enrollment(
        &self,
        token_id: &str,
        now: Timestamp,
        session_sealed: &[u8],
    ) -> StoreResult<Option<EnrollmentTokenRow>>;
    /// The sealed session of an enrollment in progress.
    async fn enrollment_session(
        &self,
        token_id: &str,
        now: Timestamp,
    ) -> StoreResult<Option<Vec<u8>>>;
    /// Finishes an enrollment in one transaction: consumes the token and stores the PSK.
    /// Returns false when the token was used, expired or revoked meanwhile.
    async fn complete_enrollment(
        &self,
        token_id: &str,
        psk: &SealedPsk,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// Stores a new API token's hash.
    async fn insert_api_token(&self, token: &ApiToken, hash: &[u8]) -> StoreResult<()>;
    /// The live token with this hash.
    async fn api_token_by_hash(&self, hash: &[u8]) -> StoreResult<Option<ApiToken>>;
    /// Every token, revoked ones included.
    async fn list_api_tokens(&self) -> StoreResult<Vec<ApiToken>>;
    /// Revokes a token; false if there was no live token with this id.
    async fn revoke_api_token(&self, id: &str, now: Timestamp) -> StoreResult<bool>;

    /// Appends to the hash-chained audit log.
    async fn append_audit(&self, entry: &NewAuditEntry) -> StoreResult<AuditEntry>;
    /// Entries after `after_seq`, in order.
    async fn list_audit(&self, after_seq: u64, limit: u32) -> StoreResult<Vec<AuditEntry>>;

    /// Stores a new campaign (a draft).
    async fn insert_campaign(&self, c: &Campaign) -> StoreResult<()>;
    /// One campaign.
    async fn campaign(&self, id: &str) -> StoreResult<Option<Campaign>>;
    /// A campaign's signed manifest, once armed.
    async fn campaign_manifest(&self, id: &str) -> StoreResult<Option<Vec<u8>>>;
    /// A page of campaigns in id order.
    async fn list_campaigns(&self, after: Option<&str>, limit: u32) -> StoreResult<Page<Campaign>>;
    /// Moves a campaign to `to` if it is in one of `from`; stores `manifest` if given,
    /// and appends `audit` to the audit log in the same transaction, so that no
    /// change is ever stored without its entry. Returns the campaign after the
    /// change, or `None` if it was not in `from` (and then appends nothing).
    async fn transition_campaign(
        &self,
        id: &str,
        from: &[CampaignState],
        to: CampaignState,
        now: Timestamp,
        manifest: Option<&[u8]>,
        audit: Option<&NewAuditEntry>,
    ) -> StoreResult<Option<Campaign>>;

    /// Creates the deliveries of a campaign, reserving each consumer's next sequence
    /// number, unless the campaign has deliveries already. Returns how many it created.
    async fn create_deliveries(
        &self,
        campaign_id: &str,
        targets: &[(String, u32)],
        now: Timestamp,
    ) -> StoreResult<u64>;
    /// The open delivery of a running campaign whose wave is open, for a consumer.
    async fn open_delivery_for(&self, consumer_id: &str) -> StoreResult<Option<Delivery>>;
    /// One page of what a dispatch of `campaign_id` may have to send: deliveries in
    /// open waves that are pending, or were sent at or before `sent_before` and are
    /// still unanswered, for consumers whose id sorts after `after`, in consumer id
    /// order, at most `limit` rows; each with its consumer's current sealed PSK.
    /// Its cost follows the open deliveries, not the fleet.
    async fn dispatch_rows(
        &self,
        campaign_id: &str,
        sent_before: Timestamp,
        after: &str,
        limit: u32,
    ) -> StoreResult<Vec<(Delivery, SealedPsk)>>;
    /// Marks deliveries sent (from pending with their escape, or again from sent),
    /// all in one transaction. Returns, in order, whether each one moved.
    async fn mark_sent(
        &self,
        campaign_id: &str,
        sends: &[Dispatch],
        now: Timestamp,
    ) -> StoreResult<Vec<bool>>;
    /// One delivery.
    async fn delivery(&self, campaign_id: &str, consumer_id: &str)
    -> StoreResult<Option<Delivery>>;
    /// One delivery with its consumer's sealed PSK, in one read: what an
    /// acknowledgement is answered with.
    async fn delivery_with_psk(
        &self,
        campaign_id: &str,
        consumer_id: &str,
    ) -> StoreResult<Option<(Delivery, Option<SealedPsk>)>>;
    /// Moves a delivery from one of `from` to `to`, storing what is given. False if it
    /// was not in `from` (a duplicate or late message).
    #[allow(clippy::too_many_arguments)]
    async fn update_delivery(
        &self,
        campaign_id: &str,
        consumer_id: &str,
        from: &[DeliveryState],
        to: DeliveryState,
        reason: Option<&str>,
        escape: Option<&[u8]>,
        pending_sealed: Option<&[u8]>,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Ends a negotiating delivery that still holds `pending_sealed` (the context its
    /// finished message was checked against) and, for a migration, changes the
    /// consumer's PSK, key id and suite in the same transaction. False if the
    /// delivery had moved on.
    async fn finish_delivery(
        &self,
        campaign_id: &str,
        consumer_id: &str,
        pending_sealed: &[u8],
        to: DeliveryState,
        migration: Option<&Migration>,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Deliveries of a campaign counted by state.
    async fn delivery_counts(&self, campaign_id: &str) -> StoreResult<Vec<(DeliveryState, u64)>>;
    /// Deliveries of a campaign counted by wave and state, ordered by wave.
    async fn delivery_tally(&self, campaign_id: &str) -> StoreResult<DeliveryTally>;
    /// The campaign's shared count: the last claim to make one and the last one
    /// stored (see [`crate::tally`]). A stored count that does not parse reads
    /// as none: it is only ever a copy of [`Store::delivery_tally`].
    async fn shared_tally(&self, campaign_id: &str) -> StoreResult<Option<SharedTally>>;
    /// Claims the next shared count at `now_ms`, if the last claim is still the
    /// one read (`seen`, `None` for no claim yet). False if another got there first.
    async fn claim_tally(
        &self,
        campaign_id: &str,
        seen: Option<i64>,
        now_ms: i64,
    ) -> StoreResult<bool>;
    /// Stores a count made under a claim.
    async fn save_tally(&self, campaign_id: &str, counted: &Counted) -> StoreResult<()>;
    /// The campaign's open wave, and sets it.
    async fn set_current_wave(
        &self,
        campaign_id: &str,
        wave: u32,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// The campaign's open wave.
    async fn current_wave(&self, campaign_id: &str) -> StoreResult<u32>;
    /// Ids of campaigns in the running state.
    async fn running_campaigns(&self) -> StoreResult<Vec<String>>;
    /// Marks every open delivery of a campaign expired.
    async fn expire_deliveries(&self, campaign_id: &str, now: Timestamp) -> StoreResult<u64>;
    /// A page of a campaign's deliveries with their consumers' names, in name order.
    async fn list_deliveries(&self, q: &DeliveryQuery) -> StoreResult<Page<DeliveryRow>>;
    /// A campaign's ended deliveries counted per end state and per bucket of
    /// `bucket_secs` seconds of their last change, in time order.
    async fn ended_deliveries_over_time(
        &self,
        campaign_id: &str,
        bucket_secs: u32,
    ) -> StoreResult<Vec<EndedInBucket>>;

    /// The signing key, if one was created.
    async fn signing_key(&self) -> StoreResult<Option<StoredSigningKey>>;
    /// Stores a signing key unless one exists; returns the one in force.
    async fn init_signing_key(
        &self,
        key: &StoredSigningKey,
        now: Timestamp,
    ) -> StoreResult<StoredSigningKey>;
}

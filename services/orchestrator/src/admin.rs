//! The administrator's operations, independent of transport: the REST and gRPC
//! APIs both call these, so they share validation, authorisation and auditing.
//!
//! Every operation that changes state appends one audit entry naming the caller.

use serde::Serialize;
use serde_json::json;

use crate::Orchestrator;
use crate::access;
use crate::audit::{ChainReport, Checkpoint, verify_chain};
use crate::clock::now;
use crate::domain::{Invalid, Labels, Role, validate_name};
use crate::store::{
    ApiToken, AuditEntry, Consumer, ConsumerQuery, EnrollmentTokenRow, NewAuditEntry, NewConsumer,
    Page, StoreError,
};

/// Largest page a listing returns.
pub const MAX_PAGE: u32 = 500;
/// Page size when none is asked for.
pub const DEFAULT_PAGE: u32 = 50;

/// Who is calling: the API token's identity and role.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Token id.
    pub token_id: String,
    /// Token name.
    pub name: String,
    /// Token role.
    pub role: Role,
}

impl Caller {
    /// Fails unless the caller's role is at least `needed`.
    pub fn require(&self, needed: Role) -> Result<(), AdminError> {
        if self.role >= needed { Ok(()) } else { Err(AdminError::Forbidden { needed }) }
    }

    fn actor(&self) -> String {
        format!("{} ({})", self.name, self.token_id)
    }
}

/// Why an operation failed, in terms a client can act on.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No valid credentials.
    #[error("missing or invalid API token")]
    Unauthenticated,
    /// Valid credentials, insufficient role.
    #[error("this operation needs the {} role", needed.as_str())]
    Forbidden {
        /// The least role that may do it.
        needed: Role,
    },
    /// The request is invalid; each entry names a field.
    #[error("invalid request")]
    Invalid(Vec<Invalid>),
    /// Nothing with this id.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The thing to create exists already (a taken name, say).
    #[error("{0}")]
    Exists(String),
    /// A state rule was broken (firing a campaign that is not armed, say).
    #[error("{0}")]
    Conflict(String),
    /// The store failed; the detail is logged, never returned.
    #[error("internal error")]
    Internal(String),
}

impl From<Invalid> for AdminError {
    fn from(i: Invalid) -> Self {
        AdminError::Invalid(vec![i])
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => AdminError::Exists(format!("{what} already exists")),
            other => AdminError::Internal(other.to_string()),
        }
    }
}

/// An enrollment token just issued: its text is shown once and never stored.
#[derive(Clone, Debug, Serialize)]
pub struct IssuedToken {
    /// The token text to hand to the agent (`pqe1.`...). Secret.
    pub token: String,
    /// The token is void after this time.
    pub expires_at: i64,
}

/// Checks a page size and fills in the default.
pub fn page_size(limit: Option<u32>) -> Result<u32, Invalid> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(Invalid::new("limit", format!("between 1 and {MAX_PAGE}"))),
    }
}

fn uuid_ok(id: &str) -> Result<(), AdminError> {
    uuid::Uuid::parse_str(id).map(|_| ()).map_err(|_| AdminError::NotFound("consumer"))
}

impl Orchestrator {
    /// Resolves a bearer token to its caller.
    pub async fn authenticate(&self, bearer: &str) -> Result<Caller, AdminError> {
        if !access::well_formed(bearer) {
            return Err(AdminError::Unauthenticated);
        }
        let token = self.store.api_token_by_hash(&access::hash(bearer)).await?;
        let token = token.ok_or(AdminError::Unauthenticated)?;
        Ok(Caller { token_id: token.id, name: token.name, role: token.role })
    }

    pub(crate) async fn record_change(
        &self,
        caller: &Caller,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<(), AdminError> {
        let entry = Self::audit_entry(caller, action, target, &detail, now());
        self.store.append_audit(&entry).await?;
        Ok(())
    }

    /// The audit entry of `caller`'s `action` on `target` at `at`.
    pub(crate) fn audit_entry(
        caller: &Caller,
        action: &str,
        target: &str,
        detail: &serde_json::Value,
        at: i64,
    ) -> NewAuditEntry {
        NewAuditEntry {
            at,
            actor: caller.actor(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail: detail.to_string(),
        }
    }

    fn token_ttl(&self, asked: Option<u64>) -> Result<i64, Invalid> {
        let max = self.limits.max_token_ttl_secs;
        match asked.unwrap_or(self.limits.default_token_ttl_secs) {
            ttl if (60..=max).contains(&ttl) => Ok(i64::try_from(ttl).unwrap_or(i64::MAX)),
            _ => Err(Invalid::new("token_ttl_secs", format!("between 60 and {max} seconds"))),
        }
    }

    fn new_enrollment_token(
        &self,
        consumer_id: &str,
        ttl: i64,
    ) -> (EnrollmentTokenRow, IssuedToken) {
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let token = pqescape_message::enrollment::EnrollmentToken::generate(
            &self.signer.verifying_key(),
            &mut rng,
        );
        let created_at = now();
        let row = EnrollmentTokenRow {
            id: hex::encode(token.id),
            consumer_id: consumer_id.to_owned(),
            verifier: token.verifier().to_vec(),
            created_at,
            expires_at: created_at.saturating_add(ttl),
        };
        let issued = IssuedToken { token: token.reveal(), expires_at: row.expires_at };
        (row, issued)
    }

    /// Registers a consumer and issues its first enrollment token.
    pub async fn register_consumer(
        &self,
        caller: &Caller,
        name: &str,
        labels: Labels,
        token_ttl_secs: Option<u64>,
    ) -> Result<(Consumer, IssuedToken), AdminError> {
        caller.require(Role::Operator)?;
        validate_name("name", name)?;
        let ttl = self.token_ttl(token_ttl_secs)?;
        let id = uuid::Uuid::new_v4().to_string();
        let (row, issued) = self.new_enrollment_token(&id, ttl);
        let consumer = NewConsumer { id: id.clone(), name: name.to_owned(), labels, now: now() };
        self.store.insert_consumer(&consumer, &row).await?;
        let detail = json!({ "name": name, "labels": consumer.labels, "token_expires_at": issued.expires_at });
        self.record_change(caller, "consumer.register", &id, detail).await?;
        let stored = self.store.consumer(&id).await?.ok_or(AdminError::NotFound("consumer"))?;
        Ok((stored, issued))
    }

    /// Issues another enrollment token for a consumer (to re-enroll its agent).
    pub async fn issue_enrollment_token(
        &self,
        caller: &Caller,
        id: &str,
        token_ttl_secs: Option<u64>,
    ) -> Result<IssuedToken, AdminError> {
        caller.require(Role::Operator)?;
        let consumer = self.consumer(caller, id).await?;
        if consumer.state == crate::domain::ConsumerState::Revoked {
            return Err(AdminError::Conflict("consumer is revoked".into()));
        }
        let ttl = self.token_ttl(token_ttl_secs)?;
        let (row, issued) = self.new_enrollment_token(id, ttl);
        self.store.insert_enrollment_token(&row).await?;
        self.record_change(
            caller,
            "consumer.issue_token",
            id,
            json!({ "token_expires_at": issued.expires_at }),
        )
        .await?;
        Ok(issued)
    }

    /// One consumer.
    pub async fn consumer(&self, caller: &Caller, id: &str) -> Result<Consumer, AdminError> {
        caller.require(Role::Viewer)?;
        uuid_ok(id)?;
        self.store.consumer(id).await?.ok_or(AdminError::NotFound("consumer"))
    }

    /// A page of consumers.
    pub async fn list_consumers(
        &self,
        caller: &Caller,
        q: &ConsumerQuery,
    ) -> Result<Page<Consumer>, AdminError> {
        caller.require(Role::Viewer)?;
        Ok(self.store.list_consumers(q).await?)
    }

    /// Replaces a consumer's labels.
    pub async fn set_labels(
        &self,
        caller: &Caller,
        id: &str,
        labels: Labels,
    ) -> Result<Consumer, AdminError> {
        caller.require(Role::Operator)?;
        uuid_ok(id)?;
        let updated = self.store.set_labels(id, &labels, now()).await?;
        let updated = updated.ok_or(AdminError::NotFound("consumer"))?;
        self.record_change(caller, "consumer.set_labels", id, json!({ "labels": labels })).await?;
        Ok(updated)
    }

    /// Revokes a consumer: it is never served again and its unused tokens die.
    pub async fn revoke_consumer(&self, caller: &Caller, id: &str) -> Result<Consumer, AdminError> {
        caller.require(Role::Admin)?;
        uuid_ok(id)?;
        let revoked = self.store.revoke_consumer(id, now()).await?;
        let revoked = revoked.ok_or(AdminError::NotFound("consumer"))?;
        self.record_change(caller, "consumer.revoke", id, json!({})).await?;
        Ok(revoked)
    }

    /// Consumers counted by state and suite.
    pub async fn fleet_summary(&self, caller: &Caller) -> Result<serde_json::Value, AdminError> {
        caller.require(Role::Viewer)?;
        let counts = self.store.consumer_counts().await?;
        let rows: Vec<_> = counts
            .into_iter()
            .map(|(state, suite, n)| json!({ "state": state, "suite": suite, "count": n }))
            .collect();
        Ok(json!({ "counts": rows }))
    }

    /// Creates an API token; its secret is returned once.
    pub async fn create_api_token(
        &self,
        caller: &Caller,
        name: &str,
        role: Role,
    ) -> Result<(ApiToken, String), AdminError> {
        caller.require(Role::Admin)?;
        validate_name("name", name)?;
        let (token, secret) = self.insert_api_token(name, role).await?;
        self.record_change(
            caller,
            "api_token.create",
            &token.id,
            json!({ "name": name, "role": role }),
        )
        .await?;
        Ok((token, secret))
    }

    pub(crate) async fn insert_api_token(
        &self,
        name: &str,
        role: Role,
    ) -> Result<(ApiToken, String), AdminError> {
        let generated = access::generate();
        let token = ApiToken {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            role,
            created_at: now(),
            revoked_at: None,
        };
        self.store.insert_api_token(&token, &generated.hash).await?;
        Ok((token, generated.secret.to_string()))
    }

    /// Every API token (never their secrets).
    pub async fn list_api_tokens(&self, caller: &Caller) -> Result<Vec<ApiToken>, AdminError> {
        caller.require(Role::Admin)?;
        Ok(self.store.list_api_tokens().await?)
    }

    /// Revokes an API token.
    pub async fn revoke_api_token(&self, caller: &Caller, id: &str) -> Result<(), AdminError> {
        caller.require(Role::Admin)?;
        if !self.store.revoke_api_token(id, now()).await? {
            return Err(AdminError::NotFound("api token"));
        }
        self.record_change(caller, "api_token.revoke", id, json!({})).await
    }

    /// Audit entries after `after`.
    pub async fn audit(
        &self,
        caller: &Caller,
        after: u64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, AdminError> {
        caller.require(Role::Viewer)?;
        Ok(self.store.list_audit(after, limit).await?)
    }

    /// Walks the whole audit chain.
    pub async fn verify_audit(&self, caller: &Caller) -> Result<ChainReport, AdminError> {
        caller.require(Role::Viewer)?;
        let mut at = Checkpoint::START;
        let mut total = 0;
        loop {
            let batch = self.store.list_audit(at.seq, 1000).await?;
            if batch.is_empty() {
                return Ok(ChainReport { valid: true, entries: total, first_invalid_seq: None });
            }
            let (report, next) = verify_chain(&batch, at);
            total += report.entries;
            if !report.valid {
                return Ok(ChainReport { entries: total, ..report });
            }
            at = next;
        }
    }
}

//! The SQL both back ends run. PostgreSQL and SQLite (through sqlx) both accept
//! `$N` placeholders, `RETURNING` and `ON CONFLICT`, so the statements are written
//! once here; [`sql_store!`] instantiates the one implementation for each back end.
//! The dialect differences, how the audit log is locked for an append and whether
//! one statement may update two tables, are parameters of the macro.

/// Columns of a consumer, in the order `consumer_from_row` reads them.
pub(super) const CONSUMER_COLUMNS: &str = "id, name, labels, state, suite, key_id, last_sequence, \
     last_seen, agent_version, created_at, updated_at";

pub(super) const AUDIT_COLUMNS: &str = "seq, at, actor, action, target, detail, prev_hash, hash";

pub(super) const CAMPAIGN_COLUMNS: &str = "id, name, selector, target_suite, waves, max_in_flight, \
     failure_threshold, deadline, drill, sign_handshakes, directives, state, manifest, created_by, \
     created_at, updated_at, armed_at, fired_at, finished_at";

pub(super) const DELIVERY_COLUMNS: &str = "d.campaign_id, d.consumer_id, d.wave, d.sequence, d.state, \
     d.reason, d.escape_message, d.pending_sealed, d.attempts, d.updated_at";

/// `$first, $first+1, ...`: `n` numbered placeholders.
pub(super) fn placeholders(first: usize, n: usize) -> String {
    let list: Vec<String> = (first..first + n).map(|i| format!("${i}")).collect();
    list.join(", ")
}

/// `'a', 'b'`: a SQL list of delivery states. The names are this crate's constants.
pub(super) fn delivery_list(states: &[crate::delivery::DeliveryState]) -> String {
    let quoted: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
    quoted.join(", ")
}

/// The open deliveries of the consumer `consumer` names (a placeholder or a column)
/// in running campaigns whose wave has opened.
pub(super) fn open_deliveries_of(consumer: &str) -> String {
    format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN campaigns k ON k.id = d.campaign_id \
         WHERE d.consumer_id = {consumer} AND k.state = 'running' AND d.wave <= k.current_wave \
         AND d.state IN ({})",
        delivery_list(&crate::delivery::DeliveryState::OPEN)
    )
}

pub(super) const TOKEN_COLUMNS: &str = "id, consumer_id, verifier, created_at, expires_at";

/// Builds the consumer listing statement; returns it with its string parameters in order
/// (the page size is the last parameter, bound separately).
pub(super) fn consumer_listing(q: &super::ConsumerQuery) -> (String, Vec<String>) {
    let mut sql = format!("SELECT {CONSUMER_COLUMNS} FROM consumers c WHERE 1 = 1");
    let mut params = Vec::new();
    let mut next = |sql: &mut String, clause: &str, value: String| {
        params.push(value);
        sql.push_str(&clause.replace('?', &format!("${}", params.len())));
    };
    if let Some(after) = &q.after {
        next(&mut sql, " AND c.id > ?", after.clone());
    }
    if let Some(state) = q.state {
        next(&mut sql, " AND c.state = ?", state.as_str().to_owned());
    }
    if let Some(suite) = &q.exclude_suite {
        next(&mut sql, " AND c.suite <> ?", suite.clone());
    }
    if let Some(text) = &q.name_contains {
        let escaped =
            text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        next(&mut sql, " AND lower(c.name) LIKE ? ESCAPE '\\'", format!("%{escaped}%"));
    }
    for (key, value) in q.selector.pairs() {
        let exists = " AND EXISTS (SELECT 1 FROM consumer_labels l WHERE l.consumer_id = c.id";
        next(&mut sql, &format!("{exists} AND l.key = ?"), key.clone());
        next(&mut sql, " AND l.value = ?)", value.clone());
    }
    let limit_at = params.len() + 1;
    sql.push_str(&format!(" ORDER BY c.id LIMIT ${limit_at}"));
    (sql, params)
}

/// `'a', 'b'`: a SQL list of campaign states. The names are this crate's constants.
pub(super) fn state_list(states: &[crate::campaign::CampaignState]) -> String {
    let quoted: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
    quoted.join(", ")
}

/// Implements [`super::Store`] for `$store`, a struct with a `pool: sqlx::Pool<$db>`.
macro_rules! sql_store {
    ($store:ident, $db:ty, $backend:literal, audit_lock = $audit_lock:expr, migrate_in_one = $migrate_in_one:expr, skip_locked = $skip_locked:expr) => {
        use async_trait::async_trait;
        use sqlx::Row as _;
        // Dynamic statements below only splice in the constant column lists of this
        // module and numbered placeholders; values always travel as bound parameters.
        use sqlx::AssertSqlSafe;

        use crate::audit;
        use crate::domain::{ConsumerState, Labels, Role};
        use crate::store::sql::{consumer_listing, delivery_list, placeholders, state_list, AUDIT_COLUMNS, CAMPAIGN_COLUMNS, CONSUMER_COLUMNS, DELIVERY_COLUMNS, TOKEN_COLUMNS};
        use crate::delivery::{Delivery, DeliveryState, DeliveryTally, Migration};
        use crate::campaign::{Campaign, CampaignSpec, CampaignState};
        use crate::store::{
            ApiToken, AuditEntry, Consumer, ConsumerQuery, EnrollmentTokenRow, NewAuditEntry,
            NewConsumer, Page, SealedPsk, Store, StoreError, StoredSigningKey, Timestamp,
        };
        use crate::store::ChannelCredentials;
        use crate::store::sql::open_deliveries_of;
        use crate::store::{DeliveryQuery, DeliveryRow, EndedInBucket};

        type DbRow = <$db as sqlx::Database>::Row;

        fn corrupt(table: &'static str, detail: impl ToString) -> StoreError {
            StoreError::Corrupt { table, detail: detail.to_string() }
        }

        fn unsigned<T: TryFrom<i64>>(table: &'static str, v: i64) -> StoreResult<T> {
            T::try_from(v).map_err(|_| corrupt(table, format!("out-of-range integer {v}")))
        }

        fn consumer_from_row(row: &DbRow) -> StoreResult<Consumer> {
            let state: String = row.try_get("state")?;
            let labels: String = row.try_get("labels")?;
            Ok(Consumer {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                labels: Labels::from_json(&labels).map_err(|e| corrupt("consumers", e))?,
                state: ConsumerState::parse(&state).ok_or_else(|| corrupt("consumers", &state))?,
                suite: row.try_get("suite")?,
                key_id: unsigned("consumers", row.try_get("key_id")?)?,
                last_sequence: unsigned("consumers", row.try_get("last_sequence")?)?,
                last_seen: row.try_get("last_seen")?,
                agent_version: row.try_get("agent_version")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        }

        fn token_from_row(row: &DbRow) -> StoreResult<EnrollmentTokenRow> {
            Ok(EnrollmentTokenRow {
                id: row.try_get("id")?,
                consumer_id: row.try_get("consumer_id")?,
                verifier: row.try_get("verifier")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
            })
        }

        fn api_token_from_row(row: &DbRow) -> StoreResult<ApiToken> {
            let role: String = row.try_get("role")?;
            Ok(ApiToken {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                role: Role::parse(&role).ok_or_else(|| corrupt("api_tokens", &role))?,
                created_at: row.try_get("created_at")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        }

        fn audit_from_row(row: &DbRow) -> StoreResult<AuditEntry> {
            Ok(AuditEntry {
                seq: unsigned("audit_log", row.try_get("seq")?)?,
                at: row.try_get("at")?,
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                target: row.try_get("target")?,
                detail: row.try_get("detail")?,
                prev_hash: row.try_get("prev_hash")?,
                hash: row.try_get("hash")?,
            })
        }

        fn campaign_from_row(row: &DbRow) -> StoreResult<Campaign> {
            let text = |col: &str| -> StoreResult<String> { Ok(row.try_get::<String, _>(col)?) };
            let bad = |detail: String| corrupt("campaigns", detail);
            let state = text("state")?;
            let waves: Vec<u8> = serde_json::from_str(&text("waves")?).map_err(|e| bad(e.to_string()))?;
            let suite = text("target_suite")?;
            let manifest: Option<Vec<u8>> = row.try_get("manifest")?;
            let digest = manifest.map(|m| hex::encode(pqescape_message::campaign::manifest_digest(&m)));
            let spec = CampaignSpec {
                name: text("name")?,
                selector: text("selector")?.parse().map_err(|e: crate::domain::Invalid| bad(e.to_string()))?,
                target_suite: pqescape_message::types::Suite::from_name(&suite).ok_or_else(|| bad(suite.clone()))?,
                waves,
                max_in_flight: unsigned("campaigns", row.try_get("max_in_flight")?)?,
                failure_threshold_percent: unsigned("campaigns", row.try_get("failure_threshold")?)?,
                deadline: row.try_get("deadline")?,
                drill: row.try_get("drill")?,
                sign_handshakes: row.try_get("sign_handshakes")?,
                directives: text("directives")?,
            };
            Ok(Campaign {
                id: text("id")?,
                spec,
                state: CampaignState::parse(&state).ok_or_else(|| bad(state.clone()))?,
                manifest_digest: digest,
                created_by: text("created_by")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
                armed_at: row.try_get("armed_at")?,
                fired_at: row.try_get("fired_at")?,
                finished_at: row.try_get("finished_at")?,
            })
        }

        fn delivery_from_row(row: &DbRow) -> StoreResult<Delivery> {
            let state: String = row.try_get("state")?;
            Ok(Delivery {
                campaign_id: row.try_get("campaign_id")?,
                consumer_id: row.try_get("consumer_id")?,
                wave: unsigned("deliveries", row.try_get("wave")?)?,
                sequence: unsigned("deliveries", row.try_get("sequence")?)?,
                state: DeliveryState::parse(&state).ok_or_else(|| corrupt("deliveries", &state))?,
                reason: row.try_get("reason")?,
                escape: row.try_get("escape_message")?,
                pending_sealed: row.try_get("pending_sealed")?,
                attempts: unsigned("deliveries", row.try_get("attempts")?)?,
                updated_at: row.try_get("updated_at")?,
            })
        }

        fn delivery_row_from_row(row: &DbRow) -> StoreResult<DeliveryRow> {
            let state: String = row.try_get("state")?;
            Ok(DeliveryRow {
                consumer_id: row.try_get("consumer_id")?,
                consumer_name: row.try_get("name")?,
                wave: unsigned("deliveries", row.try_get("wave")?)?,
                sequence: unsigned("deliveries", row.try_get("sequence")?)?,
                state: DeliveryState::parse(&state).ok_or_else(|| corrupt("deliveries", &state))?,
                reason: row.try_get("reason")?,
                updated_at: row.try_get("updated_at")?,
            })
        }

        fn conflict_on_unique(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
            move |e| match &e {
                sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(what),
                _ => StoreError::Database(e),
            }
        }

        async fn write_labels(
            tx: &mut sqlx::Transaction<'_, $db>,
            id: &str,
            labels: &Labels,
        ) -> StoreResult<()> {
            sqlx::query("DELETE FROM consumer_labels WHERE consumer_id = $1").bind(id).execute(&mut **tx).await?;
            for (k, v) in labels.iter() {
                sqlx::query("INSERT INTO consumer_labels (consumer_id, key, value) VALUES ($1, $2, $3)")
                    .bind(id)
                    .bind(k)
                    .bind(v)
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(())
        }

        async fn insert_token(
            tx: &mut sqlx::Transaction<'_, $db>,
            t: &EnrollmentTokenRow,
        ) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO enrollment_tokens (id, consumer_id, verifier, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&t.id)
            .bind(&t.consumer_id)
            .bind(&t.verifier)
            .bind(t.created_at)
            .bind(t.expires_at)
            .execute(&mut **tx)
            .await
            .map_err(conflict_on_unique("enrollment token id"))?;
            Ok(())
        }

        /// Appends `e` to the hash-chained audit log inside `tx`, under the lock that
        /// keeps replicas from forking the chain.
        async fn append_audit_in(
            tx: &mut sqlx::Transaction<'static, $db>,
            e: &NewAuditEntry,
        ) -> StoreResult<AuditEntry> {
            if let Some(lock) = $audit_lock {
                sqlx::query(lock).execute(&mut **tx).await?;
            }
            let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut **tx)
                .await?;
            let (prev_seq, prev_hash) = match last {
                Some(r) => (unsigned::<u64>("audit_log", r.try_get("seq")?)?, r.try_get::<Vec<u8>, _>("hash")?),
                None => (0, audit::GENESIS.to_vec()),
            };
            let seq = prev_seq + 1;
            let hash = audit::entry_hash(&prev_hash, seq, e.at, &e.actor, &e.action, &e.target, &e.detail);
            let seq_i64 = i64::try_from(seq).map_err(|_| corrupt("audit_log", "sequence overflow"))?;
            let sql = format!(
                "INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {AUDIT_COLUMNS}"
            );
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(seq_i64)
                .bind(e.at)
                .bind(&e.actor)
                .bind(&e.action)
                .bind(&e.target)
                .bind(&e.detail)
                .bind(&prev_hash)
                .bind(hash.to_vec())
                .fetch_one(&mut **tx)
                .await?;
            audit_from_row(&row)
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn setting(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
                let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|r| r.try_get("value")).transpose()?)
            }

            async fn init_setting(&self, key: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
                sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                    .bind(key)
                    .bind(value)
                    .execute(&self.pool)
                    .await?;
                self.setting(key).await?.ok_or_else(|| corrupt("settings", key))
            }

            async fn insert_consumer(&self, c: &NewConsumer, token: &EnrollmentTokenRow) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO consumers (id, name, labels, state, suite, key_id, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 'classical', 0, $5, $5)",
                )
                .bind(&c.id)
                .bind(&c.name)
                .bind(c.labels.to_json())
                .bind(ConsumerState::PendingEnrollment.as_str())
                .bind(c.now)
                .execute(&mut *tx)
                .await
                .map_err(conflict_on_unique("consumer name"))?;
                write_labels(&mut tx, &c.id, &c.labels).await?;
                insert_token(&mut tx, token).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn consumer(&self, id: &str) -> StoreResult<Option<Consumer>> {
                let sql = format!("SELECT {CONSUMER_COLUMNS} FROM consumers WHERE id = $1");
                let row = sqlx::query(AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
                row.as_ref().map(consumer_from_row).transpose()
            }

            async fn list_consumers(&self, q: &ConsumerQuery) -> StoreResult<Page<Consumer>> {
                let (sql, params) = consumer_listing(q);
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for p in &params {
                    query = query.bind(p);
                }
                let rows = query.bind(i64::from(q.limit) + 1).fetch_all(&self.pool).await?;
                let mut items = rows.iter().map(consumer_from_row).collect::<StoreResult<Vec<_>>>()?;
                let more = items.len() > q.limit as usize;
                items.truncate(q.limit as usize);
                let next = if more { items.last().map(|c| c.id.clone()) } else { None };
                Ok(Page { items, next })
            }

            async fn set_labels(&self, id: &str, labels: &Labels, now: Timestamp) -> StoreResult<Option<Consumer>> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query("UPDATE consumers SET labels = $1, updated_at = $2 WHERE id = $3")
                    .bind(labels.to_json())
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                write_labels(&mut tx, id, labels).await?;
                tx.commit().await?;
                self.consumer(id).await
            }

            async fn revoke_consumer(&self, id: &str, now: Timestamp) -> StoreResult<Option<Consumer>> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query("UPDATE consumers SET state = $1, updated_at = $2 WHERE id = $3")
                    .bind(ConsumerState::Revoked.as_str())
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                sqlx::query(
                    "UPDATE enrollment_tokens SET used_at = $1, session_sealed = NULL \
                     WHERE consumer_id = $2 AND used_at IS NULL",
                )
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                self.consumer(id).await
            }

            async fn consumer_psk(&self, id: &str) -> StoreResult<Option<SealedPsk>> {
                let row = sqlx::query("SELECT key_id, psk_sealed FROM consumers WHERE id = $1 AND psk_sealed IS NOT NULL")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some(SealedPsk {
                    key_id: unsigned("consumers", row.try_get("key_id")?)?,
                    sealed: row.try_get("psk_sealed")?,
                }))
            }

            async fn channel_credentials(&self, id: &str) -> StoreResult<Option<ChannelCredentials>> {
                let sql = format!(
                    "SELECT {CONSUMER_COLUMNS}, psk_sealed, CASE WHEN EXISTS ({}) THEN 1 ELSE 0 END AS owed \
                     FROM consumers WHERE id = $1",
                    open_deliveries_of("consumers.id")
                );
                let mut lease = self.leases.lease().await?;
                let row = sqlx::query(AssertSqlSafe(sql)).bind(id).fetch_optional(lease.conn()).await?;
                lease.give_back();
                let Some(row) = row else { return Ok(None) };
                let consumer = consumer_from_row(&row)?;
                let sealed: Option<Vec<u8>> = row.try_get("psk_sealed")?;
                let psk = sealed.map(|sealed| SealedPsk { key_id: consumer.key_id, sealed });
                let owed: i32 = row.try_get("owed")?;
                Ok(Some(ChannelCredentials { consumer, psk, owed: owed != 0 }))
            }

            async fn count_consumers(&self, q: &ConsumerQuery) -> StoreResult<u64> {
                let (listing, params) = consumer_listing(q);
                // The listing without its order and limit, counted.
                let filter = listing.split(" ORDER BY ").next().unwrap_or_default().to_owned();
                let sql = format!("SELECT COUNT(*) AS n FROM ({filter}) t");
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for p in &params {
                    query = query.bind(p);
                }
                let row = query.fetch_one(&self.pool).await?;
                unsigned("consumers", row.try_get("n")?)
            }

            async fn touch_consumers(&self, ids: &[String], now: Timestamp) -> StoreResult<()> {
                // Heartbeats are best effort: a row another transaction holds (a campaign
                // reserving sequence numbers across the fleet, say) is left for the next
                // batch. Waiting for it instead would let the two deadlock, since neither
                // statement locks its rows in an order the other follows.
                for chunk in ids.chunks(crate::store::DISPATCH_CHUNK) {
                    let sql = format!(
                        "UPDATE consumers SET last_seen = $1 WHERE id IN \
                         (SELECT id FROM consumers WHERE id IN ({}){})",
                        placeholders(2, chunk.len()),
                        $skip_locked
                    );
                    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(now);
                    for id in chunk {
                        q = q.bind(id);
                    }
                    q.execute(&self.pool).await?;
                }
                Ok(())
            }

            async fn touch_consumer(&self, id: &str, now: Timestamp, agent_version: Option<&str>) -> StoreResult<()> {
                sqlx::query("UPDATE consumers SET last_seen = $1, agent_version = COALESCE($2, agent_version) WHERE id = $3")
                    .bind(now)
                    .bind(agent_version)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn consumer_counts(&self) -> StoreResult<Vec<(ConsumerState, String, u64)>> {
                let rows = sqlx::query("SELECT state, suite, COUNT(*) AS n FROM consumers GROUP BY state, suite ORDER BY state, suite")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        let state: String = r.try_get("state")?;
                        let state = ConsumerState::parse(&state).ok_or_else(|| corrupt("consumers", &state))?;
                        Ok((state, r.try_get("suite")?, unsigned("consumers", r.try_get("n")?)?))
                    })
                    .collect()
            }

            async fn insert_enrollment_token(&self, token: &EnrollmentTokenRow) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                insert_token(&mut tx, token).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn live_enrollment_token(&self, token_id: &str, now: Timestamp) -> StoreResult<Option<EnrollmentTokenRow>> {
                let sql = format!(
                    "SELECT {TOKEN_COLUMNS} FROM enrollment_tokens \
                     WHERE id = $1 AND used_at IS NULL AND expires_at > $2 \
                     AND consumer_id IN (SELECT id FROM consumers WHERE state <> 'revoked')"
                );
                let row = sqlx::query(AssertSqlSafe(sql)).bind(token_id).bind(now).fetch_optional(&self.pool).await?;
                row.as_ref().map(token_from_row).transpose()
            }

            async fn begin_enrollment(
                &self,
                token_id: &str,
                now: Timestamp,
                session_sealed: &[u8],
            ) -> StoreResult<Option<EnrollmentTokenRow>> {
                let sql = format!(
                    "UPDATE enrollment_tokens SET session_sealed = $1 \
                     WHERE id = $2 AND used_at IS NULL AND expires_at > $3 \
                     AND consumer_id IN (SELECT id FROM consumers WHERE state <> 'revoked') \
                     RETURNING {TOKEN_COLUMNS}"
                );
                let row = sqlx::query(AssertSqlSafe(sql))
                    .bind(session_sealed)
                    .bind(token_id)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(token_from_row).transpose()
            }

            async fn enrollment_session(&self, token_id: &str, now: Timestamp) -> StoreResult<Option<Vec<u8>>> {
                let row = sqlx::query(
                    "SELECT session_sealed FROM enrollment_tokens \
                     WHERE id = $1 AND used_at IS NULL AND expires_at > $2 AND session_sealed IS NOT NULL",
                )
                .bind(token_id)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|r| r.try_get("session_sealed")).transpose()?)
            }

            async fn complete_enrollment(&self, token_id: &str, psk: &SealedPsk, now: Timestamp) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let token = sqlx::query(
                    "UPDATE enrollment_tokens SET used_at = $1, session_sealed = NULL \
                     WHERE id = $2 AND used_at IS NULL AND expires_at > $1 RETURNING consumer_id",
                )
                .bind(now)
                .bind(token_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(token) = token else { return Ok(false) };
                let consumer_id: String = token.try_get("consumer_id")?;
                let done = sqlx::query(
                    "UPDATE consumers SET psk_sealed = $1, key_id = $2, state = $3, updated_at = $4 \
                     WHERE id = $5 AND state <> 'revoked'",
                )
                .bind(&psk.sealed)
                .bind(i64::from(psk.key_id))
                .bind(ConsumerState::Enrolled.as_str())
                .bind(now)
                .bind(&consumer_id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn insert_api_token(&self, token: &ApiToken, hash: &[u8]) -> StoreResult<()> {
                sqlx::query("INSERT INTO api_tokens (id, name, role, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(&token.id)
                    .bind(&token.name)
                    .bind(token.role.as_str())
                    .bind(hash)
                    .bind(token.created_at)
                    .execute(&self.pool)
                    .await
                    .map_err(conflict_on_unique("api token"))?;
                Ok(())
            }

            async fn api_token_by_hash(&self, hash: &[u8]) -> StoreResult<Option<ApiToken>> {
                let row = sqlx::query(
                    "SELECT id, name, role, created_at, revoked_at FROM api_tokens \
                     WHERE token_hash = $1 AND revoked_at IS NULL",
                )
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(api_token_from_row).transpose()
            }

            async fn list_api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
                let rows = sqlx::query("SELECT id, name, role, created_at, revoked_at FROM api_tokens ORDER BY created_at, id")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(api_token_from_row).collect()
            }

            async fn revoke_api_token(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
                let done = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn append_audit(&self, e: &NewAuditEntry) -> StoreResult<AuditEntry> {
                let mut tx = self.pool.begin().await?;
                let entry = append_audit_in(&mut tx, e).await?;
                tx.commit().await?;
                Ok(entry)
            }

            async fn list_audit(&self, after_seq: u64, limit: u32) -> StoreResult<Vec<AuditEntry>> {
                let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
                let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
                let rows = sqlx::query(AssertSqlSafe(sql)).bind(after).bind(i64::from(limit)).fetch_all(&self.pool).await?;
                rows.iter().map(audit_from_row).collect()
            }

            async fn insert_campaign(&self, c: &Campaign) -> StoreResult<()> {
                let waves = serde_json::to_string(&c.spec.waves).map_err(|e| corrupt("campaigns", e))?;
                sqlx::query(
                    "INSERT INTO campaigns (id, name, selector, target_suite, waves, max_in_flight, \
                     failure_threshold, deadline, drill, sign_handshakes, directives, state, created_by, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
                )
                .bind(&c.id)
                .bind(&c.spec.name)
                .bind(c.spec.selector.to_string())
                .bind(c.spec.target_suite.name())
                .bind(waves)
                .bind(i64::from(c.spec.max_in_flight))
                .bind(i64::from(c.spec.failure_threshold_percent))
                .bind(c.spec.deadline)
                .bind(c.spec.drill)
                .bind(c.spec.sign_handshakes)
                .bind(&c.spec.directives)
                .bind(c.state.as_str())
                .bind(&c.created_by)
                .bind(c.created_at)
                .execute(&self.pool)
                .await
                .map_err(conflict_on_unique("campaign id"))?;
                Ok(())
            }

            async fn campaign(&self, id: &str) -> StoreResult<Option<Campaign>> {
                let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1");
                let row = sqlx::query(AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
                row.as_ref().map(campaign_from_row).transpose()
            }

            async fn campaign_manifest(&self, id: &str) -> StoreResult<Option<Vec<u8>>> {
                let row = sqlx::query("SELECT manifest FROM campaigns WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|r| r.try_get::<Option<Vec<u8>>, _>("manifest")).transpose()?.flatten())
            }

            async fn list_campaigns(&self, after: Option<&str>, limit: u32) -> StoreResult<Page<Campaign>> {
                let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id > $1 ORDER BY id LIMIT $2");
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(after.unwrap_or(""))
                    .bind(i64::from(limit) + 1)
                    .fetch_all(&self.pool)
                    .await?;
                let mut items = rows.iter().map(campaign_from_row).collect::<StoreResult<Vec<_>>>()?;
                let more = items.len() > limit as usize;
                items.truncate(limit as usize);
                let next = if more { items.last().map(|c| c.id.clone()) } else { None };
                Ok(Page { items, next })
            }

            async fn transition_campaign(
                &self,
                id: &str,
                from: &[CampaignState],
                to: CampaignState,
                now: Timestamp,
                manifest: Option<&[u8]>,
                audit: Option<&NewAuditEntry>,
            ) -> StoreResult<Option<Campaign>> {
                let sql = format!(
                    "UPDATE campaigns SET state = $1, updated_at = $2, manifest = COALESCE($3, manifest), \
                     armed_at = CASE WHEN $1 = 'armed' THEN $2 ELSE armed_at END, \
                     fired_at = CASE WHEN $1 = 'running' AND fired_at IS NULL THEN $2 ELSE fired_at END, \
                     finished_at = CASE WHEN $1 IN ('completed', 'cancelled') THEN $2 ELSE finished_at END \
                     WHERE id = $4 AND state IN ({})",
                    state_list(from)
                );
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(AssertSqlSafe(sql))
                    .bind(to.as_str())
                    .bind(now)
                    .bind(manifest)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                if let Some(entry) = audit {
                    append_audit_in(&mut tx, entry).await?;
                }
                tx.commit().await?;
                self.campaign(id).await
            }

            async fn create_deliveries(&self, campaign_id: &str, targets: &[(String, u32)], now: Timestamp) -> StoreResult<u64> {
                let mut tx = self.pool.begin().await?;
                let existing = sqlx::query("SELECT 1 AS one FROM deliveries WHERE campaign_id = $1 LIMIT 1")
                    .bind(campaign_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if existing.is_some() {
                    return Ok(0);
                }
                // In chunks: one statement reserves the chunk's sequence numbers, one
                // inserts its deliveries.
                for chunk in targets.chunks(crate::store::DISPATCH_CHUNK) {
                    let ids = placeholders(2, chunk.len());
                    let sql = format!(
                        "UPDATE consumers SET last_sequence = last_sequence + 1, updated_at = $1 \
                         WHERE id IN ({ids}) RETURNING id, last_sequence"
                    );
                    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(now);
                    for (consumer, _) in chunk {
                        q = q.bind(consumer);
                    }
                    let mut sequences = std::collections::HashMap::new();
                    for row in q.fetch_all(&mut *tx).await? {
                        let id: String = row.try_get("id")?;
                        let sequence: i64 = row.try_get("last_sequence")?;
                        sequences.insert(id, sequence);
                    }
                    let values: Vec<String> = (0..chunk.len())
                        .map(|i| {
                            let b = 3 + 3 * i;
                            format!("($1, ${b}, ${}, ${}, 'pending', $2)", b + 1, b + 2)
                        })
                        .collect();
                    let sql = format!(
                        "INSERT INTO deliveries (campaign_id, consumer_id, wave, sequence, state, updated_at) VALUES {}",
                        values.join(", ")
                    );
                    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(campaign_id).bind(now);
                    for (consumer, wave) in chunk {
                        let sequence = sequences.get(consumer).copied().ok_or_else(|| {
                            corrupt("consumers", format!("no consumer {consumer} to target"))
                        })?;
                        q = q.bind(consumer).bind(i64::from(*wave)).bind(sequence);
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                // The table has just grown by a whole fleet. Fresh statistics make both
                // planners replan the cached statements over it: a plan made while it
                // was empty may walk every open delivery of the campaign to find one
                // consumer's (docs/performance.md).
                sqlx::query("ANALYZE deliveries").execute(&self.pool).await?;
                Ok(targets.len() as u64)
            }

            async fn open_delivery_for(&self, consumer_id: &str) -> StoreResult<Option<Delivery>> {
                let sql = format!("{} ORDER BY d.sequence LIMIT 1", open_deliveries_of("$1"));
                let row = sqlx::query(AssertSqlSafe(sql)).bind(consumer_id).fetch_optional(&self.pool).await?;
                row.as_ref().map(delivery_from_row).transpose()
            }

            async fn dispatch_rows(&self, campaign_id: &str, sent_before: Timestamp, after: &str, limit: u32) -> StoreResult<Vec<(Delivery, SealedPsk)>> {
                let sql = format!(
                    "SELECT {DELIVERY_COLUMNS}, c.key_id AS psk_key_id, c.psk_sealed FROM deliveries d \
                     JOIN campaigns k ON k.id = d.campaign_id JOIN consumers c ON c.id = d.consumer_id \
                     WHERE d.campaign_id = $1 AND k.state = 'running' AND d.wave <= k.current_wave \
                     AND (d.state = 'pending' OR (d.state = 'sent' AND d.updated_at <= $2)) \
                     AND d.consumer_id > $3 AND c.psk_sealed IS NOT NULL ORDER BY d.consumer_id LIMIT $4"
                );
                let q = sqlx::query(AssertSqlSafe(sql))
                    .bind(campaign_id)
                    .bind(sent_before)
                    .bind(after)
                    .bind(i64::from(limit));
                let mut out = Vec::new();
                for row in q.fetch_all(&self.pool).await? {
                    let psk = SealedPsk {
                        key_id: unsigned("consumers", row.try_get("psk_key_id")?)?,
                        sealed: row.try_get("psk_sealed")?,
                    };
                    out.push((delivery_from_row(&row)?, psk));
                }
                Ok(out)
            }

            async fn mark_sent(&self, campaign_id: &str, sends: &[crate::store::Dispatch], now: Timestamp) -> StoreResult<Vec<bool>> {
                // The back end's own: one statement on PostgreSQL, a transaction here.
                Self::record_sends(&self.pool, campaign_id, sends, now).await
            }

            async fn delivery(&self, campaign_id: &str, consumer_id: &str) -> StoreResult<Option<Delivery>> {
                let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.campaign_id = $1 AND d.consumer_id = $2");
                let row = sqlx::query(AssertSqlSafe(sql)).bind(campaign_id).bind(consumer_id).fetch_optional(&self.pool).await?;
                row.as_ref().map(delivery_from_row).transpose()
            }

            async fn delivery_with_psk(&self, campaign_id: &str, consumer_id: &str) -> StoreResult<Option<(Delivery, Option<SealedPsk>)>> {
                let sql = format!(
                    "SELECT {DELIVERY_COLUMNS}, c.key_id AS psk_key_id, c.psk_sealed FROM deliveries d \
                     JOIN consumers c ON c.id = d.consumer_id WHERE d.campaign_id = $1 AND d.consumer_id = $2"
                );
                let mut lease = self.leases.lease().await?;
                let row = sqlx::query(AssertSqlSafe(sql))
                    .bind(campaign_id)
                    .bind(consumer_id)
                    .fetch_optional(lease.conn())
                    .await?;
                lease.give_back();
                let Some(row) = row else { return Ok(None) };
                let delivery = delivery_from_row(&row)?;
                let sealed: Option<Vec<u8>> = row.try_get("psk_sealed")?;
                let psk = match sealed {
                    Some(sealed) => Some(SealedPsk { key_id: unsigned("consumers", row.try_get("psk_key_id")?)?, sealed }),
                    None => None,
                };
                Ok(Some((delivery, psk)))
            }

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
            ) -> StoreResult<bool> {
                let sql = format!(
                    "UPDATE deliveries SET state = $1, reason = COALESCE($2, reason), escape_message = COALESCE($3, escape_message), \
                     pending_sealed = COALESCE($4, pending_sealed), attempts = attempts + 1, updated_at = $5 \
                     WHERE campaign_id = $6 AND consumer_id = $7 AND state IN ({})",
                    delivery_list(from)
                );
                let query = sqlx::query(AssertSqlSafe(sql))
                    .bind(to.as_str())
                    .bind(reason)
                    .bind(escape)
                    .bind(pending_sealed)
                    .bind(now)
                    .bind(campaign_id)
                    .bind(consumer_id);
                let mut lease = self.leases.lease().await?;
                let done = query.execute(lease.conn()).await?;
                lease.give_back();
                Ok(done.rows_affected() == 1)
            }

            async fn finish_delivery(
                &self,
                campaign_id: &str,
                consumer_id: &str,
                pending_sealed: &[u8],
                to: DeliveryState,
                migration: Option<&Migration>,
                now: Timestamp,
            ) -> StoreResult<bool> {
                // The delivery's end, the first five parameters of every form below.
                let ending = |sql| {
                    sqlx::query(sql)
                        .bind(to.as_str())
                        .bind(now)
                        .bind(campaign_id)
                        .bind(consumer_id)
                        .bind(pending_sealed)
                };
                let end = "UPDATE deliveries SET state = $1, pending_sealed = NULL, updated_at = $2 \
                     WHERE campaign_id = $3 AND consumer_id = $4 AND state = 'negotiating' AND pending_sealed = $5";
                let Some(m) = migration else {
                    let mut lease = self.leases.lease().await?;
                    let done = ending(end).execute(lease.conn()).await?;
                    lease.give_back();
                    return Ok(done.rows_affected() > 0);
                };
                // One statement where the dialect allows it: a migration is the write
                // every consumer of a campaign makes, and a transaction costs two
                // more round trips (docs/performance.md).
                if let Some(sql) = $migrate_in_one {
                    let mut lease = self.leases.lease().await?;
                    let done = ending(sql)
                        .bind(&m.psk_sealed)
                        .bind(i64::from(m.key_id))
                        .bind(&m.suite)
                        .execute(lease.conn())
                        .await?;
                    lease.give_back();
                    return Ok(done.rows_affected() > 0);
                }
                let mut tx = self.pool.begin().await?;
                let done = ending(end)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                sqlx::query("UPDATE consumers SET psk_sealed = $1, key_id = $2, suite = $3, updated_at = $4 WHERE id = $5")
                    .bind(&m.psk_sealed)
                    .bind(i64::from(m.key_id))
                    .bind(&m.suite)
                    .bind(now)
                    .bind(consumer_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn delivery_counts(&self, campaign_id: &str) -> StoreResult<Vec<(DeliveryState, u64)>> {
                let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM deliveries WHERE campaign_id = $1 GROUP BY state")
                    .bind(campaign_id)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        let state: String = r.try_get("state")?;
                        let state = DeliveryState::parse(&state).ok_or_else(|| corrupt("deliveries", &state))?;
                        Ok((state, unsigned("deliveries", r.try_get("n")?)?))
                    })
                    .collect()
            }

            async fn delivery_tally(&self, campaign_id: &str) -> StoreResult<DeliveryTally> {
                let rows = sqlx::query(
                    "SELECT wave, state, COUNT(*) AS n FROM deliveries WHERE campaign_id = $1 \
                     GROUP BY wave, state ORDER BY wave, state",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        let state: String = r.try_get("state")?;
                        Ok((
                            unsigned("deliveries", r.try_get("wave")?)?,
                            DeliveryState::parse(&state).ok_or_else(|| corrupt("deliveries", &state))?,
                            unsigned("deliveries", r.try_get("n")?)?,
                        ))
                    })
                    .collect::<StoreResult<_>>()
                    .map(DeliveryTally)
            }

            async fn shared_tally(&self, campaign_id: &str) -> StoreResult<Option<crate::tally::SharedTally>> {
                let row = sqlx::query(
                    "SELECT claimed_at_ms, counted_at_ms, counts FROM campaign_tallies WHERE campaign_id = $1",
                )
                .bind(campaign_id)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let counted_at: Option<i64> = row.try_get("counted_at_ms")?;
                let counts: Option<String> = row.try_get("counts")?;
                let counted = match (counted_at, counts) {
                    (Some(at_ms), Some(counts)) => {
                        let tally = DeliveryTally::decode(&counts);
                        if tally.is_none() {
                            tracing::warn!(campaign.id = %campaign_id, "stored count of deliveries does not parse; counting again");
                        }
                        tally.map(|tally| crate::tally::Counted { tally, at_ms })
                    }
                    _ => None,
                };
                Ok(Some(crate::tally::SharedTally { claimed_at_ms: row.try_get("claimed_at_ms")?, counted }))
            }

            async fn claim_tally(&self, campaign_id: &str, seen: Option<i64>, now_ms: i64) -> StoreResult<bool> {
                let done = match seen {
                    None => sqlx::query(
                        "INSERT INTO campaign_tallies (campaign_id, claimed_at_ms) VALUES ($1, $2) \
                         ON CONFLICT (campaign_id) DO NOTHING",
                    )
                    .bind(campaign_id)
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?,
                    Some(seen) => sqlx::query(
                        "UPDATE campaign_tallies SET claimed_at_ms = $1 WHERE campaign_id = $2 AND claimed_at_ms = $3",
                    )
                    .bind(now_ms)
                    .bind(campaign_id)
                    .bind(seen)
                    .execute(&self.pool)
                    .await?,
                };
                Ok(done.rows_affected() == 1)
            }

            async fn save_tally(&self, campaign_id: &str, counted: &crate::tally::Counted) -> StoreResult<()> {
                // A slow claimer's count does not replace a newer one.
                sqlx::query(
                    "UPDATE campaign_tallies SET counted_at_ms = $1, counts = $2 \
                     WHERE campaign_id = $3 AND (counted_at_ms IS NULL OR counted_at_ms < $1)",
                )
                    .bind(counted.at_ms)
                    .bind(counted.tally.encode())
                    .bind(campaign_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn set_current_wave(&self, campaign_id: &str, wave: u32, now: Timestamp) -> StoreResult<()> {
                sqlx::query("UPDATE campaigns SET current_wave = $1, updated_at = $2 WHERE id = $3")
                    .bind(i64::from(wave))
                    .bind(now)
                    .bind(campaign_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn current_wave(&self, campaign_id: &str) -> StoreResult<u32> {
                let row = sqlx::query("SELECT current_wave FROM campaigns WHERE id = $1")
                    .bind(campaign_id)
                    .fetch_optional(&self.pool)
                    .await?;
                match row {
                    Some(r) => unsigned("campaigns", r.try_get("current_wave")?),
                    None => Ok(0),
                }
            }

            async fn running_campaigns(&self) -> StoreResult<Vec<String>> {
                let rows = sqlx::query("SELECT id FROM campaigns WHERE state = 'running' ORDER BY id")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
            }

            async fn expire_deliveries(&self, campaign_id: &str, now: Timestamp) -> StoreResult<u64> {
                let sql = format!(
                    "UPDATE deliveries SET state = 'expired', pending_sealed = NULL, updated_at = $1 \
                     WHERE campaign_id = $2 AND state IN ({})",
                    delivery_list(&DeliveryState::OPEN)
                );
                let done = sqlx::query(AssertSqlSafe(sql)).bind(now).bind(campaign_id).execute(&self.pool).await?;
                Ok(done.rows_affected())
            }

            async fn list_deliveries(&self, q: &DeliveryQuery) -> StoreResult<Page<DeliveryRow>> {
                // An empty state parameter means every state.
                let rows = sqlx::query(
                    "SELECT d.consumer_id, c.name, d.wave, d.sequence, d.state, d.reason, d.updated_at \
                     FROM deliveries d JOIN consumers c ON c.id = d.consumer_id \
                     WHERE d.campaign_id = $1 AND c.name > $2 AND ($3 = '' OR d.state = $3) \
                     ORDER BY c.name LIMIT $4",
                )
                .bind(&q.campaign_id)
                .bind(q.after.as_deref().unwrap_or(""))
                .bind(q.state.map_or("", DeliveryState::as_str))
                .bind(i64::from(q.limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let mut items = rows.iter().map(delivery_row_from_row).collect::<StoreResult<Vec<_>>>()?;
                let more = items.len() > q.limit as usize;
                items.truncate(q.limit as usize);
                let next = if more { items.last().map(|d| d.consumer_name.clone()) } else { None };
                Ok(Page { items, next })
            }

            async fn ended_deliveries_over_time(&self, campaign_id: &str, bucket_secs: u32) -> StoreResult<Vec<EndedInBucket>> {
                let sql = format!(
                    "SELECT (updated_at / $2) * $2 AS bucket, state, COUNT(*) AS n FROM deliveries \
                     WHERE campaign_id = $1 AND state NOT IN ({}) GROUP BY 1, 2 ORDER BY 1, 2",
                    delivery_list(&DeliveryState::OPEN)
                );
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(campaign_id)
                    .bind(i64::from(bucket_secs.max(1)))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        let state: String = r.try_get("state")?;
                        Ok(EndedInBucket {
                            at: r.try_get("bucket")?,
                            state: DeliveryState::parse(&state).ok_or_else(|| corrupt("deliveries", &state))?,
                            count: unsigned("deliveries", r.try_get("n")?)?,
                        })
                    })
                    .collect()
            }

            async fn signing_key(&self) -> StoreResult<Option<StoredSigningKey>> {
                let row = sqlx::query("SELECT id, seed_sealed, public_key FROM signing_keys ORDER BY created_at, id LIMIT 1")
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some(StoredSigningKey {
                    id: row.try_get("id")?,
                    seed_sealed: row.try_get("seed_sealed")?,
                    public_key: row.try_get("public_key")?,
                }))
            }

            async fn init_signing_key(&self, key: &StoredSigningKey, now: Timestamp) -> StoreResult<StoredSigningKey> {
                // One row, inserted by whichever replica starts first; the others adopt it.
                sqlx::query(
                    "INSERT INTO signing_keys (id, seed_sealed, public_key, created_at) \
                     SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM signing_keys)",
                )
                .bind(&key.id)
                .bind(&key.seed_sealed)
                .bind(&key.public_key)
                .bind(now)
                .execute(&self.pool)
                .await?;
                self.signing_key().await?.ok_or_else(|| corrupt("signing_keys", "no key after insert"))
            }
        }
    };
}

pub(super) use sql_store;

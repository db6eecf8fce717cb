//! The administrator's side of a run, through the orchestrator's gRPC admin API:
//! register consumers, create, arm and fire the campaign; and the store's row
//! counters, read from PostgreSQL's statistics.

use pqescape_orchestrator::grpc::pb;
use pqescape_orchestrator::grpc::pb::campaigns_client::CampaignsClient;
use pqescape_orchestrator::grpc::pb::consumers_client::ConsumersClient;
use tonic::transport::Channel;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A gRPC admin connection with its token.
#[derive(Clone)]
pub struct Admin {
    channel: Channel,
    token: String,
}

impl Admin {
    /// Connects to the admin API at `url`.
    pub async fn connect(url: &str, token: &str) -> Result<Self, BoxError> {
        let channel = tonic::transport::Endpoint::from_shared(url.to_owned())?.connect().await?;
        Ok(Self { channel, token: token.to_owned() })
    }

    fn request<T>(&self, message: T) -> Result<tonic::Request<T>, BoxError> {
        let mut req = tonic::Request::new(message);
        req.metadata_mut().insert("authorization", format!("Bearer {}", self.token).parse()?);
        Ok(req)
    }

    /// Registers a consumer labelled `fleetsim=<run>`; returns its enrollment token.
    pub async fn register(&self, name: &str, run: &str) -> Result<String, BoxError> {
        let labels = [("fleetsim".to_owned(), run.to_owned())].into_iter().collect();
        let req = pb::RegisterConsumerRequest { name: name.into(), labels, token_ttl_secs: None };
        let answer =
            ConsumersClient::new(self.channel.clone()).register(self.request(req)?).await?;
        answer.into_inner().enrollment.map(|e| e.token).ok_or_else(|| "no enrollment token".into())
    }

    /// Creates and arms a campaign at this run's consumers; returns its id.
    pub async fn create_and_arm(
        &self,
        run: &str,
        drill: bool,
        waves: &[u32],
        max_in_flight: u32,
        deadline_in_secs: u64,
    ) -> Result<String, BoxError> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
        let req = pb::CreateCampaignRequest {
            name: format!("fleetsim {run}"),
            selector: format!("fleetsim={run}"),
            target_suite: "x25519-mlkem768".into(),
            waves: waves.to_vec(),
            max_in_flight: Some(max_in_flight),
            failure_threshold_percent: Some(100),
            deadline: i64::try_from(now + deadline_in_secs)?,
            drill,
            sign_handshakes: false,
            directives: String::new(),
        };
        let mut campaigns = CampaignsClient::new(self.channel.clone());
        let id = campaigns.create(self.request(req)?).await?.into_inner().id;
        campaigns.arm(self.request(pb::CampaignRef { id: id.clone() })?).await?;
        Ok(id)
    }

    /// Fires campaign `id`, confirming with its id.
    pub async fn fire(&self, id: &str) -> Result<(), BoxError> {
        let req = pb::FireRequest { id: id.into(), confirm: id.into() };
        CampaignsClient::new(self.channel.clone()).fire(self.request(req)?).await?;
        Ok(())
    }
}

/// Rows inserted, updated and deleted in the database's user tables so far.
pub async fn rows_written(url: &str) -> Result<i64, BoxError> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let rows: (Option<i64>,) = sqlx::query_as(
        "SELECT (sum(n_tup_ins) + sum(n_tup_upd) + sum(n_tup_del))::BIGINT FROM pg_stat_user_tables",
    )
    .fetch_one(&mut conn)
    .await?;
    Ok(rows.0.unwrap_or(0))
}

//! Enrollment (protocol.md §8.3): a one-time token in, a PSK and a pinned
//! orchestrator key out, written to the state directory.

use pqescape_message::enrollment::{AgentEnrollment, EnrollmentToken};
use pqescape_message::entropy::SystemEntropy;
use pqescape_message::types::Suite;
use zeroize::Zeroizing;

use crate::channel::ChannelSettings;
use crate::config::Config;
use crate::gateway::pb;
use crate::gateway::pb::agent_gateway_client::AgentGatewayClient;
use crate::state::{AgentState, STATE_VERSION, StateError, StoredPsk};
use crate::tls::Groups;

/// Why enrollment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The token text does not parse.
    #[error("the enrollment token is malformed")]
    BadToken,
    /// This agent is enrolled already; refusing to overwrite its identity.
    #[error("already enrolled as consumer {0}; remove the state file to enroll again")]
    AlreadyEnrolled(String),
    /// The orchestrator could not be reached.
    #[error("cannot reach the orchestrator at {url}: {detail}")]
    Unreachable {
        /// Gateway URL.
        url: String,
        /// Transport error.
        detail: String,
    },
    /// The orchestrator refused (unknown, used or expired token, say).
    #[error("the orchestrator refused the enrollment: {0}")]
    Refused(String),
    /// The orchestrator's answer failed verification (wrong pinned key, bad signature).
    #[error("the orchestrator's answer did not verify: {0}")]
    Protocol(pqescape_message::error::Error),
    /// Local state could not be written.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Enrolls with `token_text`; returns the new state (already saved).
pub async fn enroll(config: &Config, token_text: &str) -> Result<AgentState, EnrollError> {
    if let Some(existing) = AgentState::load(&config.state_dir)? {
        return Err(EnrollError::AlreadyEnrolled(existing.consumer_id));
    }
    let suite = Suite::from_name(&config.enrollment_suite).unwrap_or(Suite::X25519MlKem768);
    let state = enroll_with(&ChannelSettings::from(config), suite, token_text).await?;
    state.save(&config.state_dir)?;
    Ok(state)
}

/// Runs the enrollment exchange over a new gateway connection and returns the
/// state it yields, without storing it anywhere.
pub async fn enroll_with(
    settings: &ChannelSettings,
    suite: Suite,
    token_text: &str,
) -> Result<AgentState, EnrollError> {
    let token = EnrollmentToken::parse(token_text).map_err(|_| EnrollError::BadToken)?;
    let mut client = connect(settings).await?;

    let mut rng = SystemEntropy::new();
    let (session, hello) =
        AgentEnrollment::start(token, suite, &mut rng).map_err(EnrollError::Protocol)?;
    let answer =
        client.enroll_hello(pb::EnrollHelloRequest { hello }).await.map_err(refused)?.into_inner();
    let (confirm, enrolled, pinned) =
        session.confirm(&answer.accept).map_err(EnrollError::Protocol)?;
    let request = pb::EnrollConfirmRequest { session: answer.session, confirm };
    client.enroll_confirm(request).await.map_err(refused)?;

    let state = AgentState {
        version: STATE_VERSION,
        consumer_id: uuid_text(enrolled.consumer.0),
        psks: vec![StoredPsk {
            key_id: enrolled.key_id,
            psk: Zeroizing::new(hex::encode(enrolled.psk.expose())),
        }],
        suite: Suite::Classical.name().into(),
        last_sequence: 0,
        orchestrator_key: hex::encode(pinned.as_bytes()),
        orchestrator: settings.orchestrator.clone(),
        pending_escape: None,
        pending_hooks: None,
    };
    Ok(state)
}

async fn connect(
    settings: &ChannelSettings,
) -> Result<AgentGatewayClient<tonic::transport::Channel>, EnrollError> {
    let url = &settings.orchestrator;
    let unreachable = |detail: String| EnrollError::Unreachable { url: url.clone(), detail };
    let (channel, _) =
        crate::tls::connect(url, &settings.ca_file, Groups::Classical, settings.timeout)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
    Ok(AgentGatewayClient::new(channel))
}

fn refused(status: tonic::Status) -> EnrollError {
    EnrollError::Refused(status.message().to_owned())
}

/// Formats 16 bytes as a UUID string.
pub fn uuid_text(b: [u8; 16]) -> String {
    pqescape_message::types::ConsumerId(b).to_string()
}

//! Signing and verifying campaign manifests (protocol.md §7.3).
//!
//! A manifest costs one ML-DSA-65 signature per campaign, not per consumer. An
//! agent configured with `require_manifest` accepts an escape only when it is
//! bound to a manifest signed by the pinned orchestrator key, so a leaked PSK
//! table alone cannot start a migration.

use crate::error::{Malformed, Misuse, Rejection, Result};
use crate::freshness::{MAX_VALIDITY_SECS, check_window};
use crate::message::{CampaignManifest, MAX_SELECTOR_LEN};
use crate::schedule::hash;
use crate::sign::{OrchestratorSigningKey, OrchestratorVerifyingKey, context};
use crate::types::{CampaignId, Suite};

/// What a manifest states, before it is signed.
#[derive(Clone, Debug)]
pub struct ManifestOrder<'a> {
    /// The campaign.
    pub campaign: CampaignId,
    /// Target suite.
    pub suite: Suite,
    /// Whether the campaign is a drill.
    pub drill: bool,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds: the campaign's deadline.
    pub not_after: u64,
    /// The label selector, for the record.
    pub selector: &'a str,
}

/// Signs a manifest; returns its bytes. The digest to bind in escapes is
/// `SHA-256(bytes)`, see [`manifest_digest`].
pub fn sign_manifest(order: &ManifestOrder<'_>, key: &OrchestratorSigningKey) -> Result<Vec<u8>> {
    if !order.suite.is_post_quantum() {
        return Err(Misuse::ClassicalSuite.into());
    }
    let window = order.not_after.saturating_sub(order.issued_at);
    if window == 0 || window > MAX_VALIDITY_SECS {
        return Err(Misuse::InvalidWindow.into());
    }
    if order.selector.len() > MAX_SELECTOR_LEN {
        return Err(Misuse::FieldTooLong("selector").into());
    }
    let manifest = CampaignManifest {
        campaign: order.campaign,
        suite: order.suite,
        drill: order.drill,
        issued_at: order.issued_at,
        not_after: order.not_after,
        signer: key.verifying_key().fingerprint(),
        selector: order.selector.to_owned(),
        signature: Vec::new(),
    };
    let mut w = manifest.signed_part()?;
    let sig = key.sign(w.so_far(), context::MANIFEST)?;
    w.bytes(&sig);
    Ok(w.finish())
}

/// The digest an escape binds: SHA-256 of the whole manifest.
pub fn manifest_digest(bytes: &[u8]) -> [u8; 32] {
    hash(&[bytes])
}

/// A manifest whose signature, signer and window have been checked.
#[derive(Clone, Debug)]
pub struct VerifiedManifest {
    manifest: CampaignManifest,
    digest: [u8; 32],
}

impl VerifiedManifest {
    /// The manifest's fields.
    pub fn manifest(&self) -> &CampaignManifest {
        &self.manifest
    }

    /// SHA-256 of the manifest bytes.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }
}

/// Verifies a manifest against the pinned orchestrator key at `now`.
pub fn verify_manifest(
    bytes: &[u8],
    pinned: &OrchestratorVerifyingKey,
    now: u64,
    clock_skew_secs: u64,
) -> Result<VerifiedManifest> {
    let manifest = CampaignManifest::decode(bytes)?;
    if manifest.signer != pinned.fingerprint() {
        return Err(Rejection::UntrustedSigner.into());
    }
    let signed_len = bytes.len().checked_sub(manifest.signature.len());
    let signed = signed_len.and_then(|n| bytes.get(..n)).ok_or(Malformed::Truncated)?;
    pinned.verify(signed, context::MANIFEST, &manifest.signature)?;
    check_window(manifest.issued_at, manifest.not_after, now, clock_skew_secs)?;
    Ok(VerifiedManifest { manifest, digest: manifest_digest(bytes) })
}

//! The campaign manifest (protocol.md §6.6): one ML-DSA-65 signature per campaign
//! that says the campaign was authorised by the holder of the orchestrator key.

use crate::error::{Malformed, Misuse, Result};
use crate::sign::SIGNATURE_LEN;
use crate::types::{CampaignId, Suite};
use crate::wire::{MessageType, Reader, Writer, open_frame};

/// Longest label selector, in bytes of UTF-8.
pub const MAX_SELECTOR_LEN: usize = 1024;

const FLAG_DRILL: u8 = 0x01;

/// A decoded campaign manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CampaignManifest {
    /// The campaign.
    pub campaign: CampaignId,
    /// Target suite.
    pub suite: Suite,
    /// Whether the campaign is a drill.
    pub drill: bool,
    /// Seconds since the Unix epoch.
    pub issued_at: u64,
    /// Seconds since the Unix epoch; escapes of this campaign are void after it.
    pub not_after: u64,
    /// SHA-256 of the signer's encoded ML-DSA-65 verifying key.
    pub signer: [u8; 32],
    /// The label selector the campaign targets, for the record.
    pub selector: String,
    /// ML-DSA-65 signature over every preceding byte, context "pqescape/v1 manifest".
    pub signature: Vec<u8>,
}

impl CampaignManifest {
    /// Decodes one manifest; the signature is not checked here.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(open_frame(bytes, MessageType::CampaignManifest)?);
        let campaign = CampaignId(r.array()?);
        let suite = Suite::target_from_u8(r.u8()?)?;
        let flags = r.u8()?;
        if flags & !FLAG_DRILL != 0 {
            return Err(Malformed::ReservedFlags.into());
        }
        let (issued_at, not_after) = (r.u64()?, r.u64()?);
        let signer = r.array()?;
        let selector = r.vec16("selector", 0..=MAX_SELECTOR_LEN)?;
        let selector = String::from_utf8(selector.to_vec()).map_err(|_| Malformed::InvalidUtf8)?;
        let signature = r.take(SIGNATURE_LEN)?.to_vec();
        r.finish()?;
        let drill = flags & FLAG_DRILL != 0;
        Ok(Self { campaign, suite, drill, issued_at, not_after, signer, selector, signature })
    }

    /// Writes everything the signature covers.
    pub(crate) fn signed_part(&self) -> Result<Writer> {
        let body = 16 + 1 + 1 + 8 + 8 + 32 + 2 + self.selector.len() + SIGNATURE_LEN;
        let mut w = Writer::new(MessageType::CampaignManifest, body);
        w.bytes(&self.campaign.0).u8(self.suite as u8);
        w.u8(if self.drill { FLAG_DRILL } else { 0 });
        w.u64(self.issued_at).u64(self.not_after).bytes(&self.signer);
        w.vec16("selector", self.selector.as_bytes(), MAX_SELECTOR_LEN)?;
        w.reserve_trailer(SIGNATURE_LEN);
        Ok(w)
    }

    /// Encodes the manifest with its current signature.
    pub fn encode(&self) -> Result<Vec<u8>> {
        if self.signature.len() != SIGNATURE_LEN {
            return Err(Misuse::InvalidField("signature").into());
        }
        let mut w = self.signed_part()?;
        w.bytes(&self.signature);
        Ok(w.finish())
    }
}

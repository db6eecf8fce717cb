//! Sealing and checking channel hellos (protocol.md §6.8, §8.4).

use crate::error::{Rejection, Result};
use crate::message::{ChannelHello, split_tag};
use crate::schedule::{EscapeKeys, mac, verify_mac};
use crate::secret::{SecretKey, tags_equal};
use crate::types::{ConsumerId, KeyId, KeyMode};

/// Builds the hello an agent sends in answer to `challenge`.
pub fn seal_hello(
    consumer: ConsumerId,
    key_id: KeyId,
    psk: &SecretKey,
    challenge: [u8; 16],
    agent_version: &str,
) -> Result<Vec<u8>> {
    let hello = ChannelHello {
        consumer,
        key_id,
        challenge,
        agent_version: agent_version.to_owned(),
        mac: [0; 32],
    };
    let keys = EscapeKeys::derive(psk, consumer, key_id, KeyMode::DedicatedPsk);
    let mut w = hello.writer()?;
    let tag = mac(&keys.channel_mac, &[w.so_far()]);
    w.bytes(&tag);
    Ok(w.finish())
}

/// Checks a decoded hello against the challenge this connection issued and the PSK
/// its `key_id` names. The challenge is compared first: a hello made for another
/// connection is stale, whoever made it.
pub fn verify_hello(
    bytes: &[u8],
    hello: &ChannelHello,
    challenge: &[u8; 16],
    psk: &SecretKey,
) -> Result<()> {
    if !tags_equal(&hello.challenge, challenge) {
        return Err(Rejection::TranscriptMismatch.into());
    }
    let keys = EscapeKeys::derive(psk, hello.consumer, hello.key_id, KeyMode::DedicatedPsk);
    let (covered, tag) = split_tag(bytes);
    verify_mac(&keys.channel_mac, &[covered], tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn a_hello_verifies_only_for_its_challenge_and_psk() {
        let psk = SecretKey::from_bytes([3; 32]);
        let bytes = seal_hello(ConsumerId([1; 16]), 2, &psk, [9; 16], "0.1.0").unwrap();
        let hello = ChannelHello::decode(&bytes).unwrap();
        assert_eq!((hello.key_id, hello.agent_version.as_str()), (2, "0.1.0"));
        assert_eq!(verify_hello(&bytes, &hello, &[9; 16], &psk), Ok(()));
        let stale = verify_hello(&bytes, &hello, &[8; 16], &psk);
        assert_eq!(stale, Err(Error::Rejected(Rejection::TranscriptMismatch)));
        let other = SecretKey::from_bytes([4; 32]);
        assert_eq!(verify_hello(&bytes, &hello, &[9; 16], &other), Err(Error::Integrity));
        let mut flipped = bytes.clone();
        flipped[10] ^= 1;
        let decoded = ChannelHello::decode(&flipped).unwrap();
        assert_eq!(verify_hello(&flipped, &decoded, &[9; 16], &psk), Err(Error::Integrity));
    }
}

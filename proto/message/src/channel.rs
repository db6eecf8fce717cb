//! Sealing and checking channel hellos (protocol.md §6.8, §8.4).
//!
//! The MAC covers the hello and the TLS exporter value of the connection that
//! carries it ([`TLS_BINDING_LABEL`]), so a hello proves the PSK to the one TLS
//! session both ends share: a relay that terminates TLS on each side sees two
//! sessions with two exporter values, and its forwarded hello fails the MAC.

use crate::error::{Rejection, Result};
use crate::message::{ChannelHello, split_tag};
use crate::schedule::{EscapeKeys, mac, verify_mac};
use crate::secret::{SecretKey, tags_equal};
use crate::types::{ConsumerId, KeyId, KeyMode};

/// TLS 1.3 exporter label (RFC 8446 §7.5) of the channel's binding value: 32 bytes,
/// empty context (protocol.md §8.4).
pub const TLS_BINDING_LABEL: &[u8] = b"EXPORTER-pqescape-v1-channel";

/// Length of the TLS binding value.
pub const TLS_BINDING_LEN: usize = 32;

/// Builds the hello an agent sends in answer to `challenge` on the TLS session
/// whose exporter value (under [`TLS_BINDING_LABEL`]) is `tls_binding`.
pub fn seal_hello(
    consumer: ConsumerId,
    key_id: KeyId,
    psk: &SecretKey,
    challenge: [u8; 16],
    agent_version: &str,
    tls_binding: &[u8; TLS_BINDING_LEN],
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
    let tag = mac(&keys.channel_mac, &[w.so_far(), tls_binding]);
    w.bytes(&tag);
    Ok(w.finish())
}

/// Checks a decoded hello against the challenge this connection issued, the PSK
/// its `key_id` names and this end's TLS binding value. The challenge is compared
/// first: a hello made for another connection is stale, whoever made it.
pub fn verify_hello(
    bytes: &[u8],
    hello: &ChannelHello,
    challenge: &[u8; 16],
    psk: &SecretKey,
    tls_binding: &[u8; TLS_BINDING_LEN],
) -> Result<()> {
    if !tags_equal(&hello.challenge, challenge) {
        return Err(Rejection::TranscriptMismatch.into());
    }
    let keys = EscapeKeys::derive(psk, hello.consumer, hello.key_id, KeyMode::DedicatedPsk);
    let (covered, tag) = split_tag(bytes);
    verify_mac(&keys.channel_mac, &[covered, tls_binding], tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn a_hello_verifies_only_for_its_challenge_and_psk() {
        let psk = SecretKey::from_bytes([3; 32]);
        let tls = [7; TLS_BINDING_LEN];
        let bytes = seal_hello(ConsumerId([1; 16]), 2, &psk, [9; 16], "0.1.0", &tls).unwrap();
        let hello = ChannelHello::decode(&bytes).unwrap();
        assert_eq!((hello.key_id, hello.agent_version.as_str()), (2, "0.1.0"));
        assert_eq!(verify_hello(&bytes, &hello, &[9; 16], &psk, &tls), Ok(()));
        let stale = verify_hello(&bytes, &hello, &[8; 16], &psk, &tls);
        assert_eq!(stale, Err(Error::Rejected(Rejection::TranscriptMismatch)));
        let other = SecretKey::from_bytes([4; 32]);
        assert_eq!(verify_hello(&bytes, &hello, &[9; 16], &other, &tls), Err(Error::Integrity));
        let mut flipped = bytes.clone();
        flipped[10] ^= 1;
        let decoded = ChannelHello::decode(&flipped).unwrap();
        assert_eq!(verify_hello(&flipped, &decoded, &[9; 16], &psk, &tls), Err(Error::Integrity));
    }

    #[test]
    fn a_hello_relayed_onto_another_tls_session_fails() {
        let psk = SecretKey::from_bytes([3; 32]);
        let bytes =
            seal_hello(ConsumerId([1; 16]), 2, &psk, [9; 16], "0.1.0", &[7; TLS_BINDING_LEN])
                .unwrap();
        let hello = ChannelHello::decode(&bytes).unwrap();
        let relayed = verify_hello(&bytes, &hello, &[9; 16], &psk, &[8; TLS_BINDING_LEN]);
        assert_eq!(relayed, Err(Error::Integrity));
    }
}

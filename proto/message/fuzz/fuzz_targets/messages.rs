//! Every message codec. The first byte picks the decoder; a message that decodes
//! must encode back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pqescape_message::message::*;

fn same(input: &[u8], encoded: Option<Vec<u8>>) {
    if let Some(bytes) = encoded {
        assert_eq!(bytes, input, "decode/encode must round-trip");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, input)) = data.split_first() else { return };
    match which % 10 {
        0 => same(input, Escape::decode(input).ok().and_then(|m| m.encode().ok())),
        1 => same(input, Ack::decode(input).ok().and_then(|m| m.encode().ok())),
        2 => same(input, HandshakeResponse::decode(input).ok().and_then(|m| m.encode().ok())),
        3 => same(input, Finished::decode(input).ok().map(|m| m.encode())),
        4 => same(input, StatusReport::decode(input).ok().and_then(|m| m.encode().ok())),
        5 => same(input, CampaignManifest::decode(input).ok().and_then(|m| m.encode().ok())),
        6 => same(input, EnrollHello::decode(input).ok().and_then(|m| m.encode().ok())),
        7 => same(input, EnrollAccept::decode(input).ok().and_then(|m| m.encode().ok())),
        8 => same(input, ChannelHello::decode(input).ok().and_then(|m| m.encode().ok())),
        _ => same(input, EnrollConfirm::decode(input).ok().map(|m| m.encode())),
    }
});

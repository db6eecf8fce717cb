//! Enrollment token text: parse, and a parsed token must print back identically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pqescape_message::enrollment::EnrollmentToken;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(token) = EnrollmentToken::parse(text) {
        assert_eq!(token.reveal(), text.trim().to_ascii_lowercase());
    }
});

//! Stream framing: `peek_frame` on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pqescape_message::wire::peek_frame;

fuzz_target!(|data: &[u8]| {
    if let Ok((_, len)) = peek_frame(data) {
        assert!(len <= data.len());
    }
});

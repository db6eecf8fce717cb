//! The byte level (protocol.md §3): the common header, framing and bounded field access.
//!
//! Nothing here knows what a message means; the codecs in `message` build on it.

mod frame;
mod reader;
mod writer;

pub(crate) use frame::open_frame;
pub use frame::{HEADER_LEN, MAGIC, MessageType, VERSION, peek_frame};
pub(crate) use reader::Reader;
pub(crate) use writer::Writer;

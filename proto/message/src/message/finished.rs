//! The finished message (protocol.md §6.4): the agent's key confirmation.

use super::{EXCHANGE_LEN, Exchange};
use crate::error::Result;
use crate::schedule::TAG_LEN;
use crate::wire::{MessageType, Reader, Writer, open_frame};

/// A decoded finished message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// Which escape this completes.
    pub exchange: Exchange,
    /// HMAC under the client finished key over the transcript hash.
    pub confirm: [u8; TAG_LEN],
}

impl Finished {
    /// Decodes one finished message.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(open_frame(bytes, MessageType::Finished)?);
        let exchange = Exchange::read(&mut r)?;
        let confirm = r.array()?;
        r.finish()?;
        Ok(Self { exchange, confirm })
    }

    pub(crate) fn writer(exchange: &Exchange) -> Writer {
        let mut w = Writer::new(MessageType::Finished, EXCHANGE_LEN + TAG_LEN);
        exchange.write(&mut w);
        w.reserve_trailer(TAG_LEN);
        w
    }

    /// Encodes the message.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Self::writer(&self.exchange);
        w.bytes(&self.confirm);
        w.finish()
    }
}

//! Builds one message: header first, body length patched in at the end.

use super::frame::{HEADER_LEN, MAGIC, MessageType, VERSION};
use crate::error::{Misuse, Result};

/// Appends fields to a message under construction.
pub(crate) struct Writer {
    buf: Vec<u8>,
    trailer: usize,
}

impl Writer {
    pub(crate) fn new(ty: MessageType, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(HEADER_LEN + capacity);
        buf.extend_from_slice(&MAGIC);
        buf.push(VERSION);
        buf.push(ty as u8);
        buf.extend_from_slice(&[0, 0]);
        Self { buf, trailer: 0 }
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes(&[v])
    }

    pub(crate) fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    /// A field with a 2-byte length prefix; `max` is the field's protocol limit.
    pub(crate) fn vec16(&mut self, field: &'static str, v: &[u8], max: usize) -> Result<&mut Self> {
        let len = u16::try_from(v.len()).map_err(|_| Misuse::FieldTooLong(field))?;
        if v.len() > max {
            return Err(Misuse::FieldTooLong(field).into());
        }
        Ok(self.u16(len).bytes(v))
    }

    /// Everything written so far, header included: what a MAC or signature covers.
    pub(crate) fn so_far(&mut self) -> &[u8] {
        self.patch_len();
        &self.buf
    }

    /// Sets the final body length. `extra` counts bytes still to be appended
    /// (a trailing MAC), so that they are covered by the length the MAC protects.
    pub(crate) fn reserve_trailer(&mut self, extra: usize) -> &mut Self {
        self.trailer = extra;
        self
    }

    fn patch_len(&mut self) {
        // Table 2 keeps every body far below 65535 bytes; saturating cannot happen.
        let body = self.buf.len() - HEADER_LEN + self.trailer;
        let len = u16::try_from(body).unwrap_or(u16::MAX).to_be_bytes();
        if let Some(field) = self.buf.get_mut(6..8) {
            field.copy_from_slice(&len);
        }
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.trailer = 0;
        self.patch_len();
        self.buf
    }
}

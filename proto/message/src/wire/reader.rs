//! A bounded reader over one message body: every read checks its length first.

use crate::error::{Malformed, Result};

/// Reads fields in order from a body whose total length the header already bounded.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(body: &'a [u8]) -> Self {
        Self { rest: body }
    }

    /// The next `n` bytes; running short means the body lied about its contents.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.rest.len() < n {
            return Err(Malformed::Truncated.into());
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A field preceded by a 2-byte length, which must lie in `range`.
    pub(crate) fn vec16(
        &mut self,
        field: &'static str,
        range: core::ops::RangeInclusive<usize>,
    ) -> Result<&'a [u8]> {
        let len = usize::from(self.u16()?);
        if !range.contains(&len) {
            return Err(Malformed::FieldLength(field).into());
        }
        self.take(len)
    }

    /// Succeeds only when every byte of the body has been read.
    pub(crate) fn finish(self) -> Result<()> {
        if self.rest.is_empty() { Ok(()) } else { Err(Malformed::TrailingBytes.into()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn reads_in_order_and_refuses_to_overrun() {
        let mut r = Reader::new(&[0, 1, 0, 0, 0, 2, 9]);
        assert_eq!(r.u16(), Ok(1));
        assert_eq!(r.u32(), Ok(2));
        assert_eq!(r.u16(), Err(Error::Malformed(Malformed::Truncated)));
    }

    #[test]
    fn length_prefixed_field_is_bounded() {
        let mut r = Reader::new(&[0, 3, 1, 2, 3]);
        assert_eq!(r.vec16("f", 0..=2), Err(Error::Malformed(Malformed::FieldLength("f"))));
        let mut r = Reader::new(&[0, 2, 1, 2, 3]);
        assert_eq!(r.vec16("f", 0..=2), Ok(&[1u8, 2][..]));
        assert_eq!(r.finish(), Err(Error::Malformed(Malformed::TrailingBytes)));
    }
}

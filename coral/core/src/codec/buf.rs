//! Bounds-checked big-endian reader and writer for message payloads.
//!
//! Hand-written because the crate may only depend on sha2, hmac and
//! thiserror; every read checks the remaining length and returns a
//! [`PayloadError`] instead of panicking.

use std::net::Ipv4Addr;

use crate::types::{Epoch, FourTuple, NodeId};

/// Why an authenticated payload could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The payload ended before a field was complete.
    #[error("payload truncated")]
    Truncated,
    /// Bytes were left over after the last field.
    #[error("{0} trailing bytes after the payload")]
    Trailing(usize),
    /// A field held a value outside its allowed range.
    #[error("invalid field {0}")]
    Invalid(&'static str),
    /// A list or string was longer than its limit.
    #[error("field {0} too long")]
    TooLong(&'static str),
}

/// Appends big-endian fields to a byte vector.
pub(crate) struct Writer<'a>(pub(crate) &'a mut Vec<u8>);

impl Writer<'_> {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    pub(crate) fn ip(&mut self, v: Ipv4Addr) {
        self.0.extend_from_slice(&v.octets());
    }
    pub(crate) fn node(&mut self, v: NodeId) {
        self.u32(v.0);
    }
    pub(crate) fn epoch(&mut self, v: Epoch) {
        self.u64(v.0);
    }
    pub(crate) fn tuple(&mut self, t: &FourTuple) {
        self.ip(t.client_ip);
        self.u16(t.client_port);
        self.ip(t.server_ip);
        self.u16(t.server_port);
    }
    /// A string with a u16 length prefix; the caller guarantees the limit.
    pub(crate) fn str(&mut self, s: &str) {
        self.u16(s.len() as u16);
        self.0.extend_from_slice(s.as_bytes());
    }
    /// Bytes with a u32 length prefix.
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
}

/// Reads big-endian fields from a payload, never past its end.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], PayloadError> {
        if self.buf.len() < n {
            return Err(PayloadError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], PayloadError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, PayloadError> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, PayloadError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, PayloadError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, PayloadError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub(crate) fn bool(&mut self, name: &'static str) -> Result<bool, PayloadError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(PayloadError::Invalid(name)),
        }
    }
    pub(crate) fn ip(&mut self) -> Result<Ipv4Addr, PayloadError> {
        Ok(Ipv4Addr::from(self.array::<4>()?))
    }
    pub(crate) fn node(&mut self) -> Result<NodeId, PayloadError> {
        Ok(NodeId(self.u32()?))
    }
    pub(crate) fn epoch(&mut self) -> Result<Epoch, PayloadError> {
        Ok(Epoch(self.u64()?))
    }
    pub(crate) fn tuple(&mut self) -> Result<FourTuple, PayloadError> {
        Ok(FourTuple {
            client_ip: self.ip()?,
            client_port: self.u16()?,
            server_ip: self.ip()?,
            server_port: self.u16()?,
        })
    }
    pub(crate) fn str(&mut self, name: &'static str, max: usize) -> Result<String, PayloadError> {
        let n = usize::from(self.u16()?);
        if n > max {
            return Err(PayloadError::TooLong(name));
        }
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec()).map_err(|_| PayloadError::Invalid(name))
    }
    pub(crate) fn bytes(&mut self) -> Result<Vec<u8>, PayloadError> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    /// A u16 list count, checked against `max`.
    pub(crate) fn count(&mut self, name: &'static str, max: usize) -> Result<usize, PayloadError> {
        let n = usize::from(self.u16()?);
        if n > max {
            return Err(PayloadError::TooLong(name));
        }
        Ok(n)
    }
    pub(crate) fn finish(self) -> Result<(), PayloadError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(PayloadError::Trailing(self.buf.len()))
        }
    }
}

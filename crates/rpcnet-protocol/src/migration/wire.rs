//! Bounded big-endian reading and writing shared by the token, snapshot and message codecs.
//!
//! Every migration codec decodes bytes that crossed a process boundary, so every read here is
//! checked against the bytes that are left: a length prefix can never make the decoder read past
//! the end or allocate more than the input holds, and nothing panics on any input. Failures come
//! back as a [`ReadError`] naming the field; each codec maps it to its own stable error code
//! (`TOKEN_INVALID`, `SNAPSHOT_*`, `MESSAGE_MALFORMED`).

use bytes::Bytes;

/// Why a bounded read failed, naming the field being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The field needs `need` bytes but only `left` remain.
    Short {
        field: &'static str,
        need: usize,
        left: usize,
    },
    /// A string field is not valid UTF-8.
    Utf8 { field: &'static str },
    /// A field holds a value the format does not allow.
    Invalid { field: &'static str, detail: String },
    /// Bytes remain after the last field.
    Trailing { left: usize },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Short { field, need, left } => {
                write!(f, "{field}: needs {need} bytes, only {left} left")
            }
            ReadError::Utf8 { field } => write!(f, "{field}: not valid UTF-8"),
            ReadError::Invalid { field, detail } => write!(f, "{field}: {detail}"),
            ReadError::Trailing { left } => write!(f, "{left} unexpected trailing bytes"),
        }
    }
}

/// A cursor over untrusted input. When built with [`Reader::shared`], byte fields are zero-copy
/// slices of the shared buffer; otherwise they are copied.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    shared: Option<&'a Bytes>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            shared: None,
        }
    }

    pub(crate) fn shared(buf: &'a Bytes) -> Self {
        Reader {
            buf: buf.as_ref(),
            pos: 0,
            shared: Some(buf),
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ReadError> {
        let left = self.remaining();
        if n > left {
            return Err(ReadError::Short {
                field,
                need: n,
                left,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], ReadError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ReadError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, ReadError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ReadError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, ReadError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A `0`/`1` byte.
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, ReadError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(ReadError::Invalid {
                field,
                detail: format!("boolean byte is {v}, must be 0 or 1"),
            }),
        }
    }

    /// `len: u16 BE | UTF-8 bytes`.
    pub(crate) fn str16(&mut self, field: &'static str) -> Result<String, ReadError> {
        let n = self.u16(field)? as usize;
        let raw = self.take(n, field)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| ReadError::Utf8 { field })
    }

    /// `len: u16 BE | bytes`, returned as a slice.
    pub(crate) fn bytes16(&mut self, field: &'static str) -> Result<&'a [u8], ReadError> {
        let n = self.u16(field)? as usize;
        self.take(n, field)
    }

    /// `len: u32 BE | bytes`, zero-copy when the reader is shared.
    pub(crate) fn bytes32(&mut self, field: &'static str) -> Result<Bytes, ReadError> {
        let n = self.u32(field)? as usize;
        let start = self.pos;
        let raw = self.take(n, field)?;
        Ok(match self.shared {
            Some(b) => b.slice(start..start + n),
            None => Bytes::copy_from_slice(raw),
        })
    }

    /// Succeeds only when every byte was consumed.
    pub(crate) fn finish(&self) -> Result<(), ReadError> {
        match self.remaining() {
            0 => Ok(()),
            left => Err(ReadError::Trailing { left }),
        }
    }
}

/// Why a value could not be written: a field longer than its length prefix allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TooLong {
    pub(crate) field: &'static str,
    pub(crate) len: usize,
    pub(crate) max: usize,
}

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is {} bytes, the format allows at most {}",
            self.field, self.len, self.max
        )
    }
}

pub(crate) fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// `len: u16 BE | bytes`.
pub(crate) fn put_bytes16(out: &mut Vec<u8>, v: &[u8], field: &'static str) -> Result<(), TooLong> {
    let n = u16::try_from(v.len()).map_err(|_| TooLong {
        field,
        len: v.len(),
        max: u16::MAX as usize,
    })?;
    put_u16(out, n);
    out.extend_from_slice(v);
    Ok(())
}

/// `len: u32 BE | bytes`.
pub(crate) fn put_bytes32(out: &mut Vec<u8>, v: &[u8], field: &'static str) -> Result<(), TooLong> {
    let n = u32::try_from(v.len()).map_err(|_| TooLong {
        field,
        len: v.len(),
        max: u32::MAX as usize,
    })?;
    put_u32(out, n);
    out.extend_from_slice(v);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded_and_name_the_field() {
        let mut r = Reader::new(&[0, 5, b'a']);
        assert_eq!(
            r.str16("name"),
            Err(ReadError::Short {
                field: "name",
                need: 5,
                left: 1
            })
        );
    }

    #[test]
    fn bool_rejects_other_values() {
        assert!(Reader::new(&[2]).bool("flag").is_err());
        assert_eq!(Reader::new(&[1]).bool("flag"), Ok(true));
    }

    #[test]
    fn utf8_is_checked() {
        assert_eq!(
            Reader::new(&[0, 1, 0xff]).str16("s"),
            Err(ReadError::Utf8 { field: "s" })
        );
    }

    #[test]
    fn finish_reports_trailing_bytes() {
        let mut r = Reader::new(&[1, 2, 3]);
        r.u8("a").unwrap();
        assert_eq!(r.finish(), Err(ReadError::Trailing { left: 2 }));
    }

    #[test]
    fn shared_reader_slices_without_copying() {
        let b = Bytes::from_static(&[0, 0, 0, 2, 7, 8, 9]);
        let mut r = Reader::shared(&b);
        let got = r.bytes32("x").unwrap();
        assert_eq!(&got[..], &[7, 8]);
        assert_eq!(got.as_ptr(), b[4..].as_ptr());
    }

    #[test]
    fn writers_round_trip_and_refuse_overlong() {
        let mut out = Vec::new();
        put_bytes16(&mut out, b"hi", "s").unwrap();
        put_bytes32(&mut out, b"abc", "b").unwrap();
        put_u64(&mut out, 9);
        let mut r = Reader::new(&out);
        assert_eq!(r.str16("s").unwrap(), "hi");
        assert_eq!(&r.bytes32("b").unwrap()[..], b"abc");
        assert_eq!(r.u64("n").unwrap(), 9);
        r.finish().unwrap();
        let long = vec![0u8; 70_000];
        assert!(put_bytes16(&mut Vec::new(), &long, "s").is_err());
    }
}

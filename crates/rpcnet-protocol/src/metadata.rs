//! Call metadata: request headers, response headers and trailers (PROTOCOL.md section 5.6).
//!
//! This module exists so that the rules for metadata keys and values (gRPC's, from "gRPC over
//! HTTP2", section "Requests": lowercase ASCII keys, printable ASCII values, `-bin` keys for
//! binary values) and its one wire layout are written once, for the encoder, the decoder and the
//! APIs that build metadata from user input.
//!
//! A metadata block is a sequence of entries, each `key_len: u8`, `key` (ASCII), `value_len:
//! u16`, `value`, with no count and no padding: the enclosing field's length says where it ends.
//! The same key may appear several times; order is kept.

use bytes::{BufMut, Bytes, BytesMut};

/// Default upper bound, in bytes, on one metadata block as encoded (the REQUEST's `metadata_len`,
/// or a HEADERS or TRAILERS body): 8 KiB, gRPC's default `grpc.max_metadata_size`. A receiver
/// rejects a larger block with `RESOURCE_EXHAUSTED` while decoding (PROTOCOL.md section 10).
pub const DEFAULT_MAX_METADATA_SIZE: u32 = 8 * 1024;

/// Keys with this prefix are set by rpcnet itself (a director adds `rpcnet-session-id`); clients
/// may not send them through a director (PROTOCOL.md section 5.6).
pub const RESERVED_PREFIX: &str = "rpcnet-";

/// The header a director adds to every request it relays: the session id as 16 lowercase hex
/// digits (PROTOCOL.md section 2.1).
pub const SESSION_ID_KEY: &str = "rpcnet-session-id";

/// Largest value in bytes (`value_len` is a `u16`).
pub const MAX_VALUE_LEN: usize = u16::MAX as usize;

/// Why a key or value is not valid metadata; `Display` names the key and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MetadataError(String);

/// An ordered list of metadata entries. Keys are stored lowercase (keys are case-insensitive,
/// gRPC); a key ending in `-bin` has a binary value, any other key a printable ASCII value
/// (bytes `0x20` to `0x7e`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    entries: Vec<(String, Bytes)>,
}

impl Metadata {
    /// No entries.
    #[must_use]
    pub const fn new() -> Self {
        Metadata {
            entries: Vec::new(),
        }
    }

    /// Appends `key: value`, lowercasing `key`.
    ///
    /// # Errors
    ///
    /// [`MetadataError`] if the key is empty, longer than 255 bytes or has a character outside
    /// `0-9 a-z A-Z _ - .`, or if the value is longer than 65 535 bytes or (for a key that does
    /// not end in `-bin`) has a byte outside `0x20..=0x7e`.
    pub fn append(&mut self, key: &str, value: impl Into<Bytes>) -> Result<(), MetadataError> {
        let key = key.to_ascii_lowercase();
        let value = value.into();
        check_entry(&key, &value)?;
        self.entries.push((key, value));
        Ok(())
    }

    /// Replaces every entry of `key` (case-insensitive) by `key: value`.
    ///
    /// # Errors
    ///
    /// As [`Metadata::append`].
    pub fn set(&mut self, key: &str, value: impl Into<Bytes>) -> Result<(), MetadataError> {
        let lower = key.to_ascii_lowercase();
        let value = value.into();
        check_entry(&lower, &value)?;
        self.entries.retain(|(k, _)| *k != lower);
        self.entries.push((lower, value));
        Ok(())
    }

    /// The first value of `key` (case-insensitive).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Bytes> {
        let lower = key.to_ascii_lowercase();
        self.entries
            .iter()
            .find(|(k, _)| *k == lower)
            .map(|(_, v)| v)
    }

    /// The entries, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Bytes)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if there is no entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first key with the [`RESERVED_PREFIX`], if any.
    #[must_use]
    pub fn reserved_key(&self) -> Option<&str> {
        self.iter()
            .map(|(k, _)| k)
            .find(|k| k.starts_with(RESERVED_PREFIX))
    }

    /// Size in bytes of the encoded block: per entry 1 + key + 2 + value.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        self.entries
            .iter()
            .map(|(k, v)| 3 + k.len() + v.len())
            .sum()
    }

    /// Appends the encoded block to `dst` (PROTOCOL.md section 5.6).
    pub fn encode(&self, dst: &mut BytesMut) {
        for (k, v) in &self.entries {
            // Checked on insertion: a key is at most 255 bytes, a value at most 65 535.
            dst.put_u8(k.len() as u8);
            dst.put_slice(k.as_bytes());
            dst.put_u16(v.len() as u16);
            dst.put_slice(v);
        }
    }

    /// Decodes a whole block. Values share `block`'s allocation.
    ///
    /// # Errors
    ///
    /// A message naming the problem: an entry cut short, an empty key, a key that is not
    /// lowercase `0-9 a-z _ - .`, a value that is not printable ASCII for a key without `-bin`.
    pub fn decode(block: &Bytes) -> Result<Metadata, String> {
        let mut entries = Vec::new();
        let mut at = 0;
        while at < block.len() {
            let key_len = block[at] as usize;
            let key_end = at + 1 + key_len;
            let Some(key) = block.get(at + 1..key_end) else {
                return Err(format!(
                    "metadata entry at byte {at}: key_len {key_len} runs past the block"
                ));
            };
            let Some(len) = block.get(key_end..key_end + 2) else {
                return Err(format!(
                    "metadata entry at byte {at}: no value_len after the key"
                ));
            };
            let value_len = u16::from_be_bytes([len[0], len[1]]) as usize;
            let value_end = key_end + 2 + value_len;
            if value_end > block.len() {
                return Err(format!(
                    "metadata entry at byte {at}: value_len {value_len} runs past the block"
                ));
            }
            let key = std::str::from_utf8(key)
                .ok()
                .filter(|k| !k.bytes().any(|b| b.is_ascii_uppercase()))
                .ok_or_else(|| format!("metadata key at byte {at} is not lowercase ASCII"))?;
            let value = block.slice(key_end + 2..value_end);
            check_entry(key, &value).map_err(|e| e.0)?;
            entries.push((key.to_owned(), value));
            at = value_end;
        }
        Ok(Metadata { entries })
    }
}

/// Checks a lowercased key and its value against the rules of [`Metadata::append`].
fn check_entry(key: &str, value: &[u8]) -> Result<(), MetadataError> {
    if key.is_empty() || key.len() > u8::MAX as usize {
        return Err(MetadataError(format!(
            "metadata key must be 1 to 255 bytes, got {} bytes",
            key.len()
        )));
    }
    if let Some(c) = key
        .chars()
        .find(|c| !matches!(c, '0'..='9' | 'a'..='z' | '_' | '-' | '.'))
    {
        return Err(MetadataError(format!(
            "metadata key {key:?} has the character {c:?}; keys are ASCII letters, digits, '_', '-' and '.'"
        )));
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(MetadataError(format!(
            "metadata value of {key:?} is {} bytes, more than {MAX_VALUE_LEN}",
            value.len()
        )));
    }
    if !key.ends_with("-bin") {
        if let Some(b) = value.iter().find(|b| !(0x20..=0x7e).contains(*b)) {
            return Err(MetadataError(format!(
                "metadata value of {key:?} has the byte {b:#04x}; values are printable ASCII \
                 unless the key ends in \"-bin\""
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_case_insensitive_and_round_trip() {
        let mut m = Metadata::new();
        m.append("Authorization", "Bearer x").unwrap();
        m.append("trace-bin", vec![0u8, 255]).unwrap();
        assert_eq!(m.get("AUTHORIZATION").unwrap().as_ref(), b"Bearer x");
        let mut buf = BytesMut::new();
        m.encode(&mut buf);
        assert_eq!(buf.len(), m.encoded_len());
        assert_eq!(Metadata::decode(&buf.freeze()).unwrap(), m);
    }

    #[test]
    fn bad_keys_and_values_are_refused() {
        let mut m = Metadata::new();
        assert!(m.append("", "x").is_err());
        assert!(m.append("a b", "x").is_err());
        assert!(m.append("k", "line\nbreak").is_err());
        assert!(m.append("k-bin", "line\nbreak").is_ok());
        assert!(Metadata::decode(&Bytes::from_static(b"\x01K\x00\x00")).is_err());
        assert!(Metadata::decode(&Bytes::from_static(b"\x05ab")).is_err());
        assert!(Metadata::decode(&Bytes::from_static(b"\x01k\x00\x05ab")).is_err());
    }
}

//! Metadata across the binding (PROTOCOL.md section 5.6): entries as `{ key, value }` objects,
//! and [`WithMetadata`], the outcome of a call that carries the response headers and trailers
//! on its error as well as on its value.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use rpcnet_runtime::{Metadata, ResponseMetadata, RpcError};

use crate::{bytes, Fallible};

/// One metadata entry. `key` is lowercase ASCII; `value` is the raw bytes (printable ASCII for a
/// key that does not end in `-bin`). src/metadata.ts converts to and from `Headers`.
#[napi(object)]
pub struct NativeMetadataEntry {
    /// The key, e.g. `authorization` or `trace-bin`.
    pub key: String,
    /// The value's bytes.
    pub value: Buffer,
}

/// The response headers and trailers of a call (each empty when none came).
#[napi(object)]
pub struct NativeResponseMetadata {
    /// The response headers.
    pub header: Vec<NativeMetadataEntry>,
    /// The response trailers.
    pub trailer: Vec<NativeMetadataEntry>,
}

/// Entries from JavaScript as [`Metadata`].
///
/// Errors: `INVALID_ARGUMENT` naming the key or value that breaks the rules of
/// [`Metadata::append`].
pub(crate) fn to_metadata(
    entries: Option<Vec<NativeMetadataEntry>>,
) -> std::result::Result<Metadata, RpcError> {
    let mut m = Metadata::new();
    for e in entries.into_iter().flatten() {
        m.append(&e.key, bytes(&e.value))
            .map_err(|err| RpcError::invalid_argument(err.to_string()))?;
    }
    Ok(m)
}

/// [`Metadata`] as entries for JavaScript.
pub(crate) fn entries(m: &Metadata) -> Vec<NativeMetadataEntry> {
    m.iter()
        .map(|(k, v)| NativeMetadataEntry {
            key: k.to_owned(),
            value: Buffer::from(v.to_vec()),
        })
        .collect()
}

/// Response metadata as the binding's object.
pub(crate) fn response(m: &ResponseMetadata) -> NativeResponseMetadata {
    NativeResponseMetadata {
        header: entries(&m.headers),
        trailer: entries(&m.trailers),
    }
}

/// A call's outcome with its response metadata: the value resolves the promise; the error rejects
/// it like [`Fallible`], with the response metadata as the error object's `metadata` property
/// (a [`NativeResponseMetadata`]). Declare the TypeScript type with `ts_return_type`.
pub struct WithMetadata<T>(pub std::result::Result<T, RpcError>, pub ResponseMetadata);

impl<T: ToNapiValue> ToNapiValue for WithMetadata<T> {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        let WithMetadata(result, metadata) = val;
        let failed = result.is_err();
        let js = unsafe { Fallible(result).into_napi_value_or_error(env) };
        match js {
            Ok(v) => Ok(v),
            Err((e, error_object)) if failed && !error_object.is_null() => {
                let value =
                    unsafe { NativeResponseMetadata::to_napi_value(env, response(&metadata))? };
                unsafe {
                    sys::napi_set_named_property(env, error_object, c"metadata".as_ptr(), value)
                };
                Err(e)
            }
            Err((e, _)) => Err(e),
        }
    }
}

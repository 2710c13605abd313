#![forbid(unsafe_code)]
//! Sans-IO FastCGI 1.0 client codec (the web-server side of the protocol).
//!
//! Nothing here does I/O or names an httpd type: the encoder appends records to a
//! caller-provided `Vec<u8>` (so one buffer can be reused for every request) and the
//! [`Decoder`] is a streaming state machine fed with whatever bytes the socket produced.
//!
//! What it implements, by reference ID (see `mod_fastcgi-behavior.md`):
//! - RQ-10: `FCGI_BEGIN_REQUEST` ([`encode_begin_request`]); unlike the legacy module the
//!   caller may set `FCGI_KEEP_CONN` for connection reuse (SG-1).
//! - RQ-11/RQ-12, SG-4, legacy bug 3: `FCGI_PARAMS` ([`encode_params`], [`ParamsEncoder`]).
//!   Pairs are *packed* into records (legacy sent one record per pair, DV-9) and a pair
//!   larger than one record is split across consecutive records, which the spec allows
//!   because PARAMS is a stream. The legacy module truncated the 16-bit length instead,
//!   corrupting the stream.
//! - RQ-13: `FCGI_STDIN` ([`encode_stream`], [`stream_record_header`] for `writev`).
//! - RQ-30..RQ-36, DV-7, SG-4: response records ([`Decoder`]). Deliberate changes from the
//!   legacy decoder: request ids *are* validated (DV-7 / RQ-31 fixed), and record types
//!   above 11 are skipped like any other unknown record instead of aborting the request
//!   with `invalid type: <t> > FCGI_MAXTYPE(11)`: the record framing is self-describing,
//!   so a record type added after FastCGI 1.0 can be skipped safely, and aborting gains
//!   nothing.
//! - SG-1: `FCGI_GET_VALUES` ([`encode_get_values`]) and its result.
//!
//! Every record we write is padded to a multiple of 8 bytes (the spec's recommendation);
//! the padding is computed only in [`padding_len`].

mod decode;
mod encode;
mod nv;
mod record;
#[cfg(test)]
pub(crate) mod test_rng;

pub use decode::{fuzz_decode, Decoder, Event};
pub use encode::{
    encode_abort_request, encode_begin_request, encode_get_values, encode_params, encode_stream, encode_stream_end,
    stream_record_header, ParamsEncoder, ParamsWriter, StreamAppender, ZERO_PADDING,
};
pub use nv::{decode_nv_pairs, encode_nv, nv_encoded_len, NvPair, MAX_NV_LEN};
pub use record::{padding_len, ProtocolStatus, RecordHeader, RecordType, Role};

/// `FCGI_VERSION_1`, the only protocol version that exists.
pub const FCGI_VERSION_1: u8 = 1;
/// `FCGI_HEADER_LEN`: every record starts with an 8-byte header.
pub const FCGI_HEADER_LEN: usize = 8;
/// Largest `contentLength` a record header can express (16-bit field).
pub const FCGI_MAX_CONTENT_LEN: usize = 65535;
/// Largest stream-record content we write: the largest multiple of 8 that is at most
/// [`FCGI_MAX_CONTENT_LEN`], so full records need no padding and stay aligned.
pub const MAX_STREAM_RECORD: usize = 65528;
/// Records are padded so that content plus padding is a multiple of this.
pub const FCGI_ALIGN: usize = 8;
/// Request id reserved for management records (`FCGI_GET_VALUES` and friends).
pub const FCGI_NULL_REQUEST_ID: u16 = 0;

/// Record type `FCGI_BEGIN_REQUEST`.
pub const FCGI_BEGIN_REQUEST: u8 = 1;
/// Record type `FCGI_ABORT_REQUEST`.
pub const FCGI_ABORT_REQUEST: u8 = 2;
/// Record type `FCGI_END_REQUEST`.
pub const FCGI_END_REQUEST: u8 = 3;
/// Record type `FCGI_PARAMS`.
pub const FCGI_PARAMS: u8 = 4;
/// Record type `FCGI_STDIN`.
pub const FCGI_STDIN: u8 = 5;
/// Record type `FCGI_STDOUT`.
pub const FCGI_STDOUT: u8 = 6;
/// Record type `FCGI_STDERR`.
pub const FCGI_STDERR: u8 = 7;
/// Record type `FCGI_DATA`.
pub const FCGI_DATA: u8 = 8;
/// Record type `FCGI_GET_VALUES`.
pub const FCGI_GET_VALUES: u8 = 9;
/// Record type `FCGI_GET_VALUES_RESULT`.
pub const FCGI_GET_VALUES_RESULT: u8 = 10;
/// Record type `FCGI_UNKNOWN_TYPE`.
pub const FCGI_UNKNOWN_TYPE: u8 = 11;
/// `FCGI_MAXTYPE`: the highest record type defined by FastCGI 1.0.
pub const FCGI_MAXTYPE: u8 = FCGI_UNKNOWN_TYPE;

/// Role `FCGI_RESPONDER` (content handler, RQ-10).
pub const FCGI_RESPONDER: u16 = 1;
/// Role `FCGI_AUTHORIZER` (all three authorizer phases, AU-10).
pub const FCGI_AUTHORIZER: u16 = 2;
/// Role `FCGI_FILTER` (never used by the module, DV-3; here for completeness).
pub const FCGI_FILTER: u16 = 3;

/// `FCGI_KEEP_CONN` flag of `FCGI_BeginRequestBody.flags`.
pub const FCGI_KEEP_CONN: u8 = 1;

/// Protocol status `FCGI_REQUEST_COMPLETE`.
pub const FCGI_REQUEST_COMPLETE: u8 = 0;
/// Protocol status `FCGI_CANT_MPX_CONN`.
pub const FCGI_CANT_MPX_CONN: u8 = 1;
/// Protocol status `FCGI_OVERLOADED` (SG-4 suggests mapping it to 503).
pub const FCGI_OVERLOADED: u8 = 2;
/// Protocol status `FCGI_UNKNOWN_ROLE`.
pub const FCGI_UNKNOWN_ROLE: u8 = 3;

/// Management variable name: maximum concurrent transport connections.
pub const FCGI_MAX_CONNS: &[u8] = b"FCGI_MAX_CONNS";
/// Management variable name: maximum concurrent requests.
pub const FCGI_MAX_REQS: &[u8] = b"FCGI_MAX_REQS";
/// Management variable name: `"1"` if the application multiplexes connections.
pub const FCGI_MPXS_CONNS: &[u8] = b"FCGI_MPXS_CONNS";

/// Everything that can go wrong in this layer.
///
/// Display texts that have a legacy counterpart are *exactly* the legacy texts, because the
/// gateway appends them after `FastCGI: comm with server "<p>" aborted: protocol error: ` and
/// users grep logs for them (SG-14).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// A record header carried a version other than 1 (RQ-30).
    #[error("invalid version: {0} != FCGI_VERSION(1)")]
    InvalidVersion(u8),
    /// `FCGI_END_REQUEST` whose content is not the 8-byte body (RQ-34).
    #[error("invalid FCGI_END_REQUEST size: {0} != sizeof(FCGI_EndRequestBody)(8)")]
    InvalidEndRequestSize(u16),
    /// Not produced by [`Decoder`] (it reports the status in [`Event::EndRequest`]); provided
    /// so a caller that treats a non-complete status as a failure (RQ-34, DV-8) logs the
    /// legacy text.
    #[error("invalid FCGI_END_REQUEST status: {0} != FCGI_REQUEST_COMPLETE(0)")]
    InvalidEndRequestStatus(ProtocolStatus),
    /// `FCGI_UNKNOWN_TYPE` whose content is not the 8-byte body.
    #[error("invalid FCGI_UNKNOWN_TYPE size: {0} != sizeof(FCGI_UnknownTypeBody)(8)")]
    InvalidUnknownTypeSize(u16),
    /// A STDOUT/STDERR/END_REQUEST record for a request that is not ours (SG-4; the legacy
    /// module accepted any id, RQ-31).
    #[error("unexpected request id: {got} != {expected}")]
    UnexpectedRequestId {
        /// Id found in the record header.
        got: u16,
        /// Id the decoder was created for.
        expected: u16,
    },
    /// The content of an `FCGI_GET_VALUES_RESULT` is not a valid name-value sequence.
    #[error("malformed name-value pair in FCGI_GET_VALUES_RESULT")]
    MalformedGetValuesResult,
    /// [`decode_nv_pairs`] found a length running past the end of the data.
    #[error("malformed name-value pair at byte {offset}")]
    MalformedNameValue {
        /// Offset of the start of the offending pair.
        offset: usize,
    },
    /// A name or value longer than the 31-bit length field allows.
    #[error("name-value length {len} exceeds {max}", max = MAX_NV_LEN)]
    NameValueTooLong {
        /// Length of the offending name or value.
        len: usize,
    },
    /// A management record body that does not fit in one record (they are not streams).
    #[error("management record content of {len} bytes exceeds 65535")]
    ManagementRecordTooLarge {
        /// Encoded content length that was requested.
        len: usize,
    },
    /// The second pass of a two-pass PARAMS encoding produced a different amount of data
    /// than the first pass measured (a caller bug: the environment changed in between).
    #[error("FCGI_PARAMS changed between measuring and writing: measured {measured} bytes, got {written}")]
    ParamsMismatch {
        /// Name-value bytes measured in the first pass.
        measured: usize,
        /// Name-value bytes offered in the second pass (at least this many).
        written: usize,
    },
}

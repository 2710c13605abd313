//! Record framing: types, header layout and padding (FastCGI 1.0 spec, section 3.3).

use std::fmt;

use super::{
    FCGI_ABORT_REQUEST, FCGI_ALIGN, FCGI_AUTHORIZER, FCGI_BEGIN_REQUEST, FCGI_CANT_MPX_CONN, FCGI_DATA,
    FCGI_END_REQUEST, FCGI_FILTER, FCGI_GET_VALUES, FCGI_GET_VALUES_RESULT, FCGI_HEADER_LEN, FCGI_OVERLOADED,
    FCGI_PARAMS, FCGI_REQUEST_COMPLETE, FCGI_RESPONDER, FCGI_STDERR, FCGI_STDIN, FCGI_STDOUT, FCGI_UNKNOWN_ROLE,
    FCGI_UNKNOWN_TYPE, FCGI_VERSION_1,
};

/// Number of zero bytes that follow `content_len` bytes of content so the record ends on an
/// 8-byte boundary. This is the only place padding is computed.
pub const fn padding_len(content_len: usize) -> usize {
    (FCGI_ALIGN - content_len % FCGI_ALIGN) % FCGI_ALIGN
}

/// A record type. Construct it with [`RecordType::from_u8`] so a defined type never ends
/// up in [`RecordType::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// `FCGI_BEGIN_REQUEST` (1).
    BeginRequest,
    /// `FCGI_ABORT_REQUEST` (2).
    AbortRequest,
    /// `FCGI_END_REQUEST` (3).
    EndRequest,
    /// `FCGI_PARAMS` (4).
    Params,
    /// `FCGI_STDIN` (5).
    Stdin,
    /// `FCGI_STDOUT` (6).
    Stdout,
    /// `FCGI_STDERR` (7).
    Stderr,
    /// `FCGI_DATA` (8).
    Data,
    /// `FCGI_GET_VALUES` (9).
    GetValues,
    /// `FCGI_GET_VALUES_RESULT` (10).
    GetValuesResult,
    /// `FCGI_UNKNOWN_TYPE` (11).
    UnknownType,
    /// Any other type byte (0 or > 11), kept raw so it can be logged or answered.
    Unknown(u8),
}

impl RecordType {
    /// Decodes a header's type byte; never fails.
    pub const fn from_u8(b: u8) -> RecordType {
        match b {
            FCGI_BEGIN_REQUEST => RecordType::BeginRequest,
            FCGI_ABORT_REQUEST => RecordType::AbortRequest,
            FCGI_END_REQUEST => RecordType::EndRequest,
            FCGI_PARAMS => RecordType::Params,
            FCGI_STDIN => RecordType::Stdin,
            FCGI_STDOUT => RecordType::Stdout,
            FCGI_STDERR => RecordType::Stderr,
            FCGI_DATA => RecordType::Data,
            FCGI_GET_VALUES => RecordType::GetValues,
            FCGI_GET_VALUES_RESULT => RecordType::GetValuesResult,
            FCGI_UNKNOWN_TYPE => RecordType::UnknownType,
            other => RecordType::Unknown(other),
        }
    }

    /// The wire value of this type.
    pub const fn as_u8(self) -> u8 {
        match self {
            RecordType::BeginRequest => FCGI_BEGIN_REQUEST,
            RecordType::AbortRequest => FCGI_ABORT_REQUEST,
            RecordType::EndRequest => FCGI_END_REQUEST,
            RecordType::Params => FCGI_PARAMS,
            RecordType::Stdin => FCGI_STDIN,
            RecordType::Stdout => FCGI_STDOUT,
            RecordType::Stderr => FCGI_STDERR,
            RecordType::Data => FCGI_DATA,
            RecordType::GetValues => FCGI_GET_VALUES,
            RecordType::GetValuesResult => FCGI_GET_VALUES_RESULT,
            RecordType::UnknownType => FCGI_UNKNOWN_TYPE,
            RecordType::Unknown(b) => b,
        }
    }
}

/// The role requested in `FCGI_BEGIN_REQUEST` (DV-3: the module uses RESPONDER and AUTHORIZER).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// `FCGI_RESPONDER` (1).
    Responder,
    /// `FCGI_AUTHORIZER` (2).
    Authorizer,
    /// `FCGI_FILTER` (3).
    Filter,
}

impl Role {
    /// The wire value of this role.
    pub const fn as_u16(self) -> u16 {
        match self {
            Role::Responder => FCGI_RESPONDER,
            Role::Authorizer => FCGI_AUTHORIZER,
            Role::Filter => FCGI_FILTER,
        }
    }
}

/// `protocolStatus` of `FCGI_END_REQUEST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolStatus {
    /// `FCGI_REQUEST_COMPLETE` (0): normal end.
    RequestComplete,
    /// `FCGI_CANT_MPX_CONN` (1): the application does not multiplex.
    CantMpxConn,
    /// `FCGI_OVERLOADED` (2): the application is out of a resource.
    Overloaded,
    /// `FCGI_UNKNOWN_ROLE` (3): the application does not play the requested role.
    UnknownRole,
    /// Any other value, kept raw for the log line.
    Unknown(u8),
}

impl ProtocolStatus {
    /// Decodes the status byte; never fails.
    pub const fn from_u8(b: u8) -> ProtocolStatus {
        match b {
            FCGI_REQUEST_COMPLETE => ProtocolStatus::RequestComplete,
            FCGI_CANT_MPX_CONN => ProtocolStatus::CantMpxConn,
            FCGI_OVERLOADED => ProtocolStatus::Overloaded,
            FCGI_UNKNOWN_ROLE => ProtocolStatus::UnknownRole,
            other => ProtocolStatus::Unknown(other),
        }
    }

    /// The wire value of this status.
    pub const fn as_u8(self) -> u8 {
        match self {
            ProtocolStatus::RequestComplete => FCGI_REQUEST_COMPLETE,
            ProtocolStatus::CantMpxConn => FCGI_CANT_MPX_CONN,
            ProtocolStatus::Overloaded => FCGI_OVERLOADED,
            ProtocolStatus::UnknownRole => FCGI_UNKNOWN_ROLE,
            ProtocolStatus::Unknown(b) => b,
        }
    }
}

/// Displays the number, as the legacy log line
/// `invalid FCGI_END_REQUEST status: <s> != FCGI_REQUEST_COMPLETE(0)` does.
impl fmt::Display for ProtocolStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u8())
    }
}

/// The 8-byte `FCGI_Header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Protocol version; the decoder rejects anything but [`FCGI_VERSION_1`].
    pub version: u8,
    /// Record type.
    pub rtype: RecordType,
    /// Request id (0 for management records).
    pub request_id: u16,
    /// Number of content bytes that follow the header.
    pub content_length: u16,
    /// Number of padding bytes that follow the content.
    pub padding_length: u8,
}

impl RecordHeader {
    /// A version-1 header for `content_length` bytes, padded to the 8-byte boundary.
    pub const fn new(rtype: RecordType, request_id: u16, content_length: u16) -> RecordHeader {
        RecordHeader {
            version: FCGI_VERSION_1,
            rtype,
            request_id,
            content_length,
            // padding_len() of a u16 is at most 7, so the cast is lossless.
            padding_length: padding_len(content_length as usize) as u8,
        }
    }

    /// Parses the wire layout. Infallible: every byte pattern is a header; the version is
    /// checked by the [`Decoder`](super::Decoder), which knows what to do about it.
    pub const fn from_bytes(b: &[u8; FCGI_HEADER_LEN]) -> RecordHeader {
        RecordHeader {
            version: b[0],
            rtype: RecordType::from_u8(b[1]),
            request_id: u16::from_be_bytes([b[2], b[3]]),
            content_length: u16::from_be_bytes([b[4], b[5]]),
            padding_length: b[6],
        }
    }

    /// The wire layout (the reserved byte is zero).
    pub const fn to_bytes(&self) -> [u8; FCGI_HEADER_LEN] {
        let id = self.request_id.to_be_bytes();
        let len = self.content_length.to_be_bytes();
        [
            self.version,
            self.rtype.as_u8(),
            id[0],
            id[1],
            len[0],
            len[1],
            self.padding_length,
            0,
        ]
    }

    /// Content plus padding: the bytes that follow this header.
    pub const fn body_len(&self) -> usize {
        self.content_length as usize + self.padding_length as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_rounds_up_to_eight() {
        let expect = [0, 7, 6, 5, 4, 3, 2, 1, 0, 7];
        for (len, pad) in expect.iter().enumerate() {
            assert_eq!(padding_len(len), *pad, "len {len}");
        }
        assert_eq!(padding_len(65528), 0);
        assert_eq!(padding_len(65535), 1);
    }

    #[test]
    fn record_type_round_trip_all_bytes() {
        for b in 0..=u8::MAX {
            let t = RecordType::from_u8(b);
            assert_eq!(t.as_u8(), b);
            assert_eq!(matches!(t, RecordType::Unknown(_)), b == 0 || b > 11, "type {b}");
        }
    }

    #[test]
    fn protocol_status_round_trip_and_display() {
        for b in 0..=u8::MAX {
            let s = ProtocolStatus::from_u8(b);
            assert_eq!(s.as_u8(), b);
            assert_eq!(s.to_string(), b.to_string());
        }
        assert_eq!(ProtocolStatus::from_u8(2), ProtocolStatus::Overloaded);
    }

    #[test]
    fn header_round_trip() {
        let samples = [
            [1, 6, 0, 1, 0x12, 0x34, 4, 0],
            [1, 255, 0xff, 0xff, 0xff, 0xff, 255, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
            [9, 3, 0x80, 0x01, 0, 8, 0, 0],
        ];
        for bytes in samples {
            let h = RecordHeader::from_bytes(&bytes);
            assert_eq!(h.to_bytes(), bytes);
        }
        let h = RecordHeader::from_bytes(&[1, 6, 0, 1, 0x12, 0x34, 4, 0]);
        assert_eq!(
            h,
            RecordHeader {
                version: 1,
                rtype: RecordType::Stdout,
                request_id: 1,
                content_length: 0x1234,
                padding_length: 4,
            }
        );
        assert_eq!(h.body_len(), 0x1234 + 4);
    }

    #[test]
    fn reserved_byte_is_ignored_and_written_as_zero() {
        let h = RecordHeader::from_bytes(&[1, 5, 0, 1, 0, 3, 5, 0xaa]);
        assert_eq!(h.to_bytes(), [1, 5, 0, 1, 0, 3, 5, 0]);
    }

    #[test]
    fn new_pads() {
        let h = RecordHeader::new(RecordType::Stdin, 1, 13);
        assert_eq!(h.to_bytes(), [1, 5, 0, 1, 0, 13, 3, 0]);
        let h = RecordHeader::new(RecordType::Params, 0x0102, 65535);
        assert_eq!(h.to_bytes(), [1, 4, 1, 2, 0xff, 0xff, 1, 0]);
    }
}

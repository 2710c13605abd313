//! Name-value pair encoding (FastCGI 1.0 spec, section 3.4; RQ-11).
//!
//! A length below 128 is one byte; anything else is four bytes big-endian with the top bit
//! set, which limits a name or value to 2^31 - 1 bytes.

use super::ProtoError;

/// Largest name or value length the 31-bit length field can express.
pub const MAX_NV_LEN: usize = 0x7fff_ffff;

/// Bytes needed to encode one length.
const fn len_len(len: usize) -> usize {
    if len < 128 {
        1
    } else {
        4
    }
}

/// Encoded size of one pair (lengths, name and value). Does not check [`MAX_NV_LEN`];
/// [`encode_nv`] and the PARAMS encoders do.
pub fn nv_encoded_len(name: &[u8], value: &[u8]) -> usize {
    len_len(name.len())
        .saturating_add(len_len(value.len()))
        .saturating_add(name.len())
        .saturating_add(value.len())
}

/// Rejects a length that the 31-bit length field cannot express.
fn check_len(len: usize) -> Result<(), ProtoError> {
    if len > MAX_NV_LEN {
        return Err(ProtoError::NameValueTooLong { len });
    }
    Ok(())
}

/// Rejects a name or value that the length field cannot express.
pub(crate) fn check_nv(name: &[u8], value: &[u8]) -> Result<(), ProtoError> {
    check_len(name.len())?;
    check_len(value.len())
}

/// Encodes one length prefix into `buf`, returning the number of bytes used.
/// `len` must be at most [`MAX_NV_LEN`] (callers run [`check_nv`] first).
fn put_len(buf: &mut [u8; 4], len: usize) -> usize {
    match u8::try_from(len) {
        Ok(short) if short < 128 => {
            buf[0] = short;
            1
        }
        _ => {
            // Truncation cannot happen after check_nv; saturating keeps it panic-free anyway.
            let long = u32::try_from(len).unwrap_or(u32::MAX) | 0x8000_0000;
            *buf = long.to_be_bytes();
            4
        }
    }
}

/// The two length prefixes of a pair, as `(bytes, used)`; the I/O-free encoders copy
/// `bytes[..used]` followed by the name and the value.
pub(crate) fn nv_prefix(name_len: usize, value_len: usize) -> ([u8; 8], usize) {
    let mut a = [0u8; 4];
    let mut b = [0u8; 4];
    let na = put_len(&mut a, name_len);
    let nb = put_len(&mut b, value_len);
    let mut out = [0u8; 8];
    out[..na].copy_from_slice(&a[..na]);
    out[na..na + nb].copy_from_slice(&b[..nb]);
    (out, na + nb)
}

/// Appends one encoded pair to `out` (not framed in a record).
pub fn encode_nv(out: &mut Vec<u8>, name: &[u8], value: &[u8]) -> Result<(), ProtoError> {
    check_nv(name, value)?;
    out.reserve(nv_encoded_len(name, value));
    let (prefix, used) = nv_prefix(name.len(), value.len());
    out.extend_from_slice(&prefix[..used]);
    out.extend_from_slice(name);
    out.extend_from_slice(value);
    Ok(())
}

/// Reads one length prefix at `pos`, returning the length and the position after it.
fn read_len(data: &[u8], pos: usize) -> Option<(usize, usize)> {
    let first = *data.get(pos)?;
    if first < 0x80 {
        return Some((usize::from(first), pos.checked_add(1)?));
    }
    let end = pos.checked_add(4)?;
    let bytes: [u8; 4] = data.get(pos..end)?.try_into().ok()?;
    let raw = u32::from_be_bytes(bytes) & 0x7fff_ffff;
    Some((usize::try_from(raw).ok()?, end))
}

/// One decoded name-value pair, borrowed from the encoded data.
pub type NvPair<'a> = (&'a [u8], &'a [u8]);

/// Splits a complete name-value sequence (e.g. the content of `FCGI_GET_VALUES_RESULT`)
/// into borrowed pairs.
pub fn decode_nv_pairs(data: &[u8]) -> Result<Vec<NvPair<'_>>, ProtoError> {
    let mut pairs = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let malformed = ProtoError::MalformedNameValue { offset: pos };
        let pair = (|| {
            let (name_len, p) = read_len(data, pos)?;
            let (value_len, p) = read_len(data, p)?;
            let name_end = p.checked_add(name_len)?;
            let value_end = name_end.checked_add(value_len)?;
            let name = data.get(p..name_end)?;
            let value = data.get(name_end..value_end)?;
            Some(((name, value), value_end))
        })();
        let ((name, value), next) = pair.ok_or(malformed)?;
        pairs.push((name, value));
        pos = next;
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(name: &[u8], value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_nv(&mut out, name, value).unwrap();
        assert_eq!(out.len(), nv_encoded_len(name, value));
        out
    }

    #[test]
    fn spec_vectors() {
        assert_eq!(enc(b"", b""), [0, 0]);
        assert_eq!(enc(b"A", b"bc"), [1, 2, b'A', b'b', b'c']);
        let v127 = vec![b'x'; 127];
        let out = enc(b"N", &v127);
        assert_eq!(&out[..3], &[1, 127, b'N']);
        let v128 = vec![b'x'; 128];
        let out = enc(b"N", &v128);
        assert_eq!(&out[..6], &[1, 0x80, 0, 0, 128, b'N']);
        let v65535 = vec![b'x'; 65535];
        let out = enc(b"N", &v65535);
        assert_eq!(&out[..6], &[1, 0x80, 0, 0xff, 0xff, b'N']);
        let v70000 = vec![b'x'; 70000];
        let out = enc(&v128, &v70000);
        assert_eq!(&out[..8], &[0x80, 0, 0, 128, 0x80, 0x01, 0x11, 0x70]);
        assert_eq!(out.len(), 8 + 128 + 70000);
    }

    #[test]
    fn round_trip_various_lengths() {
        let mut all = Vec::new();
        let mut expect = Vec::new();
        for (n, v) in [(0, 0), (1, 127), (127, 128), (128, 0), (3, 65535), (200, 70000)] {
            let name: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let value: Vec<u8> = (0..v).map(|i| (i % 13) as u8).collect();
            encode_nv(&mut all, &name, &value).unwrap();
            expect.push((name, value));
        }
        let got = decode_nv_pairs(&all).unwrap();
        assert_eq!(got.len(), expect.len());
        for (g, e) in got.iter().zip(&expect) {
            assert_eq!(g.0, &e.0[..]);
            assert_eq!(g.1, &e.1[..]);
        }
    }

    #[test]
    fn decode_rejects_truncation_everywhere() {
        let mut data = Vec::new();
        encode_nv(&mut data, b"FCGI_MAX_CONNS", b"10").unwrap();
        encode_nv(&mut data, &[b'n'; 130], b"v").unwrap();
        for cut in 0..data.len() {
            let r = decode_nv_pairs(&data[..cut]);
            let first_len = nv_encoded_len(b"FCGI_MAX_CONNS", b"10");
            if cut == 0 || cut == first_len {
                assert!(r.is_ok(), "cut {cut}");
            } else {
                let offset = if cut < first_len { 0 } else { first_len };
                assert_eq!(r, Err(ProtoError::MalformedNameValue { offset }), "cut {cut}");
            }
        }
    }

    #[test]
    fn decode_huge_length_is_an_error_not_a_panic() {
        assert!(decode_nv_pairs(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode_nv_pairs(&[0x80]).is_err());
        assert!(decode_nv_pairs(&[1]).is_err());
    }

    #[test]
    fn too_long_is_rejected() {
        assert!(check_nv(&[], &[]).is_ok());
        // A 2 GiB slice cannot be allocated in a unit test; the check is on lengths only.
        assert_eq!(check_len(MAX_NV_LEN), Ok(()));
        assert_eq!(
            check_len(MAX_NV_LEN + 1),
            Err(ProtoError::NameValueTooLong { len: MAX_NV_LEN + 1 })
        );
        assert_eq!(nv_prefix(MAX_NV_LEN, 0), ([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], 5));
        assert_eq!(
            ProtoError::NameValueTooLong { len: MAX_NV_LEN + 1 }.to_string(),
            "name-value length 2147483648 exceeds 2147483647"
        );
    }
}

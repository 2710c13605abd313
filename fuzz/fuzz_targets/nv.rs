#![no_main]
//! Name-value pairs (FastCGI 1.0 section 3.4): `decode_nv_pairs` must never panic on any
//! bytes (it parses FCGI_GET_VALUES_RESULT content from the application), and whatever it
//! accepts must re-encode to a stream that decodes to the same pairs (re-encoding is
//! canonical, so it is also never longer than the input). Round trip the other way too:
//! arbitrary pairs -> `encode_nv` -> decode -> the same pairs, with `nv_encoded_len` exact.
use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mod_fastcgi::proto::{decode_nv_pairs, encode_nv, nv_encoded_len};

fuzz_target!(|data: &[u8]| {
    if let Ok(pairs) = decode_nv_pairs(data) {
        let mut again = Vec::new();
        for (n, v) in &pairs {
            encode_nv(&mut again, n, v).expect("decoded pair re-encodes");
        }
        assert!(again.len() <= data.len(), "canonical encoding longer than the input");
        assert_eq!(decode_nv_pairs(&again).expect("re-encoded pairs decode"), pairs);
    }

    let mut u = Unstructured::new(data);
    let Ok(pairs) = Vec::<(Vec<u8>, Vec<u8>)>::arbitrary(&mut u) else {
        return;
    };
    let mut wire = Vec::new();
    for (n, v) in &pairs {
        let before = wire.len();
        encode_nv(&mut wire, n, v).expect("small pair encodes");
        assert_eq!(wire.len() - before, nv_encoded_len(n, v));
    }
    let back = decode_nv_pairs(&wire).expect("encoded pairs decode");
    assert_eq!(back.len(), pairs.len());
    for ((n, v), (bn, bv)) in pairs.iter().zip(back) {
        assert_eq!((n.as_slice(), v.as_slice()), (bn, bv));
    }
});

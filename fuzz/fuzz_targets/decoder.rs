#![no_main]
//! The FastCGI record decoder must never panic on application output.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mod_fastcgi::proto::fuzz_decode(data);
});

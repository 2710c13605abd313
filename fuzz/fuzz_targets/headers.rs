#![no_main]
//! The CGI header scanner must never panic, whatever the split points.
use libfuzzer_sys::fuzz_target;
use mod_fastcgi::cgi::{HeaderScanner, Scan};

fuzz_target!(|data: &[u8]| {
    let split = data.first().copied().unwrap_or(1).max(1) as usize;
    let mut scanner = HeaderScanner::new(4096);
    for piece in data.chunks(split) {
        match scanner.push(piece) {
            Ok(Scan::NeedMore) => {}
            Ok(Scan::Done { headers, .. }) => {
                let _ = mod_fastcgi::cgi::redirect_kind(&headers);
                break;
            }
            Err(_) => break,
        }
    }
});

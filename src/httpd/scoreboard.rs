//! httpd's scoreboard, read by the parent: which worker processes belong to
//! earlier generations (issue 12: a retired application class waits for
//! those, and only those, before it is stopped — not for piped loggers or
//! mod_cgid's daemon, which are children of httpd too but never exit
//! while the server runs).

use crate::ffi;

/// Pids of the worker processes in the scoreboard whose generation is not
/// the current one. Called in post_config of a restart, before the new
/// generation's workers exist, these are the previous generation(s)' workers
/// still finishing requests (a graceful restart) — none after a hard
/// restart, whose workers httpd has already reaped. Empty at the first
/// start-up (no scoreboard yet).
pub fn previous_generation_workers() -> Vec<i32> {
    let mut limit: std::os::raw::c_int = 0;
    let mut generation: std::os::raw::c_int = 0;
    // SAFETY: ap_scoreboard_image is a plain pointer variable exported by
    // httpd (NULL until the MPM first creates the scoreboard); reading it
    // in the parent, which is single-threaded in post_config, races with
    // nobody. ap_mpm_query writes one int through the valid pointers given.
    let image = unsafe {
        ffi::ap_mpm_query(ffi::AP_MPMQ_HARD_LIMIT_DAEMONS as _, &mut limit);
        ffi::ap_mpm_query(ffi::AP_MPMQ_GENERATION as _, &mut generation);
        ffi::ap_scoreboard_image
    };
    if image.is_null() {
        return Vec::new();
    }
    (0..limit)
        .filter_map(|i| {
            // SAFETY: the scoreboard exists (checked above); the accessor
            // bounds-checks `i` against the scoreboard's own limit and
            // returns NULL outside it, else a pointer into the scoreboard,
            // which lives until the parent exits or re-creates it (not
            // during this loop). Only two plain fields are copied out.
            let ps = unsafe { ffi::ap_get_scoreboard_process(i).as_ref() }?;
            (ps.pid > 0 && ps.generation != generation).then_some(ps.pid)
        })
        .collect()
}

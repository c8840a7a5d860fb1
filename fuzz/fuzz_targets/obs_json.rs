//! libFuzzer target: see checks/obs_json.rs.
#![no_main]

#[path = "../checks/obs_json.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));

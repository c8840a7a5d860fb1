//! libFuzzer target: see checks/ecg_chunk.rs.
#![no_main]

#[path = "../checks/ecg_chunk.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));

//! libFuzzer target: see checks/cmd.rs.
#![no_main]

#[path = "../checks/cmd.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));

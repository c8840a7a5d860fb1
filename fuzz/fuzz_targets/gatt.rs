//! libFuzzer target: see checks/gatt.rs.
#![no_main]

#[path = "../checks/gatt.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));

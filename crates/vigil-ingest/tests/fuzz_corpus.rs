//! Replays the fuzzing corpus (fuzz/corpus/TARGET/*, kept in the repository)
//! through the same checks the libFuzzer targets run, so every input the
//! fuzzer found interesting, and any crash it once found, is re-tested by
//! `cargo test` on the stable toolchain without instrumentation.

#[path = "../../../fuzz/checks/cmd.rs"]
mod cmd;
#[path = "../../../fuzz/checks/ecg_chunk.rs"]
mod ecg_chunk;
#[path = "../../../fuzz/checks/gatt.rs"]
mod gatt;
#[path = "../../../fuzz/checks/obs_json.rs"]
mod obs_json;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "{target}: {} breaks the decoder's contract",
            path.display()
        );
        n += 1;
    }
    assert!(
        n >= 2,
        "{target}: the corpus holds at least the seed inputs, found {n}"
    );
}

#[test]
fn obs_json_corpus() {
    replay("obs_json", obs_json::check);
}

#[test]
fn ecg_chunk_corpus() {
    replay("ecg_chunk", ecg_chunk::check);
}

#[test]
fn gatt_corpus() {
    replay("gatt", gatt::check);
}

#[test]
fn cmd_corpus() {
    replay("cmd", cmd::check);
}

//! File-backed persistence for a kit that runs on an operating system
//! (feature `std`): the sequence high-water mark and queue snapshots.
//!
//! Every write is atomic and durable: write a temporary file beside the
//! target, `fsync` it, rename it over the target, then `fsync` the
//! directory so the rename itself survives a power cut. A reader therefore
//! sees the old content or the new, never a torn mix.

use std::borrow::ToOwned;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::string::String;

use crate::seq::SeqStore;

/// Atomically replaces `path` with `bytes` (temp file + fsync + rename +
/// directory fsync).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Directory fsync makes the rename durable on Linux; platforms that
    // cannot open a directory for sync are not kit targets.
    File::open(dir)?.sync_all()
}

/// Reads `path`; `Ok(None)` when it does not exist.
pub fn read_optional(path: &Path) -> io::Result<Option<std::vec::Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A [`SeqStore`] in one small text file: `vigil-seq 1 <high-water>\n`.
///
/// A missing file means a new device. A file that exists but does not parse
/// is an error (`InvalidData`): guessing would risk reusing seqs.
#[derive(Debug, Clone)]
pub struct FileSeqStore {
    path: PathBuf,
}

impl FileSeqStore {
    /// A store at `path` (the file need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileSeqStore { path: path.into() }
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl SeqStore for FileSeqStore {
    type Error = io::Error;

    fn load(&mut self) -> io::Result<Option<u32>> {
        let Some(bytes) = read_optional(&self.path)? else {
            return Ok(None);
        };
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "corrupt sequence file");
        let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
        let value = text
            .strip_prefix("vigil-seq 1 ")
            .and_then(|r| r.strip_suffix('\n'))
            .ok_or_else(bad)?;
        value.parse::<u32>().map(Some).map_err(|_| bad())
    }

    fn save(&mut self, high_water: u32) -> io::Result<()> {
        let mut s = String::new();
        use std::fmt::Write as _;
        let _ = writeln!(s, "vigil-seq 1 {high_water}");
        write_atomic(&self.path, s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seq::SeqCounter;

    #[test]
    fn file_store_survives_restarts_without_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seq");
        let mut last = 0;
        for _ in 0..4 {
            let mut c = SeqCounter::boot(FileSeqStore::new(&path), 10).unwrap();
            for _ in 0..3 {
                let s = c.next_seq().unwrap();
                assert!(s > last);
                last = s;
            }
        }
        assert_eq!(fs::read_to_string(&path).unwrap(), "vigil-seq 1 41\n");
        assert!(!dir.path().join("seq.tmp").exists());
    }

    #[test]
    fn corrupt_file_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seq");
        for junk in [&b""[..], b"vigil-seq 1 12", b"vigil-seq 1 x\n", b"\xFF\n"] {
            fs::write(&path, junk).unwrap();
            let e = FileSeqStore::new(&path).load().unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            assert!(SeqCounter::boot(FileSeqStore::new(&path), 10).is_err());
        }
    }
}

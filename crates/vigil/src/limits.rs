//! The open-files limit. Every device connected to the embedded broker is
//! a socket, and so is every dashboard, besides the database's files: a
//! region's devices are thousands. Linux starts a service with a soft limit
//! of 1,024 (systemd's default `LimitNOFILE=1024:524288`), past which the
//! broker cannot accept another device; the hard limit is what the
//! administrator allows. So `serve` and `demo` raise the soft limit to the
//! hard one at start, as Go's runtime does for every program, and log both.

/// Raises this process's soft open-files limit to its hard limit and logs
/// the limit in force. Never fails the start: a process that cannot raise
/// it runs with what it has, and says so.
pub fn raise_open_files() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => tracing::info!(open_files = soft, "open-files limit"),
        Err(e) => {
            let now = rlimit::Resource::NOFILE.get().ok().map(|(soft, _)| soft);
            tracing::warn!(error = %e, open_files = ?now, "cannot raise the open-files limit");
        }
    }
}

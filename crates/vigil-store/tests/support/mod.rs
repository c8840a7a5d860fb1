//! Fresh stores for the shared suite: SQLite in a temp file, PostgreSQL in
//! a fresh database of a throwaway cluster this test binary starts itself
//! (see [`pg`]).

pub mod pg;

use std::sync::Arc;

use vigil_store::{PgStore, SqliteStore, Store};

/// A store under test and whatever must outlive it.
pub struct Backend {
    pub store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

pub async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = SqliteStore::connect(&url).await.expect("open sqlite store");
    Backend {
        store: Arc::new(store),
        _dir: Some(dir),
    }
}

/// A store on a fresh, migrated PostgreSQL database; `None` only when
/// `VIGIL_SKIP_POSTGRES=1`.
pub async fn postgres() -> Option<Backend> {
    let url = pg::fresh_database().await?;
    let store = PgStore::connect(&url).await.expect("open postgres store");
    Some(Backend {
        store: Arc::new(store),
        _dir: None,
    })
}

//! The store's error type. Database errors are carried as text with their
//! kind, never as `sqlx::Error`, so callers cannot grow a dependency on the
//! adapter.

/// What went wrong in a store call.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist (ward, user, patient, device).
    #[error("{0} not found")]
    NotFound(String),
    /// A uniqueness or state rule was broken (duplicate name, already discharged).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database URL or options are unusable.
    #[error("{0}")]
    Config(String),
    /// The database failed or could not be reached.
    #[error("database: {0}")]
    Backend(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_string())
            }
            sqlx::Error::RowNotFound => StoreError::NotFound("row".into()),
            _ => StoreError::Backend(e.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Backend(format!("migration: {e}"))
    }
}

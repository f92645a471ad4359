//! Persistence.
//!
//! [`Store`] is what the rest of the server sees; drivers implement it:
//! - [`json::JsonStore`] (default): one JSON file per record under a
//!   directory, written atomically (temp file, fsync, rename, fsync dir).
//! - [`sql::SqlStore`] (feature `sql`): PostgreSQL or MySQL/MariaDB.
//! - [`mongo::MongoStore`] (feature `mongo`): MongoDB.
//!
//! Streams carry a `version` for optimistic concurrency: a read-modify-write
//! (the API's merge-patch update) passes [`Precondition::Version`] and retries
//! on [`StoreError::Conflict`], so concurrent writers never lose each other's
//! changes, whatever the backend.

pub mod json;
#[cfg(feature = "mongo")]
pub mod mongo;
#[cfg(feature = "sql")]
pub mod sql;

use async_trait::async_trait;
use os_domain::{Hook, Recording, Stream};

/// What a driver reports. Maps one-to-one onto HTTP statuses in the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} \"{id}\" not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} \"{id}\": {reason}")]
    Conflict {
        kind: &'static str,
        id: String,
        reason: String,
    },
    /// The backend cannot be reached or failed to persist; retrying may help.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Condition a write must meet, checked atomically with the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Write unconditionally.
    Any,
    /// Create only: fail with `Conflict` if the record exists.
    Absent,
    /// Update only the version that was read: fail with `Conflict` if it changed
    /// (or `NotFound` if it disappeared).
    Version(u64),
}

/// A stream as stored: its configuration, a version that increases on every
/// write, and whether the operator wants it running.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredStream {
    pub stream: Stream,
    pub version: u64,
    /// Desired state: started via the API and not stopped since.
    pub running: bool,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap reachability check for `/readyz`.
    async fn ping(&self) -> Result<()>;

    /// All streams, sorted by code.
    async fn list_streams(&self) -> Result<Vec<StoredStream>>;
    async fn get_stream(&self, code: &str) -> Result<StoredStream>;
    /// Create or replace a stream; keeps its `running` flag. Returns the new version.
    async fn put_stream(&self, stream: &Stream, pre: Precondition) -> Result<u64>;
    async fn delete_stream(&self, code: &str) -> Result<()>;
    /// Record the desired running state of an existing stream.
    async fn set_stream_running(&self, code: &str, running: bool) -> Result<()>;

    /// Recordings, optionally only those of one stream, sorted by id.
    async fn list_recordings(&self, stream_code: Option<&str>) -> Result<Vec<Recording>>;
    async fn get_recording(&self, id: &str) -> Result<Recording>;
    async fn put_recording(&self, rec: &Recording) -> Result<()>;
    async fn delete_recording(&self, id: &str) -> Result<()>;

    /// Hooks, sorted by id.
    async fn list_hooks(&self) -> Result<Vec<Hook>>;
    async fn get_hook(&self, id: &str) -> Result<Hook>;
    async fn put_hook(&self, hook: &Hook, pre: Precondition) -> Result<()>;
    async fn delete_hook(&self, id: &str) -> Result<()>;
}

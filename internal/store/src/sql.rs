//! SQL driver: PostgreSQL and MySQL/MariaDB through sqlx.
//!
//! Schema (embedded, versioned migrations under `migrations/<backend>`, run
//! at start-up):
//!
//! ```text
//! streams    (code PK, version BIGINT, running BOOL, doc JSONB|JSON)
//! recordings (id PK, stream_code, doc)
//! hooks      (id PK, doc)
//! ```
//!
//! Every record is one row; `doc` holds the record as JSON. Writes are single
//! statements guarded by the row's version, so several server instances may
//! share one database:
//!
//! - `Precondition::Absent` is an `INSERT`; a unique violation is `Conflict`.
//! - `Precondition::Version(v)` is `UPDATE … WHERE code = ? AND version = v`;
//!   no row changed means the version moved (`Conflict`) or the row is gone
//!   (`NotFound`).
//! - `Precondition::Any` is the same compare-and-swap in a loop.
//!
//! The DSN is `postgres://…` or `mysql://…` (MariaDB uses `mysql://`). The
//! pool size is the optional DSN parameter `max_connections` (default 10),
//! removed before the DSN reaches the database. Any failure to reach or use
//! the database is `StoreError::Unavailable`; the password is never logged.

use std::time::Duration;

use async_trait::async_trait;
use os_domain::{Hook, Recording, Stream};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::types::Json;
use sqlx::{MySqlPool, PgPool, Row};

use crate::{Precondition, Result, Store, StoreError, StoredStream};

/// Pool size when the DSN does not set `max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// How long an operation waits for a pooled connection before it reports
/// `Unavailable` (keeps API answers prompt while the database is down).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

static PG_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");
static MYSQL_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/mysql");

enum Pool {
    Pg(PgPool),
    My(MySqlPool),
}

pub struct SqlStore {
    pool: Pool,
}

/// Runs `$body` with `$p` bound to the concrete pool and `$q` to the
/// statement text for that backend (placeholders differ: `$1` vs `?`).
macro_rules! with_pool {
    ($self:expr, $p:ident, $q:ident = ($pg:expr, $my:expr), $body:block) => {
        match &$self.pool {
            Pool::Pg($p) => {
                let $q: &str = $pg;
                $body
            }
            Pool::My($p) => {
                let $q: &str = $my;
                $body
            }
        }
    };
}

type Doc<T> = std::result::Result<Json<T>, sqlx::Error>;

fn db_err(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

fn not_found(kind: &'static str, id: &str) -> StoreError {
    StoreError::NotFound {
        kind,
        id: id.to_string(),
    }
}

fn exists(kind: &'static str, id: &str) -> StoreError {
    StoreError::Conflict {
        kind,
        id: id.to_string(),
        reason: "already exists".into(),
    }
}

fn decode<T>(doc: Doc<T>) -> Result<T> {
    doc.map(|j| j.0)
        .map_err(|e| StoreError::Unavailable(format!("decoding stored record: {e}")))
}

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Unavailable(format!("version {v} out of range")))
}

fn to_u64(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Unavailable(format!("stored version {v} is negative")))
}

/// The DSN with its password replaced, for logs and error messages.
#[must_use]
pub fn redact_dsn(dsn: &str) -> String {
    match url::Url::parse(dsn) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparsable DSN>".into(),
    }
}

/// Splits `max_connections` off the DSN's query string.
fn split_pool_size(dsn: &str) -> Result<(String, u32)> {
    let mut url = url::Url::parse(dsn)
        .map_err(|e| StoreError::Unavailable(format!("invalid storage.sql_dsn: {e}")))?;
    let mut max = DEFAULT_MAX_CONNECTIONS;
    let mut rest = Vec::new();
    for (k, v) in url.query_pairs() {
        if k == "max_connections" {
            max = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                StoreError::Unavailable(format!(
                    "invalid storage.sql_dsn: max_connections \"{v}\" is not a positive integer"
                ))
            })?;
        } else {
            rest.push((k.into_owned(), v.into_owned()));
        }
    }
    if rest.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(rest);
    }
    Ok((url.to_string(), max))
}

impl SqlStore {
    /// Connect to `dsn` (`postgres://…` or `mysql://…`) and apply pending
    /// migrations.
    ///
    /// # Errors
    /// `Unavailable` when the DSN is invalid, the database cannot be reached
    /// or a migration fails.
    pub async fn connect(dsn: &str) -> Result<Self> {
        let (dsn, max) = split_pool_size(dsn)?;
        let redacted = redact_dsn(&dsn);
        let ctx = |e: String| StoreError::Unavailable(format!("{redacted}: {e}"));
        let scheme = dsn.split(':').next().unwrap_or_default().to_string();
        let pool = match scheme.as_str() {
            "postgres" | "postgresql" => {
                let pool: PgPool = sqlx::pool::PoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect(&dsn)
                    .await
                    .map_err(|e| ctx(e.to_string()))?;
                PG_MIGRATIONS
                    .run(&pool)
                    .await
                    .map_err(|e| ctx(format!("migration: {e}")))?;
                Pool::Pg(pool)
            }
            "mysql" | "mariadb" => {
                let dsn = match dsn.strip_prefix("mariadb") {
                    Some(rest) => format!("mysql{rest}"),
                    None => dsn.clone(),
                };
                let pool: MySqlPool = sqlx::pool::PoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect(&dsn)
                    .await
                    .map_err(|e| ctx(e.to_string()))?;
                MYSQL_MIGRATIONS
                    .run(&pool)
                    .await
                    .map_err(|e| ctx(format!("migration: {e}")))?;
                Pool::My(pool)
            }
            other => {
                return Err(StoreError::Unavailable(format!(
                    "storage.sql_dsn: unsupported scheme \"{other}\" (expected postgres:// or mysql://)"
                )));
            }
        };
        tracing::info!(dsn = %redacted, max_connections = max, "sql store opened");
        Ok(Self { pool })
    }

    /// Close the pool (waits for checked-out connections to come back).
    pub async fn close(&self) {
        match &self.pool {
            Pool::Pg(p) => p.close().await,
            Pool::My(p) => p.close().await,
        }
    }

    async fn stream_version(&self, code: &str) -> Result<Option<u64>> {
        let v: Option<i64> = with_pool!(
            self,
            p,
            q = (
                "SELECT version FROM streams WHERE code = $1",
                "SELECT version FROM streams WHERE code = ?"
            ),
            {
                sqlx::query_scalar(q)
                    .bind(code)
                    .fetch_optional(p)
                    .await
                    .map_err(db_err)?
            }
        );
        v.map(to_u64).transpose()
    }

    /// Insert a new stream at version 1. `Ok(false)` if the code exists.
    async fn insert_stream(&self, stream: &Stream) -> Result<bool> {
        let res = with_pool!(
            self,
            p,
            q = (
                "INSERT INTO streams (code, version, running, doc) VALUES ($1, 1, FALSE, $2)",
                "INSERT INTO streams (code, version, running, doc) VALUES (?, 1, FALSE, ?)"
            ),
            {
                sqlx::query(q)
                    .bind(&stream.code)
                    .bind(Json(stream))
                    .execute(p)
                    .await
                    .map(|_| ())
            }
        );
        match res {
            Ok(()) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(db_err(e)),
        }
    }

    /// Replace the stream if its version is still `v`. `Ok(false)` if not.
    async fn update_stream(&self, stream: &Stream, v: u64) -> Result<bool> {
        let v = to_i64(v)?;
        let n = with_pool!(
            self,
            p,
            q = (
                "UPDATE streams SET doc = $1, version = version + 1 WHERE code = $2 AND version = $3",
                "UPDATE streams SET doc = ?, version = version + 1 WHERE code = ? AND version = ?"
            ),
            {
                sqlx::query(q)
                    .bind(Json(stream))
                    .bind(&stream.code)
                    .bind(v)
                    .execute(p)
                    .await
                    .map_err(db_err)?
                    .rows_affected()
            }
        );
        Ok(n == 1)
    }

    async fn row_exists(&self, pg: &'static str, my: &'static str, id: &str) -> Result<bool> {
        let found: Option<i32> = with_pool!(self, p, q = (pg, my), {
            sqlx::query_scalar(q)
                .bind(id)
                .fetch_optional(p)
                .await
                .map_err(db_err)?
        });
        Ok(found.is_some())
    }

    async fn delete_row(
        &self,
        kind: &'static str,
        pg: &'static str,
        my: &'static str,
        id: &str,
    ) -> Result<()> {
        let n = with_pool!(self, p, q = (pg, my), {
            sqlx::query(q)
                .bind(id)
                .execute(p)
                .await
                .map_err(db_err)?
                .rows_affected()
        });
        if n == 0 {
            return Err(not_found(kind, id));
        }
        Ok(())
    }

    async fn fetch_docs<T: DeserializeOwned + Send>(
        &self,
        pg: &'static str,
        my: &'static str,
        bind: Option<&str>,
    ) -> Result<Vec<T>> {
        let docs: Vec<Doc<T>> = with_pool!(self, p, q = (pg, my), {
            let mut query = sqlx::query(q);
            if let Some(b) = bind {
                query = query.bind(b);
            }
            query
                .fetch_all(p)
                .await
                .map_err(db_err)?
                .iter()
                .map(|r| r.try_get::<Json<T>, _>("doc"))
                .collect()
        });
        docs.into_iter().map(decode).collect()
    }

    async fn upsert_doc<T: Serialize + Sync>(
        &self,
        pg: &'static str,
        my: &'static str,
        id: &str,
        extra: Option<&str>,
        doc: &T,
    ) -> Result<()> {
        with_pool!(self, p, q = (pg, my), {
            let mut query = sqlx::query(q).bind(id);
            if let Some(x) = extra {
                query = query.bind(x);
            }
            query.bind(Json(doc)).execute(p).await.map_err(db_err)?;
        });
        Ok(())
    }

    async fn stream_rows(&self, code: Option<&str>) -> Result<Vec<StoredStream>> {
        let (pg, my) = match code {
            Some(_) => (
                "SELECT version, running, doc FROM streams WHERE code = $1",
                "SELECT version, running, doc FROM streams WHERE code = ?",
            ),
            None => (
                "SELECT version, running, doc FROM streams ORDER BY code",
                "SELECT version, running, doc FROM streams ORDER BY code",
            ),
        };
        let rows: Vec<(i64, bool, Doc<Stream>)> = with_pool!(self, p, q = (pg, my), {
            let mut query = sqlx::query(q);
            if let Some(c) = code {
                query = query.bind(c);
            }
            let mut out = Vec::new();
            for r in query.fetch_all(p).await.map_err(db_err)? {
                out.push((
                    r.try_get::<i64, _>("version").map_err(db_err)?,
                    r.try_get::<bool, _>("running").map_err(db_err)?,
                    r.try_get::<Json<Stream>, _>("doc"),
                ));
            }
            out
        });
        rows.into_iter()
            .map(|(version, running, doc)| {
                Ok(StoredStream {
                    stream: decode(doc)?,
                    version: to_u64(version)?,
                    running,
                })
            })
            .collect()
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<()> {
        with_pool!(self, p, q = ("SELECT 1", "SELECT 1"), {
            sqlx::query(q).execute(p).await.map_err(db_err)?;
        });
        Ok(())
    }

    async fn list_streams(&self) -> Result<Vec<StoredStream>> {
        self.stream_rows(None).await
    }

    async fn get_stream(&self, code: &str) -> Result<StoredStream> {
        self.stream_rows(Some(code))
            .await?
            .pop()
            .ok_or_else(|| not_found("stream", code))
    }

    async fn put_stream(&self, stream: &Stream, pre: Precondition) -> Result<u64> {
        let code = stream.code.as_str();
        match pre {
            Precondition::Absent => {
                if self.insert_stream(stream).await? {
                    Ok(1)
                } else {
                    Err(exists("stream", code))
                }
            }
            Precondition::Version(v) => {
                if self.update_stream(stream, v).await? {
                    return Ok(v + 1);
                }
                match self.stream_version(code).await? {
                    None => Err(not_found("stream", code)),
                    Some(cur) => Err(StoreError::Conflict {
                        kind: "stream",
                        id: code.to_string(),
                        reason: format!("changed concurrently (version {cur} ≠ {v})"),
                    }),
                }
            }
            Precondition::Any => loop {
                // Compare-and-swap until no concurrent writer interferes.
                match self.stream_version(code).await? {
                    None => {
                        if self.insert_stream(stream).await? {
                            return Ok(1);
                        }
                    }
                    Some(v) => {
                        if self.update_stream(stream, v).await? {
                            return Ok(v + 1);
                        }
                    }
                }
            },
        }
    }

    async fn delete_stream(&self, code: &str) -> Result<()> {
        self.delete_row(
            "stream",
            "DELETE FROM streams WHERE code = $1",
            "DELETE FROM streams WHERE code = ?",
            code,
        )
        .await
    }

    async fn set_stream_running(&self, code: &str, running: bool) -> Result<()> {
        let n = with_pool!(
            self,
            p,
            q = (
                "UPDATE streams SET running = $1 WHERE code = $2",
                "UPDATE streams SET running = ? WHERE code = ?"
            ),
            {
                sqlx::query(q)
                    .bind(running)
                    .bind(code)
                    .execute(p)
                    .await
                    .map_err(db_err)?
                    .rows_affected()
            }
        );
        // MySQL counts changed rows, not matched ones: 0 may mean "already so".
        if n == 0 && self.stream_version(code).await?.is_none() {
            return Err(not_found("stream", code));
        }
        Ok(())
    }

    async fn list_recordings(&self, stream_code: Option<&str>) -> Result<Vec<Recording>> {
        match stream_code {
            Some(c) => {
                self.fetch_docs(
                    "SELECT doc FROM recordings WHERE stream_code = $1 ORDER BY id",
                    "SELECT doc FROM recordings WHERE stream_code = ? ORDER BY id",
                    Some(c),
                )
                .await
            }
            None => {
                self.fetch_docs(
                    "SELECT doc FROM recordings ORDER BY id",
                    "SELECT doc FROM recordings ORDER BY id",
                    None,
                )
                .await
            }
        }
    }

    async fn get_recording(&self, id: &str) -> Result<Recording> {
        self.fetch_docs(
            "SELECT doc FROM recordings WHERE id = $1",
            "SELECT doc FROM recordings WHERE id = ?",
            Some(id),
        )
        .await?
        .pop()
        .ok_or_else(|| not_found("recording", id))
    }

    async fn put_recording(&self, rec: &Recording) -> Result<()> {
        self.upsert_doc(
            "INSERT INTO recordings (id, stream_code, doc) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET stream_code = EXCLUDED.stream_code, doc = EXCLUDED.doc",
            "INSERT INTO recordings (id, stream_code, doc) VALUES (?, ?, ?) \
             ON DUPLICATE KEY UPDATE stream_code = VALUES(stream_code), doc = VALUES(doc)",
            &rec.id,
            Some(&rec.stream_code),
            rec,
        )
        .await
    }

    async fn delete_recording(&self, id: &str) -> Result<()> {
        self.delete_row(
            "recording",
            "DELETE FROM recordings WHERE id = $1",
            "DELETE FROM recordings WHERE id = ?",
            id,
        )
        .await
    }

    async fn list_hooks(&self) -> Result<Vec<Hook>> {
        self.fetch_docs(
            "SELECT doc FROM hooks ORDER BY id",
            "SELECT doc FROM hooks ORDER BY id",
            None,
        )
        .await
    }

    async fn get_hook(&self, id: &str) -> Result<Hook> {
        self.fetch_docs(
            "SELECT doc FROM hooks WHERE id = $1",
            "SELECT doc FROM hooks WHERE id = ?",
            Some(id),
        )
        .await?
        .pop()
        .ok_or_else(|| not_found("hook", id))
    }

    async fn put_hook(&self, hook: &Hook, pre: Precondition) -> Result<()> {
        let id = hook.id.as_str();
        match pre {
            Precondition::Absent => {
                let res = with_pool!(
                    self,
                    p,
                    q = (
                        "INSERT INTO hooks (id, doc) VALUES ($1, $2)",
                        "INSERT INTO hooks (id, doc) VALUES (?, ?)"
                    ),
                    {
                        sqlx::query(q)
                            .bind(id)
                            .bind(Json(hook))
                            .execute(p)
                            .await
                            .map(|_| ())
                    }
                );
                match res {
                    Ok(()) => Ok(()),
                    Err(e) if is_unique_violation(&e) => Err(exists("hook", id)),
                    Err(e) => Err(db_err(e)),
                }
            }
            Precondition::Version(_) => {
                let n = with_pool!(
                    self,
                    p,
                    q = (
                        "UPDATE hooks SET doc = $1 WHERE id = $2",
                        "UPDATE hooks SET doc = ? WHERE id = ?"
                    ),
                    {
                        sqlx::query(q)
                            .bind(Json(hook))
                            .bind(id)
                            .execute(p)
                            .await
                            .map_err(db_err)?
                            .rows_affected()
                    }
                );
                if n == 0
                    && !self
                        .row_exists(
                            "SELECT 1 FROM hooks WHERE id = $1",
                            "SELECT 1 FROM hooks WHERE id = ?",
                            id,
                        )
                        .await?
                {
                    return Err(not_found("hook", id));
                }
                Ok(())
            }
            Precondition::Any => {
                self.upsert_doc(
                    "INSERT INTO hooks (id, doc) VALUES ($1, $2) \
                     ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc",
                    "INSERT INTO hooks (id, doc) VALUES (?, ?) \
                     ON DUPLICATE KEY UPDATE doc = VALUES(doc)",
                    id,
                    None,
                    hook,
                )
                .await
            }
        }
    }

    async fn delete_hook(&self, id: &str) -> Result<()> {
        self.delete_row(
            "hook",
            "DELETE FROM hooks WHERE id = $1",
            "DELETE FROM hooks WHERE id = ?",
            id,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_size_is_taken_from_the_dsn_and_removed() {
        assert_eq!(
            split_pool_size("postgres://u:p@127.0.0.1:5432/db?max_connections=3&sslmode=disable"),
            Ok(("postgres://u:p@127.0.0.1:5432/db?sslmode=disable".into(), 3))
        );
        assert_eq!(
            split_pool_size("mysql://u@127.0.0.1/db"),
            Ok(("mysql://u@127.0.0.1/db".into(), DEFAULT_MAX_CONNECTIONS))
        );
        assert!(split_pool_size("postgres://h/db?max_connections=0").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        let r = redact_dsn("postgres://user:s3cret@db.example:5432/x");
        assert!(!r.contains("s3cret"), "{r}");
        assert_eq!(r, "postgres://user:***@db.example:5432/x");
    }
}

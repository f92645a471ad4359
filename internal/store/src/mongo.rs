//! MongoDB driver.
//!
//! Collections `streams`, `recordings` and `hooks` in the configured
//! database. Each record is one document:
//!
//! ```text
//! streams:    {_id: key(code), code, version: <int64>, running: <bool>, doc: {...stream...}}
//! recordings: {_id: key(id), id, stream_code, doc: {...recording...}}
//! hooks:      {_id: key(id), id, doc: {...hook...}}
//! ```
//!
//! `key(x)` is an ObjectId made of the first 12 bytes of SHA-256(x): a
//! deterministic primary key, so the uniqueness every MongoDB server enforces
//! on `_id` is the uniqueness of the code/ID (MongoDB-compatible servers that
//! accept only ObjectId keys work too). Reads filter on `_id` and the plain
//! code/ID, so a (practically impossible, 96-bit) hash collision is never
//! mistaken for the other record; an insert that hits one reports
//! `Unavailable`.
//!
//! `Precondition::Absent` is an insert where a duplicate-key error (11000)
//! means `Conflict`. Versioned writes filter on `{_id, version}` and bump the
//! version in the same single-document update, which MongoDB applies
//! atomically; no match means `Conflict` (or `NotFound` if the document is
//! gone). Listings are sorted by the plain code/ID in byte order, like the
//! JSON driver (in the driver, so no server collation changes the order).
//!
//! Only plain `mongodb://` URIs are supported (the build leaves out the DNS
//! resolver that `mongodb+srv://` needs).

use std::time::Duration;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::error::{Error as MongoError, ErrorKind, WriteFailure};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};
use os_domain::{Hook, Recording, Stream};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::{Precondition, Result, Store, StoreError, StoredStream};

/// How long an operation waits for a reachable server before it reports
/// `Unavailable`.
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);
const DUPLICATE_KEY: i32 = 11000;

pub struct MongoStore {
    db: Database,
    streams: Collection<Document>,
    recordings: Collection<Document>,
    hooks: Collection<Document>,
}

/// The document key of a code/ID.
fn key(id: &str) -> ObjectId {
    let digest = Sha256::digest(id.as_bytes());
    let mut bytes = [0u8; 12];
    bytes.copy_from_slice(&digest[..12]);
    ObjectId::from_bytes(bytes)
}

/// Filter for the document of `id` whose plain key field is `field`.
fn by_key(field: &str, id: &str) -> Document {
    doc! {"_id": key(id), field: id}
}

/// After a duplicate-key error: `Unavailable` if another record holds the key.
async fn check_collision(coll: &Collection<Document>, field: &str, id: &str) -> Result<()> {
    let holder = coll.find_one(doc! {"_id": key(id)}).await.map_err(db_err)?;
    match holder.as_ref().and_then(|d| d.get_str(field).ok()) {
        Some(other) if other != id => Err(StoreError::Unavailable(format!(
            "key collision between \"{id}\" and \"{other}\""
        ))),
        _ => Ok(()),
    }
}

fn db_err(e: MongoError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn is_duplicate_key(e: &MongoError) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        _ => false,
    }
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

fn to_bson<T: Serialize>(value: &T) -> Result<Bson> {
    bson::to_bson(value).map_err(|e| StoreError::Unavailable(format!("encoding record: {e}")))
}

fn from_doc<T: DeserializeOwned>(d: &Document) -> Result<T> {
    let inner = d
        .get_document("doc")
        .map_err(|e| StoreError::Unavailable(format!("stored record: {e}")))?;
    bson::from_document(inner.clone())
        .map_err(|e| StoreError::Unavailable(format!("decoding stored record: {e}")))
}

fn version_of(d: &Document) -> Result<u64> {
    let v = match d.get("version") {
        Some(Bson::Int64(v)) => *v,
        Some(Bson::Int32(v)) => i64::from(*v),
        other => {
            return Err(StoreError::Unavailable(format!(
                "stored stream has a bad version: {other:?}"
            )));
        }
    };
    u64::try_from(v).map_err(|_| StoreError::Unavailable(format!("stored version {v} is negative")))
}

fn to_stored(d: &Document) -> Result<StoredStream> {
    Ok(StoredStream {
        stream: from_doc(d)?,
        version: version_of(d)?,
        running: d.get_bool("running").unwrap_or(false),
    })
}

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Unavailable(format!("version {v} out of range")))
}

impl MongoStore {
    /// Connect to `uri` and use `database`.
    ///
    /// # Errors
    /// `Unavailable` when the URI is invalid or the server does not answer a
    /// ping.
    pub async fn connect(uri: &str, database: &str) -> Result<Self> {
        let mut opts = ClientOptions::parse(uri)
            .await
            .map_err(|e| StoreError::Unavailable(format!("invalid storage.mongo_uri: {e}")))?;
        opts.server_selection_timeout
            .get_or_insert(SERVER_SELECTION_TIMEOUT);
        opts.app_name.get_or_insert_with(|| "open-streamer".into());
        let hosts: Vec<String> = opts.hosts.iter().map(ToString::to_string).collect();
        let client = Client::with_options(opts).map_err(db_err)?;
        let db = client.database(database);
        let store = Self {
            streams: db.collection("streams"),
            recordings: db.collection("recordings"),
            hooks: db.collection("hooks"),
            db,
        };
        store.ping().await?;
        tracing::info!(hosts = ?hosts, database, "mongo store opened");
        Ok(store)
    }

    /// Documents matching `filter`, in byte order of `field` (sorted here:
    /// servers' string ordering differs with collations).
    async fn list(
        coll: &Collection<Document>,
        field: &str,
        filter: Document,
    ) -> Result<Vec<Document>> {
        let mut docs: Vec<Document> = coll
            .find(filter)
            .await
            .map_err(db_err)?
            .try_collect()
            .await
            .map_err(db_err)?;
        docs.sort_by(|a, b| a.get_str(field).ok().cmp(&b.get_str(field).ok()));
        Ok(docs)
    }

    async fn get(coll: &Collection<Document>, field: &str, id: &str) -> Result<Option<Document>> {
        coll.find_one(by_key(field, id)).await.map_err(db_err)
    }

    async fn delete(
        coll: &Collection<Document>,
        field: &str,
        kind: &'static str,
        id: &str,
    ) -> Result<()> {
        let r = coll.delete_one(by_key(field, id)).await.map_err(db_err)?;
        if r.deleted_count == 0 {
            return Err(not_found(kind, id));
        }
        Ok(())
    }

    /// Insert a new stream at version 1. `Ok(false)` if the code exists.
    async fn insert_stream(&self, stream: &Stream) -> Result<bool> {
        let d = doc! {
            "_id": key(&stream.code),
            "code": stream.code.as_str(),
            "version": 1_i64,
            "running": false,
            "doc": to_bson(stream)?,
        };
        match self.streams.insert_one(d).await {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate_key(&e) => {
                check_collision(&self.streams, "code", &stream.code).await?;
                Ok(false)
            }
            Err(e) => Err(db_err(e)),
        }
    }

    /// Replace the stream if its version is still `v`. `Ok(false)` if not.
    async fn update_stream(&self, stream: &Stream, v: u64) -> Result<bool> {
        let r = self
            .streams
            .update_one(
                doc! {"_id": key(&stream.code), "code": stream.code.as_str(), "version": to_i64(v)?},
                doc! {"$set": {"doc": to_bson(stream)?}, "$inc": {"version": 1_i64}},
            )
            .await
            .map_err(db_err)?;
        Ok(r.matched_count == 1)
    }
}

#[async_trait]
impl Store for MongoStore {
    async fn ping(&self) -> Result<()> {
        self.db
            .run_command(doc! {"ping": 1})
            .await
            .map(|_| ())
            .map_err(db_err)
    }

    async fn list_streams(&self) -> Result<Vec<StoredStream>> {
        Self::list(&self.streams, "code", doc! {})
            .await?
            .iter()
            .map(to_stored)
            .collect()
    }

    async fn get_stream(&self, code: &str) -> Result<StoredStream> {
        match Self::get(&self.streams, "code", code).await? {
            Some(d) => to_stored(&d),
            None => Err(not_found("stream", code)),
        }
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
                match Self::get(&self.streams, "code", code).await? {
                    None => Err(not_found("stream", code)),
                    Some(d) => Err(StoreError::Conflict {
                        kind: "stream",
                        id: code.to_string(),
                        reason: format!("changed concurrently (version {} ≠ {v})", version_of(&d)?),
                    }),
                }
            }
            Precondition::Any => loop {
                // Compare-and-swap until no concurrent writer interferes.
                match Self::get(&self.streams, "code", code).await? {
                    None => {
                        if self.insert_stream(stream).await? {
                            return Ok(1);
                        }
                    }
                    Some(d) => {
                        let v = version_of(&d)?;
                        if self.update_stream(stream, v).await? {
                            return Ok(v + 1);
                        }
                    }
                }
            },
        }
    }

    async fn delete_stream(&self, code: &str) -> Result<()> {
        Self::delete(&self.streams, "code", "stream", code).await
    }

    async fn set_stream_running(&self, code: &str, running: bool) -> Result<()> {
        let r = self
            .streams
            .update_one(by_key("code", code), doc! {"$set": {"running": running}})
            .await
            .map_err(db_err)?;
        if r.matched_count == 0 {
            return Err(not_found("stream", code));
        }
        Ok(())
    }

    async fn list_recordings(&self, stream_code: Option<&str>) -> Result<Vec<Recording>> {
        let filter = match stream_code {
            Some(c) => doc! {"stream_code": c},
            None => doc! {},
        };
        Self::list(&self.recordings, "id", filter)
            .await?
            .iter()
            .map(from_doc)
            .collect()
    }

    async fn get_recording(&self, id: &str) -> Result<Recording> {
        match Self::get(&self.recordings, "id", id).await? {
            Some(d) => from_doc(&d),
            None => Err(not_found("recording", id)),
        }
    }

    async fn put_recording(&self, rec: &Recording) -> Result<()> {
        let d = doc! {
            "_id": key(&rec.id),
            "id": rec.id.as_str(),
            "stream_code": rec.stream_code.as_str(),
            "doc": to_bson(rec)?,
        };
        self.recordings
            .replace_one(by_key("id", &rec.id), d)
            .upsert(true)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn delete_recording(&self, id: &str) -> Result<()> {
        Self::delete(&self.recordings, "id", "recording", id).await
    }

    async fn list_hooks(&self) -> Result<Vec<Hook>> {
        Self::list(&self.hooks, "id", doc! {})
            .await?
            .iter()
            .map(from_doc)
            .collect()
    }

    async fn get_hook(&self, id: &str) -> Result<Hook> {
        match Self::get(&self.hooks, "id", id).await? {
            Some(d) => from_doc(&d),
            None => Err(not_found("hook", id)),
        }
    }

    async fn put_hook(&self, hook: &Hook, pre: Precondition) -> Result<()> {
        let id = hook.id.as_str();
        let d = doc! {"_id": key(id), "id": id, "doc": to_bson(hook)?};
        match pre {
            Precondition::Absent => match self.hooks.insert_one(d).await {
                Ok(_) => Ok(()),
                Err(e) if is_duplicate_key(&e) => {
                    check_collision(&self.hooks, "id", id).await?;
                    Err(exists("hook", id))
                }
                Err(e) => Err(db_err(e)),
            },
            Precondition::Version(_) => {
                let r = self
                    .hooks
                    .replace_one(by_key("id", id), d)
                    .await
                    .map_err(db_err)?;
                if r.matched_count == 0 {
                    return Err(not_found("hook", id));
                }
                Ok(())
            }
            Precondition::Any => {
                self.hooks
                    .replace_one(by_key("id", id), d)
                    .upsert(true)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }
        }
    }

    async fn delete_hook(&self, id: &str) -> Result<()> {
        Self::delete(&self.hooks, "id", "hook", id).await
    }
}

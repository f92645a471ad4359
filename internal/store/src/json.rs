//! JSON flat-file driver.
//!
//! Layout under the configured directory:
//!
//! ```text
//! streams/<code>.json      {"version": 3, "running": true, "stream": {...}}
//! recordings/<id>.json     {...recording...}
//! hooks/<id>.json          {...hook...}
//! ```
//!
//! Every write goes to a temp file in the same directory, is fsynced,
//! renamed over the target and the directory is fsynced, so after a crash
//! (even `kill -9` or power loss) each file holds either the old or the new
//! record, never a torn one, and an acknowledged write is on disk.
//!
//! All records are kept in memory; reads never touch the disk. One async
//! mutex serialises writers, which keeps check-and-write atomic (the
//! versions and preconditions) without file locks.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use os_domain::{Hook, Recording, Stream};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::{Precondition, Result, Store, StoreError, StoredStream};

const STREAMS: &str = "streams";
const RECORDINGS: &str = "recordings";
const HOOKS: &str = "hooks";

/// On-disk envelope of a stream.
#[derive(Serialize, Deserialize)]
struct StreamFile {
    version: u64,
    #[serde(default)]
    running: bool,
    stream: Stream,
}

#[derive(Default)]
struct State {
    streams: BTreeMap<String, StoredStream>,
    recordings: BTreeMap<String, Recording>,
    hooks: BTreeMap<String, Hook>,
}

pub struct JsonStore {
    root: PathBuf,
    /// Held by every operation; writers keep it across the file write so a
    /// precondition check and the write it guards are one step.
    state: Mutex<State>,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn unavailable(what: &str, path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{what} {}: {e}", path.display()))
}

impl JsonStore {
    /// Open (creating if needed) a store rooted at `dir` and load every record.
    ///
    /// # Errors
    /// `Unavailable` when the directory cannot be created or a record file is
    /// unreadable or not valid JSON (the file is named; nothing is deleted).
    pub async fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let root: PathBuf = dir.into();
        let root2 = root.clone();
        let state = tokio::task::spawn_blocking(move || load_all(&root2))
            .await
            .map_err(|e| StoreError::Unavailable(format!("loading store: {e}")))??;
        tracing::info!(
            dir = %root.display(),
            streams = state.streams.len(),
            recordings = state.recordings.len(),
            hooks = state.hooks.len(),
            "json store opened"
        );
        Ok(Self {
            root,
            state: Mutex::new(state),
        })
    }

    fn path(&self, kind: &str, id: &str) -> PathBuf {
        self.root.join(kind).join(format!("{id}.json"))
    }

    async fn write(&self, kind: &'static str, id: &str, bytes: Vec<u8>) -> Result<()> {
        let dir = self.root.join(kind);
        let name = format!("{id}.json");
        tokio::task::spawn_blocking(move || write_atomic(&dir, &name, &bytes))
            .await
            .map_err(|e| StoreError::Unavailable(format!("write task: {e}")))?
    }

    async fn remove(&self, kind: &'static str, id: &str) -> Result<()> {
        let path = self.path(kind, id);
        let dir = self.root.join(kind);
        tokio::task::spawn_blocking(move || {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(unavailable("removing", &path, e)),
            }
            sync_dir(&dir)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("remove task: {e}")))?
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| StoreError::Unavailable(format!("encoding record: {e}")))?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn load_all(root: &Path) -> Result<State> {
    let mut state = State::default();
    for kind in [STREAMS, RECORDINGS, HOOKS] {
        let dir = root.join(kind);
        fs::create_dir_all(&dir).map_err(|e| unavailable("creating", &dir, e))?;
        for entry in fs::read_dir(&dir).map_err(|e| unavailable("reading", &dir, e))? {
            let entry = entry.map_err(|e| unavailable("reading", &dir, e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") {
                // Left by a write that never reached its rename: the target
                // still holds the previous, acknowledged record.
                if let Err(e) = fs::remove_file(&path) {
                    tracing::warn!(file = %path.display(), error = %e, "cannot remove stale temp file");
                }
                continue;
            }
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            match kind {
                STREAMS => {
                    let f: StreamFile = read_json(&path)?;
                    if f.stream.code != id {
                        return Err(unavailable(
                            "reading",
                            &path,
                            format!("file holds stream \"{}\"", f.stream.code),
                        ));
                    }
                    state.streams.insert(
                        id.to_string(),
                        StoredStream {
                            stream: f.stream,
                            version: f.version,
                            running: f.running,
                        },
                    );
                }
                RECORDINGS => {
                    let r: Recording = read_json(&path)?;
                    state.recordings.insert(id.to_string(), r);
                }
                _ => {
                    let h: Hook = read_json(&path)?;
                    state.hooks.insert(id.to_string(), h);
                }
            }
        }
    }
    Ok(state)
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(|e| unavailable("reading", path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| unavailable("parsing", path, e))
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let target = dir.join(name);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, &target)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(unavailable("writing", &target, e));
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| unavailable("syncing", dir, e))
}

fn not_found(kind: &'static str, id: &str) -> StoreError {
    StoreError::NotFound {
        kind,
        id: id.to_string(),
    }
}

#[async_trait]
impl Store for JsonStore {
    async fn ping(&self) -> Result<()> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let meta =
                fs::metadata(root.join(STREAMS)).map_err(|e| unavailable("checking", &root, e))?;
            if meta.is_dir() {
                Ok(())
            } else {
                Err(unavailable("checking", &root, "streams is not a directory"))
            }
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("ping task: {e}")))?
    }

    async fn list_streams(&self) -> Result<Vec<StoredStream>> {
        Ok(self.state.lock().await.streams.values().cloned().collect())
    }

    async fn get_stream(&self, code: &str) -> Result<StoredStream> {
        self.state
            .lock()
            .await
            .streams
            .get(code)
            .cloned()
            .ok_or_else(|| not_found("stream", code))
    }

    async fn put_stream(&self, stream: &Stream, pre: Precondition) -> Result<u64> {
        let mut state = self.state.lock().await;
        let code = stream.code.as_str();
        let current = state.streams.get(code);
        match (pre, current) {
            (Precondition::Absent, Some(_)) => {
                return Err(StoreError::Conflict {
                    kind: "stream",
                    id: code.to_string(),
                    reason: "already exists".into(),
                });
            }
            (Precondition::Version(_), None) => return Err(not_found("stream", code)),
            (Precondition::Version(v), Some(cur)) if cur.version != v => {
                return Err(StoreError::Conflict {
                    kind: "stream",
                    id: code.to_string(),
                    reason: format!("changed concurrently (version {} ≠ {v})", cur.version),
                });
            }
            _ => {}
        }
        let version = current.map_or(1, |c| c.version + 1);
        let running = current.is_some_and(|c| c.running);
        let file = StreamFile {
            version,
            running,
            stream: stream.clone(),
        };
        self.write(STREAMS, code, encode(&file)?).await?;
        state.streams.insert(
            code.to_string(),
            StoredStream {
                stream: file.stream,
                version,
                running,
            },
        );
        Ok(version)
    }

    async fn delete_stream(&self, code: &str) -> Result<()> {
        let mut state = self.state.lock().await;
        if !state.streams.contains_key(code) {
            return Err(not_found("stream", code));
        }
        self.remove(STREAMS, code).await?;
        state.streams.remove(code);
        Ok(())
    }

    async fn set_stream_running(&self, code: &str, running: bool) -> Result<()> {
        let mut state = self.state.lock().await;
        let cur = state
            .streams
            .get(code)
            .ok_or_else(|| not_found("stream", code))?;
        if cur.running == running {
            return Ok(());
        }
        let file = StreamFile {
            version: cur.version,
            running,
            stream: cur.stream.clone(),
        };
        self.write(STREAMS, code, encode(&file)?).await?;
        if let Some(s) = state.streams.get_mut(code) {
            s.running = running;
        }
        Ok(())
    }

    async fn list_recordings(&self, stream_code: Option<&str>) -> Result<Vec<Recording>> {
        Ok(self
            .state
            .lock()
            .await
            .recordings
            .values()
            .filter(|r| stream_code.is_none_or(|c| r.stream_code == c))
            .cloned()
            .collect())
    }

    async fn get_recording(&self, id: &str) -> Result<Recording> {
        self.state
            .lock()
            .await
            .recordings
            .get(id)
            .cloned()
            .ok_or_else(|| not_found("recording", id))
    }

    async fn put_recording(&self, rec: &Recording) -> Result<()> {
        let mut state = self.state.lock().await;
        self.write(RECORDINGS, &rec.id, encode(rec)?).await?;
        state.recordings.insert(rec.id.clone(), rec.clone());
        Ok(())
    }

    async fn delete_recording(&self, id: &str) -> Result<()> {
        let mut state = self.state.lock().await;
        if !state.recordings.contains_key(id) {
            return Err(not_found("recording", id));
        }
        self.remove(RECORDINGS, id).await?;
        state.recordings.remove(id);
        Ok(())
    }

    async fn list_hooks(&self) -> Result<Vec<Hook>> {
        Ok(self.state.lock().await.hooks.values().cloned().collect())
    }

    async fn get_hook(&self, id: &str) -> Result<Hook> {
        self.state
            .lock()
            .await
            .hooks
            .get(id)
            .cloned()
            .ok_or_else(|| not_found("hook", id))
    }

    async fn put_hook(&self, hook: &Hook, pre: Precondition) -> Result<()> {
        let mut state = self.state.lock().await;
        let exists = state.hooks.contains_key(&hook.id);
        match pre {
            Precondition::Absent if exists => {
                return Err(StoreError::Conflict {
                    kind: "hook",
                    id: hook.id.clone(),
                    reason: "already exists".into(),
                });
            }
            Precondition::Version(_) if !exists => return Err(not_found("hook", &hook.id)),
            _ => {}
        }
        self.write(HOOKS, &hook.id, encode(hook)?).await?;
        state.hooks.insert(hook.id.clone(), hook.clone());
        Ok(())
    }

    async fn delete_hook(&self, id: &str) -> Result<()> {
        let mut state = self.state.lock().await;
        if !state.hooks.contains_key(id) {
            return Err(not_found("hook", id));
        }
        self.remove(HOOKS, id).await?;
        state.hooks.remove(id);
        Ok(())
    }
}

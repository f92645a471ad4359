//! The behaviour every storage driver must share, run against each backend
//! by the driver test files (`json_store.rs`, `sql_store.rs`, `mongo_store.rs`).

#![allow(dead_code)] // each test binary uses its own part of the harness

pub mod servers;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use chrono::Utc;
use os_domain::{Hook, Input, Recording, RecordingStatus, Stream};
use os_store::{Precondition, Store, StoreError};

/// Independent namespaces (directories, databases) the suite uses; a backend
/// creates them up front where that takes a step of its own.
pub const NAMESPACES: [&str; 4] = ["contract", "concurrency", "large", "reopen"];

/// Opens a store over namespace `ns`; opening the same namespace again must
/// see what was written before (a restart of the server process).
pub trait Opener: Sync {
    fn open(&self, ns: &str) -> impl Future<Output = Arc<dyn Store>> + Send;
}

pub fn stream(code: &str, name: &str) -> Stream {
    Stream {
        code: code.into(),
        name: name.into(),
        ..Stream::default()
    }
}

/// Every shared check, each in its own namespace.
pub async fn run_suite(opener: &impl Opener) {
    contract(opener.open("contract").await.as_ref()).await;
    concurrent_read_modify_write_loses_nothing(opener).await;
    large_documents_and_unicode_round_trip(opener).await;
    reopen_sees_everything(opener).await;
}

/// CRUD, sorted listings, NotFound, Conflict, optimistic versions and the
/// `running` flag surviving config updates.
pub async fn contract(store: &dyn Store) {
    store.ping().await.unwrap_or_else(|e| panic!("ping: {e}"));
    assert_eq!(store.list_streams().await, Ok(vec![]));
    assert_eq!(
        store.get_stream("a").await.map(|s| s.version),
        Err(StoreError::NotFound {
            kind: "stream",
            id: "a".into()
        })
    );

    assert_eq!(
        store
            .put_stream(&stream("b", "B"), Precondition::Absent)
            .await,
        Ok(1)
    );
    assert_eq!(
        store
            .put_stream(&stream("a", "A"), Precondition::Absent)
            .await,
        Ok(1)
    );
    // Byte order, like the JSON driver: upper case before lower case.
    assert_eq!(
        store
            .put_stream(&stream("Z-9", "Z"), Precondition::Absent)
            .await,
        Ok(1)
    );
    assert!(matches!(
        store
            .put_stream(&stream("a", "again"), Precondition::Absent)
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let codes: Vec<String> = store
        .list_streams()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.stream.code)
        .collect();
    assert_eq!(codes, vec!["Z-9", "a", "b"], "sorted by code");
    store
        .delete_stream("Z-9")
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // Optimistic concurrency.
    assert_eq!(
        store
            .put_stream(&stream("a", "A2"), Precondition::Version(1))
            .await,
        Ok(2)
    );
    assert!(matches!(
        store
            .put_stream(&stream("a", "stale"), Precondition::Version(1))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store
            .put_stream(&stream("zz", "x"), Precondition::Version(1))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    let a = store
        .get_stream("a")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (a.stream.name.as_str(), a.version, a.running),
        ("A2", 2, false)
    );

    // Desired state survives config updates.
    store
        .set_stream_running("a", true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Setting the same state again is not an error.
    store
        .set_stream_running("a", true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        store
            .put_stream(&stream("a", "A3"), Precondition::Any)
            .await,
        Ok(3)
    );
    assert!(store.get_stream("a").await.is_ok_and(|s| s.running));
    assert_eq!(
        store
            .put_stream(&stream("new", "N"), Precondition::Any)
            .await,
        Ok(1)
    );
    assert!(matches!(
        store.set_stream_running("nope", true).await,
        Err(StoreError::NotFound { .. })
    ));

    store
        .delete_stream("b")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        store.delete_stream("b").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.get_stream("b").await,
        Err(StoreError::NotFound { .. })
    ));

    // Recordings.
    let rec = Recording {
        id: "a".into(),
        stream_code: "a".into(),
        started_at: Utc::now(),
        stopped_at: None,
        status: RecordingStatus::Recording,
        segment_dir: "/var/lib/open-streamer/dvr/a".into(),
    };
    store
        .put_recording(&rec)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.get_recording("a").await, Ok(rec.clone()));
    let stopped = Recording {
        stopped_at: Some(Utc::now()),
        status: RecordingStatus::Stopped,
        ..rec.clone()
    };
    store
        .put_recording(&stopped)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let other = Recording {
        id: "0-other".into(),
        stream_code: "new".into(),
        ..rec.clone()
    };
    store
        .put_recording(&other)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        store.list_recordings(Some("a")).await,
        Ok(vec![stopped.clone()])
    );
    assert_eq!(
        store.list_recordings(None).await,
        Ok(vec![other.clone(), stopped.clone()]),
        "sorted by id"
    );
    assert_eq!(store.list_recordings(Some("b")).await, Ok(vec![]));
    store
        .delete_recording("a")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        store.get_recording("a").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.delete_recording("a").await,
        Err(StoreError::NotFound { .. })
    ));

    // Hooks.
    let hook = Hook {
        id: "ops".into(),
        target: "http://127.0.0.1:1/h".into(),
        ..Hook::default()
    };
    store
        .put_hook(&hook, Precondition::Absent)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        store.put_hook(&hook, Precondition::Absent).await,
        Err(StoreError::Conflict { .. })
    ));
    let changed = Hook {
        target: "http://127.0.0.1:2/h".into(),
        ..hook.clone()
    };
    store
        .put_hook(&changed, Precondition::Version(0))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // An unchanged update of an existing hook is fine too.
    store
        .put_hook(&changed, Precondition::Version(0))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        store
            .put_hook(
                &Hook {
                    id: "ghost".into(),
                    ..hook.clone()
                },
                Precondition::Version(0)
            )
            .await,
        Err(StoreError::NotFound { .. })
    ));
    let first = Hook {
        id: "a-first".into(),
        ..hook.clone()
    };
    store
        .put_hook(&first, Precondition::Any)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.get_hook("ops").await, Ok(changed.clone()));
    assert_eq!(
        store.list_hooks().await,
        Ok(vec![first.clone(), changed.clone()])
    );
    store
        .delete_hook("ops")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .delete_hook("a-first")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        store.delete_hook("ops").await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.list_hooks().await, Ok(vec![]));
}

/// 50 writers append to one stream with versioned read-modify-writes and
/// each creates its own stream; a fresh store then sees every change.
pub async fn concurrent_read_modify_write_loses_nothing(opener: &impl Opener) {
    let store = opener.open("concurrency").await;
    store
        .put_stream(&stream("shared", ""), Precondition::Any)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let cur = store
                    .get_stream("shared")
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let mut s = cur.stream.clone();
                s.tags.push(format!("t{i}"));
                match store
                    .put_stream(&s, Precondition::Version(cur.version))
                    .await
                {
                    Ok(_) => break,
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => panic!("{e}"),
                }
            }
            store
                .put_stream(&stream(&format!("own{i}"), "x"), Precondition::Absent)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }));
    }
    for t in tasks {
        t.await.unwrap_or_else(|e| panic!("{e}"));
    }
    drop(store);
    let reopened = opener.open("concurrency").await;
    let shared = reopened
        .get_stream("shared")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut tags = shared.stream.tags.clone();
    tags.sort();
    tags.dedup();
    assert_eq!(tags.len(), 50, "every writer's tag is there exactly once");
    assert_eq!(shared.stream.tags.len(), 50);
    assert_eq!(shared.version, 51);
    assert_eq!(reopened.list_streams().await.map(|v| v.len()), Ok(51));
}

/// A stream with 32 inputs, long strings and non-ASCII text comes back
/// exactly as written.
pub async fn large_documents_and_unicode_round_trip(opener: &impl Opener) {
    let store = opener.open("large").await;
    let long = "ß→東京📺 ".repeat(4000); // ≈ 52 KB of UTF-8
    let mut big = stream("big", "Café Ünïcødé — 東京 ライブ 📺 مباشر");
    big.description = long.clone();
    big.tags = (0..64).map(|i| format!("标签-{i}-ñ")).collect();
    big.inputs = (0..32)
        .map(|i| Input {
            url: format!("rtmp://127.0.0.1:1935/live/{i}?k={}", "x".repeat(2000)),
            priority: i,
            headers: BTreeMap::from([
                ("X-Name".to_string(), format!("naïve-{i}")),
                ("X-Long".to_string(), "v".repeat(1000)),
            ]),
            ..Input::default()
        })
        .collect();
    big.created_at = Some(Utc::now());
    assert_eq!(store.put_stream(&big, Precondition::Absent).await, Ok(1));
    let got = store
        .get_stream("big")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.stream, big);
    assert_eq!(got.stream.inputs.len(), 32);
    drop(store);
    let reopened = opener.open("large").await;
    let listed = reopened.list_streams().await.unwrap_or_default();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].stream, big);
    assert_eq!(listed[0].stream.description.len(), long.len());
}

/// Everything written is visible to a store opened afresh: streams with
/// their versions and running flags, recordings and hooks.
pub async fn reopen_sees_everything(opener: &impl Opener) {
    let store = opener.open("reopen").await;
    for i in 0..5 {
        let code = format!("s{i}");
        store
            .put_stream(&stream(&code, "v1"), Precondition::Absent)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..i {
            store
                .put_stream(&stream(&code, "later"), Precondition::Any)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        if i % 2 == 0 {
            store
                .set_stream_running(&code, true)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        store
            .put_recording(&Recording {
                id: code.clone(),
                stream_code: code.clone(),
                started_at: Utc::now(),
                stopped_at: None,
                status: RecordingStatus::Recording,
                segment_dir: format!("/dvr/{code}"),
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .put_hook(
                &Hook {
                    id: format!("h{i}"),
                    target: format!("http://127.0.0.1:9/{i}"),
                    ..Hook::default()
                },
                Precondition::Absent,
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let streams = store.list_streams().await.unwrap_or_default();
    let recordings = store.list_recordings(None).await.unwrap_or_default();
    let hooks = store.list_hooks().await.unwrap_or_default();
    assert_eq!((streams.len(), recordings.len(), hooks.len()), (5, 5, 5));
    drop(store);

    let reopened = opener.open("reopen").await;
    assert_eq!(reopened.list_streams().await, Ok(streams.clone()));
    assert_eq!(reopened.list_recordings(None).await, Ok(recordings));
    assert_eq!(reopened.list_hooks().await, Ok(hooks));
    let summary: Vec<(String, u64, bool)> = streams
        .into_iter()
        .map(|s| (s.stream.code, s.version, s.running))
        .collect();
    assert_eq!(
        summary,
        (0..5u64)
            .map(|i| (format!("s{i}"), i + 1, i % 2 == 0))
            .collect::<Vec<_>>()
    );
}

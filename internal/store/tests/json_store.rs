//! The JSON driver against the Store contract, plus its crash-safety rules.

use std::sync::Arc;

use chrono::Utc;
use os_domain::{Hook, Recording, RecordingStatus, Stream};
use os_store::json::JsonStore;
use os_store::{Precondition, Store, StoreError};

fn stream(code: &str, name: &str) -> Stream {
    Stream {
        code: code.into(),
        name: name.into(),
        ..Stream::default()
    }
}

async fn open(dir: &std::path::Path) -> JsonStore {
    match JsonStore::open(dir).await {
        Ok(s) => s,
        Err(e) => panic!("open: {e}"),
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

/// The behaviour every driver must share.
async fn contract(store: &dyn Store) {
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
    assert_eq!(codes, vec!["a", "b"], "sorted by code");

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
    assert_eq!(
        store
            .put_stream(&stream("a", "A3"), Precondition::Any)
            .await,
        Ok(3)
    );
    assert!(store.get_stream("a").await.is_ok_and(|s| s.running));
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
    assert_eq!(
        store.list_recordings(Some("a")).await,
        Ok(vec![rec.clone()])
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
    assert_eq!(store.list_hooks().await, Ok(vec![hook.clone()]));
    store
        .delete_hook("ops")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.list_hooks().await, Ok(vec![]));
}

#[tokio::test]
async fn json_store_meets_the_contract() {
    let dir = tmp();
    contract(&open(dir.path()).await).await;
}

#[tokio::test]
async fn records_survive_reopen() {
    let dir = tmp();
    {
        let s = open(dir.path()).await;
        s.put_stream(&stream("cam1", "Cam"), Precondition::Any)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        s.set_stream_running("cam1", true)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        s.put_stream(&stream("cam1", "Cam v2"), Precondition::Version(1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let s = open(dir.path()).await;
    let got = s.get_stream("cam1").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (got.stream.name.as_str(), got.version, got.running),
        ("Cam v2", 2, true)
    );
    assert!(dir.path().join("streams/cam1.json").is_file());
}

#[tokio::test]
async fn stale_temp_files_are_ignored_and_removed_corrupt_files_are_reported() {
    let dir = tmp();
    {
        let s = open(dir.path()).await;
        s.put_stream(&stream("x", "X"), Precondition::Any)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // A write interrupted before its rename leaves only a temp file behind.
    let stale = dir.path().join("streams/.x.json.123.0.tmp");
    std::fs::write(&stale, b"{\"version\": 9, \"str").unwrap_or_else(|e| panic!("{e}"));
    let s = open(dir.path()).await;
    assert!(s.get_stream("x").await.is_ok_and(|s| s.version == 1));
    assert!(!stale.exists());
    drop(s);

    std::fs::write(dir.path().join("streams/bad.json"), b"{not json")
        .unwrap_or_else(|e| panic!("{e}"));
    match JsonStore::open(dir.path()).await {
        Ok(_) => panic!("a corrupt record must not be silently skipped"),
        Err(e) => assert!(e.to_string().contains("bad.json"), "{e}"),
    }
    assert!(
        dir.path().join("streams/bad.json").exists(),
        "nothing is deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_read_modify_write_loses_nothing() {
    let dir = tmp();
    let store = Arc::new(open(dir.path()).await);
    store
        .put_stream(&stream("shared", ""), Precondition::Any)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Each task appends its tag with a versioned read-modify-write.
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
    let reopened = open(dir.path()).await;
    let shared = reopened
        .get_stream("shared")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(shared.stream.tags.len(), 50);
    assert_eq!(shared.version, 51);
    assert_eq!(reopened.list_streams().await.map(|v| v.len()), Ok(51));
}

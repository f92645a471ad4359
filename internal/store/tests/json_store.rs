//! The JSON driver against the shared Store suite, plus its crash-safety rules.

mod common;

use std::sync::Arc;

use os_domain::Stream;
use os_store::json::JsonStore;
use os_store::{Precondition, Store};

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

struct JsonDirs(std::path::PathBuf);

impl common::Opener for JsonDirs {
    async fn open(&self, ns: &str) -> Arc<dyn Store> {
        Arc::new(open(&self.0.join(ns)).await)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn json_store_meets_the_shared_suite() {
    let dir = tmp();
    common::run_suite(&JsonDirs(dir.path().to_path_buf())).await;
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

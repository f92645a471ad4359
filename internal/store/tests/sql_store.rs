//! The SQL driver against the shared Store suite, on real PostgreSQL and
//! MariaDB servers started for the test.

mod common;

use std::sync::Arc;

use common::servers::{MARIADB_PASSWORD, MariaDb, Postgres};
use os_store::sql::SqlStore;
use os_store::{Store, StoreError};

struct Dsn<F: Fn(&str) -> String + Sync>(F);

impl<F: Fn(&str) -> String + Sync> common::Opener for Dsn<F> {
    async fn open(&self, ns: &str) -> Arc<dyn Store> {
        let dsn = (self.0)(ns);
        match SqlStore::connect(&dsn).await {
            Ok(s) => Arc::new(s),
            Err(e) => panic!("connect {ns}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_meets_the_shared_suite() {
    let pg = Postgres::start(&common::NAMESPACES);
    common::run_suite(&Dsn(|db| pg.dsn(db))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_meets_the_shared_suite() {
    let db = MariaDb::start(&common::NAMESPACES);
    common::run_suite(&Dsn(|ns| db.dsn(ns))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_database_is_unavailable_and_the_password_is_not_shown() {
    let port = common::servers::free_port();
    let dsn = format!("mysql://u:{MARIADB_PASSWORD}@127.0.0.1:{port}/x");
    match SqlStore::connect(&dsn).await {
        Ok(_) => panic!("nothing listens on {port}"),
        Err(StoreError::Unavailable(msg)) => {
            assert!(!msg.contains(MARIADB_PASSWORD), "{msg}");
            assert!(msg.contains(&port.to_string()), "{msg}");
        }
        Err(e) => panic!("{e}"),
    }
    assert!(matches!(
        SqlStore::connect("sqlite://x.db").await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_unavailable_and_recovery_keeps_data() {
    let pg = Postgres::start(&["outage"]);
    let store = match SqlStore::connect(&pg.dsn("outage")).await {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let s = common::stream("cam", "Cam");
    assert_eq!(
        store.put_stream(&s, os_store::Precondition::Absent).await,
        Ok(1)
    );
    pg.stop_server();
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.get_stream("cam").await,
        Err(StoreError::Unavailable(_))
    ));
    pg.start_server();
    // The pool reconnects on its own.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while store.ping().await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "store did not recover"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(store.get_stream("cam").await.map(|g| g.stream), Ok(s));
}

//! The MongoDB driver against the shared Store suite, on a MongoDB
//! wire-protocol server started for the test (see docs/DESIGN.md for what
//! that server does and does not prove).

mod common;

use std::sync::Arc;

use common::servers::MongoWire;
use os_store::mongo::MongoStore;
use os_store::{Store, StoreError};

struct Mongo(String);

impl common::Opener for Mongo {
    async fn open(&self, ns: &str) -> Arc<dyn Store> {
        match MongoStore::connect(&self.0, ns).await {
            Ok(s) => Arc::new(s),
            Err(e) => panic!("connect {ns}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mongo_meets_the_shared_suite() {
    let server = MongoWire::start();
    common::run_suite(&Mongo(server.uri())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_mongo_is_unavailable() {
    let port = common::servers::free_port();
    let uri =
        format!("mongodb://127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=500");
    assert!(matches!(
        MongoStore::connect(&uri, "x").await,
        Err(StoreError::Unavailable(_))
    ));
}

//! The server on the SQL and MongoDB drivers: `App::bind` picks the driver
//! from `storage.driver`; a PostgreSQL or MongoDB outage answers 503 and the
//! API recovers with its data once the database is back.

mod common;
#[path = "../../internal/store/tests/common/servers.rs"]
mod servers;

use std::time::{Duration, Instant};

use common::{call, config, start};
use reqwest::Method;
use serde_json::{Value, json};

fn demo() -> Value {
    json!({
        "name": "Démo 東京",
        "inputs": [{"url": "rtmp://0.0.0.0:1935/live/demo", "priority": 0}],
        "protocols": {"hls": true}
    })
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_answers_503_and_the_api_recovers_with_its_data() {
    let pg = servers::Postgres::start(&["api"]);
    let dir = tmp();
    let mut c = config(dir.path(), "");
    c.storage.driver = "sql".into();
    c.storage.sql_dsn = format!("{}?max_connections=4", pg.dsn("api"));
    let s = start(c).await;

    let (st, _) = call(&s, Method::PUT, "/streams/demo", Some(demo())).await;
    assert!(st == 200 || st == 201, "create: {st}");
    let (st, body) = call(&s, Method::GET, "/readyz", None).await;
    assert_eq!((st, body["checks"]["store"].clone()), (200, json!(true)));
    assert!(
        !dir.path().join("streams").exists(),
        "nothing goes to the JSON directory"
    );

    pg.stop_server();
    let (st, body) = call(&s, Method::GET, "/streams/demo", None).await;
    assert_eq!(
        (st, body["error"]["code"].clone()),
        (503, json!("STORE_UNAVAILABLE"))
    );
    let (st, _) = call(&s, Method::PUT, "/streams/other", Some(demo())).await;
    assert_eq!(st, 503);
    let (st, body) = call(&s, Method::GET, "/readyz", None).await;
    assert_eq!((st, body["checks"]["store"].clone()), (503, json!(false)));

    pg.start_server();
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (st, body) = call(&s, Method::GET, "/streams/demo", None).await;
        if st == 200 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "API did not recover: {st} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body["data"]["name"], "Démo 東京");
    let (st, _) = call(&s, Method::GET, "/readyz", None).await;
    assert_eq!(st, 200);
    let (_, list) = call(&s, Method::GET, "/streams", None).await;
    assert_eq!(
        list["total"], 1,
        "the write refused during the outage is not there"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_driver_serves_the_api_and_keeps_data_across_restart() {
    let mongo = servers::MongoWire::start();
    let dir = tmp();
    let mut c = config(dir.path(), "");
    c.storage.driver = "mongo".into();
    c.storage.mongo_uri = mongo.uri();
    c.storage.mongo_database = "api".into();
    let s = start(c.clone()).await;
    let (st, _) = call(&s, Method::PUT, "/streams/demo", Some(demo())).await;
    assert!(st == 200 || st == 201, "create: {st}");
    assert_eq!(
        call(&s, Method::POST, "/streams/demo/start", None).await.0,
        200
    );
    s.stop().await;

    let s = start(c).await;
    let (st, body) = call(&s, Method::GET, "/streams/demo", None).await;
    assert_eq!(
        (st, body["data"]["name"].clone()),
        (200, json!("Démo 東京"))
    );
    let (_, body) = call(&s, Method::GET, "/streams/demo/status", None).await;
    assert_eq!(body["data"]["desired"], "running");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_outage_answers_503_and_the_api_recovers_with_its_data() {
    let data = tmp();
    let mut mongo = servers::MongoWire::start_in(data.path());
    let dir = tmp();
    let mut c = config(dir.path(), "");
    c.storage.driver = "mongo".into();
    c.storage.mongo_uri = format!("{}&serverSelectionTimeoutMS=2000", mongo.uri());
    c.storage.mongo_database = "outage".into();
    let s = start(c).await;
    let (st, _) = call(&s, Method::PUT, "/streams/demo", Some(demo())).await;
    assert!(st == 200 || st == 201, "create: {st}");
    let (st, body) = call(&s, Method::GET, "/readyz", None).await;
    assert_eq!((st, body["checks"]["store"].clone()), (200, json!(true)));

    mongo.stop_server();
    let (st, body) = call(&s, Method::GET, "/streams/demo", None).await;
    assert_eq!(
        (st, body["error"]["code"].clone()),
        (503, json!("STORE_UNAVAILABLE")),
        "{body}"
    );
    let (st, _) = call(&s, Method::PUT, "/streams/other", Some(demo())).await;
    assert_eq!(st, 503);
    let (st, body) = call(&s, Method::GET, "/readyz", None).await;
    assert_eq!((st, body["checks"]["store"].clone()), (503, json!(false)));

    mongo.start_server();
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (st, body) = call(&s, Method::GET, "/streams/demo", None).await;
        if st == 200 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "API did not recover: {st} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body["data"]["name"], "Démo 東京");
    let (st, _) = call(&s, Method::GET, "/readyz", None).await;
    assert_eq!(st, 200);
    let (_, list) = call(&s, Method::GET, "/streams", None).await;
    assert_eq!(
        list["total"], 1,
        "the write refused during the outage is not there"
    );
    s.stop().await;
}

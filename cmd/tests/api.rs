//! The REST API over real HTTP against the real server (in-process, port 0).

mod common;

use std::sync::Arc;

use common::{call, config, start};
use reqwest::Method;
use serde_json::{Value, json};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

fn demo() -> Value {
    json!({
        "name": "Demo",
        "inputs": [{"url": "rtmp://0.0.0.0:1935/live/demo", "priority": 0}],
        "protocols": {"hls": true, "dash": true}
    })
}

#[tokio::test]
async fn crud_round_trip() {
    let dir = tmp();
    let s = start(config(dir.path(), "")).await;

    let (st, body) = call(&s, Method::GET, "/streams", None).await;
    assert_eq!((st, body), (200, json!({"data": [], "total": 0})));

    let (st, body) = call(&s, Method::PUT, "/streams/demo", Some(demo())).await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["data"]["code"], "demo");
    assert_eq!(body["data"]["protocols"]["hls"], true);
    assert_eq!(
        body["data"]["inputs"][0]["net"]["timeout_sec"], 10,
        "defaults filled"
    );
    assert!(body["data"]["created_at"].is_string());

    let (st, got) = call(&s, Method::GET, "/streams/demo", None).await;
    assert_eq!(st, 200);
    assert_eq!(got["data"], body["data"]);

    let (st, list) = call(&s, Method::GET, "/streams", None).await;
    assert_eq!(st, 200);
    assert_eq!(list["total"], 1);
    assert_eq!(list["data"][0]["code"], "demo");

    // The same document again is an update.
    let (st, again) = call(&s, Method::PUT, "/streams/demo", Some(demo())).await;
    assert_eq!(st, 200);
    assert_eq!(again["data"]["created_at"], body["data"]["created_at"]);

    let (st, _) = call(&s, Method::DELETE, "/streams/demo", None).await;
    assert_eq!(st, 204);
    let (st, err) = call(&s, Method::GET, "/streams/demo", None).await;
    assert_eq!(st, 404);
    assert_eq!(err["error"]["code"], "NOT_FOUND");
    let (st, _) = call(&s, Method::DELETE, "/streams/demo", None).await;
    assert_eq!(st, 404);
    s.stop().await;
}

#[tokio::test]
async fn update_is_a_json_merge_patch() {
    let dir = tmp();
    let s = start(config(dir.path(), "")).await;
    let full = json!({
        "name": "Morning Show",
        "description": "keep me",
        "tags": ["a", "b"],
        "inputs": [{"url": "rtmp://encoder.studio.local/live/mykey", "priority": 0}],
        "transcoder": {
            "video": {"profiles": [
                {"width": 1920, "height": 1080, "bitrate": 4000, "codec": "h264"},
                {"width": 1280, "height": 720, "bitrate": 2000, "codec": "h264"},
                {"width": 854, "height": 480, "bitrate": 800, "codec": "h264"}
            ]},
            "audio": {"codec": "aac", "bitrate": 128, "channels": 2},
            "global": {"hw_accel": "nvenc"}
        },
        "protocols": {"hls": true, "dash": true, "rtsp": true},
        "dvr": {"enabled": true, "segment_duration": 6}
    });
    assert_eq!(
        call(&s, Method::PUT, "/streams/channel-1", Some(full))
            .await
            .0,
        201
    );

    // The contract's partial-update example: arrays replace, objects merge.
    let (st, body) = call(
        &s,
        Method::PUT,
        "/streams/channel-1",
        Some(json!({"transcoder": {"video": {"profiles": [
            {"width": 1920, "height": 1080, "bitrate": 4000, "codec": "h264"},
            {"width": 854, "height": 480, "bitrate": 800, "codec": "h264"}
        ]}}})),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let d = &body["data"];
    assert_eq!(
        d["transcoder"]["video"]["profiles"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(d["transcoder"]["video"]["profiles"][1]["height"], 480);
    assert_eq!(
        d["transcoder"]["audio"]["channels"], 2,
        "sibling objects untouched"
    );
    assert_eq!(d["transcoder"]["global"]["hw_accel"], "nvenc");
    assert_eq!(d["description"], "keep me");
    assert_eq!(d["dvr"]["segment_duration"], 6);

    // null removes; the path code wins over the body.
    let (st, body) = call(
        &s,
        Method::PUT,
        "/streams/channel-1",
        Some(json!({"code": "other", "dvr": null, "description": null, "protocols": {"dash": false}})),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let d = &body["data"];
    assert_eq!(d["code"], "channel-1");
    assert!(d.get("dvr").is_none(), "{d}");
    assert_eq!(d["description"], "");
    assert_eq!(
        d["protocols"],
        json!({"hls": true, "dash": false, "rtsp": true, "rtmp": false, "srt": false})
    );
    assert_eq!(call(&s, Method::GET, "/streams/other", None).await.0, 404);

    // Read-only fields are ignored.
    let (_, before) = call(&s, Method::GET, "/streams/channel-1", None).await;
    let (st, body) = call(
        &s,
        Method::PUT,
        "/streams/channel-1",
        Some(json!({"created_at": "2000-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(body["data"]["created_at"], before["data"]["created_at"]);
    s.stop().await;
}

#[tokio::test]
async fn validation_errors_report_every_problem_with_its_path() {
    let dir = tmp();
    let s = start(config(dir.path(), "")).await;
    let (st, body) = call(
        &s,
        Method::PUT,
        "/streams/bad",
        Some(json!({
            "inputs": [
                {"url": "rtmp://a/live/k", "priority": 0},
                {"url": "ftp://x/y", "priority": 0}
            ],
            "push": [{"url": "http://x"}],
            "dvr": {"segment_duration": 0}
        })),
    )
    .await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["error"]["code"], "VALIDATION_FAILED");
    let details = body["error"]["details"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let pairs: Vec<(String, String)> = details
        .iter()
        .map(|d| {
            (
                d["path"].as_str().unwrap_or("").into(),
                d["message"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    for (path, msg) in [
        ("inputs[1].url", "unsupported scheme \"ftp\""),
        (
            "inputs[1].priority",
            "priority 0 is already used by inputs[0]",
        ),
        (
            "push[0].url",
            "unsupported scheme \"http\": push destinations must be rtmp:// or rtmps://",
        ),
        ("dvr.segment_duration", "must be between 1 and 60, got 0"),
    ] {
        assert!(
            pairs.contains(&(path.into(), msg.into())),
            "missing {path}: {msg} in {pairs:?}"
        );
    }
    assert_eq!(pairs.len(), 4);
    assert_eq!(
        call(&s, Method::GET, "/streams/bad", None).await.0,
        404,
        "nothing stored"
    );

    // Type and enum errors carry the path too.
    let (st, body) = call(
        &s,
        Method::PUT,
        "/streams/bad",
        Some(json!({"transcoder": {"global": {"hw_accel": "cuda"}}})),
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(
        body["error"]["details"][0]["path"],
        "transcoder.global.hw_accel"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("unknown variant `cuda`")
    );

    let (st, body) = call(
        &s,
        Method::PUT,
        "/streams/bad",
        Some(json!({"inputs": "nope"})),
    )
    .await;
    assert_eq!(
        (st, body["error"]["details"][0]["path"].clone()),
        (400, json!("inputs"))
    );

    let (st, body) = call(
        &s,
        Method::PUT,
        "/streams/bad",
        Some(json!({"protocols": {"hsl": true}})),
    )
    .await;
    assert_eq!(st, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("unknown field `hsl`")
    );

    // Bad code in the path.
    let (st, body) = call(&s, Method::PUT, "/streams/a$b", Some(json!({}))).await;
    assert_eq!(
        (st, body["error"]["code"].clone()),
        (400, json!("INVALID_CODE"))
    );
    let long = "x".repeat(129);
    assert_eq!(
        call(&s, Method::GET, &format!("/streams/{long}"), None)
            .await
            .0,
        400
    );

    // Not an object / not JSON.
    let (st, body) = call(&s, Method::PUT, "/streams/ok", Some(json!([1, 2]))).await;
    assert_eq!(
        (st, body["error"]["code"].clone()),
        (400, json!("INVALID_BODY"))
    );
    let resp = s
        .client
        .put(s.url("/streams/ok"))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap_or_default();
    assert_eq!(body["error"]["code"], "INVALID_JSON");
    s.stop().await;
}

#[tokio::test]
async fn content_type_size_and_method_errors() {
    let dir = tmp();
    let s = start(config(dir.path(), "")).await;
    let send = |ctype: Option<&'static str>, body: Vec<u8>| {
        let mut req = s.client.put(s.url("/streams/x")).body(body);
        if let Some(c) = ctype {
            req = req.header("content-type", c);
        }
        req.send()
    };
    let r = send(Some("text/plain"), b"{}".to_vec())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 415);
    let body: Value = r.json().await.unwrap_or_default();
    assert_eq!(body["error"]["code"], "UNSUPPORTED_MEDIA_TYPE");
    let r = send(None, b"{}".to_vec())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 415);
    let r = send(Some("application/merge-patch+json"), b"{}".to_vec())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 201);

    let mut big = b"{\"description\": \"".to_vec();
    big.extend(std::iter::repeat_n(b'a', 1 << 20));
    big.extend(b"\"}");
    let r = send(Some("application/json"), big)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 413);
    let body: Value = r.json().await.unwrap_or_default();
    assert_eq!(body["error"]["code"], "PAYLOAD_TOO_LARGE");

    let (st, body) = call(&s, Method::PATCH, "/streams/x", None).await;
    assert_eq!(
        (st, body["error"]["code"].clone()),
        (405, json!("METHOD_NOT_ALLOWED"))
    );
    let (st, body) = call(&s, Method::GET, "/no/such/route", None).await;
    assert_eq!(
        (st, body["error"]["code"].clone()),
        (404, json!("NOT_FOUND"))
    );
    s.stop().await;
}

#[tokio::test]
async fn start_stop_status_and_disabled() {
    let dir = tmp();
    let s = start(config(dir.path(), "")).await;
    assert_eq!(
        call(&s, Method::POST, "/streams/nope/start", None).await.0,
        404
    );
    assert_eq!(
        call(&s, Method::GET, "/streams/nope/status", None).await.0,
        404
    );
    call(&s, Method::PUT, "/streams/demo", Some(demo())).await;

    let (st, body) = call(&s, Method::GET, "/streams/demo/status", None).await;
    assert_eq!(st, 200);
    assert_eq!(body["data"]["desired"], "stopped");
    assert_eq!(body["data"]["status"], "stopped");
    assert_eq!(body["data"]["inputs"][0]["protocol"], "rtmp");
    assert_eq!(body["data"]["inputs"][0]["mode"], "push");

    let (st, body) = call(&s, Method::POST, "/streams/demo/start", None).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["desired"], "running");
    assert_eq!(body["data"]["status"], "idle");
    assert!(body["data"]["started_at"].is_string());

    // disabled:true stops it and refuses start with 409.
    let (st, _) = call(
        &s,
        Method::PUT,
        "/streams/demo",
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(st, 200);
    let (_, body) = call(&s, Method::GET, "/streams/demo/status", None).await;
    assert_eq!(
        (
            body["data"]["desired"].clone(),
            body["data"]["status"].clone()
        ),
        (json!("stopped"), json!("stopped"))
    );
    let (st, body) = call(&s, Method::POST, "/streams/demo/start", None).await;
    assert_eq!(
        (st, body["error"]["code"].clone()),
        (409, json!("STREAM_DISABLED"))
    );

    call(
        &s,
        Method::PUT,
        "/streams/demo",
        Some(json!({"disabled": false})),
    )
    .await;
    assert_eq!(
        call(&s, Method::POST, "/streams/demo/start", None).await.0,
        200
    );
    let (st, body) = call(&s, Method::POST, "/streams/demo/stop", None).await;
    assert_eq!(
        (st, body["data"]["status"].clone()),
        (200, json!("stopped"))
    );

    call(&s, Method::PUT, "/streams/empty", Some(json!({}))).await;
    let (st, body) = call(&s, Method::POST, "/streams/empty/start", None).await;
    assert_eq!(
        (st, body["error"]["code"].clone()),
        (409, json!("NO_INPUTS"))
    );
    s.stop().await;
}

#[tokio::test]
async fn token_protects_api_but_not_health_or_swagger() {
    let dir = tmp();
    let s = start(config(dir.path(), "s3cret")).await;
    let (st, body) = call(&s, Method::GET, "/streams", None).await;
    assert_eq!(
        (st, body["error"]["code"].clone()),
        (401, json!("UNAUTHORIZED"))
    );
    let r = s
        .client
        .get(s.url("/streams"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let r = s
        .client
        .get(s.url("/streams"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 200);
    let r = s
        .client
        .put(s.url("/streams/x"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 401, "writes need the token too");
    for open in ["/healthz", "/readyz", "/swagger/", "/swagger/openapi.json"] {
        assert_eq!(call(&s, Method::GET, open, None).await.0, 200, "{open}");
    }
    s.stop().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let dir = tmp();
    let s = start(config(dir.path(), "")).await;
    assert_eq!(
        call(&s, Method::GET, "/healthz", None).await,
        (200, json!({"status": "ok"}))
    );
    let (st, body) = call(&s, Method::GET, "/readyz", None).await;
    assert_eq!(st, 200);
    assert_eq!(
        body,
        json!({"status": "ready", "checks": {"http": true, "rtmp": true, "rtsp": true, "srt": true, "store": true}})
    );
    // The store directory disappears: not ready.
    std::fs::remove_dir_all(dir.path().join("streams")).unwrap_or_else(|e| panic!("{e}"));
    let (st, body) = call(&s, Method::GET, "/readyz", None).await;
    assert_eq!((st, body["checks"]["store"].clone()), (503, json!(false)));
    s.stop().await;
}

#[tokio::test]
async fn state_persists_across_restart() {
    let dir = tmp();
    let s = start(config(dir.path(), "")).await;
    call(&s, Method::PUT, "/streams/demo", Some(demo())).await;
    call(&s, Method::PUT, "/streams/idle", Some(demo())).await;
    assert_eq!(
        call(&s, Method::POST, "/streams/demo/start", None).await.0,
        200
    );
    s.stop().await;

    let s = start(config(dir.path(), "")).await;
    let (_, list) = call(&s, Method::GET, "/streams", None).await;
    assert_eq!(list["total"], 2);
    let (_, body) = call(&s, Method::GET, "/streams/demo/status", None).await;
    assert_eq!(body["data"]["desired"], "running");
    assert_eq!(
        body["data"]["status"], "idle",
        "a started stream is started again"
    );
    let (_, body) = call(&s, Method::GET, "/streams/idle/status", None).await;
    assert_eq!(body["data"]["status"], "stopped");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_puts_leave_a_valid_store() {
    let dir = tmp();
    let s = Arc::new(start(config(dir.path(), "")).await);
    call(
        &s,
        Method::PUT,
        "/streams/shared",
        Some(json!({"name": "shared"})),
    )
    .await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            // Half create their own stream, half patch the shared one.
            if i % 2 == 0 {
                let (st, body) = call(
                    &s,
                    Method::PUT,
                    &format!("/streams/s{i}"),
                    Some(json!({"name": format!("n{i}"), "tags": [format!("t{i}")]})),
                )
                .await;
                assert_eq!(st, 201, "{body}");
            } else {
                let (st, body) = call(
                    &s,
                    Method::PUT,
                    "/streams/shared",
                    Some(json!({"description": format!("d{i}")})),
                )
                .await;
                assert_eq!(st, 200, "{body}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap_or_else(|e| panic!("{e}"));
    }
    let (_, list) = call(&s, Method::GET, "/streams", None).await;
    assert_eq!(list["total"], 26);
    if let Ok(s) = Arc::try_unwrap(s) {
        s.stop().await;
    }
    // Every file on disk parses and matches what the API acknowledged.
    let mut files = 0;
    for entry in std::fs::read_dir(dir.path().join("streams")).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let code = v["stream"]["code"].as_str().unwrap_or_default().to_string();
        if code != "shared" {
            let n: usize = code.trim_start_matches('s').parse().unwrap_or(usize::MAX);
            assert_eq!(v["stream"]["name"], format!("n{n}"));
        }
        files += 1;
    }
    assert_eq!(files, 26);
}

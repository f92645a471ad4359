//! `api/openapi.json` must be exactly what the code generates.
//! Regenerate with `make openapi` (sets `UPDATE_OPENAPI=1`).
//!
//! The document is written with object keys sorted: whether serde_json keeps
//! insertion order depends on features other workspace crates enable, and the
//! file must not change with the set of crates being built.

use std::path::PathBuf;

use serde_json::{Map, Value};

/// The same value with every object's keys in sorted order.
fn canonical(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out = Map::new();
            for (k, v) in entries {
                out.insert(k, canonical(v));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

fn generated() -> String {
    let doc = serde_json::to_value(os_api::openapi())
        .unwrap_or_else(|e| panic!("serialising the OpenAPI document: {e}"));
    let mut text = serde_json::to_string_pretty(&canonical(doc))
        .unwrap_or_else(|e| panic!("serialising the OpenAPI document: {e}"));
    text.push('\n');
    text
}

#[test]
fn openapi_json_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../api/openapi.json");
    let generated = generated();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with the code; run `make openapi` and commit the result",
        path.display()
    );
}

#[test]
fn canonical_form_sorts_keys_at_every_level() {
    let v: Value = serde_json::from_str(r#"{"b":1,"a":{"d":[{"z":1,"y":2}],"c":3}}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        serde_json::to_string(&canonical(v)).unwrap_or_default(),
        r#"{"a":{"c":3,"d":[{"y":2,"z":1}]},"b":1}"#
    );
}

#[test]
fn every_route_and_schema_is_documented() {
    let doc = os_api::openapi();
    let paths: Vec<&String> = doc.paths.paths.keys().collect();
    for p in [
        "/streams",
        "/streams/{code}",
        "/streams/{code}/start",
        "/streams/{code}/stop",
        "/streams/{code}/status",
        "/healthz",
        "/readyz",
        "/hooks",
        "/hooks/{hid}",
        "/hooks/{hid}/test",
    ] {
        assert!(paths.iter().any(|x| *x == p), "{p} missing from {paths:?}");
    }
    let schemas = doc.components.map(|c| c.schemas).unwrap_or_default();
    for s in [
        "Stream",
        "Input",
        "InputNet",
        "TranscoderConfig",
        "VideoProfile",
        "PushDestination",
        "DvrConfig",
        "ErrorResponse",
        "StreamStatus",
        "Hook",
    ] {
        assert!(schemas.contains_key(s), "schema {s} missing");
    }
}

//! `api/openapi.json` must be exactly what the code generates.
//! Regenerate with `make openapi` (sets `UPDATE_OPENAPI=1`).

use std::path::PathBuf;

#[test]
fn openapi_json_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../api/openapi.json");
    let doc = os_api::openapi();
    let mut generated = doc
        .to_pretty_json()
        .unwrap_or_else(|e| panic!("serialising the OpenAPI document: {e}"));
    generated.push('\n');
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
    ] {
        assert!(schemas.contains_key(s), "schema {s} missing");
    }
}

//! Configuration precedence (defaults < YAML < environment) and error reporting.

use std::path::PathBuf;

use os_config::{Config, ConfigError, LoadOptions, load};

fn opts(file: Option<PathBuf>, env: &[(&str, &str)]) -> LoadOptions {
    LoadOptions {
        file,
        search_dirs: Vec::new(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn yaml(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("config.yaml");
    if let Err(e) = std::fs::write(&path, text) {
        panic!("write {}: {e}", path.display());
    }
    path
}

fn load_ok(o: &LoadOptions) -> Config {
    match load(o) {
        Ok(l) => l.config,
        Err(e) => panic!("load failed: {e}"),
    }
}

fn load_err(o: &LoadOptions) -> String {
    match load(o) {
        Ok(l) => panic!("expected an error, got {:?}", l.config),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_match_the_contract() {
    let c = load_ok(&opts(None, &[]));
    assert_eq!(c, Config::default());
    assert_eq!(c.server.http_addr, ":8080");
    assert_eq!(c.listeners.rtmp.port, 1935);
    assert_eq!(c.listeners.rtsp.port, 8554);
    assert_eq!(c.listeners.srt.port, 9999);
    assert_eq!(c.metrics.addr, ":9091");
    assert_eq!(c.metrics.path, "/metrics");
    assert_eq!(c.storage.driver, "json");
    assert_eq!(c.storage.json_dir, "./data");
}

#[test]
fn yaml_overrides_defaults_and_env_overrides_yaml() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = yaml(
        &dir,
        "server:\n  http_addr: \"127.0.0.1:9000\"\nbuffer:\n  capacity: 50\nlog:\n  level: debug\nhooks:\n  kafka_brokers: [\"a:9092\"]\n",
    );
    let c = load_ok(&opts(Some(file.clone()), &[]));
    assert_eq!(c.server.http_addr, "127.0.0.1:9000");
    assert_eq!(c.buffer.capacity, 50);
    assert_eq!(c.log.level, "debug");
    assert_eq!(c.log.format, "text", "untouched keys keep their default");
    assert_eq!(c.hooks.kafka_brokers, vec!["a:9092"]);

    let c = load_ok(&opts(
        Some(file),
        &[
            ("OPEN_STREAMER_BUFFER_CAPACITY", "77"),
            ("OPEN_STREAMER_SERVER_HTTP_ADDR", ":9100"),
            ("OPEN_STREAMER_HOOKS_KAFKA_BROKERS", "k1:9092, k2:9092"),
            ("OPEN_STREAMER_LISTENERS_RTMP_ENABLED", "false"),
            ("OPEN_STREAMER_MANAGER_INPUT_PACKET_TIMEOUT_SEC", "0.5"),
            ("OPEN_STREAMER_PUBLISHER_HLS_BASE_URL", "http://cdn.example"),
            ("UNRELATED", "x"),
        ],
    ));
    assert_eq!(c.buffer.capacity, 77);
    assert_eq!(c.server.http_addr, ":9100");
    assert_eq!(c.hooks.kafka_brokers, vec!["k1:9092", "k2:9092"]);
    assert!(!c.listeners.rtmp.enabled);
    assert_eq!(c.manager.input_packet_timeout_sec, 0.5);
    assert_eq!(c.publisher.hls.base_url, "http://cdn.example");
    assert_eq!(
        c.log.level, "debug",
        "yaml value survives when env is silent"
    );
}

#[test]
fn search_dirs_are_used_in_order() {
    let a = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let b = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    yaml(&b, "buffer:\n  capacity: 9\n");
    let o = LoadOptions {
        file: None,
        search_dirs: vec![a.path().to_path_buf(), b.path().to_path_buf()],
        env: Vec::new(),
    };
    let loaded = load(&o).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.config.buffer.capacity, 9);
    yaml(&a, "buffer:\n  capacity: 8\n");
    assert_eq!(load_ok(&o).buffer.capacity, 8);
}

#[test]
fn unknown_env_var_is_a_warning_not_an_error() {
    let o = opts(None, &[("OPEN_STREAMER_NOPE", "1")]);
    let loaded = load(&o).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].contains("OPEN_STREAMER_NOPE"));
}

#[test]
fn errors_name_the_key_and_reason() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    /// (YAML text, environment, expected message fragment)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            "buffer:\n  capacity: 0\n",
            &[],
            "buffer.capacity: must be between 1 and 1000000",
        ),
        (
            "server:\n  htp_addr: \":1\"\n",
            &[],
            "server.htp_addr: unknown key",
        ),
        ("bogus: 1\n", &[], "bogus: unknown key"),
        (
            "publisher:\n  hls:\n    dir: ./media\n  dash:\n    dir: ./media/\n",
            &[],
            "publisher.dash.dir: must differ from publisher.hls.dir",
        ),
        (
            "log:\n  level: loud\n",
            &[],
            "log.level: must be debug, info, warn or error",
        ),
        (
            "",
            &[("OPEN_STREAMER_SERVER_HTTP_ADDR", "nonsense")],
            "server.http_addr: \"nonsense\" is not host:port",
        ),
        (
            "",
            &[("OPEN_STREAMER_BUFFER_CAPACITY", "lots")],
            "buffer.capacity",
        ),
        (
            "",
            &[("OPEN_STREAMER_BUFFER_MAX_BYTES", "1000")],
            "buffer.max_bytes: must be between 65536 and 1099511627776",
        ),
        (
            "",
            &[("OPEN_STREAMER_LISTENERS_RTMP_PORT", "70000")],
            "listeners.rtmp.port",
        ),
        (
            "",
            &[("OPEN_STREAMER_STORAGE_DRIVER", "sql")],
            "storage.sql_dsn: must be set when storage.driver is sql",
        ),
        (
            "",
            &[
                ("OPEN_STREAMER_STORAGE_DRIVER", "sql"),
                ("OPEN_STREAMER_STORAGE_SQL_DSN", "sqlite://u:hunter2@x/db"),
            ],
            "storage.sql_dsn: must start with postgres:// or mysql://",
        ),
        (
            "",
            &[("OPEN_STREAMER_STORAGE_DRIVER", "mongo")],
            "storage.mongo_uri: must be set when storage.driver is mongo",
        ),
        (
            "",
            &[
                ("OPEN_STREAMER_STORAGE_DRIVER", "mongo"),
                (
                    "OPEN_STREAMER_STORAGE_MONGO_URI",
                    "mongodb+srv://cluster.example",
                ),
            ],
            "storage.mongo_uri: must start with mongodb://",
        ),
        (
            "",
            &[("OPEN_STREAMER_STORAGE_DRIVER", "redis")],
            "storage.driver: unknown driver \"redis\"",
        ),
    ];
    for (text, env, want) in cases {
        let file = yaml(&dir, text);
        let got = load_err(&opts(Some(file), env));
        assert!(
            got.contains(want),
            "for {text:?} {env:?}: got {got:?}, want {want:?}"
        );
    }
    let missing = load_err(&opts(Some(dir.path().join("absent.yaml")), &[]));
    assert!(missing.contains("absent.yaml: not found"), "{missing}");
    let broken = yaml(&dir, "server: [unclosed\n");
    assert!(matches!(
        load(&opts(Some(broken), &[])),
        Err(ConfigError::File { .. })
    ));
}

#[test]
fn shipped_config_file_is_valid_and_documents_every_key() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/config.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let c = load_ok(&opts(Some(path), &[]));
    assert_eq!(
        c,
        Config::default(),
        "config/config.yaml must spell out the defaults"
    );
    for (key, _) in os_config::known_keys() {
        let leaf = key.rsplit('.').next().unwrap_or(&key);
        assert!(
            text.contains(&format!("{leaf}:")),
            "config/config.yaml lacks {key}"
        );
    }
}

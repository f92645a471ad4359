use std::path::{Path, PathBuf};

use config::{File, FileFormat};
use serde_json::Value;

use crate::Config;

/// Prefix of every environment variable the server reads.
pub const ENV_PREFIX: &str = "OPEN_STREAMER_";

/// Why the configuration cannot be used. Every variant names the culprit.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
    #[error("environment variable {name}: {reason}")]
    Env { name: String, reason: String },
}

/// Where to look for configuration.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// `--config PATH`: must exist when given.
    pub file: Option<PathBuf>,
    /// Searched in order for `config.yaml` when `file` is `None`.
    pub search_dirs: Vec<PathBuf>,
    /// Environment to read (normally `std::env::vars()`).
    pub env: Vec<(String, String)>,
}

impl LoadOptions {
    /// The standard locations and the process environment.
    pub fn standard(file: Option<PathBuf>) -> Self {
        Self {
            file,
            search_dirs: vec![PathBuf::from("."), PathBuf::from("/etc/open-streamer")],
            env: std::env::vars().collect(),
        }
    }
}

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The YAML file that was read, if any.
    pub file: Option<PathBuf>,
    /// Non-fatal findings worth logging (e.g. an unknown `OPEN_STREAMER_*` variable).
    pub warnings: Vec<String>,
}

/// The environment variable name of a dotted key.
pub fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Every leaf key of the configuration (`server.http_addr`, ...), with
/// whether its value is a list.
pub fn known_keys() -> Vec<(String, bool)> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, bool)>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            Value::Array(_) => out.push((prefix.to_string(), true)),
            _ => out.push((prefix.to_string(), false)),
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::to_value(Config::default()) {
        walk("", &v, &mut out);
    }
    out
}

/// Load defaults, then the YAML file, then the environment; validate.
pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    let defaults =
        config::Config::try_from(&Config::default()).map_err(|e| ConfigError::Invalid {
            key: String::new(),
            reason: format!("built-in defaults: {e}"),
        })?;
    let mut builder = config::Config::builder().add_source(defaults);

    let file = match &opts.file {
        Some(path) => {
            if !path.is_file() {
                return Err(ConfigError::File {
                    path: path.display().to_string(),
                    reason: "not found".into(),
                });
            }
            Some(path.clone())
        }
        None => opts
            .search_dirs
            .iter()
            .map(|d| d.join("config.yaml"))
            .find(|p| p.is_file()),
    };
    if let Some(path) = &file {
        check_yaml_file(path)?;
        builder = builder.add_source(File::from(path.as_path()).format(FileFormat::Yaml));
    }

    let mut warnings = Vec::new();
    let keys = known_keys();
    for (name, value) in &opts.env {
        if !name.starts_with(ENV_PREFIX) {
            continue;
        }
        let Some((key, is_list)) = keys.iter().find(|(k, _)| env_name(k) == *name) else {
            warnings.push(format!(
                "environment variable {name} does not match any config key; ignored"
            ));
            continue;
        };
        let result = if *is_list {
            let items: Vec<String> = value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            builder.set_override(key.as_str(), items)
        } else {
            builder.set_override(key.as_str(), value.as_str())
        };
        builder = result.map_err(|e| ConfigError::Env {
            name: name.clone(),
            reason: e.to_string(),
        })?;
    }

    let built = builder.build().map_err(|e| from_config_error(&file, e))?;
    let config: Config = built
        .try_deserialize()
        .map_err(|e| from_config_error(&file, e))?;
    config.validate()?;
    Ok(Loaded {
        config,
        file,
        warnings,
    })
}

/// Reject unknown keys with their full dotted path, before the `config`
/// crate (whose messages lose the path) sees the file.
fn check_yaml_file(path: &Path) -> Result<(), ConfigError> {
    let file_err = |reason: String| ConfigError::File {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
    let parsed = config::Config::builder()
        .add_source(File::from_str(&text, FileFormat::Yaml))
        .build()
        .map_err(|e| file_err(e.to_string()))?;
    let tree: Value = parsed
        .try_deserialize()
        .map_err(|e| file_err(e.to_string()))?;
    let known = known_keys();
    let mut unknown = Vec::new();
    fn walk(prefix: &str, v: &Value, known: &[(String, bool)], unknown: &mut Vec<String>) {
        if let Value::Object(map) = v {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let leaf = known.iter().any(|(kk, _)| *kk == key);
                let branch = known
                    .iter()
                    .any(|(kk, _)| kk.starts_with(&format!("{key}.")));
                if leaf {
                    continue;
                }
                if branch {
                    walk(&key, v, known, unknown);
                } else {
                    unknown.push(key);
                }
            }
        }
    }
    walk("", &tree, &known, &mut unknown);
    if let Some(key) = unknown.first() {
        return Err(ConfigError::Invalid {
            key: key.clone(),
            reason: format!("unknown key in {}", path.display()),
        });
    }
    Ok(())
}

fn from_config_error(file: &Option<PathBuf>, e: config::ConfigError) -> ConfigError {
    // The config crate formats type errors as `invalid type: ... for key `a.b``.
    let text = e.to_string();
    let key = text
        .rsplit_once("for key `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(k, _)| k.to_string());
    match key {
        Some(key) => ConfigError::Invalid {
            reason: text.split(" for key `").next().unwrap_or(&text).to_string(),
            key,
        },
        None => ConfigError::File {
            path: file
                .as_ref()
                .map_or_else(|| "(environment)".into(), |p| p.display().to_string()),
            reason: text,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_key_has_a_distinct_env_name() {
        let keys = known_keys();
        assert!(keys.len() > 30, "{keys:?}");
        let names: HashSet<String> = keys.iter().map(|(k, _)| env_name(k)).collect();
        assert_eq!(names.len(), keys.len());
        for contract in [
            "OPEN_STREAMER_SERVER_HTTP_ADDR",
            "OPEN_STREAMER_STORAGE_DRIVER",
            "OPEN_STREAMER_STORAGE_JSON_DIR",
            "OPEN_STREAMER_STORAGE_SQL_DSN",
            "OPEN_STREAMER_STORAGE_MONGO_URI",
            "OPEN_STREAMER_STORAGE_MONGO_DATABASE",
            "OPEN_STREAMER_BUFFER_CAPACITY",
            "OPEN_STREAMER_TRANSCODER_MAX_WORKERS",
            "OPEN_STREAMER_TRANSCODER_FFMPEG_PATH",
            "OPEN_STREAMER_TRANSCODER_MAX_RESTARTS",
            "OPEN_STREAMER_PUBLISHER_HLS_DIR",
            "OPEN_STREAMER_PUBLISHER_HLS_BASE_URL",
            "OPEN_STREAMER_PUBLISHER_DASH_DIR",
            "OPEN_STREAMER_LISTENERS_RTMP_ENABLED",
            "OPEN_STREAMER_LISTENERS_RTMP_LISTEN_HOST",
            "OPEN_STREAMER_LISTENERS_RTMP_PORT",
            "OPEN_STREAMER_LISTENERS_RTSP_ENABLED",
            "OPEN_STREAMER_LISTENERS_RTSP_LISTEN_HOST",
            "OPEN_STREAMER_LISTENERS_RTSP_PORT",
            "OPEN_STREAMER_LISTENERS_RTSP_TRANSPORT",
            "OPEN_STREAMER_LISTENERS_SRT_ENABLED",
            "OPEN_STREAMER_LISTENERS_SRT_LISTEN_HOST",
            "OPEN_STREAMER_LISTENERS_SRT_PORT",
            "OPEN_STREAMER_LISTENERS_SRT_LATENCY_MS",
            "OPEN_STREAMER_MANAGER_INPUT_PACKET_TIMEOUT_SEC",
            "OPEN_STREAMER_HOOKS_WORKER_COUNT",
            "OPEN_STREAMER_HOOKS_KAFKA_BROKERS",
            "OPEN_STREAMER_METRICS_ADDR",
            "OPEN_STREAMER_METRICS_PATH",
            "OPEN_STREAMER_LOG_LEVEL",
            "OPEN_STREAMER_LOG_FORMAT",
        ] {
            assert!(names.contains(contract), "{contract} is not a config key");
        }
    }
}

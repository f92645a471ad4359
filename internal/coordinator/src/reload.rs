//! Hot reload of a running stream: a typed difference between the old and
//! the new config, applied component by component in a fixed order, with a
//! report of what was restarted and what kept running.
//!
//! Every field of [`Stream`] (and of [`Protocols`]) is destructured without
//! `..`, so adding a field to the domain fails to compile here until it is
//! classified: which component it concerns, or that it concerns none.
//!
//! | change                               | applied to                       |
//! |--------------------------------------|----------------------------------|
//! | `disabled: true`                     | the whole stream stops           |
//! | `transcoder` absent ↔ present        | full rebuild (every component)   |
//! | `inputs` added / removed / changed   | the input manager only           |
//! | `transcoder.mode` / copy flags       | full rebuild                     |
//! | one ABR profile changed              | that transcoder process only     |
//! | audio / global transcoder settings   | every transcoder process         |
//! | ABR profile added / removed          | full rebuild (buffer layout)     |
//! | `protocols.<p>` toggled              | that publisher only              |
//! | `push[]` destination added / removed | that push task only              |
//! | `dvr` toggled / changed              | the recorder only                |
//! | name, description, tags              | nothing (kept)                   |

use os_domain::{Protocols, PushDestination, Stream, TranscoderConfig};
use serde::Serialize;
use utoipa::ToSchema;

/// What a reload did to a running stream (`"reload"` in the PUT response).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReloadReport {
    /// Components started, stopped or restarted by this change
    /// (e.g. `inputs`, `hls`, `push:rtmp://…`, `stream`).
    pub restarted: Vec<String>,
    /// Components that kept running untouched.
    pub kept: Vec<String>,
    /// Changes saved but not applied because their component is not part
    /// of this server yet (they apply at the next start once it is).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deferred: Vec<String>,
}

/// How the transcoder part changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranscoderChange {
    Unchanged,
    /// Absent ↔ present: the buffer layout changes, so everything restarts.
    Rebuild,
    /// Profiles by index (0-based, in profile order).
    Profiles {
        changed: Vec<usize>,
        added: Vec<usize>,
        removed: Vec<usize>,
        /// Audio or global settings changed: every process restarts.
        all: bool,
    },
}

/// The typed difference between two configs of one stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamDiff {
    /// `Some(true)` = the stream was disabled.
    pub disabled: Option<bool>,
    pub transcoder: TranscoderChange,
    pub inputs: bool,
    /// Protocols whose flag changed, with the new value.
    pub protocols: Vec<(&'static str, bool)>,
    /// Push destinations (by URL) to start and to stop.
    pub push_added: Vec<PushDestination>,
    pub push_removed: Vec<PushDestination>,
    pub dvr: bool,
}

impl StreamDiff {
    /// Classify every field of `new` against `old`.
    pub fn between(old: &Stream, new: &Stream) -> Self {
        // No `..`: a new field must be classified here.
        let Stream {
            code: _,
            name: _,
            description: _,
            tags: _,
            disabled,
            inputs,
            transcoder,
            protocols,
            push,
            dvr,
            created_at: _,
            updated_at: _,
        } = new;
        let Protocols {
            hls,
            dash,
            rtsp,
            rtmp,
            srt,
        } = *protocols;
        let o = &old.protocols;
        let protocols = [
            ("hls", o.hls, hls),
            ("dash", o.dash, dash),
            ("rtsp", o.rtsp, rtsp),
            ("rtmp", o.rtmp, rtmp),
            ("srt", o.srt, srt),
        ]
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(name, _, b)| (name, b))
        .collect();
        let enabled = |p: &[PushDestination]| -> Vec<PushDestination> {
            p.iter().filter(|d| d.enabled).cloned().collect()
        };
        let (old_push, new_push) = (enabled(&old.push), enabled(push));
        let push_added = new_push
            .iter()
            .filter(|d| !old_push.contains(d))
            .cloned()
            .collect();
        let push_removed = old_push
            .iter()
            .filter(|d| !new_push.contains(d))
            .cloned()
            .collect();
        Self {
            disabled: (old.disabled != *disabled).then_some(*disabled),
            transcoder: transcoder_change(old.transcoder.as_ref(), transcoder.as_ref()),
            inputs: old.inputs != *inputs,
            protocols,
            push_added,
            push_removed,
            dvr: old.dvr != *dvr,
        }
    }

    /// Nothing a running component cares about changed.
    pub fn is_empty(&self) -> bool {
        self.disabled.is_none()
            && self.transcoder == TranscoderChange::Unchanged
            && !self.inputs
            && self.protocols.is_empty()
            && self.push_added.is_empty()
            && self.push_removed.is_empty()
            && !self.dvr
    }

    /// The whole stream must stop and start again.
    pub fn needs_rebuild(&self) -> bool {
        self.transcoder == TranscoderChange::Rebuild
    }
}

fn transcoder_change(
    old: Option<&TranscoderConfig>,
    new: Option<&TranscoderConfig>,
) -> TranscoderChange {
    match (old, new) {
        (None, None) => TranscoderChange::Unchanged,
        (Some(_), None) | (None, Some(_)) => TranscoderChange::Rebuild,
        (Some(a), Some(b)) if a == b => TranscoderChange::Unchanged,
        (Some(a), Some(b)) => {
            let TranscoderConfig {
                mode,
                video,
                audio,
                global,
            } = b;
            // Another process topology or buffer layout: rebuild.
            if a.mode != *mode
                || a.needs_ffmpeg() != b.needs_ffmpeg()
                || a.video.copy != video.copy
                || a.renditions() != b.renditions()
            {
                return TranscoderChange::Rebuild;
            }
            let (pa, pb) = (&a.video.profiles, &video.profiles);
            let common = pa.len().min(pb.len());
            TranscoderChange::Profiles {
                changed: (0..common).filter(|i| pa[*i] != pb[*i]).collect(),
                added: (common..pb.len()).collect(),
                removed: (common..pa.len()).collect(),
                all: a.audio != *audio || a.global != *global || a.video.copy != video.copy,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use os_domain::{Input, VideoProfile};

    fn stream() -> Stream {
        serde_json::from_value(serde_json::json!({
            "code": "a",
            "inputs": [{"url": "udp://127.0.0.1:5000", "priority": 0}],
            "protocols": {"hls": true},
            "push": [{"url": "rtmp://127.0.0.1/live/x", "enabled": true}],
        }))
        .unwrap()
    }

    #[test]
    fn metadata_only_is_empty() {
        let a = stream();
        let mut b = a.clone();
        b.name = "new name".into();
        b.tags = vec!["x".into()];
        assert!(StreamDiff::between(&a, &b).is_empty());
    }

    #[test]
    fn each_field_lands_in_its_component() {
        let a = stream();
        let mut b = a.clone();
        b.inputs.push(Input {
            url: "udp://127.0.0.1:5001".into(),
            priority: 1,
            ..Input::default()
        });
        b.protocols.hls = false;
        b.protocols.rtmp = true;
        b.push.push(PushDestination {
            url: "rtmp://127.0.0.1/live/y".into(),
            ..a.push[0].clone()
        });
        b.push[0].enabled = false;
        let d = StreamDiff::between(&a, &b);
        assert!(d.inputs);
        assert_eq!(d.protocols, vec![("hls", false), ("rtmp", true)]);
        assert_eq!(d.push_added.len(), 1);
        assert_eq!(d.push_added[0].url, "rtmp://127.0.0.1/live/y");
        assert_eq!(d.push_removed.len(), 1);
        assert_eq!(d.push_removed[0].url, "rtmp://127.0.0.1/live/x");
        assert!(!d.dvr && d.disabled.is_none() && !d.needs_rebuild());
    }

    #[test]
    fn transcoder_changes() {
        let a = stream();
        let mut b = a.clone();
        b.transcoder = Some(TranscoderConfig::default());
        assert!(StreamDiff::between(&a, &b).needs_rebuild());
        let mut c = b.clone();
        let p = VideoProfile::default();
        c.transcoder.as_mut().unwrap().video.profiles = vec![p.clone(), p.clone()];
        let mut d = c.clone();
        d.transcoder.as_mut().unwrap().video.profiles[1].bitrate += 100;
        assert_eq!(
            StreamDiff::between(&c, &d).transcoder,
            TranscoderChange::Profiles {
                changed: vec![1],
                added: vec![],
                removed: vec![],
                all: false
            }
        );
        let mut e = d.clone();
        e.transcoder.as_mut().unwrap().audio.bitrate = 96;
        assert_eq!(
            StreamDiff::between(&d, &e).transcoder,
            TranscoderChange::Profiles {
                changed: vec![],
                added: vec![],
                removed: vec![],
                all: true
            }
        );
        // A rendition more or less changes the buffer layout.
        d.transcoder.as_mut().unwrap().video.profiles.pop();
        assert_eq!(
            StreamDiff::between(&c, &d).transcoder,
            TranscoderChange::Rebuild
        );
        let mut m = c.clone();
        m.transcoder.as_mut().unwrap().mode = os_domain::TranscodeMode::Multi;
        assert!(StreamDiff::between(&c, &m).needs_rebuild());
    }

    #[test]
    fn disabling_and_dvr() {
        let a = stream();
        let mut b = a.clone();
        b.disabled = true;
        b.dvr = Some(Default::default());
        let d = StreamDiff::between(&a, &b);
        assert_eq!(d.disabled, Some(true));
        assert!(d.dvr);
    }
}

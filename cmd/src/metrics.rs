//! The metrics exporter's view of the server: running streams from the
//! coordinator, buffers from the hub, delivery counters from the hooks.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::Utc;
use os_coordinator::{Coordinator, RunStatus};
use os_events::EventBus;
use os_hooks::Dispatcher;
use os_metrics::{HookKind, HookSample, HubSample, Snapshot, StreamSample};

pub(crate) struct Source {
    coordinator: Arc<Coordinator>,
    hooks: Arc<Dispatcher>,
    events: Arc<EventBus>,
}

impl Source {
    pub(crate) fn new(
        coordinator: Arc<Coordinator>,
        hooks: Arc<Dispatcher>,
        events: Arc<EventBus>,
    ) -> Self {
        Self {
            coordinator,
            hooks,
            events,
        }
    }
}

#[async_trait::async_trait]
impl os_metrics::Source for Source {
    async fn snapshot(&self) -> Snapshot {
        let buffers = self.coordinator.hub().stats();
        let now = Utc::now();
        let streams = self
            .coordinator
            .running_statuses()
            .await
            .into_iter()
            .map(|st| {
                let buffer = buffers.iter().find(|b| b.id == st.code);
                let active = st.inputs.iter().find(|i| i.active);
                StreamSample {
                    up: st.status == RunStatus::Active,
                    uptime_seconds: st
                        .started_at
                        .map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0),
                    active_input_priority: st.active_input,
                    input_bytes: st.inputs.iter().map(|i| i.bytes).sum(),
                    input_bytes_per_second: active.map_or(0.0, |i| i.bitrate_kbps * 1000.0 / 8.0),
                    input_reconnects: st.inputs.iter().map(|i| i.reconnects).sum(),
                    video_frames: buffer.map_or(0, |b| b.video_frames),
                    hub: buffer.map(|b| HubSample {
                        chunks_total: b.chunks,
                        capacity: b.capacity as u64,
                        depth: b.readers.iter().map(|r| r.behind).max().unwrap_or(0),
                        readers: b.readers.len() as u64,
                        dropped_total: b.dropped,
                        lags_total: b.lag_events,
                    }),
                    code: st.code,
                }
            })
            .collect();
        let s = self.hooks.stats();
        let k = &s.kafka;
        let hooks = vec![
            HookSample {
                kind: HookKind::Http,
                delivered: s.delivered.load(Ordering::Relaxed),
                failed: s.failed.load(Ordering::Relaxed),
                dropped: s.dropped.load(Ordering::Relaxed),
                buffered: 0,
            },
            HookSample {
                kind: HookKind::Kafka,
                delivered: k.delivered.load(Ordering::Relaxed),
                failed: k.failed.load(Ordering::Relaxed),
                dropped: k.dropped.load(Ordering::Relaxed)
                    + s.kafka_unavailable.load(Ordering::Relaxed),
                buffered: self.hooks.kafka_buffered(),
            },
        ];
        Snapshot {
            streams,
            hooks,
            events_published: self.events.published(),
            events_dropped: self.events.dropped(),
        }
    }
}

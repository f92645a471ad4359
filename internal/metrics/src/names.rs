//! Every series name, with its kind, unit and help text.

/// Counter or gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

// Per stream (label `stream`), set at scrape time from the running streams.
pub const STREAM_UP: &str = "open_streamer_stream_up";
pub const STREAM_UPTIME_SECONDS: &str = "open_streamer_stream_uptime_seconds";
pub const STREAM_ACTIVE_INPUT_PRIORITY: &str = "open_streamer_stream_active_input_priority";
pub const INPUT_BYTES_TOTAL: &str = "open_streamer_input_bytes_total";
pub const INPUT_RATE_BYTES: &str = "open_streamer_input_rate_bytes_per_second";
pub const INPUT_RECONNECTS_TOTAL: &str = "open_streamer_input_reconnects_total";
pub const VIDEO_FRAMES_TOTAL: &str = "open_streamer_video_frames_total";
pub const VIDEO_FPS: &str = "open_streamer_video_frames_per_second";
pub const HUB_CHUNKS_TOTAL: &str = "open_streamer_hub_chunks_total";
pub const HUB_BUFFER_CHUNKS: &str = "open_streamer_hub_buffer_chunks";
pub const HUB_BUFFER_CAPACITY_CHUNKS: &str = "open_streamer_hub_buffer_capacity_chunks";
pub const HUB_READER_DEPTH_CHUNKS: &str = "open_streamer_hub_reader_depth_chunks";
pub const HUB_READERS: &str = "open_streamer_hub_readers";
pub const HUB_DROPPED_CHUNKS_TOTAL: &str = "open_streamer_hub_dropped_chunks_total";
pub const HUB_READER_LAGS_TOTAL: &str = "open_streamer_hub_reader_lags_total";

// Per stream, counted from bus events.
pub const INPUT_FAILOVERS_TOTAL: &str = "open_streamer_input_failovers_total";
pub const INPUT_DEGRADED_TOTAL: &str = "open_streamer_input_degraded_total";
pub const TRANSCODER_ERRORS_TOTAL: &str = "open_streamer_transcoder_errors_total";

// Per stream, emitted by components through the helpers.
pub const SEGMENTS_WRITTEN_TOTAL: &str = "open_streamer_segments_written_total";
pub const TRANSCODER_RESTARTS_TOTAL: &str = "open_streamer_transcoder_restarts_total";
pub const DVR_SEGMENTS_TOTAL: &str = "open_streamer_dvr_segments_total";
pub const DVR_BYTES_TOTAL: &str = "open_streamer_dvr_bytes_total";
pub const VIEWERS: &str = "open_streamer_viewers";
pub const PUSH_DESTINATIONS: &str = "open_streamer_push_destinations";

// Server-wide.
pub const STREAMS_RUNNING: &str = "open_streamer_streams_running";
pub const HOOK_DELIVERIES_TOTAL: &str = "open_streamer_hook_deliveries_total";
pub const HOOK_FAILURES_TOTAL: &str = "open_streamer_hook_failures_total";
pub const HOOK_DROPPED_TOTAL: &str = "open_streamer_hook_dropped_total";
pub const HOOK_BUFFERED: &str = "open_streamer_hook_buffered_events";
pub const EVENTS_PUBLISHED_TOTAL: &str = "open_streamer_events_published_total";
pub const EVENTS_DROPPED_TOTAL: &str = "open_streamer_events_dropped_total";
pub const PROCESS_CPU_SECONDS_TOTAL: &str = "open_streamer_process_cpu_seconds_total";
pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "open_streamer_process_resident_memory_bytes";
pub const PROCESS_OPEN_FDS: &str = "open_streamer_process_open_fds";
pub const PROCESS_THREADS: &str = "open_streamer_process_threads";

/// (name, kind, unit for the `metrics` facade, help).
pub const ALL: &[(&str, Kind, Option<&str>, &str)] = &[
    (
        STREAM_UP,
        Kind::Gauge,
        None,
        "1 while the stream's active input delivers media, 0 while it is idle or degraded",
    ),
    (
        STREAM_UPTIME_SECONDS,
        Kind::Gauge,
        Some("seconds"),
        "Seconds since the stream was started",
    ),
    (
        STREAM_ACTIVE_INPUT_PRIORITY,
        Kind::Gauge,
        None,
        "Priority of the input feeding the stream (-1: none)",
    ),
    (
        INPUT_BYTES_TOTAL,
        Kind::Counter,
        Some("bytes"),
        "MPEG-TS bytes received from the stream's inputs",
    ),
    (
        INPUT_RATE_BYTES,
        Kind::Gauge,
        None,
        "Receive rate of the active input, bytes per second (bitrate / 8)",
    ),
    (
        INPUT_RECONNECTS_TOTAL,
        Kind::Counter,
        Some("count"),
        "Reconnects of the stream's inputs",
    ),
    (
        VIDEO_FRAMES_TOTAL,
        Kind::Counter,
        Some("count"),
        "Video frames (PES) written to the stream's buffer",
    ),
    (
        VIDEO_FPS,
        Kind::Gauge,
        None,
        "Video frames per second written to the stream's buffer, over the last scrape interval",
    ),
    (
        HUB_CHUNKS_TOTAL,
        Kind::Counter,
        Some("count"),
        "Chunks written to the stream's hub buffer",
    ),
    (
        HUB_BUFFER_CHUNKS,
        Kind::Gauge,
        Some("count"),
        "Chunks held in the stream's hub ring",
    ),
    (
        HUB_BUFFER_CAPACITY_CHUNKS,
        Kind::Gauge,
        Some("count"),
        "Capacity of the stream's hub ring",
    ),
    (
        HUB_READER_DEPTH_CHUNKS,
        Kind::Gauge,
        Some("count"),
        "Chunks the slowest reader of the stream's buffer is behind the writer",
    ),
    (
        HUB_READERS,
        Kind::Gauge,
        Some("count"),
        "Readers of the stream's hub buffer",
    ),
    (
        HUB_DROPPED_CHUNKS_TOTAL,
        Kind::Counter,
        Some("count"),
        "Chunks lost by readers of the stream's buffer that fell behind",
    ),
    (
        HUB_READER_LAGS_TOTAL,
        Kind::Counter,
        Some("count"),
        "Times a reader of the stream's buffer fell behind",
    ),
    (
        INPUT_FAILOVERS_TOTAL,
        Kind::Counter,
        Some("count"),
        "Switches of the stream to another input (input.failover events)",
    ),
    (
        INPUT_DEGRADED_TOTAL,
        Kind::Counter,
        Some("count"),
        "input.degraded events of the stream",
    ),
    (
        TRANSCODER_ERRORS_TOTAL,
        Kind::Counter,
        Some("count"),
        "transcoder.error events of the stream",
    ),
    (
        SEGMENTS_WRITTEN_TOTAL,
        Kind::Counter,
        Some("count"),
        "Segments written by the stream's publishers, by format (hls, dash)",
    ),
    (
        TRANSCODER_RESTARTS_TOTAL,
        Kind::Counter,
        Some("count"),
        "Encoder process restarts of the stream's transcoder",
    ),
    (
        DVR_SEGMENTS_TOTAL,
        Kind::Counter,
        Some("count"),
        "Segments recorded by the stream's DVR",
    ),
    (
        DVR_BYTES_TOTAL,
        Kind::Counter,
        Some("bytes"),
        "Bytes recorded by the stream's DVR",
    ),
    (
        VIEWERS,
        Kind::Gauge,
        Some("count"),
        "Viewers of the stream, by protocol (hls, dash, rtsp, rtmp, srt)",
    ),
    (
        PUSH_DESTINATIONS,
        Kind::Gauge,
        Some("count"),
        "Push-out destinations of the stream, by state (connecting, active, failed, stopped)",
    ),
    (
        STREAMS_RUNNING,
        Kind::Gauge,
        Some("count"),
        "Streams running",
    ),
    (
        HOOK_DELIVERIES_TOTAL,
        Kind::Counter,
        Some("count"),
        "Hook deliveries acknowledged, by type (http, kafka)",
    ),
    (
        HOOK_FAILURES_TOTAL,
        Kind::Counter,
        Some("count"),
        "Hook deliveries given up on, by type (http, kafka)",
    ),
    (
        HOOK_DROPPED_TOTAL,
        Kind::Counter,
        Some("count"),
        "Hook events dropped because a queue was full, by type (http, kafka)",
    ),
    (
        HOOK_BUFFERED,
        Kind::Gauge,
        Some("count"),
        "Hook events waiting for delivery, by type (kafka: records not yet acknowledged)",
    ),
    (
        EVENTS_PUBLISHED_TOTAL,
        Kind::Counter,
        Some("count"),
        "Events published on the event bus",
    ),
    (
        EVENTS_DROPPED_TOTAL,
        Kind::Counter,
        Some("count"),
        "Events dropped by the bus for a subscriber whose queue was full",
    ),
    (
        PROCESS_CPU_SECONDS_TOTAL,
        Kind::Counter,
        Some("seconds"),
        "CPU time (user + system) used by the process",
    ),
    (
        PROCESS_RESIDENT_MEMORY_BYTES,
        Kind::Gauge,
        Some("bytes"),
        "Resident memory of the process",
    ),
    (
        PROCESS_OPEN_FDS,
        Kind::Gauge,
        Some("count"),
        "Open file descriptors of the process",
    ),
    (
        PROCESS_THREADS,
        Kind::Gauge,
        Some("count"),
        "Threads of the process",
    ),
];

//! `index.json`: the recording's metadata, and the source of truth when a
//! recording resumes. Written atomically (temp file + rename) after every
//! change, before the playlist.

use std::path::Path;

use chrono::{DateTime, Utc};
use os_hls::playlist::{MediaPlaylist, PlaylistType, Segment, recording_segment_name, seconds};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// File names in a recording directory.
pub const INDEX: &str = "index.json";
pub const PLAYLIST: &str = "playlist.m3u8";

/// A hole in the recording (server down, signal lost).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Gap {
    /// End of the last segment before the hole.
    pub from: DateTime<Utc>,
    /// Start of the first segment after it.
    pub to: DateTime<Utc>,
    /// `to - from`, seconds.
    pub duration_sec: f64,
}

/// One segment on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentMeta {
    pub seq: u64,
    /// Seconds (from media timestamps).
    pub duration: f64,
    /// Wall clock at its start.
    pub program_date_time: DateTime<Utc>,
    /// File size, bytes.
    pub size: u64,
    /// Follows a gap or a source switch (`#EXT-X-DISCONTINUITY`).
    #[serde(default)]
    pub discontinuity: bool,
}

impl SegmentMeta {
    pub fn end(&self) -> DateTime<Utc> {
        self.program_date_time + seconds(self.duration)
    }
}

/// `index.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DvrIndex {
    pub stream_code: String,
    /// When this recording was first started.
    pub started_at: DateTime<Utc>,
    /// End of the newest segment.
    pub last_segment_at: Option<DateTime<Utc>>,
    /// Segments on disk (listed in the playlist).
    pub segment_count: u64,
    /// Their total size, bytes.
    pub total_size_bytes: u64,
    /// Number of the next segment. Never decreases: numbers are not reused,
    /// even after retention deleted the segments before.
    pub next_seq: u64,
    /// `#EXT-X-MEDIA-SEQUENCE`: segments that left the playlist (a file
    /// number may be skipped, so it is counted, not taken from names).
    #[serde(default)]
    pub media_sequence: u64,
    /// Discontinuity tags that left the playlist with deleted segments.
    #[serde(default)]
    pub discontinuity_sequence: u64,
    #[serde(default)]
    pub gaps: Vec<Gap>,
    #[serde(default)]
    pub segments: Vec<SegmentMeta>,
}

impl DvrIndex {
    pub fn new(code: &str, now: DateTime<Utc>) -> Self {
        Self {
            stream_code: code.to_string(),
            started_at: now,
            last_segment_at: None,
            segment_count: 0,
            total_size_bytes: 0,
            next_seq: 0,
            media_sequence: 0,
            discontinuity_sequence: 0,
            gaps: Vec::new(),
            segments: Vec::new(),
        }
    }

    /// Recompute the derived figures from `segments`.
    pub fn refresh(&mut self) {
        self.segment_count = self.segments.len() as u64;
        self.total_size_bytes = self.segments.iter().map(|s| s.size).sum();
        self.last_segment_at = self.segments.last().map(SegmentMeta::end);
        if let Some(max) = self.segments.iter().map(|s| s.seq + 1).max() {
            self.next_seq = self.next_seq.max(max);
        }
    }

    /// The playlist: `EVENT` while recording, `VOD` + `ENDLIST` when stopped.
    pub fn playlist(&self, recording: bool, target: u64) -> MediaPlaylist {
        MediaPlaylist {
            target_duration: target,
            media_sequence: self.media_sequence,
            discontinuity_sequence: self.discontinuity_sequence,
            playlist_type: Some(if recording {
                PlaylistType::Event
            } else {
                PlaylistType::Vod
            }),
            ended: !recording,
            segments: self
                .segments
                .iter()
                .map(|s| Segment {
                    seq: s.seq,
                    uri: recording_segment_name(s.seq),
                    duration: s.duration,
                    program_date_time: Some(s.program_date_time),
                    discontinuity: s.discontinuity,
                })
                .collect(),
        }
    }

    /// Remove the oldest segments while they are older than `retention_sec`
    /// (0 = no limit; age counted from a segment's end to `now`) or the total
    /// exceeds `max_bytes` (0 = no limit). The newest segment always stays.
    /// Gaps that end before the new oldest segment go too. Returns the
    /// numbers of the removed segments (their files are the caller's).
    pub fn apply_retention(
        &mut self,
        now: DateTime<Utc>,
        retention_sec: u64,
        max_bytes: u64,
    ) -> Vec<u64> {
        let mut removed = Vec::new();
        let mut total: u64 = self.segments.iter().map(|s| s.size).sum();
        while self.segments.len() > 1 {
            let oldest = &self.segments[0];
            let too_old = retention_sec > 0
                && (now - oldest.end()).num_milliseconds() > (retention_sec as i64) * 1000;
            let too_big = max_bytes > 0 && total > max_bytes;
            if !(too_old || too_big) {
                break;
            }
            let gone = self.segments.remove(0);
            total -= gone.size;
            self.media_sequence += 1;
            if gone.discontinuity {
                self.discontinuity_sequence += 1;
            }
            removed.push(gone.seq);
        }
        if !removed.is_empty() {
            // The new first segment's own tag is kept: players count it.
            if let Some(first) = self.segments.first() {
                let start = first.program_date_time;
                self.gaps.retain(|g| g.to > start);
            }
            self.refresh();
        }
        removed
    }
}

/// Read `dir/index.json`; `Ok(None)` when there is none.
pub async fn load(dir: &Path) -> std::io::Result<Option<DvrIndex>> {
    match tokio::fs::read(dir.join(INDEX)).await {
        Ok(data) => serde_json::from_slice(&data)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replace `dir/name` in one step: readers see the old or the new file,
/// never a partial one. On failure the temp file is removed.
pub async fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = async {
        tokio::fs::write(&tmp, data).await?;
        tokio::fs::rename(&tmp, dir.join(name)).await
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn index(n: u64) -> DvrIndex {
        let mut ix = DvrIndex::new("cam", t(0));
        for i in 0..n {
            ix.segments.push(SegmentMeta {
                seq: i,
                duration: 4.0,
                program_date_time: t(4 * i as i64),
                size: 1000,
                discontinuity: i == 2,
            });
        }
        ix.gaps.push(Gap {
            from: t(7),
            to: t(8),
            duration_sec: 1.0,
        });
        ix.refresh();
        ix
    }

    #[test]
    fn json_round_trip() {
        let ix = index(3);
        let text = serde_json::to_string(&ix).unwrap();
        assert_eq!(serde_json::from_str::<DvrIndex>(&text).unwrap(), ix);
        assert_eq!(ix.segment_count, 3);
        assert_eq!(ix.total_size_bytes, 3000);
        assert_eq!(ix.next_seq, 3);
        assert_eq!(ix.last_segment_at, Some(t(12)));
    }

    #[test]
    fn retention_by_age_removes_the_oldest_only() {
        let mut ix = index(5); // segments end at 4, 8, 12, 16, 20
        let removed = ix.apply_retention(t(23), 10, 0);
        assert_eq!(
            removed,
            [0, 1, 2],
            "ends 4, 8 and 12 are > 10 s old at 23 s"
        );
        assert_eq!(ix.media_sequence, 3);
        assert_eq!(ix.segments.first().map(|s| s.seq), Some(3));
        assert_eq!(ix.next_seq, 5, "numbering is not reused");
        assert_eq!(ix.discontinuity_sequence, 1, "segment 2 carried a tag");
        assert!(ix.gaps.is_empty(), "the gap before the oldest segment went");
        assert_eq!(ix.segment_count, 2);
        assert_eq!(ix.total_size_bytes, 2000);
        // The newest segment always stays.
        let removed = ix.apply_retention(t(1000), 10, 0);
        assert_eq!(removed, [3]);
        assert_eq!(ix.segments.len(), 1);
    }

    #[test]
    fn retention_by_size() {
        let mut ix = index(5);
        assert_eq!(ix.apply_retention(t(0), 0, 2500), [0, 1, 2]);
        assert_eq!(ix.total_size_bytes, 2000);
        assert!(ix.apply_retention(t(0), 0, 0).is_empty(), "0 = unlimited");
    }

    #[test]
    fn playlist_event_and_vod() {
        let ix = index(3);
        let live = ix.playlist(true, 4).render();
        assert!(live.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n") && !live.contains("ENDLIST"));
        assert!(live.contains("\n000002.ts\n"));
        let vod = ix.playlist(false, 4).render();
        assert!(vod.contains("#EXT-X-PLAYLIST-TYPE:VOD\n") && vod.ends_with("#EXT-X-ENDLIST\n"));
        assert_eq!(vod.matches("#EXT-X-PROGRAM-DATE-TIME:").count(), 3);
        assert_eq!(vod.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
    }
}

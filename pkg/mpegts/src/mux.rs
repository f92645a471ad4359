//! MPEG-TS muxer: access units in, 188-byte packets out.
//!
//! - PAT/PMT are written before the first unit, before every video keyframe
//!   and whenever `psi_interval` (default 100 ms of DTS) has passed.
//! - PCR is carried in the adaptation field of the first packet of every PES
//!   on the PCR PID (the first video track, else the first track), at
//!   `dts - pcr_delay`; when that track is sparse (e.g. low frame rate) and
//!   other tracks advance 40 ms past its last PCR, an adaptation-field-only
//!   packet with a PCR is added on the PCR PID.
//! - Keyframes get `random_access_indicator`; PES headers carry PTS, and DTS
//!   when it differs.
//! - H.264 (and H.265) units without an access unit delimiter get one.
//! - AAC units (raw frames) get an ADTS header built from the track's
//!   AudioSpecificConfig; units that already are one whole ADTS frame pass
//!   through. Opus units get the TS control header.
//!
//! Output goes to a caller-supplied [`TsBuffer`] (`Vec<u8>` or `BytesMut`);
//! nothing is allocated per packet.

use bytes::BytesMut;
use os_av::time::WRAP_33;
use os_av::{AccessUnit, Codec, ParamsChanged, Track, TrackId, TrackKind, TrackParams};
use os_codecs::aac::{AacError, AdtsHeader, AdtsWriter};

use crate::packet::{PACKET_SIZE, PID_PAT, SYNC_BYTE, write_pcr};
use crate::pes::{MAX_PES_HEADER_LEN, write_pes_header};
use crate::psi::{PmtEntry, build_pat, build_pmt, descriptor, stream_type};

/// Where the muxer appends packets.
pub trait TsBuffer {
    /// Make room for `additional` more bytes.
    fn reserve_bytes(&mut self, additional: usize);
    /// Append bytes.
    fn put_bytes(&mut self, data: &[u8]);
}

impl TsBuffer for Vec<u8> {
    fn reserve_bytes(&mut self, additional: usize) {
        self.reserve(additional);
    }
    fn put_bytes(&mut self, data: &[u8]) {
        self.extend_from_slice(data);
    }
}

impl TsBuffer for BytesMut {
    fn reserve_bytes(&mut self, additional: usize) {
        self.reserve(additional);
    }
    fn put_bytes(&mut self, data: &[u8]) {
        self.extend_from_slice(data);
    }
}

/// Muxer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxerConfig {
    pub transport_stream_id: u16,
    pub program_number: u16,
    pub pmt_pid: u16,
    /// PID given to tracks whose id is not a usable PID (then +1 per track).
    pub first_pid: u16,
    /// Largest DTS distance (90 kHz) between two PAT/PMT repetitions.
    pub psi_interval: i64,
    /// How far (90 kHz) the PCR runs behind the DTS of the unit it is sent with.
    pub pcr_delay: i64,
    /// Audio frames per PES (1 = each frame its own PES). With more, audio
    /// is held back until the group is full, the next video keyframe, or
    /// [`Muxer::flush`]; fewer packets at low bit rates (ffmpeg groups too).
    pub audio_frames_per_pes: usize,
    /// Largest PES payload of a group of audio frames.
    pub audio_pes_max_bytes: usize,
}

impl Default for MuxerConfig {
    fn default() -> Self {
        Self {
            transport_stream_id: 1,
            program_number: 1,
            pmt_pid: 0x1000,
            first_pid: 0x100,
            psi_interval: 9_000,
            pcr_delay: 63_000,
            audio_frames_per_pes: 1,
            audio_pes_max_bytes: 2_930,
        }
    }
}

/// Errors of the muxer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MuxError {
    #[error("unit for unknown track {0}")]
    UnknownTrack(TrackId),
    #[error("AAC track {0} has no AudioSpecificConfig")]
    MissingAsc(TrackId),
    #[error("AAC: {0}")]
    Aac(#[from] AacError),
    #[error("too many tracks")]
    TooManyTracks,
}

#[derive(Debug, Clone)]
struct MuxTrack {
    id: TrackId,
    pid: u16,
    codec: Codec,
    stream_type: u8,
    stream_id: u8,
    descriptors: Vec<u8>,
    cc: u8,
    adts: Option<AdtsWriter>,
    /// Audio units held back to share one PES.
    group: Vec<AccessUnit>,
    group_bytes: usize,
}

const AUD_H264: [u8; 6] = [0, 0, 0, 1, 0x09, 0xF0];
const AUD_H265: [u8; 7] = [0, 0, 0, 1, 0x46, 0x01, 0x50];

/// The MPEG-TS muxer. See the module documentation.
#[derive(Debug, Clone)]
pub struct Muxer {
    config: MuxerConfig,
    tracks: Vec<MuxTrack>,
    pcr_pid: u16,
    version: u8,
    pat_packets: Vec<u8>,
    pmt_packets: Vec<u8>,
    pat_cc: u8,
    pmt_cc: u8,
    last_psi: Option<i64>,
    last_pcr: Option<i64>,
    psi_due: bool,
    head: Vec<u8>,
    group_buf: Vec<u8>,
}

impl Muxer {
    pub fn new(config: MuxerConfig) -> Self {
        let mut m = Self {
            config,
            tracks: Vec::new(),
            pcr_pid: 0x1FFF,
            version: 0,
            pat_packets: Vec::new(),
            pmt_packets: Vec::new(),
            pat_cc: 0,
            pmt_cc: 0,
            last_psi: None,
            last_pcr: None,
            psi_due: true,
            head: Vec::with_capacity(64),
            group_buf: Vec::new(),
        };
        m.rebuild_psi();
        m
    }

    /// A muxer with default settings for `tracks`.
    pub fn with_tracks(tracks: &[Track]) -> Result<Self, MuxError> {
        let mut m = Self::new(MuxerConfig::default());
        m.set_tracks(tracks)?;
        m.version = 0;
        m.rebuild_psi();
        Ok(m)
    }

    /// Replace the track list (program change). The PMT version is bumped and
    /// PAT/PMT are sent before the next unit; continuity counters of PIDs
    /// that stay are kept.
    pub fn set_tracks(&mut self, tracks: &[Track]) -> Result<(), MuxError> {
        if tracks.len() > 64 {
            return Err(MuxError::TooManyTracks);
        }
        let mut new: Vec<MuxTrack> = Vec::with_capacity(tracks.len());
        let (mut video_n, mut audio_n, mut next_pid) = (0u8, 0u8, self.config.first_pid);
        for t in tracks {
            let usable = |pid: u16| {
                (0x10..0x1FFF).contains(&pid)
                    && pid != self.config.pmt_pid
                    && !new.iter().any(|n| n.pid == pid)
            };
            let pid = if usable(t.id) {
                t.id
            } else {
                while !usable(next_pid) {
                    next_pid = if next_pid >= 0x1FFE {
                        0x10
                    } else {
                        next_pid + 1
                    };
                }
                next_pid
            };
            let stream_id = match t.codec {
                Codec::H264 | Codec::H265 => {
                    video_n = video_n.wrapping_add(1);
                    0xE0 + ((video_n - 1) & 0x0F)
                }
                Codec::Aac | Codec::Mp3 => {
                    audio_n = audio_n.wrapping_add(1);
                    0xC0 + ((audio_n - 1) & 0x1F)
                }
                Codec::Ac3 | Codec::Opus => 0xBD,
            };
            let cc = self
                .tracks
                .iter()
                .find(|o| o.pid == pid)
                .map_or(0, |o| o.cc);
            let mut track = MuxTrack {
                id: t.id,
                pid,
                codec: t.codec,
                stream_type: 0,
                stream_id,
                descriptors: Vec::new(),
                cc,
                adts: None,
                group: Vec::new(),
                group_bytes: 0,
            };
            Self::configure(&mut track, t.params.as_ref())?;
            new.push(track);
        }
        self.pcr_pid = new
            .iter()
            .find(|t| t.codec.kind() == TrackKind::Video)
            .or(new.first())
            .map_or(0x1FFF, |t| t.pid);
        self.tracks = new;
        self.version = (self.version + 1) & 0x1F;
        self.rebuild_psi();
        self.psi_due = true;
        Ok(())
    }

    /// Apply new decoder parameters (e.g. from a demuxer's `Params` event).
    pub fn set_params(&mut self, change: &ParamsChanged) -> Result<(), MuxError> {
        let track = self
            .tracks
            .iter_mut()
            .find(|t| t.id == change.track)
            .ok_or(MuxError::UnknownTrack(change.track))?;
        let before = (track.stream_type, track.descriptors.clone());
        Self::configure(track, Some(&change.params))?;
        if before != (track.stream_type, track.descriptors.clone()) {
            self.version = (self.version + 1) & 0x1F;
            self.rebuild_psi();
            self.psi_due = true;
        }
        Ok(())
    }

    /// PID used for a track.
    pub fn pid_of(&self, track: TrackId) -> Option<u16> {
        self.tracks.iter().find(|t| t.id == track).map(|t| t.pid)
    }

    /// PID carrying the PCR.
    pub fn pcr_pid(&self) -> u16 {
        self.pcr_pid
    }

    fn configure(track: &mut MuxTrack, params: Option<&TrackParams>) -> Result<(), MuxError> {
        let audio = match params {
            Some(TrackParams::Audio(a)) => Some(a),
            _ => None,
        };
        track.descriptors.clear();
        track.stream_type = match track.codec {
            Codec::H264 => stream_type::H264,
            Codec::H265 => stream_type::H265,
            Codec::Aac => {
                if let Some(a) = audio.filter(|a| !a.asc.is_empty()) {
                    track.adts = Some(AdtsWriter::from_asc_bytes(&a.asc)?);
                }
                stream_type::AAC_ADTS
            }
            Codec::Mp3 => {
                if audio.is_some_and(|a| a.sample_rate != 0 && a.sample_rate < 32_000) {
                    stream_type::MPEG2_AUDIO
                } else {
                    stream_type::MPEG1_AUDIO
                }
            }
            Codec::Ac3 => {
                track.descriptors.extend_from_slice(&[
                    descriptor::REGISTRATION,
                    4,
                    b'A',
                    b'C',
                    b'-',
                    b'3',
                ]);
                stream_type::AC3
            }
            Codec::Opus => {
                let channels = audio.map_or(2, |a| a.channels).clamp(1, 2);
                track.descriptors.extend_from_slice(&[
                    descriptor::REGISTRATION,
                    4,
                    b'O',
                    b'p',
                    b'u',
                    b's',
                ]);
                track
                    .descriptors
                    .extend_from_slice(&[descriptor::EXTENSION, 2, 0x80, channels]);
                stream_type::PRIVATE_PES
            }
        };
        Ok(())
    }

    fn rebuild_psi(&mut self) {
        let c = &self.config;
        let pat = build_pat(c.transport_stream_id, c.program_number, c.pmt_pid, 0);
        let entries: Vec<PmtEntry> = self
            .tracks
            .iter()
            .map(|t| PmtEntry {
                stream_type: t.stream_type,
                pid: t.pid,
                descriptors: t.descriptors.clone(),
            })
            .collect();
        let pmt = build_pmt(c.program_number, self.version, self.pcr_pid, &entries);
        self.pat_packets = section_packets(PID_PAT, &pat);
        self.pmt_packets = section_packets(c.pmt_pid, &pmt);
    }

    /// Write PAT and PMT now.
    pub fn write_psi<B: TsBuffer>(&mut self, out: &mut B) {
        out.reserve_bytes(self.pat_packets.len() + self.pmt_packets.len());
        for (packets, cc) in [
            (&mut self.pat_packets, &mut self.pat_cc),
            (&mut self.pmt_packets, &mut self.pmt_cc),
        ] {
            for pkt in packets.chunks_exact_mut(PACKET_SIZE) {
                if let Some(b) = pkt.get_mut(3) {
                    *b = 0x10 | *cc;
                }
                *cc = (*cc + 1) & 0x0F;
                out.put_bytes(pkt);
            }
        }
        self.psi_due = false;
    }

    /// Packetize one access unit into `out`.
    ///
    /// With `audio_frames_per_pes > 1`, audio units are held back and written
    /// several to a PES (when the group is full, before the next video
    /// keyframe, or on [`Muxer::flush`]).
    pub fn write<B: TsBuffer>(&mut self, au: &AccessUnit, out: &mut B) -> Result<(), MuxError> {
        let index = self
            .tracks
            .iter()
            .position(|t| t.id == au.track)
            .ok_or(MuxError::UnknownTrack(au.track))?;
        let Some(track) = self.tracks.get_mut(index) else {
            return Err(MuxError::UnknownTrack(au.track));
        };
        let video = track.codec.kind() == TrackKind::Video;
        if video && au.keyframe {
            // Audio that precedes a keyframe stays in front of it (segment cuts).
            self.flush(out)?;
        } else if !video && self.config.audio_frames_per_pes > 1 {
            let (_, prefix_len, body) = es_prefix(track, &au.payload)?;
            let len = prefix_len + body.len();
            let full = track.group.len() >= self.config.audio_frames_per_pes
                || track.group_bytes + len > self.config.audio_pes_max_bytes;
            if full && !track.group.is_empty() {
                self.flush_track(index, out)?;
            }
            if let Some(track) = self.tracks.get_mut(index) {
                track.group.push(au.clone());
                track.group_bytes += len;
                if track.group.len() >= self.config.audio_frames_per_pes {
                    self.flush_track(index, out)?;
                }
            }
            return Ok(());
        }
        self.emit(index, std::slice::from_ref(au), out)
    }

    /// Write audio units held back for grouping (call at end of stream).
    pub fn flush<B: TsBuffer>(&mut self, out: &mut B) -> Result<(), MuxError> {
        for index in 0..self.tracks.len() {
            self.flush_track(index, out)?;
        }
        Ok(())
    }

    fn flush_track<B: TsBuffer>(&mut self, index: usize, out: &mut B) -> Result<(), MuxError> {
        let Some(track) = self.tracks.get_mut(index) else {
            return Ok(());
        };
        if track.group.is_empty() {
            return Ok(());
        }
        let group = std::mem::take(&mut track.group);
        track.group_bytes = 0;
        let result = self.emit(index, &group, out);
        if let Some(track) = self.tracks.get_mut(index) {
            let mut group = group;
            group.clear();
            track.group = group;
        }
        result
    }

    /// Write `units` (one, or a group of audio frames) as one PES.
    fn emit<B: TsBuffer>(
        &mut self,
        index: usize,
        units: &[AccessUnit],
        out: &mut B,
    ) -> Result<(), MuxError> {
        let (Some(first), Some(last)) = (units.first(), units.last()) else {
            return Ok(());
        };
        let Some(track) = self.tracks.get(index) else {
            return Err(MuxError::UnknownTrack(first.track));
        };
        let video = track.codec.kind() == TrackKind::Video;
        let psi_now = self.psi_due
            || (video && first.keyframe)
            || self.last_psi.is_none_or(|t| {
                first.dts.saturating_sub(t) >= self.config.psi_interval || first.dts < t
            });
        if psi_now {
            self.write_psi(out);
            self.last_psi = Some(first.dts);
        }
        let Some(track) = self.tracks.get_mut(index) else {
            return Err(MuxError::UnknownTrack(first.track));
        };
        // Elementary-stream prefix: AUD, ADTS header or Opus control header.
        let (prefix, prefix_len, mut body) = es_prefix(track, &first.payload)?;
        if units.len() > 1 {
            self.group_buf.clear();
            for au in units {
                let (p, n, b) = es_prefix(track, &au.payload)?;
                self.group_buf
                    .extend_from_slice(p.get(..n).unwrap_or_default());
                self.group_buf.extend_from_slice(b);
            }
            body = &self.group_buf;
        }
        let prefix_len = if units.len() > 1 { 0 } else { prefix_len };
        let mut pes_head = [0u8; MAX_PES_HEADER_LEN];
        let pts = first.pts.rem_euclid(WRAP_33) as u64;
        let dts = first.dts.rem_euclid(WRAP_33) as u64;
        let head_len = write_pes_header(
            &mut pes_head,
            track.stream_id,
            pts,
            (pts != dts).then_some(dts),
            prefix_len + body.len(),
            !video,
        );
        self.head.clear();
        self.head
            .extend_from_slice(pes_head.get(..head_len).unwrap_or_default());
        self.head
            .extend_from_slice(prefix.get(..prefix_len).unwrap_or_default());
        let pcr = if track.pid == self.pcr_pid {
            self.last_pcr = Some(first.dts);
            Some(
                first
                    .dts
                    .saturating_sub(self.config.pcr_delay)
                    .rem_euclid(WRAP_33) as u64
                    * 300,
            )
        } else {
            None
        };
        let rai = first.keyframe && (video || self.pcr_pid == track.pid);
        write_packets(out, track.pid, &mut track.cc, &self.head, body, pcr, rai);
        // Keep PCRs at most 40 ms apart when the PCR track is sparse (low
        // frame rate video): an adaptation-field-only packet on its PID.
        if pcr.is_none()
            && self
                .last_pcr
                .is_some_and(|t| last.dts.saturating_sub(t) >= PCR_MAX_GAP && last.dts > t)
        {
            let base = last
                .dts
                .saturating_sub(self.config.pcr_delay)
                .rem_euclid(WRAP_33) as u64;
            write_pcr_packet(out, self.pcr_pid, self.pcr_cc(), base * 300);
            self.last_pcr = Some(last.dts);
        }
        Ok(())
    }
}

/// The bytes to put in front of a unit's payload in the PES (AUD, ADTS
/// header, Opus control header), and the payload part to write.
fn es_prefix<'a>(
    track: &MuxTrack,
    payload: &'a [u8],
) -> Result<([u8; 16], usize, &'a [u8]), MuxError> {
    let mut prefix = [0u8; 16];
    let mut prefix_len = 0;
    let mut body = payload;
    match track.codec {
        Codec::H264 if !starts_with_nal(body, |b| b & 0x1F == 9) => {
            prefix[..AUD_H264.len()].copy_from_slice(&AUD_H264);
            prefix_len = AUD_H264.len();
        }
        Codec::H265 if !starts_with_nal(body, |b| (b >> 1) & 0x3F == 35) => {
            prefix[..AUD_H265.len()].copy_from_slice(&AUD_H265);
            prefix_len = AUD_H265.len();
        }
        Codec::Aac => {
            let whole_adts =
                AdtsHeader::parse(body).is_ok_and(|h| usize::from(h.frame_length) == body.len());
            if !whole_adts {
                let writer = track.adts.as_ref().ok_or(MuxError::MissingAsc(track.id))?;
                prefix[..7].copy_from_slice(&writer.header(body.len())?);
                prefix_len = 7;
            }
        }
        Codec::Opus => {
            // opus_control_header: prefix 0x3FF, no trims, no extension,
            // then au_size as a run of 0xFF bytes plus a remainder.
            if body.len() / 255 + 3 > prefix.len() {
                // Oversized packet (> ~3.3 kB, not a valid Opus packet): cap.
                body = body.get(..(prefix.len() - 3) * 255).unwrap_or_default();
            }
            let runs = body.len() / 255;
            prefix[0] = 0x7F;
            prefix[1] = 0xE0;
            for b in prefix.iter_mut().skip(2).take(runs) {
                *b = 0xFF;
            }
            prefix[2 + runs] = (body.len() % 255) as u8;
            prefix_len = 3 + runs;
        }
        _ => {}
    }
    Ok((prefix, prefix_len, body))
}

impl Muxer {
    /// Current continuity counter of the PCR PID (not incremented by
    /// packets without payload).
    fn pcr_cc(&self) -> u8 {
        self.tracks
            .iter()
            .find(|t| t.pid == self.pcr_pid)
            .map_or(0, |t| t.cc.wrapping_sub(1) & 0x0F)
    }
}

/// Largest PCR spacing (90 kHz) the muxer lets happen: 40 ms.
const PCR_MAX_GAP: i64 = 3_600;

/// An adaptation-field-only packet carrying a PCR.
fn write_pcr_packet<B: TsBuffer>(out: &mut B, pid: u16, cc: u8, pcr: u64) {
    let mut pkt = [0xFFu8; PACKET_SIZE];
    pkt[0] = SYNC_BYTE;
    pkt[1] = (pid >> 8) as u8 & 0x1F;
    pkt[2] = pid as u8;
    pkt[3] = 0x20 | (cc & 0x0F);
    pkt[4] = 183;
    pkt[5] = 0x10;
    pkt[6..12].copy_from_slice(&write_pcr(pcr));
    out.put_bytes(&pkt);
}

/// Whether the first NAL unit of an Annex-B buffer satisfies `pred` (on its first header byte).
fn starts_with_nal(data: &[u8], pred: impl Fn(u8) -> bool) -> bool {
    let start = match data {
        [0, 0, 1, ..] => 3,
        [0, 0, 0, 1, ..] => 4,
        _ => return false,
    };
    data.get(start).is_some_and(|&b| pred(b))
}

/// Split a section into PUSI-started packets (continuity counters patched at write time).
fn section_packets(pid: u16, section: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PACKET_SIZE * (section.len() / 183 + 1));
    let mut rest = section;
    let mut first = true;
    while first || !rest.is_empty() {
        let mut pkt = [0xFFu8; PACKET_SIZE];
        pkt[0] = SYNC_BYTE;
        pkt[1] = (u8::from(first) << 6) | ((pid >> 8) as u8 & 0x1F);
        pkt[2] = pid as u8;
        pkt[3] = 0x10;
        let mut at = 4;
        if first {
            pkt[4] = 0; // pointer_field
            at = 5;
        }
        let n = rest.len().min(PACKET_SIZE - at);
        let (now, later) = rest.split_at(n);
        if let Some(dst) = pkt.get_mut(at..at + n) {
            dst.copy_from_slice(now);
        }
        rest = later;
        out.extend_from_slice(&pkt);
        first = false;
    }
    out
}

/// Packetize `head` followed by `body` as one PES on `pid`.
fn write_packets<B: TsBuffer>(
    out: &mut B,
    pid: u16,
    cc: &mut u8,
    head: &[u8],
    body: &[u8],
    pcr: Option<u64>,
    rai: bool,
) {
    let total = head.len() + body.len();
    out.reserve_bytes((total / 184 + 2) * PACKET_SIZE);
    let mut remaining = total;
    let (mut hi, mut bi) = (0usize, 0usize);
    let mut first = true;
    while remaining > 0 {
        let flags_len = if first && (pcr.is_some() || rai) {
            2 + if pcr.is_some() { 6 } else { 0 }
        } else {
            0
        };
        let cap = 184 - flags_len;
        let chunk = remaining.min(cap);
        let stuffing = cap - chunk;
        let mut h = [0xFFu8; PACKET_SIZE];
        h[0] = SYNC_BYTE;
        h[1] = (u8::from(first) << 6) | ((pid >> 8) as u8 & 0x1F);
        h[2] = pid as u8;
        let af_total = flags_len + stuffing;
        h[3] = if af_total > 0 { 0x30 } else { 0x10 } | *cc;
        *cc = (*cc + 1) & 0x0F;
        let mut n = 4;
        if af_total > 0 {
            h[4] = (af_total - 1) as u8;
            if af_total >= 2 {
                let mut flags = 0;
                if first && rai {
                    flags |= 0x40;
                }
                if let (true, Some(pcr)) = (first, pcr) {
                    flags |= 0x10;
                    h[6..12].copy_from_slice(&write_pcr(pcr));
                }
                h[5] = flags;
            }
            n = 4 + af_total;
        }
        out.put_bytes(h.get(..n).unwrap_or_default());
        let from_head = (head.len() - hi).min(chunk);
        out.put_bytes(head.get(hi..hi + from_head).unwrap_or_default());
        hi += from_head;
        let from_body = chunk - from_head;
        out.put_bytes(body.get(bi..bi + from_body).unwrap_or_default());
        bi += from_body;
        remaining -= chunk;
        first = false;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::demux::{Demuxer, Event};
    use bytes::Bytes;
    use os_av::AudioParams;
    use os_codecs::aac::AudioSpecificConfig;

    fn tracks() -> Vec<Track> {
        vec![
            Track {
                id: 0x100,
                codec: Codec::H264,
                params: None,
            },
            Track {
                id: 0x101,
                codec: Codec::Aac,
                params: Some(TrackParams::Audio(
                    AudioSpecificConfig::new(2, 48_000, 2).to_audio_params(),
                )),
            },
        ]
    }

    fn video(pts: i64, dts: i64, key: bool, len: usize) -> AccessUnit {
        let mut p = vec![0, 0, 0, 1, if key { 0x65 } else { 0x41 }];
        p.resize(len, 0xAB);
        AccessUnit {
            track: 0x100,
            codec: Codec::H264,
            pts,
            dts,
            keyframe: key,
            discontinuity: false,
            payload: Bytes::from(p),
        }
    }

    #[test]
    fn mux_then_demux_round_trip() {
        let mut m = Muxer::with_tracks(&tracks()).unwrap();
        let mut out = Vec::new();
        let units = vec![
            video(93_600, 90_000, true, 5000),
            AccessUnit {
                track: 0x101,
                codec: Codec::Aac,
                pts: 90_100,
                dts: 90_100,
                keyframe: true,
                discontinuity: false,
                payload: Bytes::from(vec![0x21; 300]),
            },
            video(100_800, 93_600, false, 183),
            video(97_200, 97_200, false, 1),
        ];
        for u in &units {
            m.write(u, &mut out).unwrap();
        }
        assert_eq!(out.len() % PACKET_SIZE, 0);
        let mut d = Demuxer::new();
        d.push(&out);
        d.flush();
        let mut got = Vec::new();
        let mut params = 0;
        while let Some(e) = d.pull() {
            match e {
                Event::AccessUnit(au) => got.push(au),
                Event::Params(_) => params += 1,
                Event::ProgramChanged(p) => assert_eq!(p.tracks.len(), 2),
                Event::Pcr { pid, .. } => assert_eq!(pid, 0x100),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(params, 1);
        assert_eq!(got.len(), 4);
        // Bounded audio PES complete at once; video PES at the next start.
        let (audio, video): (Vec<_>, Vec<_>) = got.into_iter().partition(|a| a.track == 0x101);
        assert_eq!(audio.len(), 1);
        assert_eq!(audio[0].payload, units[1].payload);
        assert_eq!(audio[0].pts, 90_100);
        assert_eq!(video[0].payload.len(), 5000 + 6);
        assert!(video[0].keyframe && !video[1].keyframe);
        assert_eq!((video[1].pts, video[1].dts), (100_800, 93_600));
        assert_eq!(video[2].payload.len(), 1 + 6);
    }

    #[test]
    fn sparse_video_gets_extra_pcr_packets() {
        let mut m = Muxer::with_tracks(&tracks()).unwrap();
        let mut out = Vec::new();
        // 5 fps video, AAC every 1920 ticks in between.
        let mut audio_ts = 90_000;
        for i in 0..10 {
            let dts = 90_000 + i * 18_000;
            m.write(&video(dts, dts, i == 0, 500), &mut out).unwrap();
            while audio_ts < dts + 18_000 {
                let au = AccessUnit {
                    track: 0x101,
                    codec: Codec::Aac,
                    pts: audio_ts,
                    dts: audio_ts,
                    keyframe: true,
                    discontinuity: false,
                    payload: Bytes::from(vec![0x21; 50]),
                };
                m.write(&au, &mut out).unwrap();
                audio_ts += 1920;
            }
        }
        let mut d = Demuxer::new();
        d.push(&out);
        d.flush();
        let mut pcrs = Vec::new();
        while let Some(e) = d.pull() {
            match e {
                Event::Pcr { pcr, .. } => pcrs.push(pcr),
                Event::ContinuityError { .. } => panic!("CC error"),
                _ => {}
            }
        }
        assert!(pcrs.len() > 30, "{} PCRs", pcrs.len());
        assert!(
            pcrs.windows(2)
                .all(|w| w[1] > w[0] && w[1] - w[0] <= 3_600 * 300 + 1_920 * 300)
        );
    }

    #[test]
    fn extreme_timestamps_do_not_panic() {
        let mut m = Muxer::with_tracks(&tracks()).unwrap();
        let mut out = Vec::new();
        for ts in [i64::MIN, -1, 0, i64::MAX, i64::MIN / 2, 5] {
            m.write(&video(ts, ts, false, 10), &mut out).unwrap();
            let mut a = video(ts, i64::MAX - ts.max(0), true, 10);
            a.track = 0x101;
            a.codec = Codec::Aac;
            m.write(&a, &mut out).unwrap();
        }
        assert_eq!(out.len() % PACKET_SIZE, 0);
    }

    #[test]
    fn missing_asc_and_unknown_track() {
        let mut t = tracks();
        t[1].params = Some(TrackParams::Audio(AudioParams::default()));
        let mut m = Muxer::with_tracks(&t).unwrap();
        let mut out = BytesMut::new();
        let au = AccessUnit {
            track: 0x101,
            codec: Codec::Aac,
            pts: 0,
            dts: 0,
            keyframe: true,
            discontinuity: false,
            payload: Bytes::from_static(&[1, 2, 3]),
        };
        assert_eq!(m.write(&au, &mut out), Err(MuxError::MissingAsc(0x101)));
        let mut other = au.clone();
        other.track = 7;
        assert_eq!(m.write(&other, &mut out), Err(MuxError::UnknownTrack(7)));
    }
}

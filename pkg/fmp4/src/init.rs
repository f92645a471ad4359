//! Track configuration and the init segment (`ftyp` + `moov`).

use bytes::{BufMut, Bytes};
use os_av::{AudioParams, CLOCK_HZ, Codec, TrackKind, TrackParams, VideoParams};
use os_codecs::{codec_string, h264::AvcDecoderConfig, h265::HevcDecoderConfig};

use crate::boxes::{BoxStart, Output, put_unity_matrix, write_box};
use crate::error::Fmp4Error;

/// What the sample entry of a track needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SampleEntry {
    /// `avc1`/`avc3` with an avcC, or `hvc1`/`hev1` with an hvcC.
    Video {
        width: u16,
        height: u16,
        /// Serialized avcC / hvcC payload.
        config_record: Bytes,
    },
    /// `mp4a` with an esds carrying the AudioSpecificConfig.
    Aac {
        sample_rate: u32,
        channels: u16,
        asc: Bytes,
    },
}

/// Everything needed to write one track's init and media segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackConfig {
    /// MP4 `track_ID` (non-zero, unique within a file).
    pub track_id: u32,
    pub codec: Codec,
    /// Media timescale: 90000 for video, the sample rate for audio.
    pub timescale: u32,
    /// Duration (in `timescale` units) used for a fragment's last sample when
    /// nothing better is known.
    pub default_sample_duration: u32,
    /// Parameter sets stay in the samples and the sample entry is `avc3`/`hev1`.
    /// When false (default), in-band parameter sets are stripped and the entry
    /// is `avc1`/`hvc1`.
    pub in_band_parameter_sets: bool,
    /// ISO 639-2/T language code of the track.
    pub language: [u8; 3],
    pub entry: SampleEntry,
}

fn invalid(codec: Codec, reason: &'static str) -> Fmp4Error {
    Fmp4Error::InvalidParams { codec, reason }
}

impl TrackConfig {
    /// Configure a track from its decoder parameters.
    pub fn new(track_id: u32, codec: Codec, params: &TrackParams) -> Result<Self, Fmp4Error> {
        if track_id == 0 {
            return Err(Fmp4Error::InvalidTrackId(0));
        }
        match (codec, params) {
            (Codec::H264 | Codec::H265, TrackParams::Video(v)) => Self::video(track_id, codec, v),
            (Codec::Aac, TrackParams::Audio(a)) => Self::aac(track_id, a),
            (Codec::Mp3 | Codec::Ac3 | Codec::Opus, _) => {
                Err(Fmp4Error::Unsupported("only H.264, H.265 and AAC tracks"))
            }
            (codec, _) => Err(invalid(codec, "params kind does not match codec")),
        }
    }

    fn video(track_id: u32, codec: Codec, v: &VideoParams) -> Result<Self, Fmp4Error> {
        let config_record = match codec {
            Codec::H264 => AvcDecoderConfig::from_parameter_sets(&v.sps, &v.pps)?.to_vec()?,
            _ => HevcDecoderConfig::from_parameter_sets(&v.vps, &v.sps, &v.pps)?.to_vec()?,
        };
        let width = u16::try_from(v.width).map_err(|_| invalid(codec, "width over 65535"))?;
        let height = u16::try_from(v.height).map_err(|_| invalid(codec, "height over 65535"))?;
        let default_sample_duration = v
            .frame_rate
            .filter(|&(n, d)| n > 0 && d > 0)
            .and_then(|(n, d)| {
                u32::try_from(u64::from(CLOCK_HZ) * u64::from(d) / u64::from(n)).ok()
            })
            .filter(|&d| d > 0)
            .unwrap_or(CLOCK_HZ / 25);
        Ok(Self {
            track_id,
            codec,
            timescale: CLOCK_HZ,
            default_sample_duration,
            in_band_parameter_sets: false,
            language: *b"und",
            entry: SampleEntry::Video {
                width,
                height,
                config_record: Bytes::from(config_record),
            },
        })
    }

    fn aac(track_id: u32, a: &AudioParams) -> Result<Self, Fmp4Error> {
        if a.sample_rate == 0 {
            return Err(invalid(Codec::Aac, "sample rate 0"));
        }
        if a.asc.is_empty() {
            return Err(invalid(Codec::Aac, "missing AudioSpecificConfig"));
        }
        if a.asc.len() > 120 {
            return Err(invalid(Codec::Aac, "AudioSpecificConfig too long"));
        }
        Ok(Self {
            track_id,
            codec: Codec::Aac,
            timescale: a.sample_rate,
            default_sample_duration: if a.samples_per_frame == 0 {
                1024
            } else {
                a.samples_per_frame
            },
            in_band_parameter_sets: false,
            language: *b"und",
            entry: SampleEntry::Aac {
                sample_rate: a.sample_rate,
                channels: u16::from(a.channels.max(1)),
                asc: a.asc.clone(),
            },
        })
    }

    /// Keep parameter sets in the samples (sample entry `avc3`/`hev1`).
    pub fn with_in_band_parameter_sets(mut self, in_band: bool) -> Self {
        self.in_band_parameter_sets = in_band;
        self
    }

    pub fn kind(&self) -> TrackKind {
        self.codec.kind()
    }

    /// Four-character code of the sample entry.
    pub fn sample_entry_fourcc(&self) -> [u8; 4] {
        match (self.codec, self.in_band_parameter_sets) {
            (Codec::H264, false) => *b"avc1",
            (Codec::H264, true) => *b"avc3",
            (Codec::H265, false) => *b"hvc1",
            (Codec::H265, true) => *b"hev1",
            _ => *b"mp4a",
        }
    }

    /// RFC 6381 codec string matching the sample entry (for manifests).
    pub fn codec_string(&self) -> String {
        match &self.entry {
            SampleEntry::Video { config_record, .. } => {
                let fourcc = self.sample_entry_fourcc();
                let prefix = std::str::from_utf8(&fourcc).unwrap_or("avc1");
                if self.codec == Codec::H264 {
                    let b = |i: usize| config_record.get(i).copied().unwrap_or(0);
                    format!("{prefix}.{:02x}{:02x}{:02x}", b(1), b(2), b(3))
                } else {
                    HevcDecoderConfig::parse(config_record)
                        .map(|c| codec_string::hevc(prefix, &c.ptl))
                        .unwrap_or_else(|_| prefix.to_owned())
                }
            }
            SampleEntry::Aac { asc, .. } => codec_string::for_aac(&AudioParams {
                asc: asc.clone(),
                ..AudioParams::default()
            }),
        }
    }
}

fn check_track_ids(tracks: &[TrackConfig]) -> Result<u32, Fmp4Error> {
    let mut max = 0u32;
    for (i, t) in tracks.iter().enumerate() {
        if t.track_id == 0 || tracks.iter().take(i).any(|o| o.track_id == t.track_id) {
            return Err(Fmp4Error::InvalidTrackId(t.track_id));
        }
        max = max.max(t.track_id);
    }
    Ok(max)
}

/// Write an init segment (`ftyp` + `moov`) for one or more tracks.
/// DASH/CMAF packaging uses one track per init segment.
pub fn write_init_segment(out: &mut impl Output, tracks: &[TrackConfig]) -> Result<(), Fmp4Error> {
    if tracks.is_empty() {
        return Err(Fmp4Error::Empty);
    }
    let max_id = check_track_ids(tracks)?;
    let next_track_id = max_id
        .checked_add(1)
        .ok_or(Fmp4Error::InvalidTrackId(max_id))?;

    let mut ftyp = Vec::with_capacity(24);
    ftyp.extend_from_slice(b"iso6");
    ftyp.put_u32(0);
    for brand in [b"iso6", b"cmfc", b"mp41"] {
        ftyp.extend_from_slice(brand);
    }
    write_box(out, b"ftyp", &ftyp)?;

    let moov = BoxStart::begin(out, b"moov");
    write_mvhd(out, next_track_id)?;
    for t in tracks {
        write_trak(out, t)?;
    }
    let mvex = BoxStart::begin(out, b"mvex");
    for t in tracks {
        let trex = BoxStart::begin_full(out, b"trex", 0, 0);
        out.put_u32(t.track_id);
        out.put_u32(1); // default_sample_description_index
        out.put_u32(0); // default_sample_duration
        out.put_u32(0); // default_sample_size
        out.put_u32(0); // default_sample_flags
        trex.end(out)?;
    }
    mvex.end(out)?;
    moov.end(out)?;
    Ok(())
}

fn write_mvhd(out: &mut impl Output, next_track_id: u32) -> Result<(), Fmp4Error> {
    let b = BoxStart::begin_full(out, b"mvhd", 0, 0);
    out.put_u32(0); // creation_time
    out.put_u32(0); // modification_time
    out.put_u32(1000); // timescale
    out.put_u32(0); // duration (fragmented: unknown)
    out.put_u32(0x0001_0000); // rate 1.0
    out.put_u16(0x0100); // volume 1.0
    out.put_u16(0);
    out.put_u64(0);
    put_unity_matrix(out);
    for _ in 0..6 {
        out.put_u32(0); // pre_defined
    }
    out.put_u32(next_track_id);
    b.end(out).map(|_| ())
}

fn write_trak(out: &mut impl Output, t: &TrackConfig) -> Result<(), Fmp4Error> {
    let trak = BoxStart::begin(out, b"trak");
    // tkhd: enabled | in_movie | in_preview.
    let tkhd = BoxStart::begin_full(out, b"tkhd", 0, 7);
    out.put_u32(0);
    out.put_u32(0);
    out.put_u32(t.track_id);
    out.put_u32(0); // reserved
    out.put_u32(0); // duration
    out.put_u64(0); // reserved
    out.put_u16(0); // layer
    out.put_u16(0); // alternate_group
    out.put_u16(if t.kind() == TrackKind::Audio {
        0x0100
    } else {
        0
    });
    out.put_u16(0);
    put_unity_matrix(out);
    let (w, h) = match &t.entry {
        SampleEntry::Video { width, height, .. } => (*width, *height),
        SampleEntry::Aac { .. } => (0, 0),
    };
    out.put_u32(u32::from(w) << 16);
    out.put_u32(u32::from(h) << 16);
    tkhd.end(out)?;

    let mdia = BoxStart::begin(out, b"mdia");
    let mdhd = BoxStart::begin_full(out, b"mdhd", 0, 0);
    out.put_u32(0);
    out.put_u32(0);
    out.put_u32(t.timescale);
    out.put_u32(0);
    let lang = t.language.iter().fold(0u16, |acc, &c| {
        (acc << 5) | (u16::from(c.wrapping_sub(0x60)) & 0x1f)
    });
    out.put_u16(lang);
    out.put_u16(0);
    mdhd.end(out)?;

    let (handler, name): (&[u8; 4], &[u8]) = match t.kind() {
        TrackKind::Video => (b"vide", b"VideoHandler\0"),
        TrackKind::Audio => (b"soun", b"SoundHandler\0"),
    };
    let hdlr = BoxStart::begin_full(out, b"hdlr", 0, 0);
    out.put_u32(0);
    out.put_slice(handler);
    out.put_slice(&[0; 12]);
    out.put_slice(name);
    hdlr.end(out)?;

    let minf = BoxStart::begin(out, b"minf");
    match t.kind() {
        TrackKind::Video => {
            let vmhd = BoxStart::begin_full(out, b"vmhd", 0, 1);
            out.put_slice(&[0; 8]); // graphicsmode + opcolor
            vmhd.end(out)?;
        }
        TrackKind::Audio => {
            let smhd = BoxStart::begin_full(out, b"smhd", 0, 0);
            out.put_u32(0); // balance + reserved
            smhd.end(out)?;
        }
    }
    let dinf = BoxStart::begin(out, b"dinf");
    let dref = BoxStart::begin_full(out, b"dref", 0, 0);
    out.put_u32(1);
    let url = BoxStart::begin_full(out, b"url ", 0, 1); // media in the same file
    url.end(out)?;
    dref.end(out)?;
    dinf.end(out)?;

    let stbl = BoxStart::begin(out, b"stbl");
    let stsd = BoxStart::begin_full(out, b"stsd", 0, 0);
    out.put_u32(1);
    write_sample_entry(out, t)?;
    stsd.end(out)?;
    for fourcc in [b"stts", b"stsc", b"stco"] {
        let b = BoxStart::begin_full(out, fourcc, 0, 0);
        out.put_u32(0);
        b.end(out)?;
    }
    let stsz = BoxStart::begin_full(out, b"stsz", 0, 0);
    out.put_u32(0); // sample_size
    out.put_u32(0); // sample_count
    stsz.end(out)?;
    stbl.end(out)?;
    minf.end(out)?;
    mdia.end(out)?;
    trak.end(out).map(|_| ())
}

fn write_sample_entry(out: &mut impl Output, t: &TrackConfig) -> Result<(), Fmp4Error> {
    let entry = BoxStart::begin(out, &t.sample_entry_fourcc());
    out.put_slice(&[0; 6]); // reserved
    out.put_u16(1); // data_reference_index
    match &t.entry {
        SampleEntry::Video {
            width,
            height,
            config_record,
        } => {
            out.put_u16(0); // pre_defined
            out.put_u16(0); // reserved
            out.put_slice(&[0; 12]); // pre_defined
            out.put_u16(*width);
            out.put_u16(*height);
            out.put_u32(0x0048_0000); // 72 dpi
            out.put_u32(0x0048_0000);
            out.put_u32(0); // reserved
            out.put_u16(1); // frame_count
            out.put_slice(&[0; 32]); // compressorname
            out.put_u16(0x0018); // depth
            out.put_i16(-1); // pre_defined
            let fourcc = if t.codec == Codec::H264 {
                b"avcC"
            } else {
                b"hvcC"
            };
            write_box(out, fourcc, config_record)?;
        }
        SampleEntry::Aac {
            sample_rate,
            channels,
            asc,
        } => {
            out.put_u64(0); // reserved
            out.put_u16(*channels);
            out.put_u16(16); // samplesize
            out.put_u16(0); // pre_defined
            out.put_u16(0); // reserved
            // 16.16 fixed point; rates above 65535 Hz do not fit and are written as 0.
            let rate = if *sample_rate <= 0xffff {
                *sample_rate << 16
            } else {
                0
            };
            out.put_u32(rate);
            write_esds(out, t.track_id, asc)?;
        }
    }
    entry.end(out).map(|_| ())
}

/// Append an MPEG-4 descriptor (tag, expandable length, body).
fn put_descriptor(out: &mut Vec<u8>, tag: u8, body: &[u8]) -> Result<(), Fmp4Error> {
    let len = body.len();
    if len >= 1 << 28 {
        return Err(Fmp4Error::TooLarge("descriptor"));
    }
    out.push(tag);
    let mut groups = Vec::with_capacity(4);
    let mut l = len;
    loop {
        groups.push((l & 0x7f) as u8);
        l >>= 7;
        if l == 0 {
            break;
        }
    }
    for (i, g) in groups.iter().enumerate().rev() {
        out.push(if i == 0 { *g } else { g | 0x80 });
    }
    out.extend_from_slice(body);
    Ok(())
}

fn write_esds(out: &mut impl Output, track_id: u32, asc: &[u8]) -> Result<(), Fmp4Error> {
    let mut dsi = Vec::with_capacity(asc.len() + 2);
    put_descriptor(&mut dsi, 0x05, asc)?;
    let mut dcd_body = Vec::with_capacity(13 + dsi.len());
    dcd_body.push(0x40); // objectTypeIndication: MPEG-4 audio
    dcd_body.push(0x15); // streamType audio (5) << 2 | reserved 1
    dcd_body.extend_from_slice(&[0, 0, 0]); // bufferSizeDB
    dcd_body.put_u32(0); // maxBitrate
    dcd_body.put_u32(0); // avgBitrate
    dcd_body.extend_from_slice(&dsi);
    let mut es_body = Vec::with_capacity(dcd_body.len() + 8);
    es_body.put_u16(u16::try_from(track_id).unwrap_or(0)); // ES_ID
    es_body.push(0); // no stream dependence, URL or OCR
    put_descriptor(&mut es_body, 0x04, &dcd_body)?;
    put_descriptor(&mut es_body, 0x06, &[0x02])?; // SLConfigDescriptor: MP4 predefined
    let mut esds = Vec::with_capacity(es_body.len() + 2);
    put_descriptor(&mut esds, 0x03, &es_body)?;
    let b = BoxStart::begin_full(out, b"esds", 0, 0);
    out.put_slice(&esds);
    b.end(out).map(|_| ())
}

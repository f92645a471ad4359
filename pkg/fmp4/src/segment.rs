//! Media segments: `styp` + `moof` (mfhd, traf/tfhd/tfdt/trun) + `mdat`.

use bytes::BufMut;
use os_av::time::rescale;
use os_av::{AccessUnit, CLOCK_HZ, Codec};
use os_codecs::nal::{annexb_to_length_prefixed_filtered, length_prefixed_size};
use os_codecs::{h264, h265};

use crate::boxes::{BoxStart, Output, patch_u32, write_box};
use crate::error::Fmp4Error;
use crate::init::TrackConfig;

/// `sample_flags` of a sync sample: depends on no other sample.
pub const SAMPLE_FLAGS_SYNC: u32 = 0x0200_0000;
/// `sample_flags` of a non-sync sample: depends on others, `is_non_sync_sample`.
pub const SAMPLE_FLAGS_NON_SYNC: u32 = 0x0101_0000;

const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
const TRUN_DATA_OFFSET: u32 = 0x000001;
const TRUN_SAMPLE_DURATION: u32 = 0x000100;
const TRUN_SAMPLE_SIZE: u32 = 0x000200;
const TRUN_SAMPLE_FLAGS: u32 = 0x000400;
const TRUN_SAMPLE_CTS: u32 = 0x000800;

/// One sample of a track fragment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// Duration in the track timescale.
    pub duration: u32,
    /// Size in bytes of the sample data in `mdat`.
    pub size: u32,
    /// ISO BMFF sample flags ([`SAMPLE_FLAGS_SYNC`] / [`SAMPLE_FLAGS_NON_SYNC`]).
    pub flags: u32,
    /// `pts - dts` in the track timescale.
    pub composition_offset: i32,
}

/// A track fragment with samples and their data already prepared
/// (low-level interface; see [`write_media_segment`] for access units).
#[derive(Debug, Clone, Copy)]
pub struct Fragment<'a> {
    pub track_id: u32,
    /// Decode time of the first sample, in the track timescale.
    pub base_media_decode_time: u64,
    pub samples: &'a [Sample],
    /// Sample data, concatenated in sample order; its length must equal the
    /// sum of the sample sizes.
    pub data: &'a [u8],
}

/// Options of a media segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentOptions {
    /// Start with an `styp` box (needed for separate segment files; leave out
    /// when appending fragments to a single file).
    pub styp: bool,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        Self { styp: true }
    }
}

/// Access units of one track going into one media segment.
#[derive(Debug, Clone, Copy)]
pub struct TrackRun<'a> {
    pub track: &'a TrackConfig,
    /// Units in decode order, timestamps on the 90 kHz clock.
    pub units: &'a [AccessUnit],
    /// Decode timestamp (90 kHz) of the unit following the last one, when
    /// known; gives the exact duration of the last sample.
    pub next_dts: Option<i64>,
}

/// Per-track result of writing a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentInfo {
    pub track_id: u32,
    /// Decode time of the first sample, in the track timescale.
    pub base_media_decode_time: u64,
    /// Sum of sample durations, in the track timescale.
    pub duration: u64,
    pub sample_count: u32,
    /// Whether the first sample is a sync sample.
    pub starts_with_sync: bool,
}

/// What [`write_media_segment`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Bytes appended to the output.
    pub size: usize,
    pub fragments: Vec<FragmentInfo>,
}

fn write_styp(out: &mut impl Output) -> Result<(), Fmp4Error> {
    let mut body = Vec::with_capacity(16);
    body.extend_from_slice(b"msdh");
    body.put_u32(0);
    body.extend_from_slice(b"msdh");
    body.extend_from_slice(b"msix");
    write_box(out, b"styp", &body)
}

/// Write `moof` + `mdat` (preceded by `styp` when asked) for prepared fragments.
/// Returns the number of bytes appended.
pub fn write_fragments(
    out: &mut impl Output,
    sequence_number: u32,
    fragments: &[Fragment<'_>],
    opts: &SegmentOptions,
) -> Result<usize, Fmp4Error> {
    let start = out.position();
    if opts.styp {
        write_styp(out)?;
    }
    let mut total_data = 0u64;
    for f in fragments {
        let sum: u64 = f.samples.iter().map(|s| u64::from(s.size)).sum();
        if sum != f.data.len() as u64 {
            return Err(Fmp4Error::Internal(
                "sample sizes do not match fragment data",
            ));
        }
        total_data += sum;
    }
    let offsets = write_moof(out, sequence_number, fragments, |f| f.samples)?;
    let mdat = BoxStart::begin(out, b"mdat");
    if total_data + 8 > u64::from(u32::MAX) {
        return Err(Fmp4Error::TooLarge("mdat over 4 GiB"));
    }
    let moof_start = offsets.moof_start;
    let mut data_pos = out.position();
    for (f, &patch_at) in fragments.iter().zip(&offsets.data_offset_fields) {
        patch_data_offset(out, patch_at, moof_start, data_pos)?;
        out.put_slice(f.data);
        data_pos = out.position();
    }
    mdat.end(out)?;
    Ok(out.position() - start)
}

fn patch_data_offset(
    out: &mut impl Output,
    field: usize,
    moof_start: usize,
    data_pos: usize,
) -> Result<(), Fmp4Error> {
    let rel = data_pos
        .checked_sub(moof_start)
        .and_then(|r| i32::try_from(r).ok())
        .ok_or(Fmp4Error::TooLarge("data offset"))?;
    patch_u32(out, field, rel as u32)
}

struct MoofOffsets {
    moof_start: usize,
    /// Position of each trun's data_offset field, in fragment order.
    data_offset_fields: Vec<usize>,
}

fn write_moof<'f, F>(
    out: &mut impl Output,
    sequence_number: u32,
    fragments: &'f [Fragment<'_>],
    samples_of: F,
) -> Result<MoofOffsets, Fmp4Error>
where
    F: Fn(&'f Fragment<'_>) -> &'f [Sample],
{
    if fragments.is_empty() {
        return Err(Fmp4Error::Empty);
    }
    let moof = BoxStart::begin(out, b"moof");
    let mfhd = BoxStart::begin_full(out, b"mfhd", 0, 0);
    out.put_u32(sequence_number);
    mfhd.end(out)?;
    let mut fields = Vec::with_capacity(fragments.len());
    for f in fragments {
        let samples = samples_of(f);
        if samples.is_empty() {
            return Err(Fmp4Error::Empty);
        }
        if f.track_id == 0 {
            return Err(Fmp4Error::InvalidTrackId(0));
        }
        let count =
            u32::try_from(samples.len()).map_err(|_| Fmp4Error::TooLarge("sample count"))?;
        let traf = BoxStart::begin(out, b"traf");
        let tfhd = BoxStart::begin_full(out, b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF);
        out.put_u32(f.track_id);
        tfhd.end(out)?;
        let tfdt = BoxStart::begin_full(out, b"tfdt", 1, 0);
        out.put_u64(f.base_media_decode_time);
        tfdt.end(out)?;
        let has_cts = samples.iter().any(|s| s.composition_offset != 0);
        let mut flags =
            TRUN_DATA_OFFSET | TRUN_SAMPLE_DURATION | TRUN_SAMPLE_SIZE | TRUN_SAMPLE_FLAGS;
        if has_cts {
            flags |= TRUN_SAMPLE_CTS;
        }
        // Version 1: signed composition offsets.
        let trun = BoxStart::begin_full(out, b"trun", 1, flags);
        out.put_u32(count);
        fields.push(out.position());
        out.put_u32(0); // data_offset, patched once the moof size is known
        for s in samples {
            out.put_u32(s.duration);
            out.put_u32(s.size);
            out.put_u32(s.flags);
            if has_cts {
                out.put_i32(s.composition_offset);
            }
        }
        trun.end(out)?;
        traf.end(out)?;
    }
    let moof_start = moof.offset();
    moof.end(out)?;
    Ok(MoofOffsets {
        moof_start,
        data_offset_fields: fields,
    })
}

/// Which NAL units stay in a video sample.
fn keep_nal(codec: Codec, in_band_ps: bool) -> impl Fn(&[u8]) -> bool {
    move |nal: &[u8]| {
        let Some(&h) = nal.first() else {
            return false;
        };
        match codec {
            Codec::H264 => {
                let t = h264::nal_type(h);
                t != h264::NAL_AUD && (in_band_ps || !h264::is_parameter_set(nal))
            }
            Codec::H265 => {
                let t = h265::nal_type(h);
                t != h265::NAL_AUD && (in_band_ps || !h265::is_parameter_set(nal))
            }
            _ => true,
        }
    }
}

struct PreparedRun {
    base: u64,
    samples: Vec<Sample>,
    duration: u64,
}

/// Compute samples (durations, sizes, flags, offsets) of one run.
fn prepare_run(run: &TrackRun<'_>) -> Result<PreparedRun, Fmp4Error> {
    let t = run.track;
    let first = run.units.first().ok_or(Fmp4Error::Empty)?;
    let to_ts = |ts: i64| rescale(ts, CLOCK_HZ, t.timescale);
    let base = u64::try_from(to_ts(first.dts))
        .map_err(|_| Fmp4Error::TimestampOutOfRange("negative decode time"))?;
    let is_video = matches!(t.codec, Codec::H264 | Codec::H265);
    let keep = keep_nal(t.codec, t.in_band_parameter_sets);
    let mut samples = Vec::with_capacity(run.units.len());
    let mut prev_duration: Option<u32> = None;
    let mut duration_sum = 0u64;
    for (i, au) in run.units.iter().enumerate() {
        if au.codec != t.codec {
            return Err(Fmp4Error::CodecMismatch {
                unit: au.codec,
                track: t.codec,
            });
        }
        let next = match run.units.get(i + 1) {
            Some(n) => Some(n.dts),
            None => run.next_dts,
        };
        let duration = match next {
            Some(next_dts) => {
                if next_dts < au.dts {
                    return Err(Fmp4Error::NonMonotonicDts {
                        track_id: t.track_id,
                        prev: au.dts,
                        next: next_dts,
                    });
                }
                to_ts(next_dts)
                    .checked_sub(to_ts(au.dts))
                    .and_then(|d| u32::try_from(d).ok())
                    .ok_or(Fmp4Error::TimestampOutOfRange("sample duration"))?
            }
            None => prev_duration.unwrap_or(t.default_sample_duration),
        };
        prev_duration = Some(duration);
        duration_sum += u64::from(duration);
        let size = if is_video {
            length_prefixed_size(&au.payload, &keep)
        } else {
            au.payload.len()
        };
        let size = u32::try_from(size).map_err(|_| Fmp4Error::TooLarge("sample"))?;
        let composition_offset = to_ts(au.pts)
            .checked_sub(to_ts(au.dts))
            .and_then(|c| i32::try_from(c).ok())
            .ok_or(Fmp4Error::TimestampOutOfRange("composition offset"))?;
        let sync = !is_video || au.keyframe;
        samples.push(Sample {
            duration,
            size,
            flags: if sync {
                SAMPLE_FLAGS_SYNC
            } else {
                SAMPLE_FLAGS_NON_SYNC
            },
            composition_offset,
        });
    }
    Ok(PreparedRun {
        base,
        samples,
        duration: duration_sum,
    })
}

/// Write one media segment holding the given access units (one run per track,
/// usually exactly one). Video payloads are converted from Annex-B to 4-byte
/// length-prefixed NAL units, dropping access unit delimiters and, unless the
/// track keeps them in band, parameter sets. Audio payloads are copied as is.
///
/// The sample of a video unit is a sync sample when [`AccessUnit::keyframe`]
/// is set. Durations come from decode-timestamp deltas; the last sample's from
/// [`TrackRun::next_dts`], else the previous sample's, else the track default.
pub fn write_media_segment(
    out: &mut impl Output,
    sequence_number: u32,
    runs: &[TrackRun<'_>],
    opts: &SegmentOptions,
) -> Result<SegmentInfo, Fmp4Error> {
    if runs.is_empty() {
        return Err(Fmp4Error::Empty);
    }
    let prepared = runs
        .iter()
        .map(prepare_run)
        .collect::<Result<Vec<_>, _>>()?;
    let start = out.position();
    if opts.styp {
        write_styp(out)?;
    }
    // moof first (sample tables only), then convert payloads straight into mdat.
    let frags: Vec<Fragment<'_>> = runs
        .iter()
        .zip(&prepared)
        .map(|(r, p)| Fragment {
            track_id: r.track.track_id,
            base_media_decode_time: p.base,
            samples: &p.samples,
            data: &[],
        })
        .collect();
    let total_data: u64 = prepared
        .iter()
        .flat_map(|p| p.samples.iter())
        .map(|s| u64::from(s.size))
        .sum();
    if total_data + 8 > u64::from(u32::MAX) {
        return Err(Fmp4Error::TooLarge("mdat over 4 GiB"));
    }
    let offsets = write_moof(out, sequence_number, &frags, |f| f.samples)?;
    let mdat = BoxStart::begin(out, b"mdat");
    for ((run, p), &field) in runs.iter().zip(&prepared).zip(&offsets.data_offset_fields) {
        let data_pos = out.position();
        patch_data_offset(out, field, offsets.moof_start, data_pos)?;
        let is_video = matches!(run.track.codec, Codec::H264 | Codec::H265);
        let keep = keep_nal(run.track.codec, run.track.in_band_parameter_sets);
        for (au, s) in run.units.iter().zip(&p.samples) {
            let written = if is_video {
                annexb_to_length_prefixed_filtered(&au.payload, 4, out, &keep)?
            } else {
                out.put_slice(&au.payload);
                au.payload.len()
            };
            if written != s.size as usize {
                return Err(Fmp4Error::Internal("sample size changed while writing"));
            }
        }
    }
    mdat.end(out)?;
    let fragments = runs
        .iter()
        .zip(&prepared)
        .map(|(r, p)| FragmentInfo {
            track_id: r.track.track_id,
            base_media_decode_time: p.base,
            duration: p.duration,
            sample_count: p.samples.len() as u32,
            starts_with_sync: p
                .samples
                .first()
                .is_some_and(|s| s.flags == SAMPLE_FLAGS_SYNC),
        })
        .collect();
    Ok(SegmentInfo {
        size: out.position() - start,
        fragments,
    })
}

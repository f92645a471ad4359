//! Minimal ISO BMFF box walker for tests and fuzzing: checks that the writer's
//! output is structurally consistent. Not a general MP4 parser.
#![allow(dead_code)]

/// One box inside a buffer.
#[derive(Debug, Clone, Copy)]
pub struct BoxRef<'a> {
    pub fourcc: [u8; 4],
    /// Offset of the box in the buffer given to [`boxes`].
    pub start: usize,
    pub size: usize,
    /// Bytes after the 8-byte header.
    pub payload: &'a [u8],
}

fn be32(d: &[u8], at: usize) -> Result<u32, String> {
    d.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| format!("short read at {at}"))
}

fn be64(d: &[u8], at: usize) -> Result<u64, String> {
    Ok((u64::from(be32(d, at)?) << 32) | u64::from(be32(d, at + 4)?))
}

/// Split a buffer into consecutive boxes; they must cover it exactly.
pub fn boxes(data: &[u8]) -> Result<Vec<BoxRef<'_>>, String> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let size = be32(data, pos)? as usize;
        if size < 8 || pos + size > data.len() {
            return Err(format!(
                "bad box size {size} at {pos} (buffer {})",
                data.len()
            ));
        }
        let mut fourcc = [0u8; 4];
        fourcc.copy_from_slice(&data[pos + 4..pos + 8]);
        out.push(BoxRef {
            fourcc,
            start: pos,
            size,
            payload: &data[pos + 8..pos + size],
        });
        pos += size;
    }
    Ok(out)
}

/// Find exactly one child box of a type.
pub fn one<'a>(list: &[BoxRef<'a>], fourcc: &[u8; 4]) -> Result<BoxRef<'a>, String> {
    let mut it = list.iter().filter(|b| &b.fourcc == fourcc);
    match (it.next(), it.next()) {
        (Some(b), None) => Ok(*b),
        _ => Err(format!("expected one {}", String::from_utf8_lossy(fourcc))),
    }
}

/// All children of a type.
pub fn all<'a>(list: &[BoxRef<'a>], fourcc: &[u8; 4]) -> Vec<BoxRef<'a>> {
    list.iter()
        .filter(|b| &b.fourcc == fourcc)
        .copied()
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafSummary {
    pub track_id: u32,
    pub base_media_decode_time: u64,
    pub data_offset: i32,
    /// (duration, size, flags, composition offset)
    pub samples: Vec<(u32, u32, u32, i32)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSummary {
    pub sequence_number: u32,
    pub trafs: Vec<TrafSummary>,
    pub mdat_payload: usize,
}

fn parse_traf(traf: &BoxRef<'_>) -> Result<TrafSummary, String> {
    let kids = boxes(traf.payload)?;
    let tfhd = one(&kids, b"tfhd")?;
    let flags = be32(tfhd.payload, 0)? & 0xff_ffff;
    if flags != 0x02_0000 {
        return Err(format!("unexpected tfhd flags {flags:#x}"));
    }
    let track_id = be32(tfhd.payload, 4)?;
    let tfdt = one(&kids, b"tfdt")?;
    let base_media_decode_time = match tfdt.payload.first() {
        Some(1) => be64(tfdt.payload, 4)?,
        Some(0) => u64::from(be32(tfdt.payload, 4)?),
        _ => return Err("bad tfdt version".into()),
    };
    let trun = one(&kids, b"trun")?;
    let vf = be32(trun.payload, 0)?;
    let (version, tf) = (vf >> 24, vf & 0xff_ffff);
    let count = be32(trun.payload, 4)? as usize;
    if tf & 1 == 0 {
        return Err("trun without data offset".into());
    }
    let data_offset = be32(trun.payload, 8)? as i32;
    let mut pos = 12;
    let per_sample = [0x100, 0x200, 0x400, 0x800]
        .iter()
        .filter(|&&f| tf & f != 0)
        .count()
        * 4;
    if trun.payload.len() != pos + count * per_sample {
        return Err(format!("trun size mismatch: {} samples", count));
    }
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let mut field = |flag: u32| -> Result<u32, String> {
            if tf & flag != 0 {
                let v = be32(trun.payload, pos)?;
                pos += 4;
                Ok(v)
            } else {
                Ok(0)
            }
        };
        let d = field(0x100)?;
        let s = field(0x200)?;
        let f = field(0x400)?;
        let c = field(0x800)?;
        // Version 0 offsets are unsigned; the writer only uses small values there.
        let _ = version;
        let c = c as i32;
        samples.push((d, s, f, c));
    }
    Ok(TrafSummary {
        track_id,
        base_media_decode_time,
        data_offset,
        samples,
    })
}

/// Check a media segment (optional styp, one moof, one mdat) and return what
/// it holds. Invariants: every trun's data offset points into the mdat
/// payload, track data are contiguous in traf order, and sample sizes add up
/// to the mdat payload size.
pub fn check_media_segment(data: &[u8]) -> Result<SegmentSummary, String> {
    let top = boxes(data)?;
    let names: Vec<[u8; 4]> = top.iter().map(|b| b.fourcc).collect();
    let expected: &[[u8; 4]] = if names.first() == Some(b"styp") {
        &[*b"styp", *b"moof", *b"mdat"]
    } else {
        &[*b"moof", *b"mdat"]
    };
    if names != expected {
        return Err(format!("unexpected top-level boxes {names:?}"));
    }
    let moof = one(&top, b"moof")?;
    let mdat = one(&top, b"mdat")?;
    let kids = boxes(moof.payload)?;
    let mfhd = one(&kids, b"mfhd")?;
    let sequence_number = be32(mfhd.payload, 4)?;
    let mut trafs = Vec::new();
    let mut expect_offset = (mdat.start + 8 - moof.start) as i64;
    for traf in all(&kids, b"traf") {
        let t = parse_traf(&traf)?;
        if i64::from(t.data_offset) != expect_offset {
            return Err(format!(
                "data offset {} != expected {expect_offset}",
                t.data_offset
            ));
        }
        expect_offset += t.samples.iter().map(|s| i64::from(s.1)).sum::<i64>();
        trafs.push(t);
    }
    if trafs.is_empty() {
        return Err("moof without traf".into());
    }
    let end = (mdat.start + mdat.size - moof.start) as i64;
    if expect_offset != end {
        return Err(format!(
            "sample data ends at {expect_offset}, mdat at {end}"
        ));
    }
    Ok(SegmentSummary {
        sequence_number,
        trafs,
        mdat_payload: mdat.payload.len(),
    })
}

/// Check an init segment (ftyp + moov) and return its track ids and sample
/// entry types.
pub fn check_init(data: &[u8]) -> Result<Vec<(u32, [u8; 4])>, String> {
    let top = boxes(data)?;
    let names: Vec<[u8; 4]> = top.iter().map(|b| b.fourcc).collect();
    if names != [*b"ftyp", *b"moov"] {
        return Err(format!("unexpected top-level boxes {names:?}"));
    }
    let moov = boxes(one(&top, b"moov")?.payload)?;
    one(&moov, b"mvhd")?;
    let trex_ids: Vec<u32> = all(&boxes(one(&moov, b"mvex")?.payload)?, b"trex")
        .iter()
        .map(|t| be32(t.payload, 4))
        .collect::<Result<_, _>>()?;
    let mut tracks = Vec::new();
    for trak in all(&moov, b"trak") {
        let kids = boxes(trak.payload)?;
        let tkhd = one(&kids, b"tkhd")?;
        let id = be32(tkhd.payload, 12)?;
        let mdia = boxes(one(&kids, b"mdia")?.payload)?;
        one(&mdia, b"mdhd")?;
        one(&mdia, b"hdlr")?;
        let minf = boxes(one(&mdia, b"minf")?.payload)?;
        let stbl = boxes(one(&minf, b"stbl")?.payload)?;
        let stsd = one(&stbl, b"stsd")?;
        let entries = boxes(stsd.payload.get(8..).ok_or("short stsd")?)?;
        let entry = entries.first().ok_or("empty stsd")?;
        // The sample entry ends with its configuration box.
        let cfg_at = match &entry.fourcc {
            b"mp4a" => 28,
            _ => 78,
        };
        let cfg = boxes(entry.payload.get(cfg_at..).ok_or("short sample entry")?)?;
        let cfg_name = cfg.first().ok_or("no config box")?.fourcc;
        let ok = matches!(
            (&entry.fourcc, &cfg_name),
            (b"avc1" | b"avc3", b"avcC") | (b"hvc1" | b"hev1", b"hvcC") | (b"mp4a", b"esds")
        );
        if !ok {
            return Err(format!(
                "sample entry {:?} with {:?}",
                entry.fourcc, cfg_name
            ));
        }
        for b in [b"stts", b"stsc", b"stsz", b"stco"] {
            one(&stbl, b)?;
        }
        if !trex_ids.contains(&id) {
            return Err(format!("no trex for track {id}"));
        }
        tracks.push((id, entry.fourcc));
    }
    if tracks.is_empty() {
        return Err("no tracks".into());
    }
    Ok(tracks)
}

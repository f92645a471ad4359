//! Script data tags (`onMetaData`) and the same payload in RTMP data messages
//! (`@setDataFrame`, `onMetaData`, ECMA array).

use bytes::Bytes;

use crate::amf0::{self, Amf0Value};
use crate::audio::AudioCodec;
use crate::error::{Error, Result};
use crate::video::VideoCodec;

/// RTMP publishers wrap metadata in this call; it is stripped by [`ScriptData::parse`].
pub const SET_DATA_FRAME: &str = "@setDataFrame";
/// Name of the metadata script call.
pub const ON_META_DATA: &str = "onMetaData";

/// A decoded script data body: a name and the values that follow it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptData {
    pub name: String,
    pub values: Vec<Amf0Value>,
}

impl ScriptData {
    /// Decodes a script tag body. A leading `@setDataFrame` (RTMP data
    /// message) is removed, so the name is the wrapped call's (`onMetaData`).
    pub fn parse(body: &[u8]) -> Result<ScriptData> {
        let mut values = amf0::decode_all(body)?.into_iter();
        let Some(mut name) = values.next().and_then(into_string) else {
            return Err(Error::ScriptName);
        };
        let mut rest: Vec<Amf0Value> = values.collect();
        let wrapped = match rest.first() {
            Some(inner) if name == SET_DATA_FRAME => inner.as_str().map(str::to_owned),
            _ => None,
        };
        if let Some(inner) = wrapped {
            name = inner;
            rest.remove(0);
        }
        Ok(ScriptData { name, values: rest })
    }

    /// Encodes name and values as a script tag body.
    pub fn to_bytes(&self) -> Result<Bytes> {
        let mut out = Vec::new();
        Amf0Value::String(self.name.clone()).encode(&mut out)?;
        amf0::encode_all(&self.values, &mut out)?;
        Ok(Bytes::from(out))
    }

    /// The metadata, if this is `onMetaData` with an object or ECMA array.
    pub fn metadata(&self) -> Option<Metadata> {
        if self.name != ON_META_DATA {
            return None;
        }
        self.values.first().and_then(Metadata::from_amf0)
    }
}

fn into_string(v: Amf0Value) -> Option<String> {
    match v {
        Amf0Value::String(s) | Amf0Value::LongString(s) => Some(s),
        _ => None,
    }
}

/// The well-known `onMetaData` fields. Absent or mistyped fields are `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    /// Seconds.
    pub duration: Option<f64>,
    pub width: Option<f64>,
    pub height: Option<f64>,
    pub framerate: Option<f64>,
    /// kbit/s.
    pub video_data_rate: Option<f64>,
    /// From `videocodecid`: a legacy id (7, 12...) or a FourCC (string or number).
    pub video_codec: Option<VideoCodec>,
    /// kbit/s.
    pub audio_data_rate: Option<f64>,
    /// From `audiocodecid`: a legacy sound format (10, 2...) or a FourCC.
    pub audio_codec: Option<AudioCodec>,
    pub audio_sample_rate: Option<f64>,
    pub audio_sample_size: Option<f64>,
    pub stereo: Option<bool>,
    pub file_size: Option<f64>,
    pub encoder: Option<String>,
}

fn fourcc_from_number(n: f64) -> Option<[u8; 4]> {
    if n.fract() == 0.0 && (16.0..=f64::from(u32::MAX)).contains(&n) {
        Some((n as u32).to_be_bytes())
    } else {
        None
    }
}

fn fourcc_from_str(s: &str) -> Option<[u8; 4]> {
    s.as_bytes().try_into().ok()
}

fn small_id(n: f64) -> Option<u8> {
    if n.fract() == 0.0 && (0.0..16.0).contains(&n) {
        Some(n as u8)
    } else {
        None
    }
}

impl Metadata {
    /// Reads the fields of an object or ECMA array.
    pub fn from_amf0(value: &Amf0Value) -> Option<Metadata> {
        value.properties()?;
        let num = |k: &str| value.get(k).and_then(Amf0Value::as_f64);
        let video_codec = value.get("videocodecid").and_then(|v| match v {
            Amf0Value::Number(n) => small_id(*n)
                .map(VideoCodec::from_codec_id)
                .or_else(|| fourcc_from_number(*n).map(VideoCodec::from_fourcc)),
            other => other
                .as_str()
                .and_then(fourcc_from_str)
                .map(VideoCodec::from_fourcc),
        });
        let audio_codec = value.get("audiocodecid").and_then(|v| match v {
            Amf0Value::Number(n) => small_id(*n)
                .map(AudioCodec::from_sound_format)
                .or_else(|| fourcc_from_number(*n).map(AudioCodec::from_fourcc)),
            other => other
                .as_str()
                .and_then(fourcc_from_str)
                .map(AudioCodec::from_fourcc),
        });
        Some(Metadata {
            duration: num("duration"),
            width: num("width"),
            height: num("height"),
            framerate: num("framerate"),
            video_data_rate: num("videodatarate"),
            video_codec,
            audio_data_rate: num("audiodatarate"),
            audio_codec,
            audio_sample_rate: num("audiosamplerate"),
            audio_sample_size: num("audiosamplesize"),
            stereo: value.get("stereo").and_then(Amf0Value::as_bool),
            file_size: num("filesize"),
            encoder: value
                .get("encoder")
                .and_then(|v| v.as_str().map(str::to_owned)),
        })
    }

    /// The present fields as an ECMA array. Codecs with a standard legacy id
    /// are written as that number; HEVC and FourCC-only codecs as the FourCC
    /// packed in a number (the Enhanced RTMP convention).
    pub fn to_amf0(&self) -> Amf0Value {
        let mut props: Vec<(String, Amf0Value)> = Vec::new();
        let mut num = |k: &str, v: Option<f64>| {
            if let Some(v) = v {
                props.push((k.to_owned(), Amf0Value::Number(v)));
            }
        };
        num("duration", self.duration);
        num("width", self.width);
        num("height", self.height);
        num("videodatarate", self.video_data_rate);
        num("framerate", self.framerate);
        num(
            "videocodecid",
            self.video_codec.and_then(|c| match (c, c.codec_id()) {
                // HEVC's legacy id 12 is non-standard: prefer its FourCC.
                (VideoCodec::Hevc, _) | (_, None) => {
                    c.fourcc().map(|cc| f64::from(u32::from_be_bytes(cc)))
                }
                (_, Some(id)) => Some(f64::from(id)),
            }),
        );
        num("audiodatarate", self.audio_data_rate);
        num("audiosamplerate", self.audio_sample_rate);
        num("audiosamplesize", self.audio_sample_size);
        num(
            "audiocodecid",
            self.audio_codec.and_then(|c| match c.sound_format() {
                Some(f) => Some(f64::from(f)),
                None => c.fourcc().map(|cc| f64::from(u32::from_be_bytes(cc))),
            }),
        );
        num("filesize", self.file_size);
        if let Some(stereo) = self.stereo {
            props.push(("stereo".to_owned(), Amf0Value::Boolean(stereo)));
        }
        if let Some(encoder) = &self.encoder {
            props.push(("encoder".to_owned(), Amf0Value::String(encoder.clone())));
        }
        Amf0Value::EcmaArray(props)
    }

    /// An `onMetaData` script tag body for these fields.
    pub fn to_script_body(&self) -> Result<Bytes> {
        ScriptData {
            name: ON_META_DATA.to_owned(),
            values: vec![self.to_amf0()],
        }
        .to_bytes()
    }
}

//! AMF0 values: FLV script data and RTMP command / data messages.
//!
//! Decoding never trusts announced counts for allocation and refuses nesting
//! deeper than [`DEFAULT_MAX_DEPTH`] (or a caller-chosen limit).

use bytes::BufMut;

use crate::error::{Error, Result, need};

/// Default nesting limit for objects and arrays.
pub const DEFAULT_MAX_DEPTH: usize = 64;

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const REFERENCE: u8 = 0x07;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0A;
const DATE: u8 = 0x0B;
const LONG_STRING: u8 = 0x0C;
const UNSUPPORTED: u8 = 0x0D;
const XML_DOCUMENT: u8 = 0x0F;
const TYPED_OBJECT: u8 = 0x10;

/// One AMF0 value. Objects and ECMA arrays keep their properties in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    /// UTF-8 string (invalid sequences are replaced when decoding). Encoded as
    /// a long string if longer than 65535 bytes.
    String(String),
    Object(Vec<(String, Amf0Value)>),
    Null,
    Undefined,
    /// Index of an earlier complex value (kept as the raw index).
    Reference(u16),
    EcmaArray(Vec<(String, Amf0Value)>),
    StrictArray(Vec<Amf0Value>),
    /// Milliseconds since the Unix epoch and the (unused, normally 0) time zone field.
    Date {
        millis: f64,
        timezone: i16,
    },
    LongString(String),
    Unsupported,
    XmlDocument(String),
    TypedObject {
        class: String,
        properties: Vec<(String, Amf0Value)>,
    },
}

impl Amf0Value {
    /// A string value.
    pub fn string(s: impl Into<String>) -> Amf0Value {
        Amf0Value::String(s.into())
    }

    /// An object from `(key, value)` pairs.
    pub fn object<K: Into<String>>(props: impl IntoIterator<Item = (K, Amf0Value)>) -> Amf0Value {
        Amf0Value::Object(props.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Amf0Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The text of a String, LongString or XmlDocument.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) | Amf0Value::LongString(s) | Amf0Value::XmlDocument(s) => Some(s),
            _ => None,
        }
    }

    /// The properties of an Object, ECMA array or typed object.
    pub fn properties(&self) -> Option<&[(String, Amf0Value)]> {
        match self {
            Amf0Value::Object(p)
            | Amf0Value::EcmaArray(p)
            | Amf0Value::TypedObject { properties: p, .. } => Some(p),
            _ => None,
        }
    }

    /// The first property named `key` of an Object, ECMA array or typed object.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.properties()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Decodes one value from the front of `input`, advancing it.
    pub fn decode(input: &mut &[u8]) -> Result<Amf0Value> {
        Decoder {
            max_depth: DEFAULT_MAX_DEPTH,
        }
        .value(input, 0)
    }

    /// Encodes this value.
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<()> {
        encode_value(self, out, 0)
    }

    /// Encodes this value into a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }
}

/// Decodes every value in `data` (an RTMP command: name, transaction id,
/// command object, arguments...).
pub fn decode_all(data: &[u8]) -> Result<Vec<Amf0Value>> {
    decode_all_with_depth(data, DEFAULT_MAX_DEPTH)
}

/// [`decode_all`] with a custom nesting limit.
pub fn decode_all_with_depth(mut data: &[u8], max_depth: usize) -> Result<Vec<Amf0Value>> {
    let dec = Decoder { max_depth };
    let mut values = Vec::new();
    while !data.is_empty() {
        values.push(dec.value(&mut data, 0)?);
    }
    Ok(values)
}

/// Encodes a sequence of values back to back.
pub fn encode_all<B: BufMut>(values: &[Amf0Value], out: &mut B) -> Result<()> {
    for v in values {
        v.encode(out)?;
    }
    Ok(())
}

/// An RTMP command message body (AMF0 command, message type 20): name,
/// transaction id, command object (an object, or null), then arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    pub transaction_id: f64,
    pub command_object: Amf0Value,
    pub args: Vec<Amf0Value>,
}

impl Command {
    /// A command with the given name and transaction id, a null command object and no arguments.
    pub fn new(name: impl Into<String>, transaction_id: f64) -> Command {
        Command {
            name: name.into(),
            transaction_id,
            command_object: Amf0Value::Null,
            args: Vec::new(),
        }
    }

    /// Decodes a command body. A missing command object reads as null.
    pub fn parse(body: &[u8]) -> Result<Command> {
        let mut values = decode_all(body)?.into_iter();
        let name = match values.next() {
            Some(Amf0Value::String(s) | Amf0Value::LongString(s)) => s,
            _ => return Err(Error::BadCommand("name is not a string")),
        };
        let Some(Amf0Value::Number(transaction_id)) = values.next() else {
            return Err(Error::BadCommand("transaction id is not a number"));
        };
        let command_object = values.next().unwrap_or(Amf0Value::Null);
        Ok(Command {
            name,
            transaction_id,
            command_object,
            args: values.collect(),
        })
    }

    /// Encodes the command body.
    pub fn encode<B: BufMut>(&self, out: &mut B) -> Result<()> {
        Amf0Value::String(self.name.clone()).encode(out)?;
        Amf0Value::Number(self.transaction_id).encode(out)?;
        self.command_object.encode(out)?;
        encode_all(&self.args, out)
    }

    /// Encodes the command body into a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }
}

struct Decoder {
    max_depth: usize,
}

fn take<'a>(input: &mut &'a [u8], n: usize, what: &'static str) -> Result<&'a [u8]> {
    need(input, n, what)?;
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

fn take_array<const N: usize>(input: &mut &[u8], what: &'static str) -> Result<[u8; N]> {
    let Some((head, tail)) = input.split_first_chunk::<N>() else {
        return Err(Error::Truncated {
            what,
            need: N,
            have: input.len(),
        });
    };
    *input = tail;
    Ok(*head)
}

fn read_utf8(input: &mut &[u8], n: usize, what: &'static str) -> Result<String> {
    Ok(String::from_utf8_lossy(take(input, n, what)?).into_owned())
}

fn short_string(input: &mut &[u8]) -> Result<String> {
    let n = u16::from_be_bytes(take_array(input, "AMF0 string length")?);
    read_utf8(input, usize::from(n), "AMF0 string")
}

fn long_string(input: &mut &[u8]) -> Result<String> {
    let n = u32::from_be_bytes(take_array(input, "AMF0 long string length")?);
    read_utf8(input, n as usize, "AMF0 long string")
}

impl Decoder {
    fn value(&self, input: &mut &[u8], depth: usize) -> Result<Amf0Value> {
        let [marker] = take_array(input, "AMF0 marker")?;
        Ok(match marker {
            NUMBER => Amf0Value::Number(f64::from_be_bytes(take_array(input, "AMF0 number")?)),
            BOOLEAN => {
                let [b] = take_array(input, "AMF0 boolean")?;
                Amf0Value::Boolean(b != 0)
            }
            STRING => Amf0Value::String(short_string(input)?),
            OBJECT => Amf0Value::Object(self.properties(input, depth)?),
            NULL => Amf0Value::Null,
            UNDEFINED => Amf0Value::Undefined,
            REFERENCE => {
                Amf0Value::Reference(u16::from_be_bytes(take_array(input, "AMF0 reference")?))
            }
            ECMA_ARRAY => {
                // The count is advisory; properties run until the object end.
                take_array::<4>(input, "AMF0 ECMA array count")?;
                Amf0Value::EcmaArray(self.properties(input, depth)?)
            }
            STRICT_ARRAY => {
                let n = u32::from_be_bytes(take_array(input, "AMF0 strict array count")?);
                self.check_depth(depth)?;
                // Every element takes at least one byte: cap the reservation.
                let mut items = Vec::with_capacity((n as usize).min(input.len()));
                for _ in 0..n {
                    items.push(self.value(input, depth + 1)?);
                }
                Amf0Value::StrictArray(items)
            }
            DATE => {
                let millis = f64::from_be_bytes(take_array(input, "AMF0 date")?);
                let timezone = i16::from_be_bytes(take_array(input, "AMF0 date time zone")?);
                Amf0Value::Date { millis, timezone }
            }
            LONG_STRING => Amf0Value::LongString(long_string(input)?),
            UNSUPPORTED => Amf0Value::Unsupported,
            XML_DOCUMENT => Amf0Value::XmlDocument(long_string(input)?),
            TYPED_OBJECT => {
                let class = short_string(input)?;
                Amf0Value::TypedObject {
                    class,
                    properties: self.properties(input, depth)?,
                }
            }
            OBJECT_END => return Err(Error::Amf0UnexpectedObjectEnd),
            other => return Err(Error::Amf0Marker(other)),
        })
    }

    fn check_depth(&self, depth: usize) -> Result<()> {
        if depth >= self.max_depth {
            Err(Error::Amf0TooDeep(self.max_depth))
        } else {
            Ok(())
        }
    }

    /// Properties up to and including the `00 00 09` terminator.
    fn properties(&self, input: &mut &[u8], depth: usize) -> Result<Vec<(String, Amf0Value)>> {
        self.check_depth(depth)?;
        let mut props = Vec::new();
        loop {
            let key = short_string(input)?;
            if key.is_empty() && input.first() == Some(&OBJECT_END) {
                *input = input.get(1..).unwrap_or_default();
                return Ok(props);
            }
            let value = self.value(input, depth + 1)?;
            props.push((key, value));
        }
    }
}

fn encode_value<B: BufMut>(v: &Amf0Value, out: &mut B, depth: usize) -> Result<()> {
    match v {
        Amf0Value::Number(n) => {
            out.put_u8(NUMBER);
            out.put_f64(*n);
        }
        Amf0Value::Boolean(b) => {
            out.put_u8(BOOLEAN);
            out.put_u8(u8::from(*b));
        }
        Amf0Value::String(s) => {
            if s.len() > usize::from(u16::MAX) {
                out.put_u8(LONG_STRING);
                put_long_string(out, s)?;
            } else {
                out.put_u8(STRING);
                put_short_string(out, s)?;
            }
        }
        Amf0Value::Object(props) => {
            out.put_u8(OBJECT);
            put_properties(out, props, depth)?;
        }
        Amf0Value::Null => out.put_u8(NULL),
        Amf0Value::Undefined => out.put_u8(UNDEFINED),
        Amf0Value::Reference(r) => {
            out.put_u8(REFERENCE);
            out.put_u16(*r);
        }
        Amf0Value::EcmaArray(props) => {
            out.put_u8(ECMA_ARRAY);
            out.put_u32(len_u32(props.len(), "AMF0 ECMA array count")?);
            put_properties(out, props, depth)?;
        }
        Amf0Value::StrictArray(items) => {
            check_encode_depth(depth)?;
            out.put_u8(STRICT_ARRAY);
            out.put_u32(len_u32(items.len(), "AMF0 strict array count")?);
            for item in items {
                encode_value(item, out, depth + 1)?;
            }
        }
        Amf0Value::Date { millis, timezone } => {
            out.put_u8(DATE);
            out.put_f64(*millis);
            out.put_i16(*timezone);
        }
        Amf0Value::LongString(s) => {
            out.put_u8(LONG_STRING);
            put_long_string(out, s)?;
        }
        Amf0Value::Unsupported => out.put_u8(UNSUPPORTED),
        Amf0Value::XmlDocument(s) => {
            out.put_u8(XML_DOCUMENT);
            put_long_string(out, s)?;
        }
        Amf0Value::TypedObject { class, properties } => {
            out.put_u8(TYPED_OBJECT);
            put_short_string(out, class)?;
            put_properties(out, properties, depth)?;
        }
    }
    Ok(())
}

fn check_encode_depth(depth: usize) -> Result<()> {
    if depth >= DEFAULT_MAX_DEPTH {
        Err(Error::Amf0TooDeep(DEFAULT_MAX_DEPTH))
    } else {
        Ok(())
    }
}

fn len_u32(n: usize, what: &'static str) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::OutOfRange {
        what,
        value: i64::try_from(n).unwrap_or(i64::MAX),
    })
}

fn put_short_string<B: BufMut>(out: &mut B, s: &str) -> Result<()> {
    let n = u16::try_from(s.len()).map_err(|_| Error::OutOfRange {
        what: "AMF0 string length",
        value: i64::try_from(s.len()).unwrap_or(i64::MAX),
    })?;
    out.put_u16(n);
    out.put_slice(s.as_bytes());
    Ok(())
}

fn put_long_string<B: BufMut>(out: &mut B, s: &str) -> Result<()> {
    out.put_u32(len_u32(s.len(), "AMF0 long string length")?);
    out.put_slice(s.as_bytes());
    Ok(())
}

fn put_properties<B: BufMut>(
    out: &mut B,
    props: &[(String, Amf0Value)],
    depth: usize,
) -> Result<()> {
    check_encode_depth(depth)?;
    for (k, v) in props {
        put_short_string(out, k)?;
        encode_value(v, out, depth + 1)?;
    }
    out.put_slice(&[0, 0, OBJECT_END]);
    Ok(())
}

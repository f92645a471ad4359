//! RTSP server building blocks, sans-IO.
//!
//! - [`message`]: RTSP/1.0 requests and responses (parse any chunking;
//!   partial input = need more), interleaved `$` frames, and the headers a
//!   server needs (`Transport`, `Range`, `Session`).
//! - [`sdp`]: the session description of a stream from its codec parameters.
//! - [`rtp`]: RTP packetizers: H.264 (RFC 6184 single NAL + FU-A), H.265
//!   (RFC 7798 single NAL + FU), AAC (RFC 3640 `mpeg4-generic`, AAC-hbr).
//! - [`rtcp`]: sender reports (and a tolerant reader for tests).

pub mod message;
pub mod rtcp;
pub mod rtp;
pub mod sdp;

pub use message::{
    CSeqError, Interleaved, Lower, Message, Method, ParseError, Request, Response, Transport,
    interleaved_header, parse_interleaved, parse_message, parse_response,
};

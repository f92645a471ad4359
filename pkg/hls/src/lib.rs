//! HLS building blocks, sans-IO (no files, no sockets, no clocks of its own).
//!
//! - [`segmenter`]: cuts a chunked MPEG-TS stream into segments that start
//!   at access points with PAT + PMT in front, timed from media timestamps.
//!   Used by the live HLS publisher and by the DVR recorder.
//! - [`playlist`]: the media playlist of a recording (`EVENT` while it
//!   grows, `VOD` with `#EXT-X-ENDLIST` when it is stopped), rendered and
//!   parsed back.
//! - [`timeshift`]: a window of a recording's playlist by wall-clock time,
//!   as a VOD playlist of its own.

pub mod peek;
pub mod playlist;
pub mod segmenter;
pub mod timeshift;

pub use playlist::{MediaPlaylist, PlaylistType, Segment};
pub use segmenter::{Finished, Input, Segmenter};

//! MPEG-TS demuxer, muxer and access-point scanner, sans-IO.

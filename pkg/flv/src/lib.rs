//! FLV tags and AMF0 values, including Enhanced RTMP FourCC video, sans-IO.

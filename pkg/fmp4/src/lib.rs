//! Fragmented MP4 (CMAF) writer: init and media segments.

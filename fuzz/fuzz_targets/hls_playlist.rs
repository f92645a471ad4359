//! Recording playlist parser and timeshift windows on arbitrary text: never
//! panics; a parsed playlist renders and parses back to the same segments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use os_hls::MediaPlaylist;
use os_hls::timeshift::{Window, timeshift};

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let pl = MediaPlaylist::parse(&text);
    let again = MediaPlaylist::parse(&pl.render());
    assert_eq!(again.segments.len(), pl.segments.len());
    // The first line of the input, split on '&', as query parameters.
    let mut from = None;
    let mut offset = None;
    let mut duration = None;
    for kv in text.lines().next().unwrap_or_default().split('&') {
        match kv.split_once('=') {
            Some(("from", v)) => from = Some(v),
            Some(("offset_sec", v)) => offset = Some(v),
            Some(("duration", v)) => duration = Some(v),
            _ => {}
        }
    }
    if let Ok(w) = Window::from_query(from, offset, duration)
        && let Ok(out) = timeshift(&pl, &w)
    {
        assert!(!out.segments.is_empty());
        assert!(out.segments.len() <= pl.segments.len());
    }
});

//! RTSP request parsing: the server's reader on arbitrary bytes, whole and
//! split at every chunk boundary the input selects (partial input must be
//! "need more", never an error), plus the header parsers it feeds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use os_rtsp::{Message, Transport, parse_message, parse_response};

fuzz_target!(|input: &[u8]| {
    let Some((&split, data)) = input.split_first() else {
        return;
    };
    let _ = parse_response(data);
    // Consume the whole input message by message, as the server does.
    let mut rest = data;
    let mut messages = 0usize;
    while let Ok(Some((msg, used))) = parse_message(rest) {
        assert!(used > 0 && used <= rest.len());
        // Any strict prefix of a complete message is incomplete.
        for cut in [used - 1, used / 2, usize::from(split).min(used - 1)] {
            assert_eq!(parse_message(&rest[..cut]), Ok(None), "prefix {cut} of {used}");
        }
        if let Message::Request(req) = &msg {
            let _ = req.cseq();
            let _ = req.session();
            if let Some(t) = req.header("Transport") {
                for spec in Transport::parse_list(t) {
                    assert!(!spec.profile.is_empty());
                }
            }
            let again = req.to_bytes();
            // What the serializer writes parses back to the same request.
            if let Ok(Some((Message::Request(back), n))) = parse_message(&again) {
                assert_eq!(n, again.len());
                assert_eq!(back.method, req.method);
                assert_eq!(back.body, req.body);
            }
        }
        rest = &rest[used..];
        messages += 1;
    }
    assert!(messages <= data.len());
});

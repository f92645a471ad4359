//! open-streamer application wiring (under construction).

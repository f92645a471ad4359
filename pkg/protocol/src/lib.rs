//! Input URL detection (under construction).

//! Domain model (under construction).

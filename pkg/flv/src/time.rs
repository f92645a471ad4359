//! FLV / RTMP millisecond timestamps ↔ the 90 kHz access-unit clock.

use os_av::time::rescale;

/// Milliseconds per second: the FLV / RTMP timestamp clock.
pub const FLV_CLOCK_HZ: u32 = 1000;

/// Milliseconds → 90 kHz ticks.
pub fn ms_to_ticks(ms: i64) -> i64 {
    rescale(ms, FLV_CLOCK_HZ, os_av::CLOCK_HZ)
}

/// 90 kHz ticks → milliseconds (rounded toward negative infinity).
pub fn ticks_to_ms(ticks: i64) -> i64 {
    rescale(ticks, os_av::CLOCK_HZ, FLV_CLOCK_HZ)
}

/// The 32-bit tag timestamp for a decode time in 90 kHz ticks (wraps like RTMP
/// timestamps do, every 2^32 ms ≈ 49.7 days).
pub fn tag_timestamp(dts_ticks: i64) -> u32 {
    ticks_to_ms(dts_ticks).rem_euclid(1 << 32) as u32
}

/// Composition time offset in ms for a frame: `ms(pts) - ms(dts)`, so that
/// `tag timestamp + composition time` is exactly `ms(pts)`. Clamped to the
/// signed 24-bit field.
pub fn composition_time_ms(pts_ticks: i64, dts_ticks: i64) -> i32 {
    let cts = ticks_to_ms(pts_ticks).saturating_sub(ticks_to_ms(dts_ticks));
    cts.clamp(-0x80_0000, 0x7F_FFFF) as i32
}

/// Turns 32-bit millisecond timestamps into a continuous `i64` timeline,
/// tolerating the 2^32 wrap and small backward steps (audio/video interleave).
#[derive(Debug, Clone)]
pub struct MsUnwrapper(os_av::time::Unwrapper);

impl Default for MsUnwrapper {
    fn default() -> Self {
        Self(os_av::time::Unwrapper::with_bits(32))
    }
}

impl MsUnwrapper {
    pub fn new() -> Self {
        Self::default()
    }

    /// Places `ms` in the 2^32 window closest to the previous value.
    pub fn unwrap(&mut self, ms: u32) -> i64 {
        self.0.unwrap(u64::from(ms))
    }

    pub fn reset(&mut self) {
        self.0.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(ms_to_ticks(40), 3600);
        assert_eq!(ticks_to_ms(3600), 40);
        assert_eq!(ticks_to_ms(-1), -1);
        assert_eq!(tag_timestamp(-90), u32::MAX);
        assert_eq!(tag_timestamp(ms_to_ticks(16_777_216)), 16_777_216);
        // pts 0.0833 s, dts 0.04 s: 83 - 40
        assert_eq!(composition_time_ms(7500, 3600), 43);
        assert_eq!(composition_time_ms(i64::MAX, 0), 0x7F_FFFF);
    }

    #[test]
    fn unwraps_32_bit_wrap() {
        let mut u = MsUnwrapper::new();
        assert_eq!(u.unwrap(u32::MAX - 10), i64::from(u32::MAX) - 10);
        assert_eq!(u.unwrap(5), (1i64 << 32) + 5);
        assert_eq!(u.unwrap(1), (1i64 << 32) + 1);
    }
}

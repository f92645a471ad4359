//! Timestamp helpers: clock conversion, 33-bit unwrapping and timeline rebasing.
//!
//! MPEG-TS carries PTS/DTS as 33-bit counters on a 90 kHz clock; they wrap
//! every 26.5 hours. Everything downstream of a demuxer works on unwrapped
//! `i64` ticks so that ordering and differences are plain arithmetic.

/// Number of distinct values of a 33-bit timestamp.
pub const WRAP_33: i64 = 1 << 33;

/// Convert `value` ticks of a `from` Hz clock to a `to` Hz clock, rounding
/// toward negative infinity. Uses 128-bit intermediates, so it never overflows.
pub fn rescale(value: i64, from: u32, to: u32) -> i64 {
    if from == to || from == 0 {
        return value;
    }
    let num = i128::from(value) * i128::from(to);
    num.div_euclid(i128::from(from)) as i64
}

/// Turns a sequence of wrapping timestamps (33-bit MPEG PTS/DTS by default,
/// or any other width such as FLV's 32-bit milliseconds) into a
/// monotonic-ish `i64` timeline.
///
/// Each new raw value is placed in the wrap window closest to the previous
/// unwrapped value, so both forward wraps and small backward steps (B-frame
/// reordering, audio/video interleave) are handled.
#[derive(Debug, Clone)]
pub struct Unwrapper {
    /// Number of distinct raw values (`1 << bits`).
    wrap: i64,
    last: Option<i64>,
}

impl Default for Unwrapper {
    fn default() -> Self {
        Self::with_bits(33)
    }
}

impl Unwrapper {
    /// An unwrapper for 33-bit MPEG timestamps.
    pub fn new() -> Self {
        Self::default()
    }

    /// An unwrapper for `bits`-wide counters (clamped to 1..=62).
    pub fn with_bits(bits: u32) -> Self {
        Self {
            wrap: 1i64 << bits.clamp(1, 62),
            last: None,
        }
    }

    /// Unwrap one raw timestamp (masked to the counter width).
    pub fn unwrap(&mut self, raw: u64) -> i64 {
        let raw = (raw & (self.wrap as u64 - 1)) as i64;
        let wrap = self.wrap;
        let value = match self.last {
            None => raw,
            Some(last) => {
                let base = last - last.rem_euclid(wrap);
                // Pick among the candidate windows the value nearest `last`.
                [base - wrap + raw, base + raw, base + wrap + raw]
                    .into_iter()
                    .min_by_key(|c| (c - last).abs())
                    .unwrap_or(raw)
            }
        };
        self.last = Some(value);
        value
    }

    /// Forget the history (after a source change).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

/// Keeps an output timeline continuous when the input timeline jumps
/// (input failover, encoder restart, wrap in a source that does not unwrap).
///
/// Input timestamps are shifted by an offset. When [`Rebaser::rebase`] sees a
/// jump larger than `max_gap` (or is told via [`Rebaser::discontinuity`]), it
/// recomputes the offset so that the next output timestamp follows the last
/// one by `step` ticks.
#[derive(Debug, Clone)]
pub struct Rebaser {
    offset: i64,
    last_in: Option<i64>,
    last_out: Option<i64>,
    max_gap: i64,
    step: i64,
    forced: bool,
}

impl Rebaser {
    /// `max_gap`: largest forward/backward jump (ticks) accepted as continuous.
    /// `step`: spacing inserted at a splice point (e.g. one frame duration).
    pub fn new(max_gap: i64, step: i64) -> Self {
        Self {
            offset: 0,
            last_in: None,
            last_out: None,
            max_gap,
            step,
            forced: false,
        }
    }

    /// Force a splice at the next timestamp, whatever its value.
    pub fn discontinuity(&mut self) {
        self.forced = true;
    }

    /// Current offset added to input timestamps.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Map one input decode timestamp to the output timeline.
    pub fn rebase(&mut self, ts: i64) -> i64 {
        if let (Some(last_in), Some(last_out)) = (self.last_in, self.last_out) {
            let jump = ts - last_in;
            if self.forced || jump > self.max_gap || jump < -self.max_gap {
                self.offset = last_out + self.step - ts;
            }
        }
        self.forced = false;
        let out = ts + self.offset;
        self.last_in = Some(ts);
        self.last_out = Some(out);
        out
    }

    /// Map a timestamp of the same unit as the last [`Rebaser::rebase`] call
    /// (e.g. the PTS that goes with a DTS) without moving the splice state.
    pub fn apply(&self, ts: i64) -> i64 {
        ts + self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_between_clocks() {
        assert_eq!(rescale(90_000, 90_000, 1000), 1000);
        assert_eq!(rescale(1000, 1000, 90_000), 90_000);
        assert_eq!(rescale(1024, 48_000, 90_000), 1920);
        assert_eq!(rescale(-1, 90_000, 1000), -1);
        assert_eq!(rescale(i64::MAX / 2, 90_000, 90_000), i64::MAX / 2);
    }

    #[test]
    fn unwrap_forward_wrap() {
        let mut u = Unwrapper::new();
        let near_end = WRAP_33 as u64 - 3000;
        assert_eq!(u.unwrap(near_end), WRAP_33 - 3000);
        assert_eq!(u.unwrap(0), WRAP_33);
        assert_eq!(u.unwrap(3000), WRAP_33 + 3000);
    }

    #[test]
    fn unwrap_small_backward_step_across_wrap() {
        let mut u = Unwrapper::new();
        assert_eq!(u.unwrap(1000), 1000);
        // A B-frame PTS slightly before zero is just behind, not 26 h ahead.
        assert_eq!(u.unwrap(WRAP_33 as u64 - 500), -500);
        assert_eq!(u.unwrap(4000), 4000);
    }

    #[test]
    fn unwrap_other_widths() {
        let mut u = Unwrapper::with_bits(32);
        assert_eq!(u.unwrap(u64::from(u32::MAX) - 10), i64::from(u32::MAX) - 10);
        assert_eq!(u.unwrap(5), (1i64 << 32) + 5);
    }

    #[test]
    fn unwrap_masks_to_33_bits() {
        let mut u = Unwrapper::new();
        assert_eq!(u.unwrap((1u64 << 40) | 5), 5);
    }

    #[test]
    fn rebaser_keeps_timeline_continuous_across_jump() {
        let mut r = Rebaser::new(90_000, 3600);
        assert_eq!(r.rebase(1_000_000), 1_000_000);
        assert_eq!(r.rebase(1_003_600), 1_003_600);
        // New source starts near zero: the output continues one step later.
        assert_eq!(r.rebase(0), 1_007_200);
        assert_eq!(r.rebase(3600), 1_010_800);
        assert_eq!(r.apply(7200), 1_014_400);
    }

    #[test]
    fn rebaser_forced_splice() {
        let mut r = Rebaser::new(90_000, 3600);
        r.rebase(0);
        r.rebase(3600);
        r.discontinuity();
        // Small jump, but forced: spliced one step after the last output.
        assert_eq!(r.rebase(10_000), 7200);
    }
}

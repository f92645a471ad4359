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

/// Turns a sequence of 33-bit timestamps into a monotonic-ish `i64` timeline.
///
/// Each new raw value is placed in the 2^33 window closest to the previous
/// unwrapped value, so both forward wraps and small backward steps (B-frame
/// reordering, audio/video interleave) are handled.
#[derive(Debug, Clone, Default)]
pub struct Unwrapper {
    last: Option<i64>,
}

impl Unwrapper {
    pub fn new() -> Self {
        Self::default()
    }

    /// Unwrap one raw 33-bit timestamp (`raw` is masked to 33 bits).
    pub fn unwrap(&mut self, raw: u64) -> i64 {
        let raw = (raw & (WRAP_33 as u64 - 1)) as i64;
        let value = match self.last {
            None => raw,
            Some(last) => {
                let base = last - last.rem_euclid(WRAP_33);
                // Pick among the candidate windows the value nearest `last`.
                [base - WRAP_33 + raw, base + raw, base + WRAP_33 + raw]
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

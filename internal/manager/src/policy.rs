//! Which input should feed the stream: a pure function of the inputs'
//! states, so every rule is unit-tested without media or clocks.

use std::time::{Duration, Instant};

/// Why an input was degraded or a switch happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// First input chosen after the stream started.
    Initial,
    /// No packet for `input_packet_timeout`.
    Timeout,
    /// The input reported an error.
    Error,
    /// Never delivered within its `net.timeout_sec`.
    NeverConnected,
    /// Video stopped while audio continued.
    VideoLost,
    /// Audio stopped while video continued.
    AudioLost,
    /// A finite source ended or the input gave up.
    Ended,
    /// Back to a recovered better input.
    Failback,
    /// Chosen through the API.
    Manual,
    /// The active input was removed from the config.
    InputRemoved,
    /// The active input's config changed.
    InputChanged,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Initial => "initial",
            Reason::Timeout => "timeout",
            Reason::Error => "error",
            Reason::NeverConnected => "never_connected",
            Reason::VideoLost => "video_lost",
            Reason::AudioLost => "audio_lost",
            Reason::Ended => "ended",
            Reason::Failback => "failback",
            Reason::Manual => "manual",
            Reason::InputRemoved => "input_removed",
            Reason::InputChanged => "input_changed",
        }
    }
}

/// Where an input stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Not running.
    Stopped,
    /// Started at `since`; nothing usable yet.
    Connecting {
        since: Instant,
    },
    /// Delivering since `since`.
    Healthy {
        since: Instant,
    },
    Degraded {
        reason: Reason,
        since: Instant,
    },
}

/// One input as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct View {
    pub priority: u32,
    pub state: State,
    /// Not running, degraded, and its retry time has come.
    pub restartable: bool,
}

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Keep the active input (or keep waiting).
    Stay,
    /// Switch to `to`: at once (from its latest keyframe), or at its next
    /// keyframe while the active input keeps feeding (`at_next_keyframe`).
    Switch {
        to: u32,
        reason: Reason,
        at_next_keyframe: bool,
    },
    /// Start this (cold) input and wait for it.
    Start(u32),
}

/// Decide. `views` sorted by priority (best first); `active` feeds the
/// stream now; `lost` says why the active one is no longer usable.
pub(crate) fn decide(
    views: &[View],
    active: Option<u32>,
    lost: Option<Reason>,
    manual: Option<u32>,
    now: Instant,
    failback_after: Duration,
) -> Decision {
    let active_ok = active.is_some_and(|a| {
        views
            .iter()
            .any(|v| v.priority == a && matches!(v.state, State::Healthy { .. }))
    });
    if active_ok && manual.is_some() && manual == active {
        return Decision::Stay;
    }
    for v in views {
        if active_ok && Some(v.priority) == active {
            return Decision::Stay;
        }
        match v.state {
            State::Healthy { since } => {
                if !active_ok {
                    return Decision::Switch {
                        to: v.priority,
                        reason: if active.is_none() && lost.is_none() {
                            Reason::Initial
                        } else {
                            lost.unwrap_or(Reason::Error)
                        },
                        at_next_keyframe: false,
                    };
                }
                // A better input than the healthy active one.
                if now.saturating_duration_since(since) >= failback_after {
                    return Decision::Switch {
                        to: v.priority,
                        reason: Reason::Failback,
                        at_next_keyframe: true,
                    };
                }
            }
            // Give a better input its chance before settling for a worse one.
            State::Connecting { .. } if !active_ok => return Decision::Stay,
            State::Stopped if !active_ok => return Decision::Start(v.priority),
            _ => {}
        }
    }
    if !active_ok && let Some(v) = views.iter().find(|v| v.restartable) {
        return Decision::Start(v.priority);
    }
    Decision::Stay
}

#[cfg(test)]
mod tests {
    use super::*;

    const FB: Duration = Duration::from_secs(10);

    fn v(priority: u32, state: State) -> View {
        View {
            priority,
            state,
            restartable: false,
        }
    }

    fn healthy(t: Instant) -> State {
        State::Healthy { since: t }
    }

    fn degraded(reason: Reason, t: Instant) -> State {
        State::Degraded { reason, since: t }
    }

    #[test]
    fn start_waits_for_a_connecting_primary_then_takes_it() {
        let t = Instant::now();
        let views = [v(0, State::Connecting { since: t }), v(1, healthy(t))];
        assert_eq!(decide(&views, None, None, None, t, FB), Decision::Stay);
        let views = [v(0, healthy(t)), v(1, healthy(t))];
        assert_eq!(
            decide(&views, None, None, None, t, FB),
            Decision::Switch {
                to: 0,
                reason: Reason::Initial,
                at_next_keyframe: false
            }
        );
    }

    #[test]
    fn primary_that_never_connects_gives_way() {
        let t = Instant::now();
        let views = [v(0, degraded(Reason::NeverConnected, t)), v(1, healthy(t))];
        assert_eq!(
            decide(&views, None, None, None, t, FB),
            Decision::Switch {
                to: 1,
                reason: Reason::Initial,
                at_next_keyframe: false
            }
        );
    }

    #[test]
    fn failover_to_hot_backup_or_start_cold_one() {
        let t = Instant::now();
        let views = [v(0, degraded(Reason::Timeout, t)), v(1, healthy(t))];
        assert_eq!(
            decide(&views, Some(0), Some(Reason::Timeout), None, t, FB),
            Decision::Switch {
                to: 1,
                reason: Reason::Timeout,
                at_next_keyframe: false
            }
        );
        let views = [
            v(0, degraded(Reason::Error, t)),
            v(1, State::Stopped),
            v(2, healthy(t)),
        ];
        // The better cold backup is started first ...
        assert_eq!(
            decide(&views, Some(0), Some(Reason::Error), None, t, FB),
            Decision::Start(1)
        );
        // ... and waited for while it connects.
        let views = [
            v(0, degraded(Reason::Error, t)),
            v(1, State::Connecting { since: t }),
            v(2, healthy(t)),
        ];
        assert_eq!(
            decide(&views, Some(0), Some(Reason::Error), None, t, FB),
            Decision::Stay
        );
    }

    #[test]
    fn failback_after_being_healthy_long_enough_on_a_keyframe() {
        let t = Instant::now();
        let views = [v(0, healthy(t)), v(1, healthy(t))];
        assert_eq!(decide(&views, Some(1), None, None, t, FB), Decision::Stay);
        assert_eq!(
            decide(&views, Some(1), None, None, t + FB, FB),
            Decision::Switch {
                to: 0,
                reason: Reason::Failback,
                at_next_keyframe: true
            }
        );
        // Not while a manual choice holds.
        assert_eq!(
            decide(&views, Some(1), None, Some(1), t + FB, FB),
            Decision::Stay
        );
    }

    #[test]
    fn healthy_active_does_not_start_cold_backups() {
        let t = Instant::now();
        let views = [v(0, healthy(t)), v(1, State::Stopped)];
        assert_eq!(decide(&views, Some(0), None, None, t, FB), Decision::Stay);
    }

    #[test]
    fn exhausted_inputs_are_restarted_when_due() {
        let t = Instant::now();
        let mut views = [
            v(0, degraded(Reason::Ended, t)),
            v(1, degraded(Reason::Ended, t)),
        ];
        assert_eq!(
            decide(&views, Some(0), Some(Reason::Ended), None, t, FB),
            Decision::Stay
        );
        views[1].restartable = true;
        assert_eq!(
            decide(&views, Some(0), Some(Reason::Ended), None, t, FB),
            Decision::Start(1)
        );
    }

    #[test]
    fn removed_active_switches_with_that_reason() {
        let t = Instant::now();
        let views = [v(1, healthy(t))];
        assert_eq!(
            decide(&views, Some(0), Some(Reason::InputRemoved), None, t, FB),
            Decision::Switch {
                to: 1,
                reason: Reason::InputRemoved,
                at_next_keyframe: false
            }
        );
    }
}

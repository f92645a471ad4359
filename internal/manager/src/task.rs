//! The manager task of one stream: judges health on a tick, switches,
//! and forwards the active input's staging buffer into the stream buffer.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use os_domain::{Input, Standby};
use os_events::{EventBus, EventType};
use os_hub::{Buffer, Item, Reader};
use os_mpegts::Splicer;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::monitor::{self, Monitor, ms_since};
use crate::policy::{Decision, Reason, State, View, decide};
use crate::{
    ActivateError, Command, Health, InputHealth, InputRunner, ManagerConfig, RunningInput, Shared,
    Switch,
};

/// A stopped (ended) input may be started again after this long when no
/// input is usable.
const RETRY_AFTER: Duration = Duration::from_secs(3);

pub(crate) struct Setup {
    pub code: String,
    pub inputs: Vec<Input>,
    pub out: Arc<Buffer>,
    pub runner: Arc<dyn InputRunner>,
    pub events: Arc<EventBus>,
    pub config: ManagerConfig,
    pub shared: Arc<Mutex<Shared>>,
    pub commands: mpsc::UnboundedReceiver<Command>,
    pub cancel: CancellationToken,
}

/// A health change found by [`Task::evaluate`]: degraded with a reason and
/// detail, or (None) healthy again.
type Change = Option<(Reason, Option<String>)>;

struct Run {
    input: Box<dyn RunningInput>,
    monitor: Arc<Monitor>,
    /// The input's own sampler task; `None` while the manager forwards this
    /// input and records it itself.
    sampler: Option<CancellationToken>,
    errors_seen: u64,
}

impl Run {
    fn stop_sampler(&mut self) {
        if let Some(token) = self.sampler.take() {
            token.cancel();
        }
    }
}

/// Start the health sampler of an input the manager does not forward.
fn spawn_sampler(
    staging: &Arc<Buffer>,
    monitor: &Arc<Monitor>,
    epoch: Instant,
) -> CancellationToken {
    let token = CancellationToken::new();
    tokio::spawn(monitor::run(
        staging.clone(),
        monitor.clone(),
        epoch,
        token.clone(),
    ));
    token
}

struct Slot {
    input: Input,
    standby: Standby,
    staging: Arc<Buffer>,
    run: Option<Run>,
    state: State,
    /// Access points counted when it was degraded: recovery needs a new one.
    ap_mark: u64,
    retry_at: Option<Instant>,
    /// Last error text (for events and the report).
    detail: Option<String>,
}

/// A switch waiting for the target's next keyframe.
struct PendingSwitch {
    to: u32,
    reason: Reason,
    reader: Reader,
    /// First sequence number that counts as "next".
    from_seq: u64,
}

struct Task {
    code: String,
    out: Arc<Buffer>,
    runner: Arc<dyn InputRunner>,
    events: Arc<EventBus>,
    config: ManagerConfig,
    shared: Arc<Mutex<Shared>>,
    epoch: Instant,
    slots: BTreeMap<u32, Slot>,
    active: Option<u32>,
    /// Why the active input stopped being usable (for the next switch).
    lost: Option<Reason>,
    reader: Option<Reader>,
    pending: Option<PendingSwitch>,
    manual: Option<u32>,
    /// Manual switches to a cold input, answered once it is up (or not).
    manual_waiting: Vec<(u32, oneshot::Sender<Result<(), ActivateError>>)>,
    splicer: Splicer,
    /// Health scan of the forwarded input (its sampler task is stopped).
    scan: monitor::Scan,
    /// Something was written to the stream already.
    wrote: bool,
}

pub(crate) async fn run(setup: Setup) {
    let Setup {
        code,
        inputs,
        out,
        runner,
        events,
        config,
        shared,
        mut commands,
        cancel,
    } = setup;
    let tick_every =
        (config.packet_timeout / 5).clamp(Duration::from_millis(20), Duration::from_millis(200));
    let mut t = Task {
        code,
        out,
        runner,
        events,
        config,
        shared,
        epoch: Instant::now(),
        slots: BTreeMap::new(),
        active: None,
        lost: None,
        reader: None,
        pending: None,
        manual: None,
        manual_waiting: Vec::new(),
        splicer: Splicer::new(),
        scan: monitor::Scan::default(),
        wrote: false,
    };
    t.update(inputs);
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            cmd = commands.recv() => match cmd {
                Some(Command::Update(inputs)) => t.update(inputs),
                Some(Command::Activate(p, reply)) => t.activate(p, reply),
                None => break,
            },
            item = recv(t.reader.as_mut()) => {
                if !t.forward(item) {
                    break;
                }
            }
            item = recv(t.pending.as_mut().map(|p| &mut p.reader)) => t.pending_item(item),
            _ = tick.tick() => t.evaluate(),
        }
    }
    for slot in t.slots.values_mut() {
        stop_run(slot);
    }
    for (_, reply) in t.manual_waiting.drain(..) {
        let _ = reply.send(Err(ActivateError::Stopped));
    }
}

async fn recv(reader: Option<&mut Reader>) -> Result<Item, os_hub::Closed> {
    match reader {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

fn stop_run(slot: &mut Slot) {
    if let Some(mut run) = slot.run.take() {
        run.input.stop();
        run.stop_sampler();
    }
}

impl Task {
    fn now_ms(&self) -> u64 {
        ms_since(self.epoch)
    }

    fn standby_of(&self, input: &Input) -> Standby {
        input.standby.unwrap_or(self.config.default_standby)
    }

    /// Apply a new input list, matched by priority.
    fn update(&mut self, inputs: Vec<Input>) {
        let mut next: BTreeMap<u32, Input> = inputs.into_iter().map(|i| (i.priority, i)).collect();
        let old: Vec<u32> = self.slots.keys().copied().collect();
        for p in old {
            match next.remove(&p) {
                Some(input) if self.slots.get(&p).is_some_and(|s| s.input == input) => {}
                Some(input) => {
                    tracing::info!(stream = %self.code, input = p, "input changed: restarting it");
                    if let Some(mut slot) = self.slots.remove(&p) {
                        stop_run(&mut slot);
                    }
                    self.add_slot(input);
                    if self.active == Some(p) {
                        self.drop_active(Reason::InputChanged);
                    }
                }
                None => {
                    tracing::info!(stream = %self.code, input = p, "input removed");
                    if let Some(mut slot) = self.slots.remove(&p) {
                        stop_run(&mut slot);
                    }
                    if self.active == Some(p) {
                        self.drop_active(Reason::InputRemoved);
                    }
                    if self.manual == Some(p) {
                        self.manual = None;
                    }
                }
            }
        }
        for (_, input) in next {
            tracing::info!(stream = %self.code, input = input.priority, "input added");
            self.add_slot(input);
        }
        // Start what must run: the best input, and every hot one.
        let best = self.slots.keys().next().copied();
        let to_start: Vec<u32> = self
            .slots
            .iter()
            .filter(|(p, s)| {
                s.run.is_none()
                    && s.state == State::Stopped
                    && (Some(**p) == best
                        || s.standby == Standby::Hot
                        || self.active.is_some_and(|a| **p < a))
            })
            .map(|(p, _)| *p)
            .collect();
        for p in to_start {
            self.start(p);
        }
        self.evaluate();
    }

    fn add_slot(&mut self, input: Input) {
        let p = input.priority;
        let staging = Arc::new(Buffer::new(
            format!("$in${}${p}", self.code),
            self.config.staging_capacity,
        ));
        let standby = self.standby_of(&input);
        self.slots.insert(
            p,
            Slot {
                input,
                standby,
                staging,
                run: None,
                state: State::Stopped,
                ap_mark: 0,
                retry_at: None,
                detail: None,
            },
        );
    }

    /// The active input is gone (removed/changed): stop forwarding it.
    fn drop_active(&mut self, reason: Reason) {
        self.reader = None;
        self.lost = Some(reason);
        if let Some(p) = self.active {
            self.resume_sampler(p);
        }
    }

    /// Input `p` is no longer forwarded: its own sampler takes over.
    fn resume_sampler(&mut self, p: u32) {
        let epoch = self.epoch;
        if let Some(slot) = self.slots.get_mut(&p)
            && let Some(run) = &mut slot.run
            && run.sampler.is_none()
        {
            run.sampler = Some(spawn_sampler(&slot.staging, &run.monitor, epoch));
        }
    }

    /// Record a forwarded chunk of the active input in its health figures.
    fn observe(&mut self, chunk: &os_hub::Chunk) {
        let Some(run) = self
            .active
            .and_then(|p| self.slots.get(&p))
            .and_then(|s| s.run.as_ref())
        else {
            return;
        };
        if run.sampler.is_none() {
            monitor::record(&run.monitor, &mut self.scan, chunk, ms_since(self.epoch));
        }
    }

    fn start(&mut self, p: u32) {
        let Some(slot) = self.slots.get_mut(&p) else {
            return;
        };
        if slot.run.is_some() {
            return;
        }
        let monitor = Arc::new(Monitor::default());
        // The input being forwarded (restarted in place) is recorded by the
        // manager; any other has its own sampler.
        let forwarded = self.active == Some(p) && self.reader.is_some();
        let sampler = (!forwarded).then(|| spawn_sampler(&slot.staging, &monitor, self.epoch));
        let input = self.runner.start(&slot.input, slot.staging.clone());
        slot.run = Some(Run {
            input,
            monitor,
            sampler,
            errors_seen: 0,
        });
        slot.state = State::Connecting {
            since: Instant::now(),
        };
        slot.ap_mark = 0;
        slot.retry_at = None;
        tracing::debug!(stream = %self.code, input = p, standby = ?slot.standby, "input started");
    }

    fn degrade(&mut self, p: u32, reason: Reason, detail: Option<String>) {
        let code = self.code.clone();
        let Some(slot) = self.slots.get_mut(&p) else {
            return;
        };
        slot.state = State::Degraded {
            reason,
            since: Instant::now(),
        };
        slot.ap_mark = slot
            .run
            .as_ref()
            .map_or(0, |r| r.monitor.access_points.load(Ordering::Relaxed));
        slot.detail = detail.clone();
        tracing::warn!(
            stream = %code, input = p, reason = reason.as_str(),
            detail = detail.as_deref().unwrap_or(""), "input degraded"
        );
        self.events.emit(
            EventType::InputDegraded,
            &code,
            serde_json::json!({
                "input_priority": p,
                "reason": reason.as_str(),
                "error": detail,
                "active": self.active == Some(p),
            }),
        );
        if self.active == Some(p) {
            self.lost = Some(reason);
        }
        if self.manual == Some(p) {
            self.manual = None;
        }
        if self.pending.as_ref().is_some_and(|s| s.to == p) {
            self.pending = None;
        }
    }

    /// Judge every running input, then decide.
    fn evaluate(&mut self) {
        let now = Instant::now();
        let now_ms = self.now_ms();
        let timeout_ms = self.config.packet_timeout.as_millis() as u64;
        // Per input: degraded (reason, detail), or recovered (None).
        let mut changes: Vec<(u32, Change)> = Vec::new();
        for (&p, slot) in &mut self.slots {
            let Some(run) = &mut slot.run else { continue };
            if let Some(why) = run.input.ended() {
                if !matches!(slot.state, State::Degraded { .. }) {
                    changes.push((p, Some((Reason::Ended, Some(why)))));
                }
                run.input.stop();
                run.stop_sampler();
                slot.run = None;
                slot.retry_at = Some(now + RETRY_AFTER);
                continue;
            }
            let errors = run.input.errors();
            let new_error = errors > run.errors_seen;
            run.errors_seen = errors;
            let m = &run.monitor;
            let last = m.last_data.load(Ordering::Relaxed);
            let aps = m.access_points.load(Ordering::Relaxed);
            let fresh = last != 0 && now_ms.saturating_sub(last) <= timeout_ms;
            // Video gives keyframes; an audio-only input is usable as is.
            let usable = aps > slot.ap_mark || (m.has_audio() && !m.has_video());
            // A track is lost when the other one kept arriving for longer
            // than the timeout after it stopped (a dead input stops both).
            let track_lost = if m.has_video() && m.has_audio() {
                let v = m.last_video.load(Ordering::Relaxed);
                let a = m.last_audio.load(Ordering::Relaxed);
                if a.saturating_sub(v) > timeout_ms {
                    Some(Reason::VideoLost)
                } else if v.saturating_sub(a) > timeout_ms {
                    Some(Reason::AudioLost)
                } else {
                    None
                }
            } else {
                None
            };
            match slot.state {
                State::Connecting { .. } | State::Healthy { .. } if new_error => {
                    // An input that never delivered anything never connected.
                    let reason = if last == 0 {
                        Reason::NeverConnected
                    } else {
                        Reason::Error
                    };
                    changes.push((p, Some((reason, run.input.last_error()))));
                }
                State::Connecting { since } => {
                    if fresh && usable {
                        changes.push((p, None));
                    } else {
                        let limit =
                            Duration::from_secs(u64::from(slot.input.net.timeout_sec.max(1)));
                        if now.saturating_duration_since(since) > limit {
                            let detail = run.input.last_error().or_else(|| {
                                Some(format!("nothing received within {} s", limit.as_secs()))
                            });
                            changes.push((p, Some((Reason::NeverConnected, detail))));
                        }
                    }
                }
                State::Healthy { .. } => {
                    if !fresh {
                        let silent = now_ms.saturating_sub(last);
                        changes.push((
                            p,
                            Some((
                                Reason::Timeout,
                                Some(format!("no packet for {:.1} s", silent as f64 / 1000.0)),
                            )),
                        ));
                    } else if let Some(r) = track_lost {
                        changes.push((p, Some((r, None))));
                    }
                }
                State::Degraded { .. } => {
                    if fresh && usable && track_lost.is_none() {
                        changes.push((p, None));
                    }
                }
                State::Stopped => {}
            }
        }
        for (p, change) in changes {
            match change {
                Some((reason, detail)) => self.degrade(p, reason, detail),
                None => {
                    if let Some(slot) = self.slots.get_mut(&p) {
                        if matches!(slot.state, State::Degraded { .. }) {
                            tracing::info!(stream = %self.code, input = p, "input recovered");
                        }
                        slot.state = State::Healthy { since: now };
                        slot.detail = None;
                    }
                }
            }
        }
        self.answer_manual();
        self.decide_and_act(now);
        self.stop_unneeded();
        self.publish_report();
    }

    fn decide_and_act(&mut self, now: Instant) {
        let views: Vec<View> = self
            .slots
            .iter()
            .map(|(&priority, s)| View {
                priority,
                state: s.state,
                restartable: s.run.is_none()
                    && matches!(s.state, State::Degraded { .. })
                    && s.retry_at.is_some_and(|t| now >= t),
            })
            .collect();
        let lost = if self.active.is_some() && self.reader.is_none() {
            self.lost.or(Some(Reason::Error))
        } else {
            self.lost
        };
        match decide(
            &views,
            self.active,
            lost,
            self.manual,
            now,
            self.config.failback_after,
        ) {
            Decision::Stay => {}
            Decision::Start(p) => self.start(p),
            Decision::Switch {
                to,
                reason,
                at_next_keyframe,
            } => {
                if at_next_keyframe && self.reader.is_some() {
                    if self.pending.as_ref().is_none_or(|s| s.to != to)
                        && let Some(slot) = self.slots.get(&to)
                    {
                        let from_seq = slot.staging.head();
                        self.pending = Some(PendingSwitch {
                            to,
                            reason,
                            reader: slot.staging.subscribe("manager-next"),
                            from_seq,
                        });
                    }
                } else {
                    self.switch_now(to, reason, None);
                }
            }
        }
    }

    /// Switch to `to`: from its latest keyframe (`reader` None) or from the
    /// reader of a pending switch that just reached a keyframe.
    fn switch_now(&mut self, to: u32, reason: Reason, reader: Option<Reader>) {
        let Some(slot) = self.slots.get(&to) else {
            return;
        };
        let reader = reader.unwrap_or_else(|| slot.staging.subscribe("manager"));
        let from = self.active;
        if let Some(old) = from
            && old != to
        {
            self.resume_sampler(old);
        }
        if let Some(run) = self.slots.get_mut(&to).and_then(|s| s.run.as_mut()) {
            run.stop_sampler();
        }
        self.scan = monitor::Scan::default();
        if self.wrote {
            self.splicer.splice();
            self.out.discontinuity();
        }
        self.reader = Some(reader);
        self.active = Some(to);
        self.lost = None;
        self.pending = None;
        if reason == Reason::Manual {
            self.manual = Some(to);
        } else if self.manual.is_some_and(|m| m != to) {
            self.manual = None;
        }
        let switch = Switch {
            at: Utc::now(),
            from,
            to,
            reason: reason.as_str().to_string(),
        };
        if reason == Reason::Initial {
            tracing::info!(stream = %self.code, input = to, "input selected");
        } else {
            tracing::warn!(stream = %self.code, from = ?from, to, reason = reason.as_str(), "input failover");
            self.events.emit(
                EventType::InputFailover,
                &self.code,
                serde_json::json!({"from": from, "to": to, "reason": reason.as_str()}),
            );
        }
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        shared.switches.push_back(switch);
        while shared.switches.len() > crate::HISTORY {
            shared.switches.pop_front();
        }
    }

    /// Forward one item of the active input. `false` = the stream buffer is
    /// closed (stream stopping).
    fn forward(&mut self, item: Result<Item, os_hub::Closed>) -> bool {
        match item {
            Ok(Item::Chunk(chunk)) => {
                self.observe(&chunk);
                if chunk.discontinuity && !chunk.resume && self.wrote {
                    // The same input restarted (reconnect, new publisher).
                    self.splicer.splice();
                    self.out.discontinuity();
                }
                let data = self.splicer.process(chunk.data);
                if data.is_empty() {
                    return true;
                }
                self.wrote = true;
                self.out.write(data).is_ok()
            }
            Ok(Item::Lagged { lost }) => {
                tracing::warn!(stream = %self.code, lost, "manager fell behind its input");
                if self.wrote {
                    self.splicer.splice();
                }
                true
            }
            Err(_closed) => {
                self.reader = None;
                if let Some(p) = self.active {
                    self.resume_sampler(p);
                }
                true
            }
        }
    }

    /// An item of the failback target: switch on its first new keyframe.
    fn pending_item(&mut self, item: Result<Item, os_hub::Closed>) {
        let Some(p) = &self.pending else { return };
        let hit = match &item {
            Ok(Item::Chunk(c)) => c.access_point && c.seq >= p.from_seq,
            Ok(Item::Lagged { .. }) => false,
            Err(_) => {
                self.pending = None;
                return;
            }
        };
        if !hit {
            return;
        }
        let Some(p) = self.pending.take() else { return };
        let (to, reason) = (p.to, p.reason);
        // Rebuild a reader positioned at this keyframe: the pending reader
        // already consumed it, so forward it by hand after switching.
        self.switch_now(to, reason, Some(p.reader));
        if let Ok(Item::Chunk(c)) = item {
            self.observe(&c);
            let data = self.splicer.process(c.data);
            if !data.is_empty() {
                self.wrote = true;
                let _ = self.out.write(data);
            }
        }
    }

    fn activate(&mut self, p: u32, reply: oneshot::Sender<Result<(), ActivateError>>) {
        let Some(slot) = self.slots.get(&p) else {
            let _ = reply.send(Err(ActivateError::Unknown(p)));
            return;
        };
        match slot.state {
            State::Healthy { .. } => {
                if self.active != Some(p) {
                    let active_ok = self.active.is_some_and(|a| {
                        self.slots
                            .get(&a)
                            .is_some_and(|s| matches!(s.state, State::Healthy { .. }))
                    });
                    if active_ok && self.reader.is_some() {
                        let from_seq = slot.staging.head();
                        self.pending = Some(PendingSwitch {
                            to: p,
                            reason: Reason::Manual,
                            reader: slot.staging.subscribe("manager-next"),
                            from_seq,
                        });
                    } else {
                        self.switch_now(p, Reason::Manual, None);
                    }
                }
                self.manual = Some(p);
                let _ = reply.send(Ok(()));
            }
            State::Stopped => {
                // A cold backup: start it and answer once it is up.
                self.start(p);
                self.manual_waiting.push((p, reply));
            }
            State::Connecting { .. } => {
                let _ = reply.send(Err(ActivateError::NotHealthy {
                    priority: p,
                    health: "connecting".into(),
                    detail: "it has not delivered media yet".into(),
                }));
            }
            State::Degraded { reason, .. } => {
                let _ = reply.send(Err(ActivateError::NotHealthy {
                    priority: p,
                    health: "degraded".into(),
                    detail: slot
                        .detail
                        .clone()
                        .unwrap_or_else(|| reason.as_str().to_string()),
                }));
            }
        }
    }

    fn answer_manual(&mut self) {
        let waiting = std::mem::take(&mut self.manual_waiting);
        for (p, reply) in waiting {
            match self.slots.get(&p).map(|s| s.state) {
                Some(State::Healthy { .. }) => self.activate(p, reply),
                Some(State::Connecting { .. }) => self.manual_waiting.push((p, reply)),
                Some(_) => self.activate(p, reply),
                None => {
                    let _ = reply.send(Err(ActivateError::Unknown(p)));
                }
            }
        }
    }

    /// Stop cold inputs that are worse than a healthy active input.
    fn stop_unneeded(&mut self) {
        let Some(active) = self.active else { return };
        if !self
            .slots
            .get(&active)
            .is_some_and(|s| matches!(s.state, State::Healthy { .. }))
        {
            return;
        }
        let waiting: Vec<u32> = self.manual_waiting.iter().map(|(p, _)| *p).collect();
        for (&p, slot) in &mut self.slots {
            if p > active
                && slot.standby == Standby::Cold
                && slot.run.is_some()
                && !waiting.contains(&p)
            {
                tracing::debug!(stream = %self.code, input = p, "cold backup no longer needed");
                stop_run(slot);
                slot.state = State::Stopped;
            }
        }
    }

    fn publish_report(&self) {
        let now = Instant::now();
        let wall = Utc::now();
        let inputs: BTreeMap<u32, InputHealth> = self
            .slots
            .iter()
            .map(|(&p, s)| {
                let (health, reason, since) = match s.state {
                    State::Stopped => (Health::Stopped, None, None),
                    State::Connecting { since } => (Health::Connecting, None, Some(since)),
                    State::Healthy { since } => (Health::Healthy, None, Some(since)),
                    State::Degraded { reason, since } => (
                        Health::Degraded,
                        Some(reason.as_str().to_string()),
                        Some(since),
                    ),
                };
                let ago = since.map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
                let since = wall - chrono::Duration::from_std(ago).unwrap_or_default();
                (
                    p,
                    InputHealth {
                        priority: p,
                        health,
                        reason,
                        since,
                        active: self.active == Some(p),
                        standby: match s.standby {
                            Standby::Hot => "hot".into(),
                            Standby::Cold => "cold".into(),
                        },
                        cc_errors: s
                            .run
                            .as_ref()
                            .map_or(0, |r| r.monitor.cc_errors.load(Ordering::Relaxed)),
                    },
                )
            })
            .collect();
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        shared.active = self.active;
        shared.inputs = inputs;
        shared.dropped = self.splicer.stats().dropped_packets;
    }
}

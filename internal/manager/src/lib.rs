//! The input-health manager of a stream.
//!
//! Every input writes MPEG-TS into a *staging* buffer of its own; the
//! manager decides which one feeds the stream's hub buffer and forwards it
//! through a [`Splicer`](os_mpegts::Splicer), so that readers of the stream
//! see one timeline whatever the input: rising PTS/DTS/PCR and unbroken
//! continuity counters across every switch, plus the hub's discontinuity
//! flag (HLS writes `#EXT-X-DISCONTINUITY`).
//!
//! - **Health** ([`monitor`]): a raw reader per running input samples last
//!   data time, video and audio arrival, access points and continuity
//!   errors. An input is degraded when it is silent for
//!   `input_packet_timeout`, when it reports an error or stops, when video
//!   stops while audio continues (or the reverse), or when it never delivers
//!   within its `net.timeout_sec`.
//! - **Selection** ([`policy`]): the best healthy input by priority (lower is
//!   preferred) feeds the stream; a better input that recovered takes over
//!   again once it has been healthy for `failback_after`, at its next
//!   keyframe; a manual choice sticks while it is healthy.
//! - **Standby**: `hot` inputs run all the time (a switch to them starts at
//!   the latest keyframe in their staging ring: instant); `cold` ones are
//!   started when needed and stopped when a better input is back.
//! - Inputs are started and stopped through the [`InputRunner`] trait, so
//!   this crate knows nothing of protocols.

mod monitor;
mod policy;
mod task;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use os_domain::{Input, Standby};
use os_events::EventBus;
use os_hub::Buffer;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

pub use policy::Reason;

/// Starts inputs. Implemented by the coordinator on top of ingest.
pub trait InputRunner: Send + Sync + 'static {
    /// Start `input`, writing its MPEG-TS into `sink`, until stopped.
    fn start(&self, input: &Input, sink: Arc<Buffer>) -> Box<dyn RunningInput>;
}

/// A started input, as the manager sees it.
pub trait RunningInput: Send {
    /// How many errors the input reported since it started.
    fn errors(&self) -> u64;
    /// The last error message, if any.
    fn last_error(&self) -> Option<String>;
    /// Why it stopped by itself (gave up, or a finite source ended), once it has.
    fn ended(&self) -> Option<String>;
    /// Stop it (returns at once; the input releases its connection promptly).
    fn stop(&mut self);
}

/// Manager settings (`manager.*` and the stream buffer capacity).
#[derive(Debug, Clone, PartialEq)]
pub struct ManagerConfig {
    /// Silence (or a lost track) longer than this degrades an input.
    pub packet_timeout: Duration,
    /// A better input must be healthy this long before it takes over again.
    pub failback_after: Duration,
    /// For inputs without their own `standby`.
    pub default_standby: Standby,
    /// Ring capacity of each input's staging buffer, in chunks.
    pub staging_capacity: usize,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            packet_timeout: Duration::from_secs(3),
            failback_after: Duration::from_secs(10),
            default_standby: Standby::Cold,
            staging_capacity: 256,
        }
    }
}

/// Health of one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Not running (a cold backup that is not needed).
    Stopped,
    /// Started, nothing usable received yet.
    Connecting,
    /// Delivering media with keyframes.
    Healthy,
    /// Silent, failing, lost a track, or never connected.
    Degraded,
}

/// One input in the manager's report.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InputHealth {
    pub priority: u32,
    pub health: Health,
    /// Why it is degraded (`timeout`, `error`, `never_connected`, `video_lost`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Since when `health` holds.
    pub since: DateTime<Utc>,
    /// Feeds the stream now.
    pub active: bool,
    /// `hot` or `cold`.
    pub standby: String,
    /// Continuity counter errors seen in this input.
    pub cc_errors: u64,
}

/// One switch of the active input.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Switch {
    pub at: DateTime<Utc>,
    /// Priority of the input that fed the stream before (none at start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<u32>,
    pub to: u32,
    /// `initial` | `timeout` | `error` | `never_connected` | `video_lost` |
    /// `audio_lost` | `failback` | `manual` | `input_removed` | `input_changed`.
    pub reason: String,
}

/// What the manager reports (for the stream status).
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct ManagerReport {
    /// Priority of the input feeding the stream.
    pub active: Option<u32>,
    pub inputs: Vec<InputHealth>,
    /// The latest switches, oldest first (at most [`HISTORY`]).
    pub switches: Vec<Switch>,
    /// Packets dropped by the splicer to keep the timeline clean.
    pub spliced_dropped_packets: u64,
}

/// Switches kept in the report.
pub const HISTORY: usize = 50;

#[derive(Debug, Default)]
struct Shared {
    active: Option<u32>,
    inputs: BTreeMap<u32, InputHealth>,
    switches: VecDeque<Switch>,
    dropped: u64,
}

/// Why a manual switch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivateError {
    #[error("no input with priority {0}")]
    Unknown(u32),
    #[error("input {priority} is {health}: {detail}")]
    NotHealthy {
        priority: u32,
        health: String,
        detail: String,
    },
    #[error("the stream is stopping")]
    Stopped,
}

enum Command {
    Update(Vec<Input>),
    Activate(u32, oneshot::Sender<Result<(), ActivateError>>),
}

/// Asks a manager for manual switches (see [`Manager::activator`]).
#[derive(Clone)]
pub struct Activator {
    commands: Option<mpsc::UnboundedSender<Command>>,
}

impl Activator {
    /// An activator of no manager: every call answers [`ActivateError::Stopped`].
    pub fn closed() -> Self {
        Self { commands: None }
    }

    /// Make input `priority` the active one. A healthy input takes over at
    /// its next keyframe; a cold backup is started first and the answer
    /// comes once it delivers (or fails to).
    pub async fn activate(&self, priority: u32) -> Result<(), ActivateError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .as_ref()
            .ok_or(ActivateError::Stopped)?
            .send(Command::Activate(priority, tx))
            .map_err(|_| ActivateError::Stopped)?;
        rx.await.unwrap_or(Err(ActivateError::Stopped))
    }
}

/// Handle of a running manager (one per started stream).
pub struct Manager {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Mutex<Shared>>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Manager {
    /// Start managing `inputs` of stream `code`, feeding `out`.
    pub fn spawn(
        code: String,
        inputs: Vec<Input>,
        out: Arc<Buffer>,
        runner: Arc<dyn InputRunner>,
        events: Arc<EventBus>,
        config: ManagerConfig,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(task::run(task::Setup {
            code,
            inputs,
            out,
            runner,
            events,
            config,
            shared: shared.clone(),
            commands: rx,
            cancel: cancel.clone(),
        }));
        Self {
            commands: tx,
            shared,
            cancel,
            task,
        }
    }

    /// New input list (hot reload): inputs are matched by priority; only
    /// the added, removed and changed ones are touched.
    pub fn update_inputs(&self, inputs: Vec<Input>) {
        let _ = self.commands.send(Command::Update(inputs));
    }

    /// Make input `priority` the active one (manual switch).
    pub async fn activate(&self, priority: u32) -> Result<(), ActivateError> {
        self.activator().activate(priority).await
    }

    /// A cloneable handle for manual switches.
    pub fn activator(&self) -> Activator {
        Activator {
            commands: Some(self.commands.clone()),
        }
    }

    /// The current report.
    pub fn report(&self) -> ManagerReport {
        let s = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        ManagerReport {
            active: s.active,
            inputs: s.inputs.values().cloned().collect(),
            switches: s.switches.iter().cloned().collect(),
            spliced_dropped_packets: s.dropped,
        }
    }

    /// Stop every input and the forwarding; wait (bounded) for it.
    pub async fn stop(self, timeout: Duration) {
        self.cancel.cancel();
        if tokio::time::timeout(timeout, self.task).await.is_err() {
            tracing::warn!("input manager did not stop in time");
        }
    }
}

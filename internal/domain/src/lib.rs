//! open-streamer's domain model. No I/O.
//!
//! Modules:
//! - [`stream`]: a stream and everything configured on it (inputs, transcoder,
//!   output protocols, push destinations, DVR).
//! - [`recording`]: a DVR recording's lifecycle record.
//! - [`hook`]: a webhook / Kafka event subscription.
//! - [`validate`]: [`FieldError`] and the helpers every `validate()` uses;
//!   each problem carries the JSON path of the offending value.

pub mod hook;
pub mod recording;
pub mod stream;
pub mod validate;

pub use hook::{Hook, HookType};
pub use recording::{Recording, RecordingStatus};
pub use stream::*;
pub use validate::FieldError;

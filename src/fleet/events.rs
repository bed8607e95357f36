//! Flux-style events.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// How bad an event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Normal operation.
    Info,
    /// A failure.
    Error,
}

/// The object an event is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvolvedObject {
    /// `apiVersion`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// An event, as Flux's notification-controller receives them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// The object.
    pub involved_object: InvolvedObject,
    /// Severity.
    pub severity: Severity,
    /// Flux's reason, e.g. `ReconciliationSucceeded`.
    pub reason: String,
    /// A human message.
    pub message: String,
    /// The source revision.
    pub revision: String,
    /// Seconds since the Unix epoch, from the injected clock.
    pub timestamp: u64,
}

/// Receives events. Implementations forward them to alerts, logs or tests.
pub trait EventSink: Send + Sync {
    /// Called once per event, in order.
    fn event(&self, event: &Event);
}

/// An [`EventSink`] that keeps events in memory.
#[derive(Debug, Default)]
pub struct RecordingSink {
    events: Mutex<Vec<Event>>,
}

impl RecordingSink {
    /// The events received so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl EventSink for RecordingSink {
    fn event(&self, event: &Event) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }
}

/// An [`EventSink`] that drops events.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn event(&self, _event: &Event) {}
}

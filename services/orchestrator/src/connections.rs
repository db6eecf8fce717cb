//! The agents connected to this replica: one channel per consumer.
//!
//! A replica knows only its own connections; the store, not this map, is the
//! truth about consumers. A new channel for a consumer replaces the old one, which
//! bounds channels per consumer to one and lets a restarted agent take over at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::gateway::pb::GatewayFrame;

/// Frames queued towards one agent before the gateway stops reading from the engine.
pub const OUTBOUND_QUEUE: usize = 16;

/// A registered channel: its number (to tell replacements apart) and its sender.
struct Channel {
    id: u64,
    sender: mpsc::Sender<Result<GatewayFrame, tonic::Status>>,
}

/// The registry of this replica's agent channels.
#[derive(Default)]
pub struct Connections {
    channels: Mutex<HashMap<String, Channel>>,
    next_id: AtomicU64,
    /// Consumers whose agents sent a heartbeat since the last flush: recorded in
    /// the store in batches (engine.rs), not one write per heartbeat.
    seen: Mutex<std::collections::HashSet<String>>,
}

impl Connections {
    /// Registers a channel for `consumer`, replacing (and so closing) any older one.
    /// Returns the channel's number, for [`Connections::remove`].
    pub fn insert(
        &self,
        consumer: &str,
        sender: mpsc::Sender<Result<GatewayFrame, tonic::Status>>,
    ) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut channels = self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(old) = channels.insert(consumer.to_owned(), Channel { id, sender }) {
            let _ = old.sender.try_send(Err(tonic::Status::aborted("replaced by a newer channel")));
        }
        metrics::gauge!("pqescape_agents_connected").set(channels.len() as f64);
        id
    }

    /// Notes a heartbeat from `consumer`'s agent.
    pub fn saw(&self, consumer: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !seen.contains(consumer) {
            seen.insert(consumer.to_owned());
        }
    }

    /// The consumers seen since the last call.
    pub fn take_seen(&self) -> Vec<String> {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::take(&mut *seen).into_iter().collect()
    }

    /// Forgets channel `id` of `consumer`, unless a newer one has replaced it.
    pub fn remove(&self, consumer: &str, id: u64) {
        let mut channels = self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if channels.get(consumer).is_some_and(|c| c.id == id) {
            channels.remove(consumer);
        }
        metrics::gauge!("pqescape_agents_connected").set(channels.len() as f64);
    }

    /// Queues a frame towards `consumer`'s agent; false if it is not connected here
    /// or its queue is full (the engine retries on its next sweep or attach).
    pub fn send(&self, consumer: &str, frame: GatewayFrame) -> bool {
        let channels = self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        channels.get(consumer).is_some_and(|c| c.sender.try_send(Ok(frame)).is_ok())
    }

    /// The consumers connected to this replica.
    pub fn consumers(&self) -> Vec<String> {
        self.channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// Whether `consumer` has a channel on this replica.
    pub fn is_connected(&self, consumer: &str) -> bool {
        self.channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(consumer)
    }

    /// How many agents are connected to this replica.
    pub fn len(&self) -> usize {
        self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    /// Whether no agent is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

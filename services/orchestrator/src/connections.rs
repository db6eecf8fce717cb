//! The agents connected to this replica: one channel per consumer.
//!
//! A replica knows only its own connections; the store, not this map, is the
//! truth about consumers. A new channel for a consumer replaces the old one, which
//! bounds channels per consumer to one and lets a restarted agent take over at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::gateway::pb::GatewayFrame;
use crate::gateway::pb::closing::Reason;
use crate::gateway::{Outbound, closing};

/// Frames queued towards one agent before the gateway stops reading from the engine.
pub const OUTBOUND_QUEUE: usize = 16;

/// A registered channel: its number (to tell replacements apart), its sender and
/// whether its TLS key exchange is post-quantum.
struct Channel {
    id: u64,
    sender: Outbound,
    post_quantum: bool,
}

/// The channels by consumer, and how many of them are post-quantum: after a
/// campaign, operators watch the classical ones drain as agents move over.
#[derive(Default)]
struct Channels {
    by_consumer: HashMap<String, Channel>,
    post_quantum: usize,
}

impl Channels {
    fn publish(&self) {
        metrics::gauge!("pqescape_agents_connected").set(self.by_consumer.len() as f64);
        metrics::gauge!("pqescape_agents_connected_post_quantum").set(self.post_quantum as f64);
    }

    fn take(&mut self, consumer: &str) -> Option<Channel> {
        let old = self.by_consumer.remove(consumer)?;
        self.post_quantum = self.post_quantum.saturating_sub(usize::from(old.post_quantum));
        Some(old)
    }
}

/// The registry of this replica's agent channels.
#[derive(Default)]
pub struct Connections {
    channels: Mutex<Channels>,
    next_id: AtomicU64,
    /// Consumers whose agents sent a heartbeat since the last flush: recorded in
    /// the store in batches (engine.rs), not one write per heartbeat.
    seen: Mutex<std::collections::HashSet<String>>,
}

impl Connections {
    /// Registers a channel for `consumer`, replacing (and so closing) any older one.
    /// Returns the channel's number, for [`Connections::remove`].
    pub fn insert(&self, consumer: &str, sender: Outbound, post_quantum: bool) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut channels = self.lock();
        if let Some(old) = channels.take(consumer) {
            let _ = old.sender.try_send(closing(Reason::Replaced));
        }
        channels.post_quantum += usize::from(post_quantum);
        channels.by_consumer.insert(consumer.to_owned(), Channel { id, sender, post_quantum });
        channels.publish();
        id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Channels> {
        self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
        let mut channels = self.lock();
        if channels.by_consumer.get(consumer).is_some_and(|c| c.id == id) {
            channels.take(consumer);
        }
        channels.publish();
    }

    /// Queues a frame towards `consumer`'s agent; false if it is not connected here
    /// or its queue is full (the engine retries on its next sweep or attach).
    pub fn send(&self, consumer: &str, frame: GatewayFrame) -> bool {
        self.lock()
            .by_consumer
            .get(consumer)
            .is_some_and(|c| c.sender.try_send(Box::new(frame)).is_ok())
    }

    /// The consumers connected to this replica.
    pub fn consumers(&self) -> Vec<String> {
        self.lock().by_consumer.keys().cloned().collect()
    }

    /// Whether `consumer` has a channel on this replica.
    pub fn is_connected(&self, consumer: &str) -> bool {
        self.lock().by_consumer.contains_key(consumer)
    }

    /// How many agents are connected to this replica.
    pub fn len(&self) -> usize {
        self.lock().by_consumer.len()
    }

    /// Whether no agent is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many of them hold a post-quantum channel.
    pub fn post_quantum(&self) -> usize {
        self.lock().post_quantum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::pb::gateway_frame::Frame;
    use tokio::sync::mpsc;

    #[test]
    fn a_replaced_channel_is_told_why_it_ends() {
        let connections = Connections::default();
        let (old, mut old_rx) = mpsc::channel(1);
        connections.insert("a", old, false);
        connections.insert("a", mpsc::channel(1).0, false);
        let frame = old_rx.try_recv().unwrap().frame;
        assert!(
            matches!(frame, Some(Frame::Closing(c)) if c.reason == Reason::Replaced as i32),
            "{frame:?}"
        );
    }

    #[test]
    fn post_quantum_channels_are_counted_through_replacement_and_removal() {
        let connections = Connections::default();
        let sender = || mpsc::channel(1).0;
        let a = connections.insert("a", sender(), false);
        connections.insert("b", sender(), true);
        assert_eq!((connections.len(), connections.post_quantum()), (2, 1));
        // a moves to a post-quantum channel; its classical one goes away late.
        let a_pq = connections.insert("a", sender(), true);
        connections.remove("a", a);
        assert_eq!((connections.len(), connections.post_quantum()), (2, 2));
        connections.remove("a", a_pq);
        assert_eq!((connections.len(), connections.post_quantum()), (1, 1));
        // b comes back classical (a restarted agent that lost its state, say).
        connections.insert("b", sender(), false);
        assert_eq!((connections.len(), connections.post_quantum()), (1, 0));
    }
}

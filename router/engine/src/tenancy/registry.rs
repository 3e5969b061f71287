//! The adapters the router knows, by channel id.

use std::collections::BTreeMap;
use std::sync::Arc;

use switchboard_core::{ChannelAdapter, ChannelId};

/// Adapters keyed by channel. Built once at start-up; a new channel is one `register` call
/// in the binary's wiring.
#[derive(Clone, Default)]
pub struct AdapterRegistry {
    adapters: BTreeMap<String, Arc<dyn ChannelAdapter>>,
}

impl AdapterRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an adapter, replacing any earlier one for the same channel.
    pub fn register(&mut self, adapter: Arc<dyn ChannelAdapter>) {
        self.adapters
            .insert(adapter.channel().as_str().to_owned(), adapter);
    }

    pub fn get(&self, channel: &str) -> Option<&Arc<dyn ChannelAdapter>> {
        self.adapters.get(channel)
    }

    /// Every adapter, by channel name order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn ChannelAdapter>> + '_ {
        self.adapters.values()
    }

    pub fn channels(&self) -> impl Iterator<Item = ChannelId> + '_ {
        self.adapters.values().map(|a| a.channel().clone())
    }
}

impl std::fmt::Debug for AdapterRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.adapters.keys()).finish()
    }
}

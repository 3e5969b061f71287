//! The one place that names concrete adapters: the built-in channels, configured from
//! [`Config`]. A new channel is a new adapter crate plus one `register` line here.

#[cfg(any(feature = "twilio", feature = "meta"))]
use std::sync::Arc;

use crate::config::Config;
use switchboard_router::tenancy::registry::AdapterRegistry;

/// The built-in adapters, configured.
#[cfg_attr(
    not(any(feature = "twilio", feature = "meta")),
    allow(unused_variables)
)]
pub fn builtin_adapters(config: &Config) -> AdapterRegistry {
    #[allow(unused_mut)]
    let mut registry = AdapterRegistry::new();
    #[cfg(feature = "twilio")]
    registry.register(Arc::new(switchboard_twilio_whatsapp::TwilioWhatsApp::new(
        switchboard_twilio_whatsapp::TwilioConfig {
            api_base: config.twilio_api_base.clone(),
            public_url: config.public_url(),
            ..Default::default()
        },
    )));
    #[cfg(feature = "meta")]
    registry.register(Arc::new(switchboard_meta_cloud::MetaCloud::new(
        switchboard_meta_cloud::MetaConfig {
            graph_base: config.meta_graph_base.clone(),
            api_version: config.meta_api_version.clone(),
            ..Default::default()
        },
    )));
    registry
}

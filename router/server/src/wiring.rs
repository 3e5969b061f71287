//! The one place that names concrete adapters: the built-in channels, each behind a cargo
//! feature of this crate, with its own settings. A new channel is a new adapter crate plus
//! its lines here: its settings in [`ChannelSettings`] and its `register` line in
//! [`builtin_adapters`]. Everything else the router needs from it, the adapter declares.

#[cfg(any(feature = "twilio", feature = "sms", feature = "meta"))]
use std::sync::Arc;

use switchboard_core::CommonSettings;
use switchboard_router::tenancy::registry::AdapterRegistry;

/// Every built-in channel's own settings (flags and environment variables of `serve`, as
/// each adapter crate declares them), flattened into the server's configuration.
#[derive(Clone, Debug, clap::Args)]
pub struct ChannelSettings {
    /// Twilio's settings, shared by its WhatsApp and SMS channels.
    #[cfg(any(feature = "twilio", feature = "sms"))]
    #[command(flatten)]
    pub twilio_whatsapp: switchboard_twilio::TwilioSettings,
    #[cfg(feature = "meta")]
    #[command(flatten)]
    pub meta_whatsapp: switchboard_meta_cloud::MetaSettings,
}

/// The built-in adapters, configured from their settings and the common ones.
#[cfg_attr(
    not(any(feature = "twilio", feature = "sms", feature = "meta")),
    allow(unused_variables)
)]
pub fn builtin_adapters(settings: &ChannelSettings, common: &CommonSettings) -> AdapterRegistry {
    #[allow(unused_mut)]
    let mut registry = AdapterRegistry::new();
    #[cfg(feature = "twilio")]
    registry.register(Arc::new(switchboard_twilio::TwilioWhatsApp::new(
        settings.twilio_whatsapp.config(common),
    )));
    #[cfg(feature = "sms")]
    registry.register(Arc::new(switchboard_twilio::TwilioSms::new(
        settings.twilio_whatsapp.sms_config(common),
    )));
    #[cfg(feature = "meta")]
    registry.register(Arc::new(switchboard_meta_cloud::MetaCloud::new(
        settings.meta_whatsapp.config(common),
    )));
    registry
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::config::{Cli, Command};

    fn serve_config(args: &[&str]) -> crate::config::Config {
        match Cli::try_parse_from(args).unwrap().command {
            Command::Serve(c) => *c,
            other => panic!("not serve: {other:?}"),
        }
    }

    /// Each built-in channel's flags: (flag, environment variable), as api.md names them.
    const FLAGS: &[(&str, &str)] = &[
        #[cfg(any(feature = "twilio", feature = "sms"))]
        ("twilio-api-base", "SWITCHBOARD_TWILIO_API_BASE"),
        #[cfg(any(feature = "twilio", feature = "sms"))]
        (
            "twilio-content-api-base",
            "SWITCHBOARD_TWILIO_CONTENT_API_BASE",
        ),
        #[cfg(any(feature = "twilio", feature = "sms"))]
        (
            "twilio-messaging-api-base",
            "SWITCHBOARD_TWILIO_MESSAGING_API_BASE",
        ),
        #[cfg(feature = "meta")]
        ("meta-graph-base", "SWITCHBOARD_META_GRAPH_BASE"),
        #[cfg(feature = "meta")]
        ("meta-api-version", "SWITCHBOARD_META_API_VERSION"),
    ];

    #[test]
    fn serve_takes_each_channels_flags_with_their_variables() {
        let cli = Cli::command();
        let serve = cli.find_subcommand("serve").unwrap();
        for (flag, env) in FLAGS {
            let arg = serve
                .get_arguments()
                .find(|a| a.get_long() == Some(flag))
                .unwrap_or_else(|| panic!("--{flag} missing"));
            assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(*env));
            assert!(arg.get_help().is_some(), "--{flag} has no help");
        }
        // Only `serve` reads them.
        assert!(
            Cli::try_parse_from(["switchboard", "migrate", "--meta-api-version", "v1"]).is_err()
        );
    }

    #[test]
    fn the_registry_has_every_enabled_channel() {
        let config = serve_config(&["switchboard", "serve"]);
        let registry = builtin_adapters(&config.channels, &config.common());
        let channels: Vec<String> = registry.channels().map(|c| c.to_string()).collect();
        let expected: &[&str] = &[
            #[cfg(feature = "meta")]
            "meta-whatsapp",
            #[cfg(feature = "sms")]
            "twilio-sms",
            #[cfg(feature = "twilio")]
            "twilio-whatsapp",
        ];
        assert_eq!(channels, expected);
    }

    #[cfg(all(feature = "twilio", feature = "meta"))]
    #[test]
    fn channel_settings_reach_the_adapters_with_the_public_url() {
        let config = serve_config(&[
            "switchboard",
            "serve",
            "--public-url",
            "https://sb.example.com/",
            "--twilio-api-base",
            "http://127.0.0.1:1",
            "--meta-graph-base",
            "http://127.0.0.1:2",
            "--meta-api-version",
            "v1.0",
        ]);
        let twilio = config.channels.twilio_whatsapp.config(&config.common());
        assert_eq!(twilio.api_base, "http://127.0.0.1:1");
        assert_eq!(twilio.public_url, "https://sb.example.com");
        let meta = config.channels.meta_whatsapp.config(&config.common());
        assert_eq!(
            (meta.graph_base.as_str(), meta.api_version.as_str()),
            ("http://127.0.0.1:2", "v1.0")
        );
        // Defaults as api.md fixes them.
        let defaults = serve_config(&["switchboard", "serve"]);
        assert_eq!(
            defaults.channels.twilio_whatsapp.twilio_api_base,
            "https://api.twilio.com"
        );
        assert_eq!(
            defaults.channels.twilio_whatsapp.twilio_content_api_base,
            "https://content.twilio.com"
        );
        assert_eq!(
            defaults.channels.twilio_whatsapp.twilio_messaging_api_base,
            "https://messaging.twilio.com"
        );
        assert_eq!(
            defaults.channels.meta_whatsapp.meta_graph_base,
            "https://graph.facebook.com"
        );
        assert_eq!(defaults.channels.meta_whatsapp.meta_api_version, "v25.0");
    }

    /// Outside this file, the server and the HTTP surface name no channel: no channel id,
    /// no header a channel declares, no adapter crate. What they need of a channel they
    /// read from its adapter.
    #[test]
    fn nothing_but_the_wiring_names_a_channel() {
        let config = serve_config(&["switchboard", "serve"]);
        let registry = builtin_adapters(&config.channels, &config.common());
        let mut names: Vec<String> = vec![
            "switchboard_twilio".into(),
            "switchboard-twilio".into(),
            "switchboard_meta_cloud".into(),
            "switchboard-meta-cloud".into(),
        ];
        for adapter in registry.iter() {
            names.push(adapter.channel().to_string());
            names.extend(adapter.sensitive_headers().iter().map(|h| h.to_string()));
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        let mut dirs = vec![
            root.join("src"),
            root.join("../http/src"),
            root.join("../http/tests"),
        ];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && !path.ends_with("src/wiring.rs")
                {
                    files.push(path);
                }
            }
        }
        assert!(files.len() > 5, "{files:?}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap().to_lowercase();
            for name in &names {
                assert!(
                    !text.contains(name.as_str()),
                    "{} names {name}",
                    file.display()
                );
            }
        }
    }
}

//! Switchboard's end-to-end tests: one test binary (see ripgrep, matklad's "delete cargo
//! integration tests"), real databases, fake providers on loopback.

mod support;

mod api;
mod architecture;
mod batching;
mod crash_and_idle;
mod delivery;
mod e2e;
mod first_run;
mod foundation;
mod hardening_http;
mod hostile_text;
mod hostile_webhooks;
mod media;
mod providers;
mod write_failures;

//! Switchboard's end-to-end tests: one test binary (see ripgrep, matklad's "delete cargo
//! integration tests"), real databases, fake providers on loopback.

mod support;

mod account_state;
mod accounts;
mod api_errors;
mod api_keys;
mod architecture;
mod batching;
mod console;
mod console_browser;
mod contacts;
mod content_model;
mod conversations;
mod crash_and_idle;
mod delivery;
mod deployment;
mod fallback;
mod first_run;
mod hardening_http;
mod hostile_text;
mod hostile_webhooks;
mod inbound_content;
mod inbound_webhooks;
mod media;
mod media_s3;
mod migrations;
mod notifications;
mod openapi;
mod provider_errors;
mod send_batching;
mod sending;
mod sending_content_meta;
mod sending_content_twilio;
mod served_binary;
mod statuses;
mod templates;
mod tenancy;
mod twilio_sms;
mod usage;
mod write_failures;

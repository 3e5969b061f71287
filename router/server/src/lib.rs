//! `switchboard-server`: what the `switchboard` binary is made of besides the engine
//! (`switchboard-router`) and the HTTP surface (`switchboard-http`): the configuration
//! (`config`), the wiring of the built-in channels (`wiring`, the one place that names
//! adapter crates), the description of every metric (`telemetry`) and the stop signal
//! (`shutdown`).

pub mod config;
pub mod shutdown;
pub mod telemetry;
pub mod wiring;

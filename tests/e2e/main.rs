//! End-to-end tests: the whole Vigil system over real sockets.
//!
//! Each test starts its own daemon in-process on free ports (embedded MQTT
//! broker, a fresh SQLite in a temp dir, the web server) with [`TestApp`],
//! and talks to it as devices and dashboards do: a real MQTT client
//! (rumqttc), a real HTTP client, a real websocket client. Tests wait on
//! explicit signals (an `ack`, a websocket event, `/readyz`), never on sleeps.

mod helpers;

/// The throwaway PostgreSQL cluster of the store suite.
#[path = "../../crates/vigil-store/tests/support/pg.rs"]
mod pg;

mod alerts;
mod api;
mod bench;
mod cli;
mod devices;
mod ecg;
mod entered;
mod fhir;
mod ingest;
mod mosquitto;
mod notify;
mod openapi;
mod postgres;
mod reliability;
mod report;
mod restart;
mod schedule;
mod scoring;
mod security;
mod sso;
mod staff;
mod timers;
mod tls;

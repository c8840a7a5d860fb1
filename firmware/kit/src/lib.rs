//! Device-side core of the Vigil patient kit: what runs on a patient's home
//! hub or cellular monitoring device.
//!
//! It turns what the bedside devices say over Bluetooth into the messages of
//! CONTRACTS.md §2, numbers them, and keeps each one until Vigil confirms it
//! is durably stored, so that a flaky connection, a broker restart or a kit
//! reboot never loses or duplicates a reading. The core is `#![no_std]`,
//! allocation-free, does no I/O and takes time as an input; the `std`
//! feature (default) adds file-backed persistence for a Linux hub.
//!
//! # Layout
//!
//! - [`gatt`]: Bluetooth SIG health characteristics (blood pressure, pulse
//!   oximeter spot-check and continuous, heart rate, thermometer) parsed
//!   into validated observations; [`ieee11073`] for their SFLOAT/FLOAT.
//! - [`obs`]: observation codes, units, values ([`Observation`]).
//! - [`obs_message`]: the `obs` JSON uplink; [`ecg_chunk`]: the `ecg` binary
//!   uplink, encode and zero-copy decode (shared with the server ingest).
//! - [`status`]: the retained `status` uplink and last will.
//! - [`cmd`]: the `cmd` downlink (`ack`, `reject`, `advice`, `repeat`,
//!   `config`).
//! - [`seq`]: the per-device sequence counter with a persisted, block-reserved
//!   high-water mark ([`seq::SeqStore`]).
//! - [`outbox`]: the bounded store-and-forward queue; resend on timeout and
//!   reconnect, explicit overflow policy, counted in [`outbox::Stats`].
//! - [`persist`] (`std`): atomic files for the counter and queue snapshots.
//! - [`json`], [`time`], [`error`]: the small JSON reader/writer, Unix ms
//!   to RFC 3339, the encode error.
//!
//! # Wiring it to an MQTT client
//!
//! The kit never touches the network. A caller (the device firmware, or
//! `firmware/devsim` with rumqttc) does five things:
//!
//! 1. at boot: `SeqCounter::boot(store, block)`, restore the outbox snapshot
//!    if any, subscribe to `vigil/v1/dev/{id}/cmd` (QoS 1);
//! 2. per reading: parse the Bluetooth value with a [`gatt`] parser, take
//!    `seq = counter.next_seq()`, build an [`ObsMessage`] (or [`EcgChunk`])
//!    and `outbox.push_obs(&msg)` (or `push_ecg`); save the snapshot;
//! 3. on every tick and after every event: `while let Some(m) =
//!    outbox.poll(now_ms)`, publish `m.payload` to
//!    `vigil/v1/dev/{id}/{m.kind.topic_suffix()}` at QoS 1; use
//!    [`outbox::Outbox::next_due_in`] to sleep until the next resend;
//! 4. on each (re)connect (rumqttc `Event::Incoming(Packet::ConnAck(_))`):
//!    `outbox.on_reconnect()`;
//! 5. on each `cmd` publish: `cmd::parse(payload)`, then `outbox.apply(&c)`
//!    for acks and rejects (save the snapshot), and show `advice` /
//!    `repeat` to the patient.
//!
//! ```
//! use vigil_kit::cmd::{self, Command};
//! use vigil_kit::gatt::{plx_spot_check, Measurement};
//! use vigil_kit::outbox::{Config, Outbox};
//! use vigil_kit::seq::{MemorySeqStore, SeqCounter};
//! use vigil_kit::ObsMessage;
//!
//! let mut seqs = SeqCounter::boot(MemorySeqStore::new(), 64).unwrap();
//! let mut outbox: Outbox<64, 8192> = Outbox::new(Config::default());
//! let mut published = Vec::new(); // stands in for client.publish(...)
//!
//! // A pulse oximeter notifies PLX Spot-Check Measurement: SpO2 94 %, PR 88.
//! let reading = plx_spot_check::parse(&[0x00, 0x5E, 0x00, 0x58, 0x00]).unwrap();
//! let now_unix_ms = 1_795_335_303_000; // from the hub's (NTP-synced) clock
//! let obs = reading.observations();
//! let msg = ObsMessage { seq: seqs.next_seq().unwrap(), ts_ms: now_unix_ms, obs: &obs };
//! outbox.push_obs(&msg).unwrap();
//!
//! let now_mono_ms = 0; // any monotonic clock
//! while let Some(m) = outbox.poll(now_mono_ms) {
//!     let topic = format!("vigil/v1/dev/hub-1/{}", m.kind.topic_suffix());
//!     published.push((topic, m.payload.to_vec()));
//! }
//! assert_eq!(published[0].0, "vigil/v1/dev/hub-1/obs");
//!
//! // Vigil stored it and says so on cmd.
//! let c = cmd::parse(br#"{"type":"ack","seqs":[1]}"#).unwrap();
//! assert!(matches!(c, Command::Ack(_)));
//! outbox.apply(&c);
//! assert!(outbox.is_empty());
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// `std` only with the feature; tests always have it.
#[cfg(any(feature = "std", test))]
extern crate std;

pub mod cmd;
pub mod ecg_chunk;
pub mod error;
pub mod gatt;
pub mod ieee11073;
pub mod json;
pub mod obs;
pub mod obs_message;
pub mod outbox;
#[cfg(feature = "std")]
pub mod persist;
pub mod seq;
pub mod status;
pub mod time;

pub use ecg_chunk::{DecodeError, EcgChunk, EcgChunkRef};
pub use error::EncodeError;
pub use obs::{Acvpu, Code, ObsError, Observation, Posture, Value};
pub use obs_message::ObsMessage;

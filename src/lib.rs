//! carelog: an event-sourced record-keeping backend for paired-care programmes (结对关爱).
//!
//! See ARCHITECTURE.md for the bird's-eye view. The layers, bottom up:
//! [`codec`] (the only bincode), [`log`] (the only sled), [`time`], [`domain`] (the programme).

pub mod api;
pub mod app;
pub mod audit;
pub mod cli;
pub mod codec;
pub mod domain;
pub mod expected;
pub mod log;
pub mod merkle;
pub mod projection;
#[path = "../projections/mod.rs"]
pub mod projections;
pub mod rng;
pub mod time;

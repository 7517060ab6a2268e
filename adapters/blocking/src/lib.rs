//! heartline for blocking code: tungstenite over `std::net`, driven by the
//! [`heartline_core`] state machines.
#![forbid(unsafe_code)]

pub mod hub;
pub mod server;
pub mod wire;

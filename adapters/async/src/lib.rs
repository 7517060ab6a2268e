//! heartline for async code: async-tungstenite over any futures-io stream, with the
//! async-io timer, driven by the [`heartline_core`] state machines.
#![forbid(unsafe_code)]

pub mod server;

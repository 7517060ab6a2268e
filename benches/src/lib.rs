//! heartline benchmarks live in `benches/`; the parts the load program and the echo
//! benches share live here.

pub mod echo;
pub mod faults;
pub mod load;
pub mod procs;
pub mod storm;

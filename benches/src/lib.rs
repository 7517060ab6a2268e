//! heartline benchmarks live in `benches/`; the load program's shared parts live here.

pub mod load;

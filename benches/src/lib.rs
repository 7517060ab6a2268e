//! heartline benchmarks live in `benches/`.

//! Arbitrary bytes from the backplane into the cluster's wire decoder: an error or a
//! message, never a panic or a huge allocation; what decodes encodes back to the
//! same bytes.

use heartline_core::Wire;

/// Runs one input.
pub fn run(bytes: &[u8]) {
    if let Ok(wire) = Wire::decode(bytes) {
        assert_eq!(wire.encode(), bytes, "{wire:?} does not round-trip");
    }
}

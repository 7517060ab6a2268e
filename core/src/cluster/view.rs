//! One node's view of who holds which name, with a digest per holding node, so nodes
//! can tell cheaply whether their views of a node agree with what it holds.

use std::collections::HashMap;
use std::sync::Arc;

/// Who holds a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Holder {
    pub node: Arc<str>,
    pub conn: u64,
    pub stamp: u64,
}

/// Names and their holders.
#[derive(Debug, Default)]
pub(super) struct View {
    names: HashMap<Arc<str>, Holder>,
    /// Per node: the XOR of [`entry`] over the names it holds here.
    digests: HashMap<Arc<str>, u64>,
}

impl View {
    pub fn get(&self, name: &str) -> Option<&Holder> {
        self.names.get(name)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &Holder)> {
        self.names.iter()
    }

    pub fn insert(&mut self, name: &str, holder: Holder) {
        self.remove(name);
        self.flip(name, &holder);
        self.names.insert(Arc::from(name), holder);
    }

    pub fn remove(&mut self, name: &str) -> Option<Holder> {
        let old = self.names.remove(name)?;
        self.flip(name, &old);
        Some(old)
    }

    /// Keeps the names for which `keep` says so.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &Holder) -> bool) {
        let gone: Vec<Arc<str>> = self
            .names
            .iter()
            .filter(|(n, h)| !keep(n, h))
            .map(|(n, _)| n.clone())
            .collect();
        for name in gone {
            self.remove(&name);
        }
    }

    /// The digest of what `node` holds in this view (0 for nothing).
    pub fn digest(&self, node: &str) -> u64 {
        self.digests.get(node).copied().unwrap_or(0)
    }

    fn flip(&mut self, name: &str, h: &Holder) {
        let d = self.digests.entry(h.node.clone()).or_insert(0);
        *d ^= entry(name, h.conn, h.stamp);
        if *d == 0 {
            self.digests.remove(&h.node);
        }
    }
}

/// A well-mixed 64-bit hash of one holding, the same on every node and platform.
fn entry(name: &str, conn: u64, stamp: u64) -> u64 {
    // FNV-1a over the name, then SplitMix64's finaliser over everything.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = h ^ conn.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stamp.rotate_left(32);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

//! Replays every saved input in `regressions/<target>/`: each one found a bug once, and
//! runs here as a plain test (`cargo test` in `fuzz/`, on the stable toolchain).

use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};

fn replay<T: for<'a> Arbitrary<'a>>(target: &str, run: fn(T)) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        let bytes = std::fs::read(&path).expect("a saved input");
        let Ok(input) = T::arbitrary_take_rest(Unstructured::new(&bytes)) else {
            continue;
        };
        eprintln!("replaying {}", path.display());
        run(input);
    }
}

#[test]
fn client_machine() {
    replay("client_machine", heartline_fuzz::client::run);
}

#[test]
fn server_machine() {
    replay("server_machine", heartline_fuzz::server::run);
}

#[test]
fn upgrade() {
    replay("upgrade", heartline_fuzz::upgrade::run);
}

#[test]
fn cluster_machine() {
    replay("cluster_machine", heartline_fuzz::cluster::run);
}

#[test]
fn cluster_wire() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions/cluster_wire");
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let bytes = std::fs::read(entry.path()).expect("a saved input");
        heartline_fuzz::cluster_wire::run(&bytes);
    }
}

#[test]
fn frames() {
    replay("frames", heartline_fuzz::frames::run);
}

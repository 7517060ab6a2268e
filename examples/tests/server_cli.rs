//! The `server` example's timing flags: durations with their unit, the `-ms` forms
//! as aliases, and errors that say what is wrong.

mod common;

use std::process::Command;

use common::server;

fn refused(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(args)
        .output()
        .expect("run the server example");
    assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn durations_take_a_unit_and_the_ms_forms_stay() {
    for args in [
        ["--ping-interval", "200ms", "--idle-timeout", "1s"],
        ["--ping-interval-ms", "200", "--idle-timeout-ms", "1000"],
    ] {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend(args);
        let (_proc, addr) = server(&all);
        assert!(addr.starts_with("127.0.0.1:"), "{args:?}: {addr}");
    }
    assert!(refused(&["--ping-interval", "0s"]).contains("greater than 0"));
    assert!(refused(&["--ping-interval", "5"]).contains("5s or 250ms"));
    assert!(
        refused(&["--ping-interval", "1s", "--ping-interval-ms", "5"]).contains("cannot be used")
    );
}

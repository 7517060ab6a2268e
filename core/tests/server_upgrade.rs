//! Upgrade requests are judged before the 101 and a refusal is a real HTTP status:
//! 404 for a wrong path, 400 for a bad query or a missing name, the callback's 401/403,
//! 503 while shutting down; each refusal is reported and registers nothing.

mod common;

use std::sync::Arc;

use common::server::{config, Harness};
use heartline_core::{
    Accepted, NameSource, PathRule, Rejection, ServerConfig, ServerNotice, UpgradeRequest,
    UpgradeRules,
};

fn status(rules: &UpgradeRules, target: &str) -> Result<Option<String>, u16> {
    rules
        .check(&UpgradeRequest::new(target, &[]))
        .map(|a| a.name)
        .map_err(|r| r.status)
}

#[test]
fn default_rules_follow_seed_002() {
    let rules = UpgradeRules::default();
    assert_eq!(status(&rules, "/ws/?name=test"), Ok(Some("test".into())));
    assert_eq!(
        status(&rules, "/ws/?x=1&name=%E5%BC%A0%20san+x&name=second"),
        Ok(Some("张 san x".into()))
    );
    assert_eq!(status(&rules, "/"), Err(404));
    assert_eq!(status(&rules, "/ws"), Err(404));
    assert_eq!(status(&rules, "/ws/other?name=a"), Err(404));
    assert_eq!(status(&rules, "/api/ws/?name=a"), Err(404));
    assert_eq!(status(&rules, "/ws/"), Err(400));
    assert_eq!(status(&rules, "/ws/?name="), Err(400));
    assert_eq!(status(&rules, "/ws/?name=a%2"), Err(400));
    assert_eq!(status(&rules, "/ws/?name=ok&junk=%zz"), Err(400));
    assert_eq!(status(&rules, "/ws/?name=%ff"), Err(400));
    assert_eq!(status(&rules, "/ws/?name=a%0Ab"), Err(400));
    let long = format!("/ws/?name={}", "x".repeat(129));
    assert_eq!(status(&rules, &long), Err(400));
    let longest = format!("/ws/?name={}", "x".repeat(128));
    assert!(status(&rules, &longest).is_ok());
}

#[test]
fn path_and_name_sources_are_configurable() {
    // Seed 003: ws://localhost:8888/websocket/name
    let seed_003 = {
        let mut built = UpgradeRules::default();
        built.path = PathRule::Prefix("/websocket/".into());
        built.name = NameSource::LastSegment;
        built
    };
    assert_eq!(
        status(&seed_003, "/websocket/name"),
        Ok(Some("name".into()))
    );
    assert_eq!(
        status(&seed_003, "/websocket/a%20b?x=1"),
        Ok(Some("a b".into()))
    );
    assert_eq!(status(&seed_003, "/websocket/"), Err(400));
    assert_eq!(status(&seed_003, "/ws/name"), Err(404));

    // Seed 001: ws://localhost:8080, anonymous clients.
    let seed_001 = {
        let mut built = UpgradeRules::default();
        built.path = PathRule::Any;
        built.name = NameSource::None;
        built.name_required = false;
        built
    };
    assert_eq!(status(&seed_001, "/"), Ok(None));
    assert_eq!(status(&seed_001, "/anything?name=x"), Ok(None));

    let optional = {
        let mut built = UpgradeRules::default();
        built.name_required = false;
        built
    };
    assert_eq!(status(&optional, "/ws/"), Ok(None));

    let custom = {
        let mut built = UpgradeRules::default();
        built.name = NameSource::Custom(Arc::new(|req: &UpgradeRequest<'_>| {
            req.header("x-device")
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_owned)
        }));
        built
    };
    let headers: &[(&str, &[u8])] = &[("Host", b"h"), ("X-Device", b"phone")];
    assert_eq!(
        custom.check(&UpgradeRequest::new("/ws/", headers)),
        Ok(Accepted {
            name: Some("phone".into())
        })
    );
    assert_eq!(status(&custom, "/ws/"), Err(400));
}

#[test]
fn the_authorize_callback_sees_the_request_and_picks_the_status() {
    let rules = {
        let mut built = UpgradeRules::default();
        built.authorize = Some(Arc::new(|req: &UpgradeRequest<'_>| {
            match req.header("authorization") {
                None => Err(Rejection::unauthorized()),
                Some(b"Bearer good") if req.param("name") == Ok(Some("admin".into())) => Ok(()),
                Some(b"Bearer good") => Err(Rejection::forbidden()),
                // A status that is not an error is answered as 403.
                Some(_) => Err(Rejection::new(200, "nonsense")),
            }
        }));
        built
    };
    let check = |target: &str, auth: Option<&'static [u8]>| {
        let headers: Vec<(&str, &[u8])> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        rules
            .check(&UpgradeRequest::new(target, &headers))
            .map_err(|r| r.status)
    };
    assert_eq!(check("/ws/?name=admin", None), Err(401));
    assert_eq!(check("/ws/?name=eve", Some(b"Bearer good")), Err(403));
    assert_eq!(check("/ws/?name=eve", Some(b"Bearer bad")), Err(403));
    assert!(check("/ws/?name=admin", Some(b"Bearer good")).is_ok());
    // The path is checked before the callback runs.
    assert_eq!(check("/nope?name=admin", Some(b"Bearer good")), Err(404));
}

#[test]
fn rejections_are_reported_and_register_nothing() {
    let mut h = Harness::new(config());
    let bad = UpgradeRequest::new("/wrong?name=alice", &[]);
    let rejection = h.server.accept(h.now, &bad).unwrap_err();
    assert_eq!(rejection.status, 404);
    assert_eq!(rejection.reason_phrase(), "Not Found");
    assert!(!rejection.body.is_empty());
    let missing = UpgradeRequest::new("/ws/", &[]);
    assert_eq!(h.server.accept(h.now, &missing).unwrap_err().status, 400);
    assert_eq!(
        h.notices(),
        vec![
            ServerNotice::Rejected {
                path: "/wrong".into(),
                status: 404,
            },
            ServerNotice::Rejected {
                path: "/ws/".into(),
                status: 400,
            },
        ]
    );
    assert!(h.server.is_empty());
    assert_eq!(h.server.clients().count(), 0);
    assert_eq!(h.server.poll_timeout(), None);
}

#[test]
fn shutting_down_answers_503() {
    let mut h = Harness::new(ServerConfig::default());
    h.server.shutdown(h.now);
    let req = UpgradeRequest::new("/ws/?name=late", &[]);
    assert_eq!(h.server.accept(h.now, &req).unwrap_err().status, 503);
}

//! A server configuration that makes no sense is refused when the server is built,
//! with an error naming the field.

use std::time::{Duration, Instant};

use heartline_core::{
    HeartbeatRule, Message, NameSource, PathRule, Server, ServerConfig, UpgradeRules,
};

fn field(config: ServerConfig) -> &'static str {
    Server::new(config, Instant::now()).unwrap_err().field
}

#[test]
fn defaults_are_valid() {
    ServerConfig::default().validate().unwrap();
    let c = ServerConfig::default();
    assert!(c.ping_interval < c.idle_timeout);
    assert_eq!(c.upgrade.path, PathRule::Exact("/ws/".into()));
}

#[test]
fn nonsense_is_refused_naming_the_field() {
    let d = ServerConfig::default;
    let zero = Duration::ZERO;
    assert_eq!(
        field({
            let mut built = d();
            built.ping_interval = zero;
            built
        }),
        "ping_interval"
    );
    assert_eq!(
        field({
            let mut built = d();
            built.idle_timeout = Duration::from_secs(30);
            built
        }),
        "idle_timeout"
    );
    assert_eq!(
        field({
            let mut built = d();
            built.handshake_timeout = zero;
            built
        }),
        "handshake_timeout"
    );
    assert_eq!(
        field({
            let mut built = d();
            built.close_timeout = zero;
            built
        }),
        "close_timeout"
    );
    assert_eq!(
        field({
            let mut built = d();
            built.max_message_size = 0;
            built
        }),
        "max_message_size"
    );
    assert_eq!(
        field({
            let mut built = d();
            built.max_backlog_bytes = 0;
            built
        }),
        "max_backlog_bytes"
    );
    assert_eq!(
        field({
            let mut built = d();
            built.app_heartbeats = vec![HeartbeatRule::text("", "pong")];
            built
        }),
        "app_heartbeats"
    );
    assert_eq!(
        field({
            let mut built = d();
            built.app_heartbeats = vec![HeartbeatRule::json_echo("", "x")];
            built
        }),
        "app_heartbeats"
    );
    let up = |upgrade: UpgradeRules| {
        let mut built = d();
        built.upgrade = upgrade;
        built
    };
    assert_eq!(
        field(up({
            let mut built = UpgradeRules::default();
            built.path = PathRule::Exact("ws".into());
            built
        })),
        "upgrade.path"
    );
    assert_eq!(
        field(up({
            let mut built = UpgradeRules::default();
            built.name = NameSource::Query(String::new());
            built
        })),
        "upgrade.name"
    );
    assert_eq!(
        field(up({
            let mut built = UpgradeRules::default();
            built.name = NameSource::None;
            built
        })),
        "upgrade.name_required"
    );
    assert_eq!(
        field(up({
            let mut built = UpgradeRules::default();
            built.max_name_len = 0;
            built
        })),
        "upgrade.max_name_len"
    );
    let err = Server::new(
        {
            let mut built = d();
            built.close_timeout = zero;
            built
        },
        Instant::now(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("close_timeout"), "{err}");
    // A payload type of the driver's own works the same way.
    let err = Server::<std::sync::Arc<Message>>::with_payload_len(
        {
            let mut built = d();
            built.ping_interval = zero;
            built
        },
        Instant::now(),
        |m| m.len(),
    )
    .unwrap_err();
    assert_eq!(err.field, "ping_interval");
}

#[test]
fn ping_slack_is_capped_in_proportion_to_the_timeouts() {
    let ms = Duration::from_millis;
    let c = |ping, idle, slack| {
        let mut built = ServerConfig::default();
        built.ping_interval = ms(ping);
        built.idle_timeout = ms(idle);
        built.ping_slack = ms(slack);
        built
    };
    assert_eq!(ServerConfig::default().effective_ping_slack(), ms(100));
    assert_eq!(c(50, 150, 100).effective_ping_slack(), ms(5));
    assert_eq!(c(1000, 1010, 100).effective_ping_slack(), ms(5));
    assert_eq!(c(1000, 3000, 0).effective_ping_slack(), ms(0));
    // Short timeouts with the default slack are valid.
    Server::new(c(50, 60, 100), Instant::now()).unwrap();
}

#[test]
fn a_server_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Server>();
    send_sync::<Server<std::sync::Arc<Message>>>();
    send_sync::<ServerConfig>();
}

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
        field(ServerConfig {
            ping_interval: zero,
            ..d()
        }),
        "ping_interval"
    );
    assert_eq!(
        field(ServerConfig {
            idle_timeout: Duration::from_secs(30),
            ..d()
        }),
        "idle_timeout"
    );
    assert_eq!(
        field(ServerConfig {
            handshake_timeout: zero,
            ..d()
        }),
        "handshake_timeout"
    );
    assert_eq!(
        field(ServerConfig {
            close_timeout: zero,
            ..d()
        }),
        "close_timeout"
    );
    assert_eq!(
        field(ServerConfig {
            max_message_size: 0,
            ..d()
        }),
        "max_message_size"
    );
    assert_eq!(
        field(ServerConfig {
            max_backlog_bytes: 0,
            ..d()
        }),
        "max_backlog_bytes"
    );
    assert_eq!(
        field(ServerConfig {
            app_heartbeats: vec![HeartbeatRule::text("", "pong")],
            ..d()
        }),
        "app_heartbeats"
    );
    assert_eq!(
        field(ServerConfig {
            app_heartbeats: vec![HeartbeatRule::json_echo("", "x")],
            ..d()
        }),
        "app_heartbeats"
    );
    let up = |upgrade: UpgradeRules| ServerConfig { upgrade, ..d() };
    assert_eq!(
        field(up(UpgradeRules {
            path: PathRule::Exact("ws".into()),
            ..UpgradeRules::default()
        })),
        "upgrade.path"
    );
    assert_eq!(
        field(up(UpgradeRules {
            name: NameSource::Query(String::new()),
            ..UpgradeRules::default()
        })),
        "upgrade.name"
    );
    assert_eq!(
        field(up(UpgradeRules {
            name: NameSource::None,
            ..UpgradeRules::default()
        })),
        "upgrade.name_required"
    );
    assert_eq!(
        field(up(UpgradeRules {
            max_name_len: 0,
            ..UpgradeRules::default()
        })),
        "upgrade.max_name_len"
    );
    let err = Server::new(
        ServerConfig {
            close_timeout: zero,
            ..d()
        },
        Instant::now(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("close_timeout"), "{err}");
    // A payload type of the driver's own works the same way.
    let err = Server::<std::sync::Arc<Message>>::with_payload_len(
        ServerConfig {
            ping_interval: zero,
            ..d()
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
    let c = |ping, idle, slack| ServerConfig {
        ping_interval: ms(ping),
        idle_timeout: ms(idle),
        ping_slack: ms(slack),
        ..ServerConfig::default()
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

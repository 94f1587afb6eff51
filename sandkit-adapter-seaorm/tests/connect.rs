//! Connecting: a closed port fails at once naming `host:port`, and a database password
//! appears in no error and no log line, at any level.

use std::time::{Duration, Instant};

use sandkit_adapter_seaorm::SeaOrmStore;
use sandkit_core::ErrorKind;

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test]
async fn a_closed_port_is_refused_at_once_naming_host_and_port() {
    for scheme in ["postgres", "mysql"] {
        let port = closed_port();
        let url = format!("{scheme}://user:pw-0123456789@127.0.0.1:{port}/x");
        let started = Instant::now();
        let error = SeaOrmStore::connect_with_timeout(&url, Duration::from_secs(20))
            .await
            .expect_err("nothing listens");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{scheme}: {error}"
        );
        assert_eq!(error.kind(), &ErrorKind::Storage);
        let text = error.to_string();
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
        assert!(text.contains("connection refused"), "{text}");
        assert!(!text.contains("pw-0123456789"), "{text}");
    }
}

#[tokio::test]
async fn passwords_stay_out_of_trace_logs_and_errors() {
    let Ok(url) = std::env::var("SANDKIT_TEST_MYSQL_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "SANDKIT_TEST_MYSQL_URL is required under CI"
        );
        eprintln!("skipped: SANDKIT_TEST_MYSQL_URL is unset");
        return;
    };
    let with_password = url.replacen("://root@", "://root:s3cret-pw@", 1);
    assert_ne!(with_password, url, "expects a mysql://root@… URL");
    let captured = sandkit_testkit::logs::CapturedLogs::trace();
    let outcome = SeaOrmStore::connect_with_timeout(&with_password, Duration::from_secs(5)).await;
    let error = outcome
        .err()
        .map(|e| format!("{e} {e:?}"))
        .unwrap_or_default();
    let logs = captured.text();
    assert!(!logs.is_empty(), "trace logging captured something");
    assert!(
        !logs.contains("s3cret-pw"),
        "the logs leak the password: {logs}"
    );
    assert!(
        !error.contains("s3cret-pw"),
        "the error leaks the password: {error}"
    );
}

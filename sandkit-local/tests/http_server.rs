//! A server started in a session answers on its URL until the session is committed.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, provider, sh, start_with};
use sandkit_core::ExecSpec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A minimal HTTP/1.0 GET; returns the whole response.
async fn get(url: &str) -> std::io::Result<String> {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /index.html HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_server_answers_on_its_url_and_commit_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let port = free_port();
    let mut spec = common::fresh("local-tests");
    spec.ports = vec![port];
    let s = start_with(&p, spec).await;
    sh(&*s, "echo served-by-sandkit > index.html").await;
    let server = s
        .spawn(ExecSpec {
            command: "python3".into(),
            args: vec![
                "-m".into(),
                "http.server".into(),
                port.to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
            ],
            ..ExecSpec::default()
        })
        .await
        .expect("spawn");
    let url = s.url(port).await.expect("url");
    assert_eq!(url, format!("http://127.0.0.1:{port}"));

    let deadline = Instant::now() + Duration::from_secs(20);
    let response = loop {
        match get(&url).await {
            Ok(r) => break r,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("server never answered on {url}: {e}"),
        }
    };
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert!(response.contains("served-by-sandkit"), "{response}");
    let listed = s.processes().await.unwrap();
    assert!(
        listed
            .iter()
            .any(|pi| pi.id == server.id && pi.exit_code.is_none())
    );

    let err = s.url(port + 1).await.unwrap_err();
    assert_eq!(err.kind(), &sandkit_core::ErrorKind::InvalidInput);

    s.snapshot().await.expect("commit");
    // The server was stopped and its port is free again.
    assert!(
        get(&url).await.is_err(),
        "server still answers after commit"
    );
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("port is free after commit");
}

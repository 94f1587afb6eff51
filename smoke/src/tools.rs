//! Tiny helper programs the scenarios run inside sandboxes (as `sandkit-smoke <tool>`),
//! so that the smoke run needs nothing else installed: an HTTP server for the public
//! URL check and a TCP probe for egress checks.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

/// The body [`serve_http`] answers every request with.
pub const HTTP_BODY: &str = "hello from the session\n";

/// The line [`serve_http`] prints once it listens.
pub fn serving_line(port: u16) -> String {
    format!("serving on 127.0.0.1:{port}")
}

/// Serves [`HTTP_BODY`] on `127.0.0.1:port` until killed.
pub fn serve_http(port: u16) -> ExitCode {
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", serving_line(port));
    let _ = std::io::stdout().flush();
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut request = [0u8; 2048];
        let _ = stream.read(&mut request);
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{HTTP_BODY}",
            HTTP_BODY.len()
        );
        let _ = stream.write_all(answer.as_bytes());
    }
    ExitCode::SUCCESS
}

/// Exits 0 when a TCP connection to `addr` succeeds within two seconds, 1 otherwise.
pub fn probe_tcp(addr: &str) -> ExitCode {
    let target = match addr.to_socket_addrs().ok().and_then(|mut a| a.next()) {
        Some(t) => t,
        None => {
            eprintln!("{addr} is not an address");
            return ExitCode::from(2);
        }
    };
    match TcpStream::connect_timeout(&target, Duration::from_secs(2)) {
        Ok(_) => {
            println!("connected to {target}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("cannot connect to {target}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A plain `GET /` over HTTP/1.0; returns the body.
///
/// # Errors
/// When the connection or the answer fails.
pub async fn http_get(url: &str) -> anyhow::Result<String> {
    use anyhow::Context as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let parsed = url::Url::parse(url).with_context(|| format!("{url} is not a URL"))?;
    let host = parsed.host_str().context("URL without a host")?;
    let port = parsed
        .port_or_known_default()
        .context("URL without a port")?;
    let mut stream = tokio::net::TcpStream::connect((host, port))
        .await
        .with_context(|| format!("connecting to {url}"))?;
    stream
        .write_all(format!("GET / HTTP/1.0\r\nhost: {host}\r\n\r\n").as_bytes())
        .await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .with_context(|| format!("{url} answered without a header end: {answer:?}"))?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "{url} answered {head:?}");
    Ok(body.to_owned())
}

//! The standalone `fake-vercel` server: prints its URL, answers a client that is not
//! this process (plain HTTP with the documented credentials), stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn the_standalone_fake_serves_other_processes_until_terminated() {
    let mut server = Command::new(env!("CARGO_BIN_EXE_fake-vercel"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start fake-vercel");
    let mut url = String::new();
    BufReader::new(server.stdout.take().expect("stdout"))
        .read_line(&mut url)
        .expect("read the URL");
    let url = url.trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    // A separate process (curl) creates a sandbox with the documented credentials.
    let created = Command::new("curl")
        .args(["-sS", "-X", "POST", "-H", "authorization: Bearer tok"])
        .args(["-H", "content-type: application/json"])
        .args(["--data", r#"{"projectId":"prj_123","timeout":60000}"#])
        .arg(format!("{url}/v3/sandboxes?teamId=team_abc"))
        .output()
        .expect("curl");
    let body: serde_json::Value = serde_json::from_slice(&created.stdout).expect("a JSON answer");
    assert_eq!(body["session"]["status"], "running", "{body}");
    // Wrong credentials are refused as the real API refuses them.
    let refused = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!(
            "{url}/v2/sandboxes/snapshots?teamId=team_abc&project=prj_123"
        ))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&refused.stdout), "401");

    let terminated = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(terminated.success());
    let status = server.wait().expect("wait");
    assert!(status.success(), "stops cleanly on SIGTERM: {status:?}");
}

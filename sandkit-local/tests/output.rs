//! Command output on the local provider is raw bytes, exact and of any size: at the
//! provider, through `Sandkit`'s durable commands, and in background process logs.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{provider, shell, start};
use futures::StreamExt;
use sandkit_adapter_memory::MemoryStore;
use sandkit_core::{CommandSpec, DEFAULT_LOG_MEMORY_CAP, Sandkit, StdStream, WorkspaceSpec};

/// Invalid UTF-8 on purpose: a PNG signature followed by a UTF-16 byte-order mark.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\xff\xfe";
/// `printf` format writing [`PNG`].
const PNG_PRINTF: &str = r"printf '\211PNG\r\n\032\n\377\376'";

/// More than the in-memory cap.
const BIG: usize = DEFAULT_LOG_MEMORY_CAP + 3_000_000;

fn kit(root: &std::path::Path) -> Sandkit {
    Sandkit::builder()
        .store(Arc::new(MemoryStore::new()))
        .provider(Arc::new(provider(root)))
        .build()
        .expect("sandkit")
}

fn sh(script: &str) -> CommandSpec {
    CommandSpec::new("sh").args(["-c", script])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_output_is_the_exact_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let s = start(&p).await;
    let mut handle = s
        .exec(shell(&format!("{PNG_PRINTF}; {PNG_PRINTF} >&2")))
        .await
        .expect("exec");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(chunk) = handle.output.next().await {
        let chunk = chunk.expect("chunk");
        match chunk.stream {
            StdStream::Stdout => out.extend_from_slice(&chunk.bytes),
            StdStream::Stderr => err.extend_from_slice(&chunk.bytes),
        }
    }
    assert_eq!(handle.exit.await.expect("exit"), 0);
    assert_eq!(out, PNG);
    assert_eq!(err, PNG);
    s.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_logs_are_the_exact_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let s = start(&p).await;
    let handle = s.spawn(shell(PNG_PRINTF)).await.expect("spawn");
    let id = handle.id.clone();
    drop(handle);
    let logs: Vec<u8> = tokio::time::timeout(
        Duration::from_secs(10),
        s.process_logs(&id)
            .await
            .expect("logs")
            .map(|c| c.expect("chunk").bytes.to_vec())
            .concat(),
    )
    .await
    .expect("logs end");
    assert_eq!(logs, PNG);
    s.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_results_keep_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let kit = kit(dir.path());
    let ws = kit
        .create_workspace(WorkspaceSpec::new().name("bytes"))
        .await
        .expect("workspace");
    let result = ws.run_command(sh(PNG_PRINTF)).await.expect("run");
    assert_eq!(result.stdout_bytes(), PNG);
    assert_eq!(result.stdout, String::from_utf8_lossy(PNG));
    assert!(!result.stdout_truncated);
    let run = &ws.runs(Default::default()).await.expect("runs").items[0];
    assert_eq!(run.stdout_bytes_written(), Some(result.stdout.len() as u64));
}

/// Output past the in-memory cap reaches a reader attached to the command in full (the
/// command waits for it), while the result and the journal say it was cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_past_the_memory_cap_reaches_a_live_reader() {
    let dir = tempfile::tempdir().unwrap();
    let kit = kit(dir.path());
    let ws = kit
        .create_workspace(WorkspaceSpec::new().name("big"))
        .await
        .expect("workspace");
    let cmd = ws
        .spawn_command(sh(&format!("head -c {BIG} /dev/zero; echo done >&2")))
        .await
        .expect("spawn");
    let mut logs = cmd.logs();
    let (mut out, mut non_zero, mut err) = (0usize, 0usize, Vec::new());
    while let Some(chunk) = logs.next().await {
        let chunk = chunk.expect("chunk");
        match chunk.stream {
            StdStream::Stdout => {
                out += chunk.len();
                non_zero += chunk.bytes.iter().filter(|b| **b != 0).count();
                // A slow reader: the command must wait, not drop output.
                if out % (1 << 20) < chunk.len() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            StdStream::Stderr => err.extend_from_slice(&chunk.bytes),
        }
    }
    assert_eq!(out, BIG, "every byte reached the live reader");
    assert_eq!(non_zero, 0);
    assert_eq!(err, b"done\n");
    let result = cmd.wait().await.expect("wait");
    assert_eq!(result.exit_code, 0);
    assert!(result.stdout_truncated);
    assert_eq!(result.stdout_bytes().len(), DEFAULT_LOG_MEMORY_CAP);
    assert!(!result.stderr_truncated);

    let run = &ws.runs(Default::default()).await.expect("runs").items[0];
    assert!(run.stdout_truncated);
    assert_eq!(run.stdout_bytes_written(), Some(BIG as u64));
    assert!(run.stdout.as_deref().is_some_and(|s| s.ends_with(&format!(
        "[sandkit: stdout truncated; {BIG} bytes written]\n"
    ))));
    assert_eq!(run.stderr_bytes_written(), Some(5));
}

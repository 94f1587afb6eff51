//! Command output through the real `sandkit` binary: byte-exact, of any size, and a
//! reader that stops reading ends us quietly.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};

use common::{Home, assert_code, stderr};
use serde_json::Value;

/// Exit status after a closed stdout (128 + SIGPIPE).
const SIGPIPE_EXIT: i32 = 141;

/// Bytes of zeros written by the big-output tests: more than the 16 MiB kept in memory.
const BIG: usize = 20_000_000;

/// Runs `cmd`, counting its stdout bytes (and checking they are all zero) without
/// keeping them; returns the count and the output of the finished process.
fn count_zeros(mut cmd: Command) -> (usize, std::process::Output) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sandkit");
    let mut out = child.stdout.take().expect("stdout");
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    let mut non_zero = 0;
    loop {
        let n = out.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        non_zero += buf[..n].iter().filter(|b| **b != 0).count();
        total += n;
    }
    let output = child.wait_with_output().expect("wait");
    assert_eq!(non_zero, 0, "only zeros were written");
    (total, output)
}

/// The JSON document `sandkit --json args…` prints.
fn json(home: &Home, args: &[&str]) -> Value {
    let out = home.run(&[&["--json"], args].concat());
    assert_code(&out, 0);
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn output_past_the_memory_cap_streams_completely_and_the_journal_says_it_was_cut() {
    let home = Home::new();
    let mut cmd = home.std_cmd();
    cmd.args([
        "run",
        "big",
        "--",
        "sh",
        "-c",
        &format!("head -c {BIG} /dev/zero"),
    ]);
    let (total, out) = count_zeros(cmd);
    assert_code(&out, 0);
    assert_eq!(total, BIG, "every byte reached our stdout");

    let runs = json(&home, &["runs", "big"]);
    let run = &runs.as_array().expect("runs")[0];
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["stdoutTruncated"], true);
    let stored = run["stdout"].as_str().expect("stored stdout");
    assert!(
        stored.ends_with(&format!(
            "\n[sandkit: stdout truncated; {BIG} bytes written]\n"
        )),
        "stored text ends with the marker: {:?}",
        &stored[stored.len().saturating_sub(80)..]
    );
    assert!(stored.len() < 1024 * 1024, "the journal's copy is capped");
    assert_eq!(run["stderrTruncated"], false);
}

#[test]
fn binary_output_arrives_byte_for_byte() {
    let home = Home::new();
    let png = b"\x89PNG\r\n\x1a\n\xff\xfe";
    // printf with octal escapes: the exact bytes, including invalid UTF-8.
    let out = home.run(&[
        "run",
        "bin",
        "--",
        "sh",
        "-c",
        r"printf '\211PNG\r\n\032\n\377\376'; printf '\377err' >&2",
    ]);
    assert_code(&out, 0);
    assert_eq!(out.stdout, png, "stdout is byte-exact");
    assert!(
        out.stderr.ends_with(b"\xfferr"),
        "stderr is byte-exact: {:?}",
        out.stderr
    );

    // A file copied out with cat, and a tar stream, too.
    let out = home.run(&[
        "run",
        "bin",
        "--",
        "sh",
        "-c",
        r"printf '\211PNG\r\n\032\n\377\376' > image.png; cat image.png",
    ]);
    assert_code(&out, 0);
    assert_eq!(out.stdout, png);
    let out = home.run(&["run", "bin", "--", "tar", "c", "image.png"]);
    assert_code(&out, 0);
    let tar = &out.stdout;
    assert_eq!(tar.len() % 512, 0, "a whole tar archive");
    assert!(
        tar.windows(png.len()).any(|w| w == png),
        "the archive holds the file's exact bytes"
    );
}

#[test]
fn a_closed_stdout_ends_a_listing_quietly() {
    let home = Home::new();
    // A journal with a big stored stdout, so the listing is larger than a pipe buffer.
    let out = home.run(&[
        "run",
        "list",
        "--",
        "sh",
        "-c",
        "head -c 300000 /dev/zero | tr '\\0' a",
    ]);
    assert_code(&out, 0);
    for args in [
        &["--json", "runs", "list"][..],
        &["runs", "list", "--jsonl"],
    ] {
        // `sandkit … | head -c 100`
        let mut child = home
            .std_cmd()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut out = child.stdout.take().expect("stdout");
        let mut first = [0u8; 100];
        out.read_exact(&mut first).expect("first 100 bytes");
        drop(out);
        let done = child.wait_with_output().expect("wait");
        let err = stderr(&done);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(done.status.code(), Some(SIGPIPE_EXIT), "{args:?}: {err}");
    }
}

#[test]
fn a_closed_stdout_hangs_up_the_command_and_the_run_is_recorded() {
    let home = Home::new();
    // `sandkit run ws -- yes | head -1`
    let mut child = home
        .std_cmd()
        .args(["run", "yes", "--", "yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().expect("stdout");
    let mut line = [0u8; 2];
    out.read_exact(&mut line).expect("first line");
    assert_eq!(&line, b"y\n");
    drop(out);
    let done = child.wait_with_output().expect("wait");
    let err = stderr(&done);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(done.status.code(), Some(SIGPIPE_EXIT), "{err}");

    let runs = json(&home, &["runs", "yes"]);
    let run = &runs.as_array().expect("runs")[0];
    assert_eq!(run["status"], "interrupted", "{run}");
    assert!(
        run["error"]
            .as_str()
            .is_some_and(|e| e.contains("stdout closed")),
        "{run}"
    );
    // Nothing is left holding the workspace: the next run works.
    let out = home.run(&["run", "yes", "--", "true"]);
    assert_code(&out, 0);
}

#[test]
fn session_exec_and_logs_stream_exact_bytes_of_any_size() {
    let home = Home::new();
    assert_code(&home.run(&["session", "open", "s"]), 0);
    let png = b"\x89PNG\r\n\x1a\n\xff\xfe";
    let printf = r"printf '\211PNG\r\n\032\n\377\376'";

    let out = home.run(&["session", "exec", "s", "--", "sh", "-c", printf]);
    assert_code(&out, 0);
    assert_eq!(out.stdout, png);

    let mut cmd = home.std_cmd();
    cmd.args([
        "session",
        "exec",
        "s",
        "--",
        "sh",
        "-c",
        &format!("head -c {BIG} /dev/zero"),
    ]);
    let (total, out) = count_zeros(cmd);
    assert_code(&out, 0);
    assert_eq!(total, BIG);

    let started = home.run(&["session", "start", "s", "--", "sh", "-c", printf]);
    assert_code(&started, 0);
    let process = String::from_utf8_lossy(&started.stdout).trim().to_owned();
    let logs = home.run(&["session", "logs", "s", &process, "--follow"]);
    assert_code(&logs, 0);
    assert_eq!(logs.stdout, png);

    assert_code(&home.run(&["session", "discard", "s"]), 0);
}

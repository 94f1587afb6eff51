//! Snapshot benchmark: the local provider against `tar | zstd` on the same tree.
//!
//! ```text
//! cargo run --release -p sandkit-local --example snapshot_bench [-- --runs N]
//! ```
//!
//! Generates 100 MB of pseudo-random text in 2,000 files, then measures (one warm-up,
//! then N runs; median, min, max in milliseconds):
//! * `snapshot_full`: `snapshot()` of a session holding the tree, into an empty store;
//! * `restore`: `start()` from that snapshot;
//! * `snapshot_incremental`: `snapshot()` of the restored session after one file changed;
//! * `tar_zstd_create` / `tar_zstd_extract`: `tar -C dir -cf - . | zstd -3 -T0` and the
//!   matching extract, run as commands.
//!
//! Before every timed step, ended sessions are fully deleted and `sync` runs, so
//! earlier work does not bleed into it. Prints
//! one JSON line with the results and the target ratios (snapshot/tar ≤ 1.2,
//! incremental/full ≤ 0.1). Set `SANDKIT_BENCH_DIR` to work somewhere other than the
//! system temp directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sandkit_core::{Provider, ProviderSession, SnapshotRef, StartSpec, WorkspaceId};
use sandkit_local::LocalProvider;
use sandkit_policies::FirewallRules;
use serde_json::json;

const FILES: usize = 2_000;
const TOTAL_BYTES: usize = 100 * 1024 * 1024;
const DIRS: usize = 20;

fn sh(script: &str) {
    let status = Command::new("sh")
        .args(["-c", script])
        .status()
        .expect("run sh");
    assert!(status.success(), "`{script}` failed: {status}");
}

fn sync() {
    sh("sync");
}

/// Pseudo-random text: words drawn from a fixed vocabulary, so it compresses about
/// like source code or logs (zstd -3 reaches roughly 3:1), not trivially.
fn generate(dir: &Path) {
    let mut rng = StdRng::seed_from_u64(0x5A4D_6B17);
    let vocabulary: Vec<String> = (0..4096)
        .map(|_| {
            let len = rng.random_range(2..12);
            (0..len)
                .map(|_| char::from(rng.random_range(b'a'..=b'z')))
                .collect()
        })
        .collect();
    let per_file = TOTAL_BYTES / FILES;
    for i in 0..FILES {
        let sub = dir.join(format!("pkg{:02}/src", i % DIRS));
        std::fs::create_dir_all(&sub).expect("mkdir");
        let size = rng.random_range(per_file / 2..per_file * 3 / 2);
        let mut text = String::with_capacity(size + 16);
        while text.len() < size {
            text.push_str(&vocabulary[rng.random_range(0..vocabulary.len())]);
            text.push(if rng.random_ratio(1, 12) { '\n' } else { ' ' });
        }
        std::fs::write(sub.join(format!("file{i:04}.txt")), text).expect("write");
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn spec(from: Option<SnapshotRef>) -> StartSpec {
    StartSpec {
        workspace_id: WorkspaceId::new("bench").expect("id"),
        from,
        rules: FirewallRules::AllowAll,
        ports: Vec::new(),
        timeout: Duration::from_secs(600),
        vcpus: None,
        name: None,
    }
}

#[derive(Default)]
struct Samples {
    full: Vec<f64>,
    restore: Vec<f64>,
    incremental: Vec<f64>,
    tar_create: Vec<f64>,
    tar_extract: Vec<f64>,
    stored_bytes: u64,
    archive_bytes: u64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Waits until ended sessions were deleted in the background, so their deletion does
/// not compete with the next measurement.
fn settle(root: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_dir(root.join("trash")).is_ok_and(|mut d| d.next().is_some())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    sync();
}

async fn timed<T>(root: &Path, work: impl std::future::Future<Output = T>) -> (T, f64) {
    settle(root);
    let started = Instant::now();
    let out = work.await;
    (out, ms(started.elapsed()))
}

async fn one_run(template: &Path, scratch: &Path, samples: &mut Samples, record: bool) {
    let root = scratch.join("root");
    let provider = LocalProvider::new(&root).expect("provider");
    let session = provider.start(spec(None)).await.expect("start");
    let work = provider.work_dir(&session.session_ref()).expect("work dir");
    sh(&format!(
        "cp -a {}/. {}/",
        template.display(),
        work.display()
    ));

    let (snap, full) = timed(&root, session.snapshot()).await;
    let snap = snap.expect("snapshot");
    let (restored, restore) = timed(&root, provider.start(spec(Some(snap)))).await;
    let restored: Box<dyn ProviderSession> = restored.expect("restore");
    let restored_work = provider
        .work_dir(&restored.session_ref())
        .expect("work dir");
    // An edit: one line appended to one file.
    std::fs::OpenOptions::new()
        .append(true)
        .open(restored_work.join("pkg07/src/file0007.txt"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"one more line\n"))
        .expect("change a file");
    let (_, incremental) = timed(&root, restored.snapshot()).await;

    let archive = scratch.join("tree.tar.zst");
    let (_, tar_create) = timed(&root, async {
        sh(&format!(
            "tar -C {} -cf - . | zstd -3 -T0 -q -f -o {}",
            template.display(),
            archive.display()
        ))
    })
    .await;
    let extracted = scratch.join("extracted");
    std::fs::create_dir_all(&extracted).expect("mkdir");
    let (_, tar_extract) = timed(&root, async {
        sh(&format!(
            "zstd -d -q -c {} | tar -C {} -xf -",
            archive.display(),
            extracted.display()
        ))
    })
    .await;

    if record {
        samples.full.push(full);
        samples.restore.push(restore);
        samples.incremental.push(incremental);
        samples.tar_create.push(tar_create);
        samples.tar_extract.push(tar_extract);
        samples.stored_bytes = dir_bytes(&root.join("objects"));
        samples.archive_bytes = std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
    }
    drop(restored);
    drop(session);
    settle(&root);
    std::fs::remove_dir_all(scratch).expect("clean up");
}

fn stats(values: &[f64]) -> serde_json::Value {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = if sorted.is_empty() {
        0.0
    } else if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0
    };
    let round = |v: f64| (v * 10.0).round() / 10.0;
    json!({
        "median_ms": round(median),
        "min_ms": round(sorted.first().copied().unwrap_or(0.0)),
        "max_ms": round(sorted.last().copied().unwrap_or(0.0)),
    })
}

fn median(values: &[f64]) -> f64 {
    stats(values)["median_ms"].as_f64().unwrap_or(0.0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(5);
    let base: PathBuf = std::env::var_os("SANDKIT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).expect("bench dir");
    let template = dir.path().join("template");
    generate(&template);
    let tree_bytes = dir_bytes(&template);
    eprintln!(
        "generated {FILES} files, {:.1} MB; {runs} runs after one warm-up",
        tree_bytes as f64 / 1e6
    );
    let mut samples = Samples::default();
    for run in 0..=runs {
        let scratch = dir.path().join(format!("run{run}"));
        std::fs::create_dir_all(&scratch).expect("mkdir");
        one_run(&template, &scratch, &mut samples, run > 0).await;
    }
    let full = median(&samples.full);
    let result = json!({
        "bench": "sandkit-local snapshot",
        "files": FILES,
        "tree_bytes": tree_bytes,
        "runs": runs,
        "cpus": std::thread::available_parallelism().map(usize::from).unwrap_or(1),
        "snapshot_full": stats(&samples.full),
        "restore": stats(&samples.restore),
        "snapshot_incremental": stats(&samples.incremental),
        "tar_zstd_create": stats(&samples.tar_create),
        "tar_zstd_extract": stats(&samples.tar_extract),
        "ratio_snapshot_vs_tar": (full / median(&samples.tar_create) * 100.0).round() / 100.0,
        "ratio_restore_vs_untar": (median(&samples.restore) / median(&samples.tar_extract) * 100.0).round() / 100.0,
        "ratio_incremental_vs_full": (median(&samples.incremental) / full * 1000.0).round() / 1000.0,
        "stored_bytes": samples.stored_bytes,
        "archive_bytes": samples.archive_bytes,
        "targets": {"ratio_vs_tar_max": 1.2, "incremental_vs_full_max": 0.1},
    });
    println!("{result}");
}

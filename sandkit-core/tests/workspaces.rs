//! Workspace administration: create, open, list, delete, validation and the builder.

mod common;

use std::sync::Arc;

use common::{Rig, new_ws, run, sh};
use sandkit_core::policies::{Policy, Secret, presets};
use sandkit_core::{
    ErrorKind, ListOptions, Sandkit, SessionOptions, WorkspaceSpec, WorkspaceState, WorkspaceStatus,
};
use sandkit_testkit::FakeProvider;
use serde_json::json;

#[tokio::test]
async fn the_builder_names_what_is_missing() {
    let err = Sandkit::builder()
        .store(Arc::new(sandkit_adapter_memory::MemoryStore::new()))
        .build()
        .expect_err("no provider");
    assert_eq!(err.kind(), &ErrorKind::InvalidInput);
    assert!(err.to_string().contains("needs a provider"), "{err}");
    let err = Sandkit::builder()
        .provider(Arc::new(FakeProvider::new()))
        .build()
        .expect_err("no store");
    assert!(err.to_string().contains("needs a store"), "{err}");
    let rig = Rig::new();
    let err = rig
        .builder()
        .heartbeat_interval(std::time::Duration::from_secs(60))
        .build()
        .expect_err("heartbeat slower than ttl");
    assert!(err.to_string().contains("heartbeat_interval"), "{err}");
}

#[tokio::test]
async fn create_open_and_reserved_metadata() {
    let rig = Rig::new();
    let kit = rig.kit();
    let mut metadata = json!({"team": "infra", "sandkit:sandbox": {"kind": "session"}})
        .as_object()
        .cloned()
        .expect("object");
    metadata.insert("sandkit:policy".into(), json!({"mode": "allow-all"}));
    let ws = kit
        .create_workspace(
            WorkspaceSpec::new()
                .id("agent-1")
                .name("Agent one")
                .metadata(metadata)
                .exposed_ports([3000, 3001])
                .policy(Policy::allow_services([presets::npm(), presets::github()]).expect("p")),
        )
        .await
        .expect("create");
    assert_eq!(ws.id().as_str(), "agent-1");
    let record = kit
        .workspace("agent-1")
        .await
        .expect("open")
        .record()
        .clone();
    assert_eq!(record.name, "Agent one");
    assert_eq!(record.status, WorkspaceStatus::Active);
    assert_eq!(record.state(), WorkspaceState::Cold);
    assert_eq!(
        record.metadata.len(),
        1,
        "sandkit:* keys are stripped: {:?}",
        record.metadata
    );
    assert_eq!(record.sandbox_config.exposed_ports, [3000, 3001]);
    assert_eq!(
        record.policy.map(|p| p.describe()).as_deref(),
        Some("allow-services:github,npm")
    );
    assert_eq!(rig.provider.calls().starts, 0, "creating starts no sandbox");

    let err = kit
        .create_workspace(WorkspaceSpec::new().id("agent-1"))
        .await
        .expect_err("duplicate");
    assert_eq!(err.kind(), &ErrorKind::AlreadyExists);
    let err = kit.workspace("missing").await.expect_err("missing");
    assert_eq!(err.kind(), &ErrorKind::NotFound);
    assert!(
        err.to_string().starts_with("Workspace not found: missing"),
        "{err}"
    );
}

#[tokio::test]
async fn bad_workspace_input_is_rejected_with_guidance() {
    let rig = Rig::new();
    let kit = rig.kit();
    let cases = [
        (WorkspaceSpec::new().id("has space"), "' '"),
        (WorkspaceSpec::new().exposed_ports([0]), "exposed_ports[0]"),
        (WorkspaceSpec::new().exposed_ports([80, 80]), "twice"),
        (WorkspaceSpec::new().name("  "), "blank"),
        (WorkspaceSpec::new().vcpus(0), "vcpus"),
        (
            WorkspaceSpec::new().policy(
                Policy::allow_services([presets::github().token(Secret::new("ghp_x"))]).expect("p"),
            ),
            "cannot be stored durably",
        ),
    ];
    for (spec, needle) in cases {
        let err = kit.create_workspace(spec).await.expect_err(needle);
        assert_eq!(err.kind(), &ErrorKind::InvalidInput, "{needle}: {err}");
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
    let mut caps = FakeProvider::full_capabilities();
    caps.ports = None;
    let portless = Rig::with_provider(FakeProvider::with_capabilities(caps));
    let err = portless
        .kit()
        .create_workspace(WorkspaceSpec::new().exposed_ports([3000]))
        .await
        .expect_err("no ports");
    assert_eq!(err.kind(), &ErrorKind::Unsupported);
    let listed = kit
        .list_workspaces(ListOptions::default())
        .await
        .expect("list");
    assert!(listed.items.is_empty(), "nothing was written");
}

#[tokio::test]
async fn list_pages_and_filters() {
    let rig = Rig::new();
    let kit = rig.kit();
    for i in 0..7 {
        let status = if i < 2 {
            WorkspaceStatus::Archived
        } else {
            WorkspaceStatus::Active
        };
        kit.create_workspace(
            WorkspaceSpec::new()
                .id(format!("w{i}"))
                .name(format!("batch-{i}"))
                .status(status),
        )
        .await
        .expect("create");
    }
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page = kit
            .list_workspaces(ListOptions {
                cursor: cursor.clone(),
                limit: Some(3),
                ..ListOptions::default()
            })
            .await
            .expect("list");
        ids.extend(page.items.into_iter().map(|w| w.id.to_string()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(ids, ["w0", "w1", "w2", "w3", "w4", "w5", "w6"]);
    let archived = kit
        .list_workspaces(ListOptions {
            status: Some(WorkspaceStatus::Archived),
            ..ListOptions::default()
        })
        .await
        .expect("list");
    assert_eq!(archived.items.len(), 2);
    let err = kit
        .list_workspaces(ListOptions {
            limit: Some(0),
            ..ListOptions::default()
        })
        .await
        .expect_err("limit 0");
    assert_eq!(err.kind(), &ErrorKind::InvalidInput);
}

#[tokio::test]
async fn delete_refuses_a_live_lease_and_removes_runs() {
    let rig = Rig::new();
    let kit = rig.kit();
    let ws = new_ws(&kit).await;
    run(&ws, "echo x > x").await;
    let session = ws.open_session(SessionOptions::new()).await.expect("open");
    let err = kit.delete_workspace(ws.id()).await.expect_err("leased");
    assert_eq!(err.kind(), &ErrorKind::Busy);
    session.discard().await.expect("discard");
    let run_id = ws.runs(Default::default()).await.expect("runs").items[0]
        .id
        .clone();
    kit.delete_workspace(ws.id()).await.expect("delete");
    assert_eq!(
        kit.workspace(ws.id()).await.expect_err("gone").kind(),
        &ErrorKind::NotFound
    );
    assert!(rig.store().get_run(&run_id).await.expect("get").is_none());
    assert_eq!(
        kit.delete_workspace(ws.id())
            .await
            .expect_err("twice")
            .kind(),
        &ErrorKind::NotFound
    );
}

#[tokio::test]
async fn reads_have_no_side_effects() {
    // The original persisted state transitions while reading (gap 13.1.6).
    let rig = Rig::new();
    let kit = rig.kit();
    let ws = new_ws(&kit).await;
    let session = ws
        .open_session(SessionOptions::new().timeout(std::time::Duration::from_secs(1)))
        .await
        .expect("open");
    drop(session);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before = rig.record(ws.id()).await;
    rig.provider.reset_calls();
    assert!(ws.lease().await.expect("lease").is_none());
    let _ = kit.workspace(ws.id()).await.expect("open");
    let _ = kit
        .list_workspaces(ListOptions::default())
        .await
        .expect("list");
    let _ = ws.runs(Default::default()).await.expect("runs");
    let after = rig.record(ws.id()).await;
    assert_eq!(before, after);
    assert_eq!(rig.provider.calls().total(), 0);
}

#[tokio::test]
async fn runs_are_listed_newest_first_and_fetchable() {
    let rig = Rig::new();
    let ws = new_ws(&rig.kit()).await;
    for i in 0..3 {
        ws.run_command(sh(&format!("echo {i}"))).await.expect("run");
    }
    let runs = ws.runs(Default::default()).await.expect("runs").items;
    assert_eq!(
        runs.iter()
            .map(|r| r.stdout.clone().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["2\n", "1\n", "0\n"]
    );
    assert_eq!(ws.run(&runs[0].id).await.expect("get").id, runs[0].id);
    let other = new_ws(&rig.kit()).await;
    assert_eq!(
        other.run(&runs[0].id).await.expect_err("other ws").kind(),
        &ErrorKind::NotFound
    );
}

#[test]
fn handles_are_send_sync_and_cheap_to_clone() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Sandkit>();
    shareable::<sandkit_core::Workspace>();
    shareable::<sandkit_core::Session>();
    shareable::<sandkit_core::Command>();
    shareable::<sandkit_core::Process>();
    fn object_safe(
        _: Option<std::sync::Arc<dyn sandkit_core::Store>>,
        _: Option<std::sync::Arc<dyn sandkit_core::Provider>>,
    ) {
    }
    object_safe(None, None);
}

#[tokio::test]
async fn check_lists_heads_and_setups_the_provider_lost_and_changes_nothing() {
    use sandkit_core::{Provider, SetupSpec, SnapshotRole};
    let rig = Rig::new();
    let kit = rig.kit_with_setup(
        SetupSpec::new("sh")
            .args(["-c", "echo ready > s"])
            .policy(sandkit_core::policies::Policy::allow_all()),
    );
    let healthy = new_ws(&kit).await;
    run(&healthy, "echo ok > f").await;
    let lost = new_ws(&kit).await;
    run(&lost, "echo gone > f").await;
    let clean = kit.check().await.expect("check");
    assert!(clean.missing.is_empty(), "{clean:?}");
    assert_eq!(clean.checked, 3, "two heads and the setup snapshot");

    let head = rig.record(lost.id()).await.head.expect("head");
    let setup = rig
        .store()
        .get_setup(kit.setup_id().expect("setup"))
        .await
        .expect("get")
        .and_then(|s| s.snapshot)
        .expect("setup snapshot");
    rig.provider.delete_snapshot(&head).await.expect("delete");
    rig.provider.delete_snapshot(&setup).await.expect("delete");
    let before = rig.record(lost.id()).await;
    let report = kit.check().await.expect("check");
    assert_eq!(report.missing.len(), 2, "{report:?}");
    let lost_head = &report.missing[0];
    assert_eq!(lost_head.role, SnapshotRole::Head);
    assert_eq!(lost_head.workspace.as_ref(), Some(lost.id()));
    assert_eq!(lost_head.snapshot, head);
    assert_eq!(report.missing[1].role, SnapshotRole::Setup);
    assert_eq!(
        rig.record(lost.id()).await,
        before,
        "a check writes nothing"
    );
    // The way out it names works: after a reset the workspace passes.
    lost.reset().await.expect("reset");
    let after = kit.check().await.expect("check");
    assert!(
        after.missing.iter().all(|m| m.role == SnapshotRole::Setup),
        "{after:?}"
    );
}

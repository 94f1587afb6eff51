//! OIDC tokens live about 12 hours: a credentials source replaces one that is about
//! to expire before the next request; a source that fails or answers for another
//! project leaves the current token in use.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sandkit_core::{Error, ErrorKind, Provider, SessionRef};
use sandkit_vercel::{Credentials, CredentialsSource, OidcTokenFile, VercelProvider};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// An unsigned OIDC-shaped token for team `team_abc` and `project`, expiring
/// `expires_in` seconds from now.
fn token(project: &str, expires_in: i64) -> String {
    let exp = chrono::Utc::now().timestamp() + expires_in;
    let claims = json!({"owner_id": "team_abc", "project_id": project, "exp": exp});
    format!(
        "{}.{}.sig",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// A source answering with `answer` and counting its calls.
#[derive(Debug)]
struct Source {
    answer: Result<String, String>,
    calls: AtomicUsize,
}

#[async_trait]
impl CredentialsSource for Source {
    async fn fetch(&self) -> sandkit_core::Result<Credentials> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match &self.answer {
            Ok(token) => Credentials::oidc(token.as_str()),
            Err(why) => Err(Error::provider(None, None, why.clone())),
        }
    }
}

/// A provider for `server` holding `current`, refreshed from `source`.
fn provider(server: &MockServer, current: &str, source: Arc<Source>) -> VercelProvider {
    VercelProvider::builder()
        .base_url(server.uri())
        .credentials(Credentials::oidc(current).expect("oidc"))
        .credentials_source(source)
        .retry(common::fast_retry())
        .build()
        .expect("provider")
}

/// Answers `GET` of session `sbx_s1` when the request carries `token`.
async fn session_answered_for(server: &MockServer, token: &str) {
    Mock::given(method("GET"))
        .and(path("/v2/sandboxes/sessions/sbx_s1"))
        .and(header("authorization", format!("Bearer {token}").as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"session": common::session_running(), "routes": []})),
        )
        .mount(server)
        .await;
}

async fn attach(provider: &VercelProvider) -> sandkit_core::Result<()> {
    provider
        .attach(&SessionRef {
            provider: "vercel".into(),
            id: "sbx_s1".into(),
        })
        .await
        .map(drop)
}

/// Waits until a token made with `token(_, 1)` has expired.
async fn wait_out() {
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
}

#[tokio::test]
async fn a_token_about_to_expire_is_refreshed_in_the_background_and_used_next() {
    let server = MockServer::start().await;
    let (old, fresh) = (token("prj_123", 60), token("prj_123", 12 * 3600));
    session_answered_for(&server, &old).await;
    session_answered_for(&server, &fresh).await;
    let source = Arc::new(Source {
        answer: Ok(fresh.clone()),
        calls: AtomicUsize::new(0),
    });
    let p = provider(&server, &old, source.clone());
    attach(&p).await.expect("the current token is still valid");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while p.credentials().expires_at().expect("exp")
        < chrono::Utc::now() + chrono::Duration::hours(11)
    {
        assert!(std::time::Instant::now() < deadline, "never refreshed");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    attach(&p).await.expect("again");
    assert_eq!(source.calls.load(Ordering::SeqCst), 1, "refreshed once");
    let last = server.received_requests().await.expect("recorded");
    let sent = last
        .last()
        .expect("a request")
        .headers
        .get("authorization")
        .cloned();
    assert_eq!(
        sent.expect("auth").to_str().expect("ascii"),
        format!("Bearer {fresh}")
    );
    assert!(!format!("{p:?}").contains(&fresh), "Debug shows the token");
}

#[tokio::test]
async fn an_expired_token_waits_for_the_refresh() {
    let server = MockServer::start().await;
    let (old, fresh) = (token("prj_123", 1), token("prj_123", 12 * 3600));
    session_answered_for(&server, &fresh).await;
    let source = Arc::new(Source {
        answer: Ok(fresh),
        calls: AtomicUsize::new(0),
    });
    let p = provider(&server, &old, source.clone());
    wait_out().await;
    attach(&p).await.expect("sent with the fresh token");
    assert_eq!(source.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_token_far_from_expiry_is_not_refreshed() {
    let server = MockServer::start().await;
    let current = token("prj_123", 3600);
    session_answered_for(&server, &current).await;
    let source = Arc::new(Source {
        answer: Ok(token("prj_123", 12 * 3600)),
        calls: AtomicUsize::new(0),
    });
    attach(&provider(&server, &current, source.clone()))
        .await
        .expect("attach");
    assert_eq!(source.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_failing_source_keeps_the_current_token_and_is_not_asked_on_every_request() {
    let server = MockServer::start().await;
    let old = token("prj_123", 1);
    session_answered_for(&server, &old).await;
    let source = Arc::new(Source {
        answer: Err("the token service is down".into()),
        calls: AtomicUsize::new(0),
    });
    let p = provider(&server, &old, source.clone());
    wait_out().await;
    for _ in 0..3 {
        attach(&p).await.expect("sent with the current token");
    }
    assert_eq!(
        source.calls.load(Ordering::SeqCst),
        1,
        "backs off after a failure"
    );
}

#[tokio::test]
async fn a_token_for_another_project_is_not_taken() {
    let server = MockServer::start().await;
    let old = token("prj_123", 1);
    session_answered_for(&server, &old).await;
    let source = Arc::new(Source {
        answer: Ok(token("prj_other", 12 * 3600)),
        calls: AtomicUsize::new(0),
    });
    let p = provider(&server, &old, source.clone());
    wait_out().await;
    attach(&p).await.expect("sent with the current token");
    assert_eq!(p.credentials().project_id(), "prj_123");
}

/// A source that never answers.
#[derive(Debug)]
struct Hanging;

#[async_trait]
impl CredentialsSource for Hanging {
    async fn fetch(&self) -> sandkit_core::Result<Credentials> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_source_that_hangs_does_not_hold_up_requests_while_the_token_is_valid() {
    let server = MockServer::start().await;
    let old = token("prj_123", 60);
    session_answered_for(&server, &old).await;
    let p = VercelProvider::builder()
        .base_url(server.uri())
        .credentials(Credentials::oidc(old.as_str()).expect("oidc"))
        .credentials_source(Arc::new(Hanging))
        .retry(common::fast_retry())
        .build()
        .expect("provider");
    for _ in 0..3 {
        tokio::time::timeout(std::time::Duration::from_secs(10), attach(&p))
            .await
            .expect("not held up by the refresh (it times out after 20 s)")
            .expect("attach");
    }
}

#[tokio::test]
async fn the_token_file_written_by_vercel_env_pull_is_read() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join(".env.local");
    let fresh = token("prj_123", 12 * 3600);
    std::fs::write(
        &file,
        format!(
            "# Created by Vercel CLI\nVERCEL_ENV=\"development\"\nVERCEL_OIDC_TOKEN=\"{fresh}\"\n"
        ),
    )
    .expect("write");
    let creds = OidcTokenFile::new(&file).fetch().await.expect("read");
    assert_eq!(
        (creds.team_id(), creds.project_id()),
        ("team_abc", "prj_123")
    );

    let missing = OidcTokenFile::new(dir.path().join("absent"))
        .fetch()
        .await
        .expect_err("no file");
    assert!(
        matches!(missing.kind(), ErrorKind::Credentials { .. }),
        "{missing}"
    );
    assert!(missing.to_string().contains("vercel env pull"), "{missing}");
}

//! Vercel credentials: an OIDC token (team and project from its claims) or an access
//! token with explicit team and project ids.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sandkit_core::{Error, ErrorKind, Result};
use sandkit_policies::Secret;
use serde::Deserialize;

/// `VERCEL_OIDC_TOKEN`: a Vercel OIDC token (JWT) carrying team and project claims.
pub const OIDC_TOKEN_VAR: &str = "VERCEL_OIDC_TOKEN";
/// `VERCEL_TOKEN`: a personal or team access token.
pub const TOKEN_VAR: &str = "VERCEL_TOKEN";
/// `VERCEL_TEAM_ID`: the team (`team_…`) an access token acts for.
pub const TEAM_ID_VAR: &str = "VERCEL_TEAM_ID";
/// `VERCEL_PROJECT_ID`: the project (`prj_…`) sandboxes belong to.
pub const PROJECT_ID_VAR: &str = "VERCEL_PROJECT_ID";

/// Which kind of token authenticates the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A Vercel OIDC token (from `VERCEL_OIDC_TOKEN`, valid about 12 hours).
    Oidc,
    /// A personal or team access token (from `VERCEL_TOKEN`).
    AccessToken,
}

impl TokenKind {
    /// The environment variable this kind of token is conventionally read from.
    pub fn variable(self) -> &'static str {
        match self {
            TokenKind::Oidc => OIDC_TOKEN_VAR,
            TokenKind::AccessToken => TOKEN_VAR,
        }
    }
}

/// A bearer token plus the team and project it acts for. `Debug` never shows the token.
///
/// ```
/// use sandkit_vercel::Credentials;
/// let creds = Credentials::access_token("example-token", "team_abc", "prj_123")?;
/// assert_eq!(creds.team_id(), "team_abc");
/// assert!(!format!("{creds:?}").contains("example-token"));
/// # Ok::<(), sandkit_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Credentials {
    token: Secret,
    team_id: String,
    project_id: String,
    kind: TokenKind,
    /// Unix seconds of the token's `exp` claim (OIDC tokens only).
    expires_at: Option<i64>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("kind", &self.kind)
            .field("token", &self.token)
            .field("team_id", &self.team_id)
            .field("project_id", &self.project_id)
            .field("expires_at", &self.expires_at())
            .finish()
    }
}

#[derive(Deserialize)]
struct OidcClaims {
    #[serde(default)]
    owner_id: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    exp: Option<f64>,
}

fn credentials_error(variable: &str, message: String) -> Error {
    Error::new(
        ErrorKind::Credentials {
            service: "vercel".to_owned(),
            variable: Some(variable.to_owned()),
        },
        message,
    )
}

/// A bearer token must be printable ASCII without spaces to fit an HTTP header.
fn check_token(token: &Secret, variable: &str) -> Result<()> {
    if token.expose().chars().all(|c| c.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(credentials_error(
            variable,
            format!(
                "the Vercel token in {variable} contains spaces or characters an HTTP header \
                 cannot carry; copy it again without surrounding text"
            ),
        ))
    }
}

fn non_blank(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

impl Credentials {
    /// An access token acting for `team_id` and `project_id`.
    ///
    /// # Errors
    /// `Credentials` naming the blank value, or a token with spaces or control characters.
    pub fn access_token(
        token: impl Into<String>,
        team_id: impl Into<String>,
        project_id: impl Into<String>,
    ) -> Result<Self> {
        let token = Secret::new(token.into().trim());
        let (team_id, project_id) = (team_id.into(), project_id.into());
        for (value, variable) in [
            (token.expose(), TOKEN_VAR),
            (team_id.as_str(), TEAM_ID_VAR),
            (project_id.as_str(), PROJECT_ID_VAR),
        ] {
            if value.trim().is_empty() {
                return Err(credentials_error(
                    variable,
                    format!(
                        "the Vercel credential {variable} is empty; set it to a non-empty value"
                    ),
                ));
            }
        }
        check_token(&token, TOKEN_VAR)?;
        Ok(Credentials {
            token,
            team_id: team_id.trim().to_owned(),
            project_id: project_id.trim().to_owned(),
            kind: TokenKind::AccessToken,
            expires_at: None,
        })
    }

    /// A Vercel OIDC token; team and project come from its `owner_id` and `project_id`
    /// claims. The token is decoded **without verifying** its signature, as the official
    /// SDK does: Vercel verifies it on every request.
    ///
    /// # Errors
    /// `Credentials` when the token is not a JWT, lacks the claims, or has expired.
    pub fn oidc(token: impl Into<String>) -> Result<Self> {
        let token = Secret::new(token.into().trim());
        let fail = |why: &str| {
            credentials_error(
                OIDC_TOKEN_VAR,
                format!(
                    "{OIDC_TOKEN_VAR} {why}; pull a fresh token with `vercel env pull`, or use \
                     {TOKEN_VAR} + {TEAM_ID_VAR} + {PROJECT_ID_VAR} instead"
                ),
            )
        };
        check_token(&token, OIDC_TOKEN_VAR)?;
        let mut parts = token.expose().split('.');
        let (Some(_), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(fail("is not a JWT (expected three dot-separated parts)"));
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| fail("has a payload that is not base64url"))?;
        let claims: OidcClaims =
            serde_json::from_slice(&bytes).map_err(|_| fail("has a payload that is not JSON"))?;
        let team_id = non_blank(claims.owner_id).ok_or_else(|| fail("has no owner_id claim"))?;
        let project_id =
            non_blank(claims.project_id).ok_or_else(|| fail("has no project_id claim"))?;
        if let Some(exp) = claims.exp {
            let now = chrono::Utc::now().timestamp() as f64;
            if exp < now {
                return Err(fail("has expired (it is valid for about 12 hours)"));
            }
        }
        Ok(Credentials {
            token,
            team_id,
            project_id,
            kind: TokenKind::Oidc,
            expires_at: claims.exp.map(|exp| exp as i64),
        })
    }

    /// Reads credentials from the process environment; see [`Credentials::from_lookup`].
    ///
    /// # Errors
    /// `Credentials` naming the variables to set.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads credentials through `lookup` (a variable name → value function):
    /// `VERCEL_TOKEN` + `VERCEL_TEAM_ID` + `VERCEL_PROJECT_ID` when all three are set,
    /// else `VERCEL_OIDC_TOKEN`.
    ///
    /// # Errors
    /// `Credentials` naming the missing variables when neither set is complete.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let token = non_blank(lookup(TOKEN_VAR));
        let team = non_blank(lookup(TEAM_ID_VAR));
        let project = non_blank(lookup(PROJECT_ID_VAR));
        if let (Some(token), Some(team), Some(project)) = (&token, &team, &project) {
            return Self::access_token(token.as_str(), team.as_str(), project.as_str());
        }
        if let Some(oidc) = non_blank(lookup(OIDC_TOKEN_VAR)) {
            return Self::oidc(oidc);
        }
        let missing: Vec<&str> = [
            (token.is_none(), TOKEN_VAR),
            (team.is_none(), TEAM_ID_VAR),
            (project.is_none(), PROJECT_ID_VAR),
        ]
        .into_iter()
        .filter_map(|(missing, name)| missing.then_some(name))
        .collect();
        let partial = missing.len() < 3;
        let first = missing.first().copied().unwrap_or(OIDC_TOKEN_VAR);
        let message = if partial {
            format!(
                "Vercel credentials are incomplete: {} not set; set {TOKEN_VAR}, {TEAM_ID_VAR} and \
                 {PROJECT_ID_VAR} together, or set {OIDC_TOKEN_VAR} instead",
                missing.join(", ")
            )
        } else {
            format!(
                "no Vercel credentials found: set {OIDC_TOKEN_VAR} (e.g. with `vercel env pull`), \
                 or {TOKEN_VAR} + {TEAM_ID_VAR} + {PROJECT_ID_VAR}"
            )
        };
        Err(credentials_error(
            if partial { first } else { OIDC_TOKEN_VAR },
            message,
        ))
    }

    /// Team id sent as the `teamId` query parameter.
    pub fn team_id(&self) -> &str {
        &self.team_id
    }

    /// Project id sent as `projectId` when creating sandboxes.
    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    /// Which kind of token this is.
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// When the token expires (the `exp` claim of an OIDC token); `None` for access
    /// tokens and tokens without the claim.
    pub fn expires_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::from_timestamp(self.expires_at?, 0)
    }

    /// Whether the token expires within `margin` from now.
    pub(crate) fn expires_within(&self, margin: Duration) -> bool {
        self.expires_at.is_some_and(|exp| {
            let margin = i64::try_from(margin.as_secs()).unwrap_or(i64::MAX);
            exp <= chrono::Utc::now().timestamp().saturating_add(margin)
        })
    }

    /// Whether `fresh` may replace these credentials: same team and project, and a
    /// token that lives longer.
    pub(crate) fn may_be_replaced_by(&self, fresh: &Credentials) -> bool {
        fresh.team_id == self.team_id
            && fresh.project_id == self.project_id
            && match (self.expires_at, fresh.expires_at) {
                (Some(old), Some(new)) => new > old,
                (_, None) => true,
                (None, Some(_)) => false,
            }
    }

    pub(crate) fn token(&self) -> &Secret {
        &self.token
    }
}

/// Supplies fresh credentials when an OIDC token is about to expire (Vercel OIDC
/// tokens live about 12 hours). Set one with
/// [`VercelProviderBuilder::credentials_source`](crate::VercelProviderBuilder::credentials_source).
#[async_trait]
pub trait CredentialsSource: Send + Sync + fmt::Debug {
    /// Fresh credentials for the same team and project. It is given 20 s, and must not
    /// call the provider it refreshes (that provider's requests wait for it once the
    /// token has expired).
    ///
    /// # Errors
    /// Any error: it is logged and the current token is kept.
    async fn fetch(&self) -> Result<Credentials>;
}

/// Reads `VERCEL_OIDC_TOKEN` from a dotenv file such as the `.env.local` that
/// `vercel env pull` writes, so a long-running process picks up the token that
/// command refreshes.
///
/// ```no_run
/// use std::sync::Arc;
/// use sandkit_vercel::{OidcTokenFile, VercelProvider};
///
/// let provider = VercelProvider::builder()
///     .credentials_source(Arc::new(OidcTokenFile::new(".env.local")))
///     .build()?;
/// # Ok::<(), sandkit_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct OidcTokenFile {
    path: PathBuf,
}

impl OidcTokenFile {
    /// A source reading `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        OidcTokenFile { path: path.into() }
    }
}

#[async_trait]
impl CredentialsSource for OidcTokenFile {
    async fn fetch(&self) -> Result<Credentials> {
        let path = self.path.clone();
        let text = tokio::fs::read_to_string(&path).await.map_err(|e| {
            credentials_error(
                OIDC_TOKEN_VAR,
                format!(
                    "cannot read {}: {e}; run `vercel env pull` to write it",
                    path.display()
                ),
            )
        })?;
        let token = dotenv_value(&text, OIDC_TOKEN_VAR).ok_or_else(|| {
            credentials_error(
                OIDC_TOKEN_VAR,
                format!(
                    "{} has no {OIDC_TOKEN_VAR} line; run `vercel env pull` to write it",
                    path.display()
                ),
            )
        })?;
        Credentials::oidc(token)
    }
}

/// The value of `name` in dotenv text (`NAME=value`, optionally `export NAME=…` and
/// quoted); the last assignment wins.
fn dotenv_value(text: &str, name: &str) -> Option<String> {
    text.lines().rev().find_map(|line| {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let (key, value) = line.split_once('=')?;
        (key.trim() == name).then(|| {
            let value = value.trim();
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|q| value.strip_prefix(*q)?.strip_suffix(*q));
            unquoted.unwrap_or(value).to_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn dotenv_values_are_found_unquoted() {
        let text = "# pulled\nOTHER=1\nexport VERCEL_OIDC_TOKEN=\"a.b.c\"\n";
        assert_eq!(
            dotenv_value(text, "VERCEL_OIDC_TOKEN").as_deref(),
            Some("a.b.c")
        );
        assert_eq!(
            dotenv_value(
                "VERCEL_OIDC_TOKEN='x'\nVERCEL_OIDC_TOKEN=y",
                "VERCEL_OIDC_TOKEN"
            )
            .as_deref(),
            Some("y")
        );
        assert_eq!(
            dotenv_value("VERCEL_OIDC_TOKEN_OLD=z", "VERCEL_OIDC_TOKEN"),
            None
        );
    }

    use std::collections::HashMap;

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn jwt(claims: &str) -> String {
        format!(
            "{}.{}.signature",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn variable(err: &Error) -> Option<String> {
        match err.kind() {
            ErrorKind::Credentials { variable, .. } => variable.clone(),
            other => panic!("expected a credentials error, got {other:?}"),
        }
    }

    #[test]
    fn oidc_claims_give_team_and_project() {
        let token = jwt(r#"{"owner_id":"team_abc","project_id":"prj_123","owner":"acme"}"#);
        let creds = Credentials::from_lookup(lookup(&[(OIDC_TOKEN_VAR, &token)])).expect("oidc");
        assert_eq!(creds.kind(), TokenKind::Oidc);
        assert_eq!(
            (creds.team_id(), creds.project_id()),
            ("team_abc", "prj_123")
        );
        assert!(!format!("{creds:?}").contains(&token));
    }

    #[test]
    fn oidc_without_claims_or_expired_is_rejected() {
        let err = Credentials::oidc(jwt(r#"{"project_id":"prj_1"}"#)).expect_err("no owner");
        assert!(err.to_string().contains("owner_id"), "{err}");
        let err = Credentials::oidc(jwt(r#"{"owner_id":"t","project_id":"p","exp":1000}"#))
            .expect_err("expired");
        assert!(err.to_string().contains("expired"), "{err}");
        let err = Credentials::oidc("not-a-jwt-token").expect_err("not a jwt");
        assert!(!err.to_string().contains("not-a-jwt-token"), "{err}");
        assert_eq!(variable(&err).as_deref(), Some(OIDC_TOKEN_VAR));
        let err = Credentials::access_token("two words", "team_abc", "prj_123").expect_err("space");
        assert!(!err.to_string().contains("two words"), "{err}");
        let trimmed = Credentials::access_token(" tok\n", "team_abc", "prj_123").expect("trimmed");
        assert_eq!(trimmed.token().expose(), "tok");
    }

    #[test]
    fn access_token_trio_wins_and_partial_trio_names_missing_variables() {
        let vars = [
            (TOKEN_VAR, "tok"),
            (TEAM_ID_VAR, "team_abc"),
            (PROJECT_ID_VAR, "prj_123"),
        ];
        let creds = Credentials::from_lookup(lookup(&vars)).expect("trio");
        assert_eq!(creds.kind(), TokenKind::AccessToken);

        let err = Credentials::from_lookup(lookup(&[(TOKEN_VAR, "secret-value-123")]))
            .expect_err("partial");
        let message = format!("{err} {err:?}");
        assert!(message.contains(TEAM_ID_VAR) && message.contains(PROJECT_ID_VAR));
        assert!(!message.contains("secret-value-123"), "{message}");
        assert_eq!(variable(&err).as_deref(), Some(TEAM_ID_VAR));

        let err = Credentials::from_lookup(lookup(&[])).expect_err("none");
        assert!(err.to_string().contains(OIDC_TOKEN_VAR) && err.to_string().contains(TOKEN_VAR));
    }
}

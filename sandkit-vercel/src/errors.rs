//! Mapping of API failures to Sandkit errors (§4), with secrets scrubbed from anything
//! the server echoes.

use sandkit_core::policies::Redactor;
use sandkit_core::{Error, ErrorKind};

use crate::client::{ApiClient, Call, Effect, Failure};
use crate::credentials::{PROJECT_ID_VAR, TEAM_ID_VAR, TokenKind};

impl ApiClient {
    /// The Sandkit error for a failure with no more specific meaning at the call site.
    pub(crate) fn error(&self, call: &Call, failure: Failure) -> Error {
        let scrub = |text: &str| self.scrub(text, &call.secrets);
        match failure {
            Failure::Status {
                status,
                code,
                message,
                retry_after,
            } => {
                let detail = message.as_deref().map(scrub).unwrap_or_default();
                let detail = if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {detail}")
                };
                let code_text = code.as_deref().map(|c| format!(" {c}")).unwrap_or_default();
                match (status, code.as_deref()) {
                    (401, _) => Error::provider(
                        Some(401),
                        code.clone(),
                        format!(
                            "Vercel rejected the credentials for {} (401{detail}); {}",
                            call.op,
                            self.auth_hint()
                        ),
                    ),
                    (403, _) => Error::provider(
                        Some(403),
                        code.clone(),
                        format!(
                            "Vercel refused {} (403{detail}); check that the token in {} may use team {} \
                             ({TEAM_ID_VAR}) and project {} ({PROJECT_ID_VAR})",
                            call.op,
                            self.credentials().kind().variable(),
                            self.credentials().team_id(),
                            self.credentials().project_id()
                        ),
                    ),
                    (410, Some("snapshot_not_found")) => Error::snapshot_unavailable(format!(
                        "the snapshot is no longer available at Vercel (expired or deleted){detail}; \
                         start from another snapshot or fresh"
                    )),
                    (410, _) => Error::session_unavailable(format!(
                        "the Vercel session is stopped (410{code_text}{detail}); start a new session"
                    )),
                    (429, _) => Error::new(
                        ErrorKind::RateLimited { retry_after },
                        format!(
                            "Vercel rate-limited {} (429{detail}){}; try again later",
                            call.op,
                            retry_after
                                .map(|d| format!(", asking to wait {}s", d.as_secs()))
                                .unwrap_or_default()
                        ),
                    ),
                    (404, _) => Error::not_found(format!(
                        "Vercel has no such resource for {} ({} → 404{code_text}{detail})",
                        call.op,
                        call.path()
                    )),
                    _ => Error::provider(
                        Some(status),
                        code.clone(),
                        format!(
                            "Vercel API {} failed with {status}{code_text}{detail}{}",
                            call.op,
                            if status >= 500 {
                                "; the service had a problem, try again later"
                            } else {
                                ""
                            }
                        ),
                    ),
                }
            }
            Failure::Transport { source, maybe_sent } => {
                let what = scrub(&without_url(&source));
                let hint = if maybe_sent && call.effect == Effect::Once {
                    "; it was not retried because the request may have reached Vercel — check the \
                     sandbox before trying again"
                } else {
                    "; check the network and the base URL, then try again"
                };
                Error::provider(
                    None,
                    None,
                    format!(
                        "could not complete {} with the Vercel API at {} ({what}){hint}",
                        call.op,
                        self.base_url().as_str()
                    ),
                )
            }
            Failure::Protocol(message) => Error::provider(None, None, scrub(&message)),
        }
    }

    fn auth_hint(&self) -> String {
        match self.credentials().kind() {
            TokenKind::Oidc => format!(
                "check {}: OIDC tokens expire after about 12 hours — refresh it with `vercel env pull` \
                 (a long-running process can follow it with `VercelProviderBuilder::credentials_source`)",
                TokenKind::Oidc.variable()
            ),
            TokenKind::AccessToken => format!(
                "check {}: the access token may be revoked, expired or mistyped",
                TokenKind::AccessToken.variable()
            ),
        }
    }

    /// The token and `extra` secrets (header values, env values), for scrubbing.
    pub(crate) fn redactor(&self, extra: &[String]) -> Redactor {
        let mut redactor = Redactor::new();
        redactor.add_secret(self.credentials().token());
        for secret in extra {
            redactor.add_header_value(secret);
        }
        redactor
    }

    /// Replaces the token and `extra` secrets in `text` by `[redacted]`, in every form
    /// [`Redactor`] knows (raw, base64, base64url, percent-encoded).
    pub(crate) fn scrub(&self, text: &str, extra: &[String]) -> String {
        self.redactor(extra).scrub(text)
    }
}

/// A reqwest error's text without its URL (the query repeats the team id; keep it short).
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(&format!(" for url ({url})"), "");
        text = text.replace(url.as_str(), "<url>");
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

//! `login`: checks credentials against the registry before they are stored, as
//! Docker does: `GET /v2/` answers 200 without authentication (nothing to check),
//! or 401 with a challenge: `Basic` (the credentials are sent to `/v2/`) or `Bearer`
//! (the credentials are sent to the token service the challenge names).

use super::RegistryError;
use super::client::{Settings, http_client, probe_scheme, root_cause};
use super::config::Credentials;
use super::name;

/// Checks `credentials` against `registry`.
///
/// # Errors
/// [`RegistryError::LoginRefused`] when the registry refuses them;
/// [`RegistryError::Unreachable`] and others otherwise.
pub fn check(
    settings: &Settings,
    registry: &str,
    credentials: &Credentials,
) -> Result<(), RegistryError> {
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let http = http_client(settings, registry)?;
        let plain = probe_scheme(&http, settings, registry).await?;
        let scheme = if plain { "http" } else { "https" };
        let url = format!("{scheme}://{}/v2/", name::api_host(registry));
        let unreachable = |e: reqwest::Error| RegistryError::Unreachable {
            registry: registry.to_owned(),
            cause: root_cause(&e),
            hint: "",
        };
        let refused = |detail: String| RegistryError::LoginRefused {
            registry: registry.to_owned(),
            detail,
        };
        let first = http.get(&url).send().await.map_err(unreachable)?;
        if first.status().is_success() {
            return Ok(());
        }
        let challenge = first
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if first.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Err(RegistryError::Registry {
                registry: registry.to_owned(),
                doing: "answered /v2/",
                message: format!("HTTP {}", first.status()),
            });
        }
        let answer = if let Some(params) = strip_scheme(&challenge, "bearer") {
            let params = parse_params(params);
            let realm = params
                .iter()
                .find(|(k, _)| k == "realm")
                .map(|(_, v)| v.clone())
                .ok_or_else(|| RegistryError::Registry {
                    registry: registry.to_owned(),
                    doing: "sent a bearer challenge",
                    message: "it names no realm".to_owned(),
                })?;
            let mut query = vec![("account".to_owned(), credentials.username.clone())];
            if let Some((_, service)) = params.iter().find(|(k, _)| k == "service") {
                query.push(("service".to_owned(), service.clone()));
            }
            let realm = reqwest::Url::parse_with_params(&realm, &query).map_err(|e| {
                RegistryError::Registry {
                    registry: registry.to_owned(),
                    doing: "sent a bearer challenge",
                    message: format!("its realm is not a URL ({e})"),
                }
            })?;
            http.get(realm)
                .basic_auth(&credentials.username, Some(&credentials.password))
                .send()
                .await
                .map_err(unreachable)?
        } else {
            http.get(&url)
                .basic_auth(&credentials.username, Some(&credentials.password))
                .send()
                .await
                .map_err(unreachable)?
        };
        match answer.status().as_u16() {
            200..=299 => Ok(()),
            401 | 403 => Err(refused(format!("HTTP {}", answer.status()))),
            _ => Err(RegistryError::Registry {
                registry: registry.to_owned(),
                doing: "answered the login",
                message: format!("HTTP {}", answer.status()),
            }),
        }
    })
}

/// The parameters after an auth scheme name (case-insensitive), if it is that one.
fn strip_scheme<'a>(challenge: &'a str, scheme: &str) -> Option<&'a str> {
    let (name, rest) = challenge.trim().split_once(' ')?;
    name.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// `key="value",key=value` pairs of a challenge.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        out.push((key, value.to_owned()));
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges() {
        let c = r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull""#;
        let params = parse_params(strip_scheme(c, "bearer").expect("bearer"));
        assert_eq!(
            params,
            vec![
                ("realm".into(), "https://auth.example/token".into()),
                ("service".into(), "registry.example".into()),
                ("scope".into(), "repository:a:pull".into()),
            ]
        );
        assert!(strip_scheme(r#"Basic realm="x""#, "bearer").is_none());
    }
}

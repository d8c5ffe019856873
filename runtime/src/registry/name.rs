//! Where a reference lives: Docker's rules for the registry part of a name.
//!
//! The first component of `a/b/c:tag` names a registry when it holds a `.` or a `:`
//! or is `localhost` (`localhost:5000/team/app`, `registry.example/app`); a name
//! without one is *unqualified*. Docker sends unqualified names to Docker Hub; Capsule
//! keeps them local unless a default registry is configured (`CAPSULE_DEFAULT_REGISTRY`
//! or `defaultRegistry` in Capsule's `config.json`), so that `capsule push app` never
//! publishes anything by surprise. On Docker Hub (`docker.io`), a one-component
//! repository is `library/NAME`, as in Docker.

use crate::image::reference::Reference;
use crate::store::Digest;
use std::fmt;
use std::net::IpAddr;

/// Docker Hub's name in references, and the host its API answers on.
pub const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "index.docker.io";

/// A reference resolved to a registry: what pull and push talk about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The registry as written in names (`localhost:5000`, `docker.io`).
    pub registry: String,
    /// The repository inside the registry (`team/app`, `library/alpine`).
    pub repository: String,
    /// The tag, when the reference has one.
    pub tag: Option<String>,
    /// The pinned manifest (or index) digest, when the reference has one.
    pub digest: Option<Digest>,
}

/// Why a name cannot be resolved to a registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{name}' names no registry, and unqualified names stay local: write it with a registry host (for example localhost:5000/{name}), or set a default registry with CAPSULE_DEFAULT_REGISTRY"
)]
pub struct NoRegistry {
    pub name: String,
}

impl Remote {
    /// Resolves a parsed reference: its own registry, else `default` (for an
    /// unqualified name), else [`NoRegistry`].
    ///
    /// # Errors
    /// [`NoRegistry`] for an unqualified name without a default registry.
    pub fn resolve(reference: &Reference, default: Option<&str>) -> Result<Self, NoRegistry> {
        let (registry, path) = match split_domain(&reference.repository) {
            Some((domain, path)) => (domain.to_owned(), path.to_owned()),
            None => match default {
                Some(default) if !default.is_empty() => {
                    (default.to_owned(), reference.repository.clone())
                }
                _ => {
                    return Err(NoRegistry {
                        name: reference.to_string(),
                    });
                }
            },
        };
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        Ok(Self {
            registry,
            repository,
            tag: reference.tag.clone(),
            digest: reference.digest.clone(),
        })
    }

    /// The same repository at another tag or digest.
    pub fn with(&self, tag: Option<String>, digest: Option<Digest>) -> Self {
        Self {
            tag,
            digest,
            ..self.clone()
        }
    }

    /// The host the registry's API answers on (Docker Hub's differs from its name).
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }

    /// The reference in oci-client's terms.
    pub fn to_client(&self) -> oci_client::Reference {
        // oci-client sends docker.io to Docker Hub's API host itself.
        let registry = self.registry.clone();
        let repository = self.repository.clone();
        match (&self.tag, &self.digest) {
            (Some(tag), Some(digest)) => oci_client::Reference::with_tag_and_digest(
                registry,
                repository,
                tag.clone(),
                digest.to_string(),
            ),
            (None, Some(digest)) => {
                oci_client::Reference::with_digest(registry, repository, digest.to_string())
            }
            (Some(tag), None) => oci_client::Reference::with_tag(registry, repository, tag.clone()),
            (None, None) => {
                oci_client::Reference::with_tag(registry, repository, "latest".to_owned())
            }
        }
    }

    /// `registry/repository`, as Docker prints it (`[localhost:5000/app]`).
    pub fn repository_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository_name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Splits `domain/path` when the first component is a registry domain.
pub fn split_domain(repository: &str) -> Option<(&str, &str)> {
    let (first, rest) = repository.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some((first, rest))
}

/// The host a registry's API answers on.
pub fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_API
    } else {
        registry
    }
}

/// Whether a registry (`host[:port]`) is on this machine: `localhost`, 127.0.0.0/8
/// or `::1`. Such registries may be spoken to in plain HTTP, as Docker allows.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.rsplit_once(':').map_or(registry, |(h, _)| h),
    };
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The key a registry's credentials are stored under in `config.json`, as Docker
/// writes it (Docker Hub's is its historical v1 URL).
pub fn credential_key(registry: &str) -> String {
    if registry == DOCKER_HUB || registry == DOCKER_HUB_API || registry == "registry-1.docker.io" {
        "https://index.docker.io/v1/".to_owned()
    } else {
        registry.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(text: &str, default: Option<&str>) -> Result<Remote, NoRegistry> {
        Remote::resolve(&Reference::parse(text).expect("valid"), default)
    }

    #[test]
    fn docker_rules() {
        let r = remote("localhost:5000/team/app:1", None).expect("qualified");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost:5000", "team/app")
        );
        assert_eq!(r.tag.as_deref(), Some("1"));
        let r = remote("registry.example/app", None).expect("qualified");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        let r = remote("docker.io/alpine", None).expect("hub");
        assert_eq!(r.repository, "library/alpine");
        assert_eq!(r.api_host(), "index.docker.io");
        assert!(remote("app:1", None).is_err());
        assert!(remote("team/app:1", None).is_err());
        let r = remote("team/app:1", Some("127.0.0.1:5000")).expect("default");
        assert_eq!(r.to_string(), "127.0.0.1:5000/team/app:1");
        let hex = "b".repeat(64);
        let r = remote(&format!("localhost/app@sha256:{hex}"), None).expect("digest");
        assert_eq!(r.tag, None);
        assert_eq!(
            r.to_client().digest(),
            Some(format!("sha256:{hex}").as_str())
        );
    }

    #[test]
    fn loopback() {
        for yes in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.8.9.1",
            "[::1]:5000",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in ["registry.example", "10.0.0.1:5000", "example.localhost.com"] {
            assert!(!is_loopback(no), "{no}");
        }
    }
}

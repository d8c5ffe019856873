//! Image references as Docker spells them: `name`, `name:tag`, `name@sha256:…`,
//! `registry.example:5000/team/name:tag`, checked by Docker's grammar.
//!
//! Names are kept in their familiar form (`library-api:latest`, not
//! `docker.io/library/library-api:latest`); a reference without a tag or digest means
//! `:latest`.

use crate::store::Digest;
use std::fmt;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// The repository, including a registry domain when there is one.
    pub repository: String,
    /// The tag (`latest` when none was given and there is no digest).
    pub tag: Option<String>,
    /// A pinned manifest digest.
    pub digest: Option<Digest>,
}

/// Why a reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference '{reference}': {reason}")]
pub struct ReferenceError {
    pub reference: String,
    pub reason: String,
}

const MAX_NAME: usize = 255;
const MAX_TAG: usize = 128;

impl Reference {
    /// Parses a reference; no tag and no digest means `:latest`.
    ///
    /// # Errors
    /// [`ReferenceError`] explaining which part breaks Docker's grammar.
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        let err = |reason: &str| ReferenceError {
            reference: text.to_owned(),
            reason: reason.to_owned(),
        };
        if text.is_empty() {
            return Err(err("it is empty"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (
                rest,
                Some(
                    digest
                        .parse::<Digest>()
                        .map_err(|e| err(&format!("bad digest: {e}")))?,
                ),
            ),
            None => (text, None),
        };
        // A tag follows the last ':' that comes after the last '/' (a ':' before it
        // belongs to a registry port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if repository.len() > MAX_NAME {
            return Err(err("the repository name is longer than 255 characters"));
        }
        check_repository(repository).map_err(|reason| err(&reason))?;
        if let Some(tag) = tag {
            check_tag(tag).map_err(|reason| err(&reason))?;
        }
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_owned()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_owned()),
        };
        Ok(Self {
            repository: repository.to_owned(),
            tag,
            digest,
        })
    }

    /// `repository:tag` (the name an image is listed under), when there is a tag.
    pub fn name(&self) -> Option<String> {
        self.tag
            .as_ref()
            .map(|t| format!("{}:{t}", self.repository))
    }

    /// Parses a name stored by another tool, dropping Docker Hub's implicit
    /// `docker.io/` and `docker.io/library/` prefixes.
    pub fn parse_familiar(text: &str) -> Result<Self, ReferenceError> {
        let text = text
            .strip_prefix("docker.io/library/")
            .or_else(|| text.strip_prefix("docker.io/"))
            .unwrap_or(text);
        Self::parse(text)
    }

    /// The fully qualified name other tools (containerd, `docker load`) expect.
    pub fn qualified_name(&self) -> Option<String> {
        let name = self.name()?;
        let first = self.repository.split('/').next().unwrap_or_default();
        let has_domain = self.repository.contains('/')
            && (first.contains('.') || first.contains(':') || first == "localhost");
        Some(if has_domain {
            name
        } else if self.repository.contains('/') {
            format!("docker.io/{name}")
        } else {
            format!("docker.io/library/{name}")
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn check_repository(repository: &str) -> Result<(), String> {
    if repository.is_empty() {
        return Err("the repository name is empty".to_owned());
    }
    let mut components: Vec<&str> = repository.split('/').collect();
    let first = components[0];
    if components.len() > 1 && (first.contains('.') || first.contains(':') || first == "localhost")
    {
        check_domain(first)?;
        components.remove(0);
    }
    for component in components {
        check_path_component(component)?;
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), String> {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !host_ok {
        return Err(format!("'{domain}' is not a valid registry host"));
    }
    if let Some(port) = port
        && (port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(format!("'{domain}' has an invalid port"));
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn check_path_component(component: &str) -> Result<(), String> {
    if component.is_empty() {
        return Err(
            "a repository name component is empty (check for '//' or a trailing '/')".to_owned(),
        );
    }
    if component.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("repository name must be lowercase".to_owned());
    }
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bad = || {
        Err(format!(
            "'{component}' may contain only lowercase letters, digits and separators (. _ __ -) between them"
        ))
    };
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return bad();
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.chars().all(|c| c == '-')) {
            return bad();
        }
    }
    Ok(())
}

/// `[\w][\w.-]{0,127}`
fn check_tag(tag: &str) -> Result<(), String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    let ok = tag.len() <= MAX_TAG
        && chars.next().is_some_and(word)
        && chars.all(|c| word(c) || c == '.' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag '{tag}' must be 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_grammar() {
        let r = Reference::parse("library-api").expect("ok");
        assert_eq!(r.name().as_deref(), Some("library-api:latest"));
        let r = Reference::parse("localhost:5000/team/app:v1.2").expect("ok");
        assert_eq!(r.repository, "localhost:5000/team/app");
        assert_eq!(r.tag.as_deref(), Some("v1.2"));
        let hex = "a".repeat(64);
        let r = Reference::parse(&format!("app@sha256:{hex}")).expect("ok");
        assert_eq!(r.tag, None);
        assert!(r.digest.is_some());
        for bad in [
            "",
            "App",
            "app:",
            "app:-x",
            "-app",
            "app/",
            "a//b",
            "app@sha256:zz",
            "a b",
            "app:tag:more",
            "../x",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Reference::parse("app")
                .expect("ok")
                .qualified_name()
                .as_deref(),
            Some("docker.io/library/app:latest")
        );
        assert_eq!(
            Reference::parse_familiar("docker.io/library/app:1")
                .expect("ok")
                .to_string(),
            "app:1"
        );
    }
}

//! A connection to one registry: the scheme (HTTPS, or plain HTTP where allowed), the
//! TLS roots, the credentials, and the translation of the client's errors.
//!
//! HTTPS is always tried first and its certificate always verified (the system's
//! roots, plus `certs.d/HOST/*.crt` from Capsule's config directory). Plain HTTP is
//! used only for a loopback registry (`localhost`, 127.0.0.0/8, `::1`, as Docker
//! allows) or one named by `--insecure-registry`, `insecureRegistries` or
//! `CAPSULE_INSECURE_REGISTRIES`, and only when HTTPS does not answer there: an
//! "insecure" registry may skip TLS, it never gets TLS without verification.

use super::RegistryError;
use super::config::{Config, Credentials};
use super::name::{self, Remote};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use std::error::Error as _;
use std::sync::Once;
use std::time::Duration;

/// How long connecting may take before the registry counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// What a command knows about registries before it connects.
#[derive(Debug)]
pub struct Settings {
    pub config: Config,
    /// Registries named by `--insecure-registry` on the command line.
    pub insecure: Vec<String>,
}

impl Settings {
    /// Whether plain HTTP is allowed for `registry`.
    pub fn allows_http(&self, registry: &str) -> bool {
        name::is_loopback(registry)
            || self
                .insecure
                .iter()
                .chain(self.config.insecure_registries().iter())
                .any(|r| r.trim_end_matches('/') == registry)
    }
}

/// A connection to a registry, for one repository.
pub struct Connection {
    pub client: oci_client::Client,
    pub auth: RegistryAuth,
    pub registry: String,
    pub had_credentials: bool,
    /// Whether it speaks plain HTTP.
    pub plain_http: bool,
}

/// Installs rustls's ring provider once (reqwest is built without one).
fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The TLS roots for a registry beyond the system's.
fn roots(settings: &Settings, registry: &str) -> Result<Vec<Vec<u8>>, RegistryError> {
    Ok(settings.config.registry_certificates(registry)?)
}

/// A reqwest client with the registry's roots (for the scheme probe and `login`).
pub(crate) fn http_client(
    settings: &Settings,
    registry: &str,
) -> Result<reqwest::Client, RegistryError> {
    install_crypto();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("capsule/", env!("CARGO_PKG_VERSION")));
    let mut certs = Vec::new();
    for pem in roots(settings, registry)? {
        let cert =
            reqwest::Certificate::from_pem(&pem).map_err(|e| RegistryError::Unreachable {
                registry: registry.to_owned(),
                cause: format!("a certificate in certs.d/{registry} is not PEM: {e}"),
                hint: "",
            })?;
        certs.push(cert);
    }
    if !certs.is_empty() {
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().map_err(|e| RegistryError::Unreachable {
        registry: registry.to_owned(),
        cause: root_cause(&e),
        hint: "",
    })
}

/// Decides how to speak to a registry: `Ok(true)` for plain HTTP.
pub(crate) async fn probe_scheme(
    http: &reqwest::Client,
    settings: &Settings,
    registry: &str,
) -> Result<bool, RegistryError> {
    let host = name::api_host(registry);
    let https = http.get(format!("https://{host}/v2/")).send().await;
    let https_error = match https {
        Ok(_) => return Ok(false),
        Err(e) => e,
    };
    let unreachable = |e: &reqwest::Error, hint| RegistryError::Unreachable {
        registry: registry.to_owned(),
        cause: root_cause(e),
        hint,
    };
    if !settings.allows_http(registry) {
        return Err(unreachable(
            &https_error,
            ": check the address; a registry that speaks plain HTTP must be named with --insecure-registry; one with its own certificate authority needs it in certs.d/HOST/ca.crt beside Capsule's config.json",
        ));
    }
    match http.get(format!("http://{host}/v2/")).send().await {
        // A registry answers /v2/ with 200 or 401; an HTTPS server asked in plain
        // HTTP answers 400, and then the HTTPS failure is the one to report.
        Ok(response) if matches!(response.status().as_u16(), 200 | 401) => Ok(true),
        Ok(_) => Err(unreachable(
            &https_error,
            ": it speaks HTTPS, and its certificate is not trusted: put its certificate authority in certs.d/HOST/ca.crt beside Capsule's config.json",
        )),
        Err(e) if https_error.is_connect() && e.is_connect() => Err(unreachable(
            &e,
            ": check the address and that the registry is running",
        )),
        Err(e) => Err(unreachable(&e, "")),
    }
}

/// Connects to the registry of `remote`: picks the scheme, reads the credentials.
///
/// # Errors
/// [`RegistryError::Unreachable`], or a config error.
pub async fn connect(settings: &Settings, remote: &Remote) -> Result<Connection, RegistryError> {
    let registry = remote.registry.clone();
    let http = http_client(settings, &registry)?;
    let plain_http = probe_scheme(&http, settings, &registry).await?;
    let credentials = settings.config.credentials(&registry)?;
    let certs = roots(settings, &registry)?
        .into_iter()
        .map(|data| Certificate {
            encoding: CertificateEncoding::Pem,
            data,
        })
        .collect();
    let config = ClientConfig {
        protocol: if plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        extra_root_certificates: certs,
        use_monolithic_push: true,
        connect_timeout: Some(CONNECT_TIMEOUT),
        max_concurrent_download: 4,
        max_concurrent_upload: 4,
        ..ClientConfig::default()
    };
    Ok(Connection {
        client: oci_client::Client::new(config),
        auth: match &credentials {
            Some(Credentials { username, password }) => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            None => RegistryAuth::Anonymous,
        },
        had_credentials: credentials.is_some(),
        registry,
        plain_http,
    })
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("registry", &self.registry)
            .field("had_credentials", &self.had_credentials)
            .field("plain_http", &self.plain_http)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Turns a client error into a [`RegistryError`]; `what` names the object
    /// (`localhost:5000/app:1`), `doing` the step (`refused the manifest`).
    pub fn error(
        &self,
        error: OciDistributionError,
        what: &str,
        doing: &'static str,
    ) -> RegistryError {
        classify(&self.registry, self.had_credentials, error, what, doing)
    }
}

/// See [`Connection::error`].
pub fn classify(
    registry: &str,
    had_credentials: bool,
    error: OciDistributionError,
    what: &str,
    doing: &'static str,
) -> RegistryError {
    let unauthorized = || RegistryError::Unauthorized {
        registry: registry.to_owned(),
        what: what.to_owned(),
        had_credentials,
    };
    let other = |message: String| RegistryError::Registry {
        registry: registry.to_owned(),
        doing,
        message,
    };
    match error {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => unauthorized(),
        OciDistributionError::ImageManifestNotFoundError(_) => RegistryError::NotFound {
            reference: what.to_owned(),
            registry: registry.to_owned(),
        },
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}", e.code))
                .collect();
            let unknown = codes.iter().any(|c| {
                matches!(
                    c.as_str(),
                    "ManifestUnknown" | "NameUnknown" | "BlobUnknown"
                )
            });
            let denied = codes
                .iter()
                .any(|c| matches!(c.as_str(), "Unauthorized" | "Denied"));
            if denied {
                unauthorized()
            } else if unknown {
                RegistryError::NotFound {
                    reference: what.to_owned(),
                    registry: registry.to_owned(),
                }
            } else {
                other(
                    envelope
                        .errors
                        .iter()
                        .map(|e| format!("{:?}: {}", e.code, e.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            }
        }
        OciDistributionError::ServerError { code, message, .. } => match code {
            401 | 403 => unauthorized(),
            404 => RegistryError::NotFound {
                reference: what.to_owned(),
                registry: registry.to_owned(),
            },
            _ => other(format!(
                "HTTP {code} {}",
                message.lines().next().unwrap_or_default().trim()
            )),
        },
        OciDistributionError::RequestError(e) => {
            if let Some(store) = store_error_in(&e) {
                return RegistryError::Store(store);
            }
            match e.status().map(|s| s.as_u16()) {
                Some(401 | 403) => return unauthorized(),
                Some(404) => {
                    return RegistryError::NotFound {
                        reference: what.to_owned(),
                        registry: registry.to_owned(),
                    };
                }
                Some(code) => return other(format!("HTTP {code}")),
                None => {}
            }
            if e.is_connect() || e.is_timeout() {
                RegistryError::Unreachable {
                    registry: registry.to_owned(),
                    cause: root_cause(&e),
                    hint: ": check the address and that the registry is running",
                }
            } else {
                other(root_cause(&e))
            }
        }
        OciDistributionError::IoError(e) => match crate::store::StoreError::from_io(&e) {
            Some(crate::store::StoreError::Damaged { digest, reason }) => {
                RegistryError::Store(crate::store::StoreError::Damaged {
                    digest: digest.clone(),
                    reason: reason.clone(),
                })
            }
            _ => other(e.to_string()),
        },
        e => other(e.to_string()),
    }
}

/// A damaged store blob found while a request body was read from it.
fn store_error_in(error: &reqwest::Error) -> Option<crate::store::StoreError> {
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(crate::store::StoreError::Damaged { digest, reason }) =
                crate::store::StoreError::from_io(io)
        {
            return Some(crate::store::StoreError::Damaged {
                digest: digest.clone(),
                reason: reason.clone(),
            });
        }
        source = e.source();
    }
    None
}

/// The innermost cause of an error, which says what actually failed
/// (`Connection refused (os error 111)`, `invalid peer certificate: UnknownIssuer`).
pub fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

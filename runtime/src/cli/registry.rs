//! The registry commands, with Docker's names, flags and output: `pull`, `push`,
//! `login`, `logout`.

use super::progress::{self, human_size};
use super::{Failure, exit};
use capsule_runtime::home::Home;
use capsule_runtime::image::Images;
use capsule_runtime::image::reference::Reference;
use capsule_runtime::registry::client::Settings;
use capsule_runtime::registry::config::{Config, Credentials};
use capsule_runtime::registry::{
    BlobKind, Outcome, Progress, RegistryError, login, name, pull, push,
};
use capsule_runtime::store::Digest;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::sync::{Arc, Mutex};

/// Registry errors exit 1, as Docker's do; bad input and local trouble 125.
fn fail(e: RegistryError) -> Failure {
    let code = match &e {
        RegistryError::NoRegistry(_)
        | RegistryError::Config(_)
        | RegistryError::Image(_)
        | RegistryError::Store(_)
        | RegistryError::NotPushable { .. }
        | RegistryError::Runtime(_) => exit::USAGE,
        _ => 1,
    };
    Failure::new(code, e)
}

fn usage(e: impl Into<anyhow::Error>) -> Failure {
    Failure::new(exit::USAGE, e)
}

#[derive(Debug, clap::Args)]
pub struct NetArgs {
    /// Allow plain HTTP to this registry (HOST[:PORT]; loopback registries always may)
    #[arg(long = "insecure-registry", value_name = "HOST")]
    insecure: Vec<String>,
}

fn settings(home: &Home, net: &NetArgs) -> Result<Settings, Failure> {
    let config = Config::load(&Config::dir_for(home)).map_err(|e| usage(RegistryError::from(e)))?;
    Ok(Settings {
        config,
        insecure: net.insecure.clone(),
    })
}

fn open() -> Result<(Home, Images), Failure> {
    let home = Home::from_env().map_err(usage)?;
    let images = Images::open(&home).map_err(usage)?;
    Ok((home, images))
}

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Print only the image's name
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    net: NetArgs,
    /// REGISTRY/NAME[:TAG|@DIGEST]
    name: String,
}

pub fn pull(args: &PullArgs) -> Result<u8, Failure> {
    let (home, images) = open()?;
    let settings = settings(&home, &args.net)?;
    let reference = Reference::parse(&args.name).map_err(usage)?;
    let bars = Bars::new("Downloading", args.quiet);
    let pulled = pull::pull(&images, &settings, &reference, &bars).map_err(fail)?;
    bars.clear();
    let mut out = std::io::stdout().lock();
    let shown = pulled.name.as_ref().map_or_else(
        || format!("{}@{}", reference.repository, pulled.digest),
        ToString::to_string,
    );
    if args.quiet {
        let _ = writeln!(out, "{shown}");
        drop(out);
        super::warm::compile_ahead(&home, &images, &pulled.image, &shown, true);
        return Ok(0);
    }
    let _ = writeln!(
        out,
        "{}: Pulling from {}",
        pulled
            .remote
            .tag
            .clone()
            .unwrap_or_else(|| pulled.digest.to_string()),
        pulled.remote.repository_name()
    );
    for (blob, outcome) in &pulled.blobs {
        let what = match outcome {
            Outcome::Existed => "Already exists".to_owned(),
            _ => format!("Pull complete ({})", human_size(blob.size)),
        };
        let _ = writeln!(out, "{}: {what}", short(&blob.digest));
    }
    let _ = writeln!(out, "Digest: {}", pulled.digest);
    let status = if pulled.up_to_date {
        format!("Image is up to date for {shown}")
    } else {
        format!("Downloaded newer image for {shown}")
    };
    let _ = writeln!(out, "Status: {status}");
    let _ = writeln!(out, "{shown}");
    drop(out);
    super::warm::compile_ahead(&home, &images, &pulled.image, &shown, false);
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// Print only the pushed manifest's digest
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    net: NetArgs,
    /// REGISTRY/NAME[:TAG] of a local image (capsule tag IMAGE REGISTRY/NAME:TAG first)
    name: String,
}

pub fn push(args: &PushArgs) -> Result<u8, Failure> {
    let (home, images) = open()?;
    let settings = settings(&home, &args.net)?;
    let bars = Arc::new(Bars::new("Pushing", args.quiet));
    let pushed = push::push(&images, &settings, &args.name, bars.clone()).map_err(|e| match e {
        RegistryError::Image(capsule_runtime::image::ImageError::NotFound(_)) => Failure::new(
            1,
            anyhow::anyhow!(
                "no local image '{}': build it or name one with capsule tag IMAGE {}",
                args.name,
                args.name
            ),
        ),
        e => fail(e),
    })?;
    bars.clear();
    let mut out = std::io::stdout().lock();
    if args.quiet {
        let _ = writeln!(out, "{}", pushed.manifest_digest);
        return Ok(0);
    }
    let _ = writeln!(
        out,
        "The push refers to repository [{}]",
        pushed.remote.repository_name()
    );
    for (blob, outcome) in pushed.blobs.iter().rev() {
        let what = match outcome {
            Outcome::Existed => "Layer already exists".to_owned(),
            Outcome::Mounted { from } => format!("Mounted from {from}"),
            Outcome::Transferred => format!("Pushed ({})", human_size(blob.size)),
        };
        let _ = writeln!(out, "{}: {what}", short(&blob.digest));
    }
    let _ = writeln!(
        out,
        "{}: digest: {} size: {}",
        pushed.remote.tag.as_deref().unwrap_or("latest"),
        pushed.manifest_digest,
        pushed.manifest_size
    );
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short, long)]
    username: Option<String>,
    /// Password (visible to other users in the process list: prefer --password-stdin)
    #[arg(short, long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from stdin
    #[arg(long = "password-stdin")]
    password_stdin: bool,
    #[command(flatten)]
    net: NetArgs,
    /// The registry (HOST[:PORT])
    server: String,
}

/// A registry named as `login` takes it: `HOST[:PORT]`, or a URL of one.
fn server_name(text: &str) -> Result<String, Failure> {
    let host = text
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let host = host
        .strip_suffix("/v1")
        .or(host.strip_suffix("/v2"))
        .unwrap_or(host);
    let valid = !host.is_empty()
        && !host.contains('/')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !valid {
        return Err(usage(anyhow::anyhow!(
            "'{text}' is not a registry: give HOST[:PORT], for example localhost:5000"
        )));
    }
    Ok(match host {
        "index.docker.io" | "registry-1.docker.io" => name::DOCKER_HUB.to_owned(),
        _ => host.to_owned(),
    })
}

/// Asks for the username on the terminal.
fn prompt_username() -> Result<String, Failure> {
    let mut err = std::io::stderr();
    let _ = write!(err, "Username: ");
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| usage(anyhow::anyhow!("cannot read the username: {e}")))?;
    Ok(line.trim().to_owned())
}

pub fn login(args: &LoginArgs) -> Result<u8, Failure> {
    let registry = server_name(&args.server)?;
    let home = Home::from_env().map_err(usage)?;
    let mut settings = settings(&home, &args.net)?;
    // On a terminal, what is not given is asked for, as `docker login` does.
    let terminal = std::io::stdin().is_terminal();
    let username = match args.username.clone() {
        Some(username) => username,
        None if terminal && !args.password_stdin => prompt_username()?,
        None => String::new(),
    };
    if username.is_empty() {
        return Err(usage(anyhow::anyhow!(
            "give the username with -u USER (and the password with --password-stdin)"
        )));
    }
    let password = if args.password_stdin {
        if std::io::stdin().is_terminal() {
            return Err(usage(anyhow::anyhow!(
                "--password-stdin reads the password from a pipe: echo \"$PASSWORD\" | capsule login -u USER --password-stdin {registry}"
            )));
        }
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| usage(anyhow::anyhow!("cannot read the password from stdin: {e}")))?;
        text.trim_end_matches(['\n', '\r']).to_owned()
    } else if let Some(password) = &args.password {
        let _ = writeln!(
            std::io::stderr(),
            "WARNING! Using --password via the CLI is insecure. Use --password-stdin."
        );
        password.clone()
    } else if terminal {
        rpassword::prompt_password("Password: ")
            .map_err(|e| usage(anyhow::anyhow!("cannot read the password: {e}")))?
    } else {
        return Err(usage(anyhow::anyhow!(
            "give the password with --password-stdin (or -p)"
        )));
    };
    if password.is_empty() {
        return Err(usage(anyhow::anyhow!("the password is empty")));
    }
    let credentials = Credentials { username, password };
    login::check(&settings, &registry, &credentials).map_err(fail)?;
    settings
        .config
        .store_credentials(&registry, &credentials)
        .map_err(|e| usage(RegistryError::from(e)))?;
    let _ = writeln!(std::io::stdout(), "Login Succeeded");
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// The registry (HOST[:PORT])
    server: String,
}

pub fn logout(args: &LogoutArgs) -> Result<u8, Failure> {
    let registry = server_name(&args.server)?;
    let home = Home::from_env().map_err(usage)?;
    let mut config =
        Config::load(&Config::dir_for(&home)).map_err(|e| usage(RegistryError::from(e)))?;
    let removed = config
        .remove_credentials(&registry)
        .map_err(|e| usage(RegistryError::from(e)))?;
    let mut out = std::io::stdout().lock();
    if removed {
        let _ = writeln!(out, "Removing login credentials for {registry}");
    } else {
        let _ = writeln!(out, "Not logged in to {registry}");
    }
    Ok(0)
}

/// The first 12 hex digits, as Docker names layers in its output.
fn short(digest: &Digest) -> &str {
    &digest.hex()[..12]
}

/// A bar per blob on a terminal; nothing otherwise (the summary is printed at the end,
/// so that a failure leaves exactly its one error line).
struct Bars {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
    verb: &'static str,
}

impl std::fmt::Debug for Bars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bars").field("verb", &self.verb).finish()
    }
}

impl Bars {
    fn new(verb: &'static str, quiet: bool) -> Self {
        Self {
            multi: (!quiet && progress::interactive()).then(MultiProgress::new),
            bars: Mutex::new(HashMap::new()),
            verb,
        }
    }

    fn clear(&self) {
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }
}

impl Progress for Bars {
    fn begin(&self, digest: &Digest, size: u64, kind: BlobKind) {
        let Some(multi) = &self.multi else { return };
        let bar = multi.add(ProgressBar::new(size));
        if let Ok(style) =
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        let what = match kind {
            BlobKind::Config => " (config)",
            BlobKind::Layer => "",
        };
        bar.set_message(format!("{}: {}{what}", short(digest), self.verb));
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(digest.clone(), bar);
        }
    }

    fn advance(&self, digest: &Digest, bytes: u64) {
        if let Ok(bars) = self.bars.lock()
            && let Some(bar) = bars.get(digest)
        {
            bar.inc(bytes);
        }
    }

    fn end(&self, digest: &Digest, _outcome: &Outcome) {
        if let Ok(mut bars) = self.bars.lock()
            && let Some(bar) = bars.remove(digest)
        {
            bar.finish_and_clear();
        }
    }
}

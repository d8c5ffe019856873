//! Containers with Docker's lifecycle: [`crate::Capsule::create`] makes one from an
//! image, [`Container::start`] runs it detached under a supervisor process of its own
//! (the `capsule` binary, so it outlives the host program and `capsule ps` sees it),
//! then [`Container::stop`], [`Container::kill`], [`Container::wait`],
//! [`Container::logs`], [`Container::remove`]. These are the same functions the
//! `capsule` binary's verbs call.
//!
//! ```no_run
//! # fn main() -> Result<(), capsule_sdk::Error> {
//! use capsule_sdk::{Capsule, ContainerOptions};
//! use std::time::Duration;
//!
//! let capsule = Capsule::open_default()?.supervisor("/usr/local/bin/capsule");
//! let image = capsule.image("library-api")?;
//! let api = capsule.create(&image, ContainerOptions::new()
//!     .name("api")
//!     .volume("library-data:/data")?
//!     .publish("8000:8000")?
//!     .restart("unless-stopped")?)?;
//! api.start()?;                                   // returns once the guest runs
//! assert!(api.state()?.running);
//! api.stop(Some(Duration::from_secs(2)))?;        // grace, then interrupted: 137
//! assert_eq!(api.wait()?, 137);
//! for line in api.logs()? {
//!     print!("{}", line.text);
//! }
//! api.remove(false)?;                             // named volumes stay
//! # Ok(())
//! # }
//! ```

use crate::error::{Error, ErrorKind, map};
use capsule_runtime::container::{self as rt, lifecycle};
use capsule_runtime::home::Home;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// How to create a container: `capsule create`'s flags.
#[derive(Debug, Clone, Default)]
pub struct ContainerOptions {
    pub(crate) name: Option<String>,
    pub(crate) entrypoint: Option<String>,
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) workdir: Option<capsule_runtime::spec::GuestPath>,
    pub(crate) requests: Vec<capsule_runtime::spec::MountRequest>,
    pub(crate) ports: Vec<capsule_runtime::net::PortRequest>,
    pub(crate) restart: rt::RestartPolicy,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) limits: capsule_runtime::spec::Limits,
    pub(crate) stop_timeout: Option<u64>,
    pub(crate) read_only: bool,
}

impl ContainerOptions {
    /// Options with every default: the image's command, environment and workdir.
    pub fn new() -> Self {
        Self::default()
    }

    /// Its name (`--name`); one is made up (`adjective_animal`) otherwise.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Runs this program in the image instead of its `ENTRYPOINT`, without its `CMD`.
    pub fn entrypoint(mut self, path: impl Into<String>) -> Self {
        self.entrypoint = Some(path.into());
        self
    }

    /// Appends an argument; the arguments replace the image's `CMD`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        args.into_iter().fold(self, Self::arg)
    }

    /// Sets an environment variable over the image's `ENV`.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The working directory (absolute), over the image's `WORKDIR`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a relative path or `..`.
    pub fn workdir(mut self, dir: &str) -> Result<Self, Error> {
        self.workdir =
            Some(capsule_runtime::spec::GuestPath::parse(dir).map_err(|e| map::spec(&e))?);
        Ok(self)
    }

    /// A volume in Docker's `-v` syntax: `NAME:/path[:ro]` (a named volume, created
    /// and filled from the image on first use) or `/host/dir:/path[:ro]` (a bind).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for bad syntax.
    pub fn volume(mut self, spec: &str) -> Result<Self, Error> {
        self.requests.push(
            capsule_runtime::spec::MountRequest::parse_volume(spec).map_err(|e| map::spec(&e))?,
        );
        Ok(self)
    }

    /// Publishes a port in Docker's `-p` syntax (`8000:8000`, `127.0.0.1:0:8000`).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for bad syntax.
    pub fn publish(mut self, spec: &str) -> Result<Self, Error> {
        self.ports.push(
            capsule_runtime::net::PortRequest::parse(spec)
                .map_err(|e| Error::from_source(ErrorKind::InvalidInput, &e))?,
        );
        Ok(self)
    }

    /// The restart policy: `no`, `on-failure[:N]`, `always`, `unless-stopped`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] naming the policies.
    pub fn restart(mut self, policy: &str) -> Result<Self, Error> {
        self.restart =
            rt::RestartPolicy::parse(policy).map_err(|e| Error::new(ErrorKind::InvalidInput, e))?;
        Ok(self)
    }

    /// A label (`-l KEY=VALUE`).
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Most bytes of memory the guest may grow to (`--memory`). As with each limit,
    /// a value the flag would refuse (here less than 64 KiB) makes
    /// [`crate::Capsule::create`] fail with [`ErrorKind::InvalidInput`].
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.limits.memory = Some(bytes);
        self
    }

    /// Wall-clock time before each run is interrupted (`--timeout`, exit 124).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.limits.timeout = Some(limit);
        self
    }

    /// Instructions each run may execute (`--fuel`, exit 152).
    pub fn fuel(mut self, units: u64) -> Self {
        self.limits.fuel = Some(units);
        self
    }

    /// The grace period of [`Container::stop`] when none is given (`--stop-timeout`).
    pub fn stop_timeout(mut self, grace: Duration) -> Self {
        self.stop_timeout = Some(grace.as_secs());
        self
    }

    /// A read-only root filesystem (`--read-only`).
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    pub(crate) fn overrides(self) -> rt::Overrides {
        rt::Overrides {
            entrypoint: self.entrypoint,
            args: self.args,
            env: self.env,
            workdir: self.workdir,
            requests: self.requests,
            read_only: self.read_only,
            name: self.name,
            limits: self.limits,
            restart: self.restart,
            stop_timeout: self.stop_timeout,
            labels: self.labels,
            ports: self.ports,
            ..Default::default()
        }
    }
}

/// What a program run by [`Container::exec`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its exit code (126/127 when it could not run, 137 when its container stopped).
    pub exit_code: i32,
    /// Why it could not run, when it could not.
    pub error: Option<String>,
    /// What it wrote to stdout.
    pub stdout: Vec<u8>,
    /// What it wrote to stderr.
    pub stderr: Vec<u8>,
}

/// A container in the home: a handle by ID, read afresh on every call (another
/// process, such as `capsule stop`, may change it at any time).
#[derive(Debug, Clone)]
pub struct Container {
    pub(crate) home: Home,
    pub(crate) id: String,
    pub(crate) supervisor: Option<PathBuf>,
}

/// Where a container is in its life, as `capsule inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    /// Docker's word: `created`, `running`, `restarting`, `exited` or `dead`.
    pub status: String,
    /// Whether a process runs it now.
    pub running: bool,
    /// The exit code of its last run (the guest's, or 134 trapped, 137 killed or out
    /// of memory, 124 timed out, 152 out of fuel).
    pub exit_code: Option<i32>,
    /// Why its last run ended other than by exiting.
    pub error: Option<String>,
    /// The last run ran out of memory.
    pub oom_killed: bool,
    /// How many times its restart policy restarted it.
    pub restart_count: u32,
}

/// One line of a container's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// `true` for stderr (Capsule's own notes too), `false` for stdout.
    pub stderr: bool,
    /// The line, with its newline.
    pub text: String,
    /// When it was written (RFC 3339, nanoseconds).
    pub time: String,
}

impl Container {
    fn load(&self) -> Result<rt::Container, Error> {
        rt::Container::find(&self.home, &self.id).map_err(|e| map::container(&e))
    }

    /// Its full ID (64 hex digits).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its name.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] once it has been removed.
    pub fn name(&self) -> Result<String, Error> {
        Ok(self.load()?.name().to_owned())
    }

    /// Its state now.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] once it has been removed.
    pub fn state(&self) -> Result<ContainerState, Error> {
        let c = self.load()?;
        let s = c.state();
        Ok(ContainerState {
            status: s.status.as_str().to_owned(),
            running: s.is_active() && !c.lock_is_free(),
            exit_code: s.exit_code,
            error: s.error,
            oom_killed: s.oom_killed,
            restart_count: s.restart_count,
        })
    }

    /// Starts it detached, under a supervisor process of its own (the `capsule`
    /// binary; see [`crate::Capsule::supervisor`]); returns once its guest is about to
    /// run.
    ///
    /// # Errors
    /// [`ErrorKind::Conflict`] when it runs already, [`ErrorKind::NoSupervisor`]
    /// without a `capsule` binary, [`ErrorKind::CannotRun`] with the reason its guest
    /// could not start.
    pub fn start(&self) -> Result<(), Error> {
        let exe = self.supervisor.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::NoSupervisor,
                "cannot find the capsule binary that supervises detached containers: set CAPSULE_BIN, put capsule on PATH, or call Capsule::supervisor",
            )
        })?;
        let c = self.load()?;
        lifecycle::start(&self.home, &c, &exe).map_err(|e| map::container(&e))
    }

    /// Stops it: the guest runs on for `grace` (default: its stop timeout, else 10 s;
    /// WASI preview1 guests cannot be told to shut down), then is interrupted (exit
    /// 137). Nothing happens to a container that is not running.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a grace period over Capsule's longest duration
    /// (10^9 seconds); the host's error asking it or recording its state.
    pub fn stop(&self, grace: Option<Duration>) -> Result<(), Error> {
        if let Some(grace) = grace {
            capsule_runtime::spec::grammar::check_duration("grace", grace)
                .map_err(|e| map::limit(&e))?;
        }
        let mut c = self.load()?;
        let grace = grace.unwrap_or_else(|| lifecycle::grace(&c, None));
        lifecycle::stop(&mut c, grace).map_err(|e| map::container(&e))
    }

    /// Kills it at once (exit 137).
    ///
    /// # Errors
    /// [`ErrorKind::Conflict`] when it is not running.
    pub fn kill(&self) -> Result<(), Error> {
        let mut c = self.load()?;
        lifecycle::kill(&mut c).map_err(|e| map::container(&e))
    }

    /// Waits until it is not running (restarts included) and returns its exit code.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when it has been removed.
    pub fn wait(&self) -> Result<i32, Error> {
        lifecycle::wait(&self.load()?).map_err(|e| map::container(&e))
    }

    /// Runs another program in it while it runs (`capsule exec`): found through its
    /// `PATH` as its own program is, in its filesystem, with its environment (`env`
    /// over it), reading `stdin`; its memory counts against the container's limit.
    /// Returns once the program ends, with what it wrote. (Windows: `stdin` at most
    /// 768 KiB, sent with the request.)
    ///
    /// # Errors
    /// [`ErrorKind::Conflict`] when the container is not running; the host's error.
    pub fn exec(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: &[u8],
    ) -> Result<ExecOutput, Error> {
        let c = self.load()?;
        let request = capsule_runtime::container::control::ExecRequest {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            workdir: None,
            interactive: true,
            streamed: false,
            input: None,
        };
        exec_with(&c, request, stdin)
    }

    /// Its log so far: every line its guest wrote, in order.
    ///
    /// # Errors
    /// [`ErrorKind::Io`] when the log cannot be read.
    pub fn logs(&self) -> Result<Vec<LogLine>, Error> {
        let c = self.load()?;
        let entries = rt::logs::Reader::new(&c.dir)
            .next_entries()
            .map_err(|e| map::io("cannot read the container's log", &e))?;
        Ok(entries
            .into_iter()
            .map(|e| LogLine {
                stderr: e.stream == capsule_runtime::wasi::Stream::Stderr,
                text: e.log,
                time: e.time,
            })
            .collect())
    }

    /// Removes it (`force`: a running one is killed first), with its anonymous
    /// volumes; named volumes stay.
    ///
    /// # Errors
    /// [`ErrorKind::Conflict`] for a running container without `force`.
    pub fn remove(self, force: bool) -> Result<(), Error> {
        let c = self.load()?;
        lifecycle::remove(&self.home, c, force, true).map_err(|e| map::container(&e))?;
        Ok(())
    }
}

/// [`Container::exec`] on Unix: the program's stdin, stdout and stderr are pipes of
/// this process, passed to the container's owner.
#[cfg(unix)]
fn exec_with(
    c: &rt::Container,
    request: capsule_runtime::container::control::ExecRequest,
    stdin: &[u8],
) -> Result<ExecOutput, Error> {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    let pipe = || std::io::pipe().map_err(|e| map::io("cannot make a pipe", &e));
    let (in_read, mut in_write) = pipe()?;
    let (out_read, out_write) = pipe()?;
    let (err_read, err_write) = pipe()?;
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = in_write.write_all(&input);
    });
    // Read while it runs: a program that writes more than a pipe holds must not wait
    // for a reader.
    let reader = |mut pipe: std::io::PipeReader| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let (stdout, stderr) = (reader(out_read), reader(err_read));
    let streams = capsule_runtime::container::remote::Streams {
        stdin: Some(in_read.as_fd()),
        stdout: out_write.as_fd(),
        stderr: err_write.as_fd(),
    };
    let ended = capsule_runtime::container::remote::exec(c, request, streams);
    // The owner's copies are closed with the program: ours now, so the readers end.
    drop((in_read, out_write, err_write));
    let _ = writer.join();
    let ended = ended.map_err(|e| map::container(&e))?;
    Ok(ExecOutput {
        exit_code: ended.exit,
        error: ended.error,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// [`Container::exec`] where no descriptors pass between processes (Windows): its
/// output comes back over the control channel, its stdin goes with the request.
#[cfg(not(unix))]
fn exec_with(
    c: &rt::Container,
    request: capsule_runtime::container::control::ExecRequest,
    stdin: &[u8],
) -> Result<ExecOutput, Error> {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let ended = capsule_runtime::container::remote::exec_streamed(
        c,
        request,
        stdin,
        &mut stdout,
        &mut stderr,
    )
    .map_err(|e| map::container(&e))?;
    Ok(ExecOutput {
        exit_code: ended.exit,
        error: ended.error,
        stdout,
        stderr,
    })
}

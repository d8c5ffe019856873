//! Compose projects through the SDK: the library's `compose.toml` reader and the same
//! `up`, `down` and `ps` the `capsule compose` verbs run, without printing.
//!
//! ```no_run
//! # fn main() -> Result<(), capsule_sdk::Error> {
//! use capsule_sdk::Capsule;
//!
//! let capsule = Capsule::open_default()?.supervisor("/usr/local/bin/capsule");
//! let project = capsule.compose("app/compose.toml", None)?;
//! for container in project.up(&[])? {                 // as `compose up -d`
//!     println!("{} {}", container.name()?, container.state()?.status);
//! }
//! assert_eq!(project.ps()?.len(), 2);
//! project.down(None, false)?;                          // named volumes stay
//! # Ok(())
//! # }
//! ```

use crate::container::Container;
use crate::error::{Error, ErrorKind, map};
use capsule_runtime::compose::up::{self as reconcile, Event, Events, UpError, UpOptions};
use capsule_runtime::compose::{ComposeError, Project};
use capsule_runtime::home::Home;
use std::path::PathBuf;
use std::time::Duration;

/// A project loaded from its compose file, every service checked.
#[derive(Debug)]
pub struct ComposeProject {
    pub(crate) project: Project,
    pub(crate) home: Home,
    pub(crate) supervisor: Option<PathBuf>,
}

/// Reports nothing: the caller decides what to show.
struct Silent(super::Quiet);

impl Events for Silent {
    fn event(&mut self, _: Event<'_>) {}
    fn builder(&mut self) -> &mut dyn capsule_runtime::builder::Observer {
        &mut self.0
    }
}

impl ComposeProject {
    /// The project's name (`-p`, else the file's `name`, else its directory's).
    pub fn name(&self) -> &str {
        &self.project.name
    }

    /// What Compose would warn of while reading the file (variables that are not set).
    pub fn warnings(&self) -> &[String] {
        &self.project.warnings
    }

    /// Brings `services` (and what they depend on; every service when empty) up, as
    /// `capsule compose up -d`: builds what must be built, creates or recreates each
    /// service's container whose configuration changed, starts them in dependency
    /// order. Returns their containers.
    ///
    /// # Errors
    /// [`ErrorKind::NoSupervisor`] without a `capsule` binary; [`ErrorKind::NotFound`]
    /// for an image that is missing; [`ErrorKind::InvalidInput`] for an unknown service
    /// or what the host lacks (an external volume, a bind mount's directory);
    /// [`ErrorKind::Build`], [`ErrorKind::CannotRun`], [`ErrorKind::Conflict`] as
    /// `up` meets them.
    pub fn up(&self, services: &[&str]) -> Result<Vec<Container>, Error> {
        let supervisor = self.supervisor.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::NoSupervisor,
                "cannot find the capsule binary that supervises detached containers: set CAPSULE_BIN, put capsule on PATH, or call Capsule::supervisor",
            )
        })?;
        let images =
            capsule_runtime::image::Images::open(&self.home).map_err(|e| map::image(&e))?;
        let options = UpOptions {
            services: services.iter().map(|s| (*s).to_owned()).collect(),
            build: false,
            epoch: 0,
            supervisor,
        };
        let up = reconcile::up(
            &self.home,
            &images,
            &self.project,
            &options,
            &mut Silent(super::Quiet),
        )
        .map_err(|e| up_error(&e))?;
        Ok(up.into_iter().map(|u| self.handle(&u.container)).collect())
    }

    /// Stops and removes the project's containers, dependents first, as `capsule
    /// compose down`: each guest runs on for `grace` (default: its own stop timeout),
    /// then is interrupted. With `volumes`, the file's named volumes (not external ones)
    /// and the containers' anonymous volumes go too.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a grace period over Capsule's longest duration;
    /// the host's error stopping or removing one.
    pub fn down(&self, grace: Option<Duration>, volumes: bool) -> Result<(), Error> {
        let timeout = grace
            .map(|g| {
                capsule_runtime::spec::grammar::check_duration("grace", g)
                    .map(|g| g.as_secs())
                    .map_err(|e| map::limit(&e))
            })
            .transpose()?;
        reconcile::down(
            &self.home,
            &self.project,
            timeout,
            volumes,
            &mut Silent(super::Quiet),
        )
        .map_err(|e| up_error(&e))
    }

    /// The project's containers, running or not, oldest first (`compose ps -a`).
    ///
    /// # Errors
    /// None today; kept for the home's errors.
    pub fn ps(&self) -> Result<Vec<Container>, Error> {
        Ok(reconcile::containers(&self.home, &self.project)
            .iter()
            .map(|c| self.handle(c))
            .collect())
    }

    fn handle(&self, c: &capsule_runtime::container::Container) -> Container {
        Container {
            home: self.home.clone(),
            id: c.config.id.clone(),
            supervisor: self.supervisor.clone(),
        }
    }
}

pub(crate) fn compose_error(e: &ComposeError) -> Error {
    let kind = match e {
        ComposeError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            ErrorKind::NotFound
        }
        ComposeError::Read { .. } | ComposeError::Lock { .. } => ErrorKind::Io,
        _ => ErrorKind::InvalidInput,
    };
    Error::from_source(kind, e)
}

fn up_error(e: &UpError) -> Error {
    match e {
        UpError::Compose(e) => compose_error(e),
        UpError::NoImage { .. } => Error::from_source(ErrorKind::NotFound, e),
        UpError::Image(e) => map::image(e),
        UpError::Build { .. } => Error::from_source(ErrorKind::Build, e),
        UpError::Prepare(e) => map::prepare(e),
        UpError::Container(e) => map::container(e),
        UpError::Dependency { .. } => Error::from_source(ErrorKind::CannotRun, e),
        UpError::Remove { .. } => Error::from_source(ErrorKind::Io, e),
        _ => Error::from_source(ErrorKind::InvalidInput, e),
    }
}

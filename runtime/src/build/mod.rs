//! `capsule build`: a recipe in Dockerfile syntax ([`recipe`]) over a build context
//! ([`context`]) becomes an image, step by step, each step cached by key ([`cache`]).
//!
//! - `FROM` starts a stage from an image, an earlier stage or `scratch`.
//! - `COPY`/`ADD` write a layer of context files (or of another stage's files,
//!   `--from`), reproducibly ([`crate::image::layer_writer`]).
//! - `RUN ["/prog.wasm", ...]` runs a wasm program of the image being built, inside the
//!   sandbox, over the filesystem built so far; what it changes is the step's layer.
//! - Everything else changes the config and leaves an empty-layer history entry.

pub mod cache;
pub mod context;
pub mod ignore;
pub mod pattern;
pub mod recipe;

use crate::engine::{FeatureSet, ModuleCache};
use crate::fs::layer::Kind as FsKind;
use crate::fs::lower::{LowerEntry, LowerStack};
use crate::home::Home;
use crate::image::layer_writer::{LayerPlan, Planned, normal_file_mode};
use crate::image::reference::Reference;
use crate::image::{Image, ImageError, Images, LayerRef, archive, oci};
use crate::spec::{GuestPath, RunSpec};
use crate::store::Digest;
use cache::{BuildCache, CachedLayer, ExecConfig, HistoryEntry, State, StepRecord};
use context::{Context, EntryKind};
use pattern::Pattern;
use recipe::{Command, Instruction, Kind, Pos, Word};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The label that keeps an image's `SHELL` (OCI configs have no field for it).
pub const SHELL_LABEL: &str = "io.capsule.shell";

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The context directory.
    pub context: PathBuf,
    /// The recipe (`-f`); default `Capsulefile`, then `Dockerfile`, in the context.
    pub recipe: Option<PathBuf>,
    /// Names for the image.
    pub tags: Vec<Reference>,
    /// `--build-arg K=V`.
    pub build_args: Vec<(String, String)>,
    /// Rebuild every step.
    pub no_cache: bool,
    /// Stop after this stage.
    pub target: Option<String>,
    /// Timestamp of everything written (SOURCE_DATE_EPOCH).
    pub epoch: i64,
    /// WebAssembly features for RUN steps.
    pub features: FeatureSet,
}

/// How a step ended.
#[derive(Debug, Clone)]
pub enum StepOutcome {
    /// Reused from the cache.
    Cached,
    /// Done now, and why the cache could not serve it.
    Built { elapsed: Duration, reason: String },
    /// A `FROM`: where the stage starts.
    Base(String),
}

/// Receives the build's progress (the CLI draws it).
pub trait Observer {
    fn step_start(&mut self, number: usize, total: usize, text: &str);
    fn step_end(&mut self, number: usize, total: usize, text: &str, outcome: &StepOutcome);
    fn warn(&mut self, message: &str);
    /// Runs `f` (a RUN step's guest, which writes to the terminal) with any spinner
    /// out of the way.
    fn guest_output(&mut self, f: &mut dyn FnMut());
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Recipe(#[from] recipe::RecipeError),
    #[error(transparent)]
    Context(#[from] context::ContextError),
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The recipe file could not be read.
    #[error("cannot read the recipe {}", path.display())]
    ReadRecipe {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The recipe file is not UTF-8 text.
    #[error("{}: the recipe is not UTF-8 text", path.display())]
    NotUtf8 { path: PathBuf },
    /// The context holds no recipe and none was named.
    #[error(
        "no recipe in {}: write a Capsulefile (or Dockerfile) there, or name one with -f",
        context.display()
    )]
    NoRecipe { context: PathBuf },
    /// The recipe has only global `ARG`s.
    #[error("{file}: the recipe has no FROM: start it with FROM scratch or FROM IMAGE")]
    NoFrom { file: String },
    /// `--target` names no stage of the recipe.
    #[error("--target {target}: the recipe has no stage named {target} (FROM ... AS {target})")]
    NoTarget { target: String },
    /// The build ended without a stage (a recipe always has one once parsed).
    #[error("no stage was built")]
    NoStage,
    /// The build cache could not be opened, read or written (`what` says which).
    #[error("{what}")]
    Cache {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The layers built so far could not be opened for a `RUN` step.
    #[error("cannot open the layers built so far")]
    Layers {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// oci-spec refused the image config Capsule made.
    #[error("cannot make the image config")]
    Config {
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// An instruction that cannot be carried out, at its place in the recipe.
    #[error("{file}:{}:{}: {message}", pos.line, pos.col)]
    Instruction {
        file: String,
        pos: Pos,
        message: String,
    },
    /// An instruction that failed on an error underneath, at its place in the recipe;
    /// `what` (when given) says what it was doing.
    #[error("{file}:{}:{}{}", pos.line, pos.col, then_colon(what.as_deref()))]
    Failed {
        file: String,
        pos: Pos,
        what: Option<String>,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What the build made.
#[derive(Debug)]
pub struct Built {
    pub image: Image,
    pub steps: usize,
    pub cached: usize,
}

struct Stage {
    name: Option<String>,
    state: State,
    key: Digest,
    /// ARGs declared in this stage, with their values.
    args: BTreeMap<String, String>,
    cmd_set_here: bool,
}

struct Builder<'a> {
    home: &'a Home,
    images: &'a Images,
    options: &'a BuildOptions,
    observer: &'a mut dyn Observer,
    file: String,
    context: Context,
    cache: BuildCache,
    global_args: BTreeMap<String, Option<String>>,
    used_args: std::collections::HashSet<String>,
    stages: Vec<Stage>,
    records: Vec<StepRecord>,
    previous: Vec<StepRecord>,
    total: usize,
    number: usize,
    cached: usize,
    /// The first step that was rebuilt, which invalidates all after it.
    rebuilt: Option<String>,
    runner: Option<crate::container::Runner>,
    tmp: Option<TmpDir>,
}

fn at(file: &str, pos: Pos, message: impl std::fmt::Display) -> BuildError {
    BuildError::Instruction {
        file: file.to_owned(),
        pos,
        message: message.to_string(),
    }
}

/// `": what"`, or nothing.
fn then_colon(what: Option<&str>) -> String {
    what.map(|w| format!(": {w}")).unwrap_or_default()
}

/// The instruction at `pos` failed on `source`, while doing `what` if given.
fn failed(
    file: &str,
    pos: Pos,
    what: Option<String>,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> BuildError {
    BuildError::Failed {
        file: file.to_owned(),
        pos,
        what,
        source: source.into(),
    }
}

fn key_of(parts: &[&str]) -> Digest {
    Digest::of(parts.join("\n").as_bytes())
}

/// Builds an image.
///
/// # Errors
/// [`BuildError`]: recipe errors name file, line and column; nothing is named (and no
/// image is visible) unless the whole build succeeds.
pub fn build(
    home: &Home,
    images: &Images,
    options: &BuildOptions,
    observer: &mut dyn Observer,
) -> Result<Built, BuildError> {
    let context = Context::open(&options.context)?;
    // Hashes of this context's files from earlier builds (reused when unchanged).
    let hashes_dir = home.build_cache_dir().join("hashes");
    let hashes_name = format!(
        "{}.json",
        Digest::of(
            crate::ambient::canonicalize(&options.context)
                .unwrap_or_else(|_| options.context.clone())
                .display()
                .to_string()
                .as_bytes()
        )
        .hex()
    );
    if let Ok(text) = std::fs::read_to_string(hashes_dir.join(&hashes_name)) {
        context.load_hashes(&text);
    }
    let (file, text) = read_recipe(options)?;
    let recipe = recipe::parse(&file, &text)?;
    let cache = BuildCache::open(&home.build_cache_dir()).map_err(|e| BuildError::Cache {
        what: "cannot open the build cache",
        source: e.into(),
    })?;
    let recipe_id = Digest::of(
        format!(
            "{}\0{file}\0{}",
            crate::ambient::canonicalize(&options.context)
                .unwrap_or_else(|_| options.context.clone())
                .display(),
            options.target.as_deref().unwrap_or("")
        )
        .as_bytes(),
    );
    let previous = cache.last_build(recipe_id.hex());
    TmpDir::clean_stale(&home.tmp_dir());
    let _gc = images.store().gc_lock(false).map_err(ImageError::from)?;
    let mut builder = Builder {
        home,
        images,
        options,
        observer,
        file,
        context,
        cache,
        global_args: BTreeMap::new(),
        used_args: std::collections::HashSet::new(),
        stages: Vec::new(),
        records: Vec::new(),
        previous,
        total: 0,
        number: 0,
        cached: 0,
        rebuilt: None,
        runner: None,
        tmp: None,
    };
    let result = builder.run(&recipe.instructions);
    if let Some(bytes) = builder.context.hashes_to_save()
        && let Ok(dir) = crate::ambient::create_and_open_dir(&hashes_dir)
    {
        let _ = crate::store::write_atomically(&dir, &hashes_name, &bytes);
    }
    // Keep what ran for the next build's explanations, even when this one failed.
    let _ = builder.cache.save_build(recipe_id.hex(), &builder.records);
    let image = result?;
    for tag in &options.tags {
        images.set_name(&image, Some(tag))?;
    }
    if options.tags.is_empty() {
        images.set_name(&image, None)?;
    }
    let unused: Vec<&str> = options
        .build_args
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !builder.used_args.contains(*k))
        .collect();
    if !unused.is_empty() {
        builder.observer.warn(&format!(
            "build arguments not consumed by any ARG: {}",
            unused.join(", ")
        ));
    }
    Ok(Built {
        image,
        steps: builder.total,
        cached: builder.cached,
    })
}

fn read_recipe(options: &BuildOptions) -> Result<(String, String), BuildError> {
    let candidates: Vec<PathBuf> = match &options.recipe {
        Some(path) => vec![path.clone()],
        None => vec![
            options.context.join("Capsulefile"),
            options.context.join("Dockerfile"),
        ],
    };
    for path in &candidates {
        match std::fs::read(path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes)
                    .map_err(|_| BuildError::NotUtf8 { path: path.clone() })?;
                return Ok((path.display().to_string(), text));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && options.recipe.is_none() => {}
            Err(e) => {
                return Err(BuildError::ReadRecipe {
                    path: path.clone(),
                    source: e,
                });
            }
        }
    }
    Err(BuildError::NoRecipe {
        context: options.context.clone(),
    })
}

impl Builder<'_> {
    fn run(&mut self, instructions: &[Instruction]) -> Result<Image, BuildError> {
        // Global ARGs, then stages.
        let mut stage_starts = Vec::new();
        for (i, ins) in instructions.iter().enumerate() {
            if matches!(ins.kind, Kind::From { .. }) {
                stage_starts.push(i);
            }
        }
        let Some(&first) = stage_starts.first() else {
            return Err(BuildError::NoFrom {
                file: self.file.clone(),
            });
        };
        for ins in &instructions[..first] {
            if let Kind::Arg(args) = &ins.kind {
                for (name, default) in args {
                    let value = match self.build_arg(name) {
                        Some(v) => Some(v),
                        None => match default {
                            Some(word) => Some(self.expand_global(word)?),
                            None => None,
                        },
                    };
                    self.global_args.insert(name.clone(), value);
                }
            }
        }
        let mut stages: Vec<&[Instruction]> = Vec::new();
        for (n, &start) in stage_starts.iter().enumerate() {
            let end = stage_starts
                .get(n + 1)
                .copied()
                .unwrap_or(instructions.len());
            stages.push(&instructions[start..end]);
        }
        // Stop after --target.
        if let Some(target) = &self.options.target {
            let pos = stages.iter().position(|s| {
                matches!(&s[0].kind, Kind::From { alias: Some(a), .. } if a == &target.to_lowercase())
            });
            match pos {
                Some(pos) => stages.truncate(pos + 1),
                None => {
                    return Err(BuildError::NoTarget {
                        target: target.clone(),
                    });
                }
            }
        }
        self.total = stages.iter().map(|s| s.len()).sum();
        for (index, stage) in stages.iter().enumerate() {
            self.run_stage(index, stage)?;
        }
        let last = self.stages.last().ok_or(BuildError::NoStage)?;
        let state = last.state.clone();
        self.write_image(&state)
    }

    fn build_arg(&mut self, name: &str) -> Option<String> {
        let value = self
            .options
            .build_args
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone());
        if value.is_some() {
            self.used_args.insert(name.to_owned());
        }
        value
    }

    fn expand_global(&self, word: &Word) -> Result<String, BuildError> {
        let args = &self.global_args;
        Ok(word.expand(&self.file, &|name| args.get(name).cloned().flatten())?)
    }

    fn expand(&self, stage: &Stage, word: &Word) -> Result<String, BuildError> {
        let config = &stage.state.config;
        let args = &stage.args;
        Ok(word.expand(&self.file, &|name| {
            config
                .env_value(name)
                .map(str::to_owned)
                .or_else(|| args.get(name).cloned())
        })?)
    }

    fn run_stage(&mut self, index: usize, instructions: &[Instruction]) -> Result<(), BuildError> {
        let from = &instructions[0];
        let Kind::From {
            image,
            alias,
            platform,
        } = &from.kind
        else {
            return Err(at(&self.file, from.pos, "a stage must start with FROM"));
        };
        self.number += 1;
        self.rebuilt = None;
        if let Some(platform) = platform {
            let platform = self.expand_global(platform)?;
            let wasm = platform
                .split('/')
                .any(|p| p == "wasm" || p.starts_with("wasi"));
            if !wasm {
                return Err(at(
                    &self.file,
                    platform_pos(from),
                    format!(
                        "FROM --platform={platform}: Capsule builds WebAssembly images; use --platform=wasi/wasm or leave it out"
                    ),
                ));
            }
        }
        let base = self.expand_global(image)?;
        let text = format!(
            "FROM {base}{}",
            alias
                .as_ref()
                .map(|a| format!(" AS {a}"))
                .unwrap_or_default()
        );
        self.observer.step_start(self.number, self.total, &text);
        let (state, key, description) = if base == "scratch" {
            (
                State::default(),
                key_of(&["capsule build v1", "FROM scratch"]),
                "scratch".to_owned(),
            )
        } else if let Some(stage) = self
            .stages
            .iter()
            .find(|s| s.name.as_deref() == Some(base.to_lowercase().as_str()))
        {
            (
                stage.state.clone(),
                stage.key.clone(),
                format!("stage {base}"),
            )
        } else {
            let image = self
                .images
                .resolve(&base)
                .map_err(|e| failed(&self.file, from.pos, None, e))?;
            let state = state_of_image(&image);
            let key = key_of(&[
                "capsule build v1",
                "FROM",
                &image.manifest_digest.to_string(),
            ]);
            (state, key, format!("{base} ({})", image.short_id()))
        };
        self.observer.step_end(
            self.number,
            self.total,
            &text,
            &StepOutcome::Base(description),
        );
        let mut stage = Stage {
            name: alias.clone(),
            state,
            key,
            args: BTreeMap::new(),
            cmd_set_here: false,
        };
        for (step, ins) in instructions.iter().enumerate().skip(1) {
            self.number += 1;
            self.step(index, step, &mut stage, ins)?;
        }
        self.stages.push(stage);
        Ok(())
    }

    fn step(
        &mut self,
        stage_index: usize,
        step: usize,
        stage: &mut Stage,
        ins: &Instruction,
    ) -> Result<(), BuildError> {
        let (number, total) = (self.number, self.total);
        // Metadata steps change the config only.
        let mut next = stage.state.clone();
        let mut inputs = BTreeMap::new();
        let mut action: Option<Action> = None;
        let text: String;
        match &ins.kind {
            Kind::From { .. } => return Err(at(&self.file, ins.pos, "unexpected FROM")),
            Kind::Arg(args) => {
                let mut parts = Vec::new();
                for (name, default) in args {
                    let value = match self.build_arg(name) {
                        Some(v) => Some(v),
                        None => match default {
                            Some(word) => Some(self.expand(stage, word)?),
                            None => self.global_args.get(name).cloned().flatten(),
                        },
                    };
                    match &value {
                        Some(v) => {
                            stage.args.insert(name.clone(), v.clone());
                            parts.push(format!("{name}={v}"));
                        }
                        None => parts.push(name.clone()),
                    }
                }
                text = format!("ARG {}", parts.join(" "));
            }
            Kind::Env(pairs) => {
                let mut parts = Vec::new();
                for (name, word) in pairs {
                    // As in Docker, every value on the line sees the environment from
                    // before the instruction (`ENV a=bye b=$a` gives b the old a).
                    let value = self.expand(stage, word)?;
                    next.config.set_env(name, &value);
                    parts.push(format!("{name}={value}"));
                }
                text = format!("ENV {}", parts.join(" "));
            }
            Kind::Label(pairs) => {
                let mut parts = Vec::new();
                for (k, v) in pairs {
                    let (k, v) = (self.expand(stage, k)?, self.expand(stage, v)?);
                    // Capsule's own labels are checked here, not first when the image runs.
                    crate::labels::RunLabels::from_labels([(k.as_str(), v.as_str())])
                        .map_err(|e| at(&self.file, ins.pos, format!("LABEL: {e}")))?;
                    parts.push(format!("{k}={v:?}"));
                    next.config.labels.insert(k, v);
                }
                text = format!("LABEL {}", parts.join(" "));
            }
            Kind::Workdir(word) => {
                let dir = self.expand(stage, word)?;
                let joined = if dir.starts_with('/') {
                    dir.clone()
                } else {
                    format!("{}/{dir}", next.config.workdir.as_deref().unwrap_or(""))
                };
                let path =
                    GuestPath::parse(&joined).map_err(|e| failed(&self.file, word.pos, None, e))?;
                next.config.workdir = Some(path.to_string());
                text = format!("WORKDIR {path}");
            }
            Kind::Expose(words) => {
                let mut ports = Vec::new();
                for word in words {
                    let port = self.expand(stage, word)?;
                    let port = normalize_port(&port).ok_or_else(|| {
                        at(&self.file, word.pos, format!("EXPOSE '{port}': expected PORT, PORT/tcp, PORT/udp or a range like 8000-8010"))
                    })?;
                    if !next.config.exposed.contains(&port) {
                        next.config.exposed.push(port.clone());
                    }
                    ports.push(port);
                }
                next.config.exposed.sort();
                text = format!("EXPOSE {}", ports.join(" "));
            }
            Kind::Volume(words) => {
                let mut paths = Vec::new();
                for word in words {
                    let path = self.expand(stage, word)?;
                    let path = GuestPath::parse(&path)
                        .map_err(|e| failed(&self.file, word.pos, Some("VOLUME".to_owned()), e))?;
                    if !next.config.volumes.contains(&path.to_string()) {
                        next.config.volumes.push(path.to_string());
                    }
                    paths.push(path.to_string());
                }
                next.config.volumes.sort();
                text = format!("VOLUME {}", paths.join(" "));
            }
            Kind::User(word) => {
                let user = self.expand(stage, word)?;
                self.observer.warn(&format!(
                    "{}:{}: USER {user} is recorded in the image but has no effect: WASI programs have no users; access is what the container is granted",
                    self.file, ins.pos.line
                ));
                next.config.user = Some(user.clone());
                text = format!("USER {user}");
            }
            Kind::StopSignal(word) => {
                let signal = self.expand(stage, word)?;
                next.config.stop_signal = Some(signal.clone());
                text = format!("STOPSIGNAL {signal}");
            }
            Kind::Shell(shell) => {
                next.config.shell = Some(shell.clone());
                text = format!("SHELL {}", json_list(shell));
            }
            Kind::Entrypoint(command) => {
                let argv = self.argv(&next.config, command, "ENTRYPOINT", ins.pos)?;
                next.config.entrypoint = Some(argv.clone());
                if !stage.cmd_set_here {
                    next.config.cmd = None;
                }
                text = format!("ENTRYPOINT {}", json_list(&argv));
            }
            Kind::Cmd(command) => {
                let argv = self.argv(&next.config, command, "CMD", ins.pos)?;
                next.config.cmd = Some(argv.clone());
                stage.cmd_set_here = true;
                text = format!("CMD {}", json_list(&argv));
            }
            Kind::Run(command) => {
                let argv = self.argv(&next.config, command, "RUN", ins.pos)?;
                // Build arguments in scope are the program's environment too.
                for (k, v) in &stage.args {
                    inputs.insert(format!("build argument {k}"), v.clone());
                }
                text = format!("RUN {}", json_list(&argv));
                action = Some(Action::Run(argv));
            }
            Kind::Copy(copy) => {
                let (plan, copy_inputs, copy_text) = self.plan_copy(stage, copy, ins)?;
                inputs = copy_inputs;
                text = copy_text;
                action = Some(Action::Copy(plan));
            }
        }
        let input_text: Vec<String> = inputs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let key = key_of(&[&stage.key.to_string(), &text, &input_text.join("\n")]);
        let record = StepRecord {
            stage: stage_index,
            index: step,
            text: text.clone(),
            parent: stage.key.to_string(),
            key: key.to_string(),
            inputs,
        };
        self.observer.step_start(number, total, &text);
        let started = Instant::now();
        let cached = if self.options.no_cache {
            None
        } else {
            self.cache.get(&key).filter(|s| self.layers_present(s))
        };
        let outcome = match cached {
            Some(state) => {
                next = state;
                self.cached += 1;
                StepOutcome::Cached
            }
            None => {
                let previous = self
                    .previous
                    .iter()
                    .find(|r| r.stage == stage_index && r.index == step);
                let reason = cache::explain_miss(
                    previous,
                    &record,
                    self.rebuilt.as_deref(),
                    self.options.no_cache,
                );
                match action {
                    None => {}
                    Some(Action::Copy(plan)) => {
                        let layer = plan.write(
                            self.images.store(),
                            self.images.layer_cache(),
                            self.options.epoch,
                        )?;
                        next.layers.push(cached_layer(&layer));
                    }
                    Some(Action::Run(argv)) => {
                        let layer = self.run_program(stage, &argv, ins)?;
                        next.layers.push(layer);
                    }
                }
                let empty = !matches!(ins.kind, Kind::Copy(_) | Kind::Run(_));
                next.history.push(HistoryEntry {
                    created_by: history_text(&text),
                    empty_layer: empty,
                });
                self.cache.put(&key, &next).map_err(|e| BuildError::Cache {
                    what: "cannot write the build cache",
                    source: e.into(),
                })?;
                if self.rebuilt.is_none() {
                    self.rebuilt = Some(format!("step {number}: {text}"));
                }
                StepOutcome::Built {
                    elapsed: started.elapsed(),
                    reason,
                }
            }
        };
        self.observer.step_end(number, total, &text, &outcome);
        self.records.push(record);
        stage.state = next;
        stage.key = key;
        Ok(())
    }

    fn layers_present(&self, state: &State) -> bool {
        state.layers.iter().all(|l| {
            l.digest
                .parse::<Digest>()
                .is_ok_and(|d| self.images.store().has_blob(&d))
        })
    }

    /// The argv of RUN/CMD/ENTRYPOINT: exec form as written; shell form only through
    /// the image's SHELL.
    fn argv(
        &self,
        config: &ExecConfig,
        command: &Command,
        what: &str,
        pos: Pos,
    ) -> Result<Vec<String>, BuildError> {
        match command {
            Command::Exec(argv) if argv.is_empty() && what == "RUN" => Err(at(
                &self.file,
                pos,
                "RUN needs a program: RUN [\"/path/prog.wasm\", \"arg\"]",
            )),
            Command::Exec(argv) => Ok(argv.clone()),
            Command::Shell(line) => match &config.shell {
                Some(shell) => {
                    let mut argv = shell.clone();
                    argv.push(line.clone());
                    Ok(argv)
                }
                // An attempt at the exec form that is not valid JSON is shell form
                // (Docker's rule): say what is wrong with the array instead.
                None if line.trim_start().starts_with('[') => Err(at(
                    &self.file,
                    pos,
                    if line.trim_end().ends_with(']') {
                        format!(
                            "{what}: {line} is not a valid JSON array (each element a \"double-quoted\" string, separated by commas), so it would be shell form, which needs a shell that WebAssembly images do not have"
                        )
                    } else {
                        format!(
                            "{what}: the JSON array is not closed: end it with ']' (unclosed, it would be shell form, which needs a shell that WebAssembly images do not have)"
                        )
                    },
                )),
                None => Err(at(
                    &self.file,
                    pos,
                    format!(
                        "{what} in shell form needs a shell, and WebAssembly images have none: write the exec form, {what} [\"/path/in/image/prog.wasm\", \"arg\"], or set SHELL [\"/path/to/shell.wasm\", \"-c\"] to a shell module in the image"
                    ),
                )),
            },
        }
    }

    fn plan_copy(
        &mut self,
        stage: &Stage,
        copy: &recipe::Copy,
        ins: &Instruction,
    ) -> Result<(LayerPlan, BTreeMap<String, String>, String), BuildError> {
        let file = self.file.clone();
        let keyword = if copy.is_add { "ADD" } else { "COPY" };
        let mut sources = Vec::new();
        for word in &copy.sources {
            let src = self.expand(stage, word)?;
            if copy.is_add && src.contains("://") {
                return Err(at(
                    &file,
                    word.pos,
                    format!(
                        "ADD {src}: builds have no network; download the file into the context and COPY it"
                    ),
                ));
            }
            if copy.is_add
                && [".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar.zst"]
                    .iter()
                    .any(|ext| src.ends_with(ext))
                && copy.from.is_none()
            {
                return Err(at(
                    &file,
                    word.pos,
                    format!(
                        "ADD {src}: Docker would extract this archive; Capsule does not extract archives yet: unpack it into the context and COPY the directory"
                    ),
                ));
            }
            sources.push((src, word.pos));
        }
        let dest_raw = self.expand(stage, &copy.dest)?;
        let mut dest_is_dir = dest_raw.ends_with('/')
            || sources.len() > 1
            || sources.iter().any(|(s, _)| Pattern::has_wildcards(s));
        if sources.len() > 1 && !dest_raw.ends_with('/') {
            return Err(at(
                &file,
                copy.dest.pos,
                format!(
                    "{keyword} with several sources needs a directory destination ending in '/': {dest_raw}/"
                ),
            ));
        }
        let dest_joined = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!(
                "{}/{dest_raw}",
                stage.state.config.workdir.as_deref().unwrap_or("")
            )
        };
        let dest = GuestPath::parse(&dest_joined).map_err(|e| {
            failed(
                &file,
                copy.dest.pos,
                Some(format!("{keyword} destination")),
                e,
            )
        })?;
        let dest = dest.as_str().trim_start_matches('/').to_owned();
        // As in Docker, a destination that is a directory in the image receives the
        // source by name, with or without a trailing '/'.
        if !dest_is_dir
            && !stage.state.layers.is_empty()
            && self
                .lower_of(&stage.state)?
                .get(&dest)
                .is_some_and(|e| e.node.kind == FsKind::Dir)
        {
            dest_is_dir = true;
        }
        let mut plan = LayerPlan::new();
        let mut inputs = BTreeMap::new();
        let target = |rel: &str, name: &str, dir_source: bool| -> String {
            let base = if dir_source || dest_is_dir {
                join(&dest, name)
            } else {
                dest.clone()
            };
            join(&base, rel)
        };
        match &copy.from {
            None => {
                for (src, pos) in &sources {
                    let clean = crate::fs::lower::normalize(src).ok_or_else(|| {
                        at(
                            &file,
                            *pos,
                            format!("{keyword} source '{src}' is outside the build context"),
                        )
                    })?;
                    let matched = if Pattern::has_wildcards(&clean) {
                        let pattern =
                            Pattern::new(&clean).map_err(|e| failed(&file, *pos, None, e))?;
                        let found = self
                            .context
                            .glob(&pattern)
                            .map_err(|e| failed(&file, *pos, None, e))?;
                        if found.is_empty() {
                            return Err(at(
                                &file,
                                *pos,
                                format!("{keyword} '{src}': no file in the build context matches"),
                            ));
                        }
                        // A directory that matched also matches its contents: keep the top ones.
                        let mut tops: Vec<context::Entry> = Vec::new();
                        for entry in found {
                            if !tops
                                .iter()
                                .any(|t| entry.path.starts_with(&format!("{}/", t.path)))
                            {
                                tops.push(entry);
                            }
                        }
                        tops
                    } else {
                        match self
                            .context
                            .stat(&clean)
                            .map_err(|e| failed(&file, *pos, None, e))?
                        {
                            Some(entry) => vec![entry],
                            None => {
                                let why = if self.context.is_ignored(&clean) {
                                    format!(
                                        " (it is excluded by {})",
                                        self.context.ignore_file.unwrap_or(".capsuleignore")
                                    )
                                } else {
                                    String::new()
                                };
                                return Err(at(
                                    &file,
                                    *pos,
                                    format!(
                                        "{keyword} '{src}': not found in the build context {}{why}",
                                        self.context.path().display()
                                    ),
                                ));
                            }
                        }
                    };
                    for entry in matched {
                        let name = entry
                            .path
                            .rsplit('/')
                            .next()
                            .unwrap_or(&entry.path)
                            .to_owned();
                        match &entry.kind {
                            EntryKind::Dir => {
                                let to = target("", "", true);
                                plan.add_dir_entry(&to, copy.chmod.unwrap_or(0o755));
                                let prefix = if entry.path.is_empty() {
                                    String::new()
                                } else {
                                    format!("{}/", entry.path)
                                };
                                for child in self
                                    .context
                                    .walk(&entry.path)
                                    .map_err(|e| failed(&file, *pos, None, e))?
                                {
                                    let rel = child
                                        .path
                                        .strip_prefix(&prefix)
                                        .unwrap_or(&child.path)
                                        .to_owned();
                                    self.add_context_entry(
                                        &mut plan,
                                        &mut inputs,
                                        &child,
                                        &join(&to, &rel),
                                        copy.chmod,
                                        *pos,
                                    )?;
                                }
                            }
                            _ => {
                                let to = target("", &name, false);
                                self.add_context_entry(
                                    &mut plan,
                                    &mut inputs,
                                    &entry,
                                    &to,
                                    copy.chmod,
                                    *pos,
                                )?;
                            }
                        }
                    }
                }
            }
            Some(from) => {
                let (state, id) = match self
                    .stages
                    .iter()
                    .find(|s| s.name.as_deref() == Some(from.to_lowercase().as_str()))
                {
                    Some(s) => (s.state.clone(), format!("stage {from} {}", s.key)),
                    None => match from.parse::<usize>().ok().and_then(|i| self.stages.get(i)) {
                        Some(s) => (s.state.clone(), format!("stage {from} {}", s.key)),
                        None => {
                            let image = self.images.resolve(from).map_err(|e| {
                                at(
                                    &file,
                                    ins.pos,
                                    format!(
                                        "--from={from}: no earlier stage has this name, and {e}"
                                    ),
                                )
                            })?;
                            (
                                state_of_image(&image),
                                format!("image {from} {}", image.manifest_digest),
                            )
                        }
                    },
                };
                inputs.insert(format!("--from={from}"), id);
                let lower = Arc::new(self.lower_of(&state)?);
                for (src, pos) in &sources {
                    let path = GuestPath::parse(&if src.starts_with('/') {
                        src.clone()
                    } else {
                        format!("/{src}")
                    })
                    .map_err(|e| failed(&file, *pos, None, e))?;
                    let rel = path.as_str().trim_start_matches('/').to_owned();
                    let Some(entry) = lower.get(&rel) else {
                        return Err(at(
                            &file,
                            *pos,
                            format!("{keyword} --from={from} '{src}': no such file in {from}"),
                        ));
                    };
                    let name = rel.rsplit('/').next().unwrap_or("").to_owned();
                    if entry.node.kind == FsKind::Dir {
                        let to = target("", "", true);
                        plan.add_dir_entry(&to, copy.chmod.unwrap_or(0o755));
                        let mut stack = vec![(rel.clone(), to.clone())];
                        while let Some((dir, to_dir)) = stack.pop() {
                            let children: Vec<(String, FsKind)> = lower
                                .list(&dir)
                                .map(|(n, k, _)| (n.to_owned(), k))
                                .collect();
                            for (child, kind) in children {
                                let from_path = join(&dir, &child);
                                let to_path = join(&to_dir, &child);
                                if kind == FsKind::Dir {
                                    plan.add_dir_entry(&to_path, copy.chmod.unwrap_or(0o755));
                                    stack.push((from_path, to_path));
                                } else if let Some(e) = lower.get(&from_path) {
                                    add_lower_entry(&mut plan, &lower, e, &to_path, copy.chmod);
                                }
                            }
                        }
                    } else {
                        add_lower_entry(
                            &mut plan,
                            &lower,
                            entry,
                            &target("", &name, false),
                            copy.chmod,
                        );
                    }
                }
            }
        }
        let mut text = keyword.to_owned();
        if let Some(from) = &copy.from {
            text.push_str(&format!(" --from={from}"));
        }
        if let Some(mode) = copy.chmod {
            text.push_str(&format!(" --chmod={mode:o}"));
        }
        for (src, _) in &sources {
            text.push(' ');
            text.push_str(src);
        }
        text.push(' ');
        text.push_str(&dest_raw);
        Ok((plan, inputs, text))
    }

    fn add_context_entry(
        &self,
        plan: &mut LayerPlan,
        inputs: &mut BTreeMap<String, String>,
        entry: &context::Entry,
        to: &str,
        chmod: Option<u32>,
        pos: Pos,
    ) -> Result<(), BuildError> {
        match &entry.kind {
            EntryKind::Dir => {
                let mode = chmod.unwrap_or(0o755);
                plan.add_dir_entry(to, mode);
                inputs.insert(entry.path.clone(), format!("dir {mode:o} -> /{to}"));
            }
            EntryKind::File { size, mode } => {
                let mode = chmod.unwrap_or_else(|| normal_file_mode(*mode));
                let hash = self.context.hash_file(&entry.path).map_err(|e| {
                    failed(
                        &self.file,
                        pos,
                        Some(format!("cannot read {}", entry.path)),
                        e,
                    )
                })?;
                inputs.insert(
                    entry.path.clone(),
                    format!("sha256:{hash} {mode:o} -> /{to}"),
                );
                plan.add(
                    to,
                    Planned::File {
                        mode,
                        size: *size,
                        open: self.context.opener(&entry.path),
                    },
                );
            }
            EntryKind::Symlink { target } => {
                inputs.insert(entry.path.clone(), format!("symlink {target} -> /{to}"));
                plan.add(
                    to,
                    Planned::Symlink {
                        target: target.clone(),
                    },
                );
            }
        }
        Ok(())
    }

    /// The merged read-only view of a state's layers (its index saved by chain ID, as
    /// for containers).
    fn lower_of(&self, state: &State) -> Result<LowerStack, BuildError> {
        let mut paths = Vec::new();
        for layer in &state.layers {
            paths.push(self.layer_path(layer)?);
        }
        if paths.is_empty() {
            return Ok(LowerStack::new(Vec::new()));
        }
        let diff_ids: Vec<Digest> = state
            .layers
            .iter()
            .filter_map(|l| l.diff_id.parse().ok())
            .collect();
        let chain = oci::chain_id(&diff_ids).map(|d| d.hex().to_owned());
        crate::fs::rootfs::open_lower(&paths, Some(&self.home.layer_index_dir()), chain.as_deref())
            .map_err(|e| BuildError::Layers { source: e.into() })
    }

    fn layer_path(&self, layer: &CachedLayer) -> Result<PathBuf, BuildError> {
        let parse = |d: &str| {
            d.parse::<Digest>().map_err(|e| BuildError::Cache {
                what: "bad digest in the build cache",
                source: e.into(),
            })
        };
        Ok(self.images.layer_cache().ensure(
            self.images.store(),
            &parse(&layer.digest)?,
            layer.size,
            &layer.media_type,
            &parse(&layer.diff_id)?,
        )?)
    }

    /// RUN: the program runs over the stage's filesystem with a fresh writable layer,
    /// which becomes the step's layer.
    fn run_program(
        &mut self,
        stage: &Stage,
        argv: &[String],
        ins: &Instruction,
    ) -> Result<CachedLayer, BuildError> {
        let file = self.file.clone();
        let fail = |message: String| at(&file, ins.pos, message);
        let config = &stage.state.config;
        let workdir = GuestPath::parse(config.workdir.as_deref().unwrap_or("/"))
            .map_err(|e| fail(e.to_string()))?;
        // `PATH#EXPORT` names an export of a reactor; argv[0] is the path.
        let (program, export) = crate::spec::split_program(&argv[0]);
        let program_path = if program.starts_with('/') {
            GuestPath::parse(program)
        } else {
            GuestPath::parse(&format!("{workdir}/{program}"))
        }
        .map_err(|e| fail(format!("RUN {program}: {e}")))?;
        let mut layers = Vec::new();
        for layer in &stage.state.layers {
            layers.push(self.layer_path(layer)?);
        }
        let diff_ids: Vec<Digest> = stage
            .state
            .layers
            .iter()
            .filter_map(|l| l.diff_id.parse().ok())
            .collect();
        if self.tmp.is_none() {
            self.tmp = Some(
                TmpDir::new(&self.home.tmp_dir())
                    .map_err(|e| fail(format!("cannot create a work directory: {e}")))?,
            );
        }
        let scratch = self
            .tmp
            .as_ref()
            .map(|t| t.path.join(format!("step-{}", self.number)))
            .ok_or_else(|| fail("no work directory".to_owned()))?;
        let _ = crate::ambient::remove_dir_all(&scratch);
        crate::ambient::create_and_open_dir(&scratch)
            .map_err(|e| fail(format!("cannot create a work directory: {e}")))?;
        let mut spec = RunSpec::new(program);
        spec.args.extend(argv.iter().skip(1).cloned());
        if let Some(export) = export {
            spec.entry = crate::spec::Entry::Program(export.to_owned());
        }
        for (k, v) in &stage.args {
            spec.env.set(k, v);
        }
        for (k, v) in &config.env {
            spec.env.set(k, v);
        }
        spec.workdir = workdir;
        if !layers.is_empty() {
            spec.layers = layers;
            spec.layer_chain_id = oci::chain_id(&diff_ids).map(|d| d.hex().to_owned());
            spec.layer_index_cache = Some(self.home.layer_index_dir());
        } else {
            // An empty stage: an empty lower, so the writable layer still captures writes.
            let empty = scratch.join("empty");
            crate::ambient::create_and_open_dir(&empty).map_err(|e| fail(e.to_string()))?;
            spec.layers = vec![empty];
        }
        spec.upper = Some(scratch.clone());
        // The stage's labels say how its programs run, as they do for `capsule run`.
        let labels = crate::labels::RunLabels::from_labels(
            config.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .map_err(|e| fail(format!("RUN: {e}")))?;
        if let Some(policy) = labels.unknown_imports {
            spec.unknown_imports = policy;
        }
        let mut features = self.options.features;
        labels.apply_features(&mut features);
        if self
            .runner
            .as_ref()
            .is_none_or(|r| r.engine().features() != features)
        {
            let cache = ModuleCache::open(&self.home.module_cache_dir()).ok();
            self.runner = Some(
                crate::container::Runner::with_features(features, cache)
                    .map_err(|e| fail(e.to_string()))?,
            );
        }
        let runner = self
            .runner
            .as_ref()
            .ok_or_else(|| fail("no engine".to_owned()))?;
        let to_run = crate::container::Program::InRoot {
            path: program_path,
            alias: None,
        };
        let mut outcome = None;
        self.observer.guest_output(&mut || {
            outcome = Some(runner.run(
                &spec,
                &to_run,
                &crate::wasi::Stdio::Log,
                &crate::engine::Interrupt::new(),
            ));
        });
        let output = outcome
            .ok_or_else(|| fail("RUN did not start".to_owned()))?
            .map_err(|e| match e {
                crate::exec::RunError::Program { path, source } => fail(format!(
                    "RUN: cannot read {path} in the image being built: {source}"
                )),
                crate::exec::RunError::Wasi(e) => {
                    fail(format!("RUN: cannot set up the sandbox: {e}"))
                }
                e => fail(format!("RUN {program}: {e}")),
            })?;
        match output.status {
            crate::exec::ExitStatus::Exited(0) => {}
            crate::exec::ExitStatus::Exited(code) => {
                return Err(fail(format!(
                    "RUN {}: the program exited with status {code}",
                    json_list(argv)
                )));
            }
            crate::exec::ExitStatus::Trapped(trap) => {
                return Err(fail(format!(
                    "RUN {}: the program trapped: {}",
                    json_list(argv),
                    trap.reason
                )));
            }
            crate::exec::ExitStatus::InvalidExit(code) => {
                return Err(fail(format!(
                    "RUN {}: the program exited with invalid status {code}",
                    json_list(argv)
                )));
            }
            crate::exec::ExitStatus::Interrupted(why) => {
                return Err(fail(format!("RUN {}: the program {why}", json_list(argv))));
            }
        }
        let upper = scratch.join("upper");
        let plan = crate::fs::changes::list_upper(&upper)
            .and_then(|entries| LayerPlan::of_upper(&upper, &entries))
            .map_err(|e| fail(format!("cannot read what RUN changed: {e}")))?;
        let layer = plan.write(
            self.images.store(),
            self.images.layer_cache(),
            self.options.epoch,
        )?;
        let _ = crate::ambient::remove_dir_all(&scratch);
        Ok(cached_layer(&layer))
    }

    fn write_image(&self, state: &State) -> Result<Image, BuildError> {
        let c = &state.config;
        let mut builder = oci_spec::image::ConfigBuilder::default();
        if !c.env.is_empty() {
            builder = builder.env(
                c.env
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>(),
            );
        }
        if let Some(e) = &c.entrypoint {
            builder = builder.entrypoint(e.clone());
        }
        if let Some(cmd) = &c.cmd {
            builder = builder.cmd(cmd.clone());
        }
        if let Some(w) = &c.workdir {
            builder = builder.working_dir(w.clone());
        }
        let mut labels: HashMap<String, String> = c.labels.clone().into_iter().collect();
        if let Some(shell) = &c.shell {
            labels.insert(SHELL_LABEL.to_owned(), json_list(shell));
        }
        if !labels.is_empty() {
            builder = builder.labels(labels);
        }
        if !c.exposed.is_empty() {
            builder = builder.exposed_ports(c.exposed.clone());
        }
        if !c.volumes.is_empty() {
            builder = builder.volumes(c.volumes.clone());
        }
        if let Some(u) = &c.user {
            builder = builder.user(u.clone());
        }
        if let Some(s) = &c.stop_signal {
            builder = builder.stop_signal(s.clone());
        }
        let config = builder
            .build()
            .map_err(|source| BuildError::Config { source })?;
        let created = oci::rfc3339(self.options.epoch);
        let history = state
            .history
            .iter()
            .map(|h| {
                let mut b = oci_spec::image::HistoryBuilder::default()
                    .created(created.clone())
                    .created_by(h.created_by.clone());
                if h.empty_layer {
                    b = b.empty_layer(true);
                }
                b.build().map_err(|source| BuildError::Config { source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let layers: Vec<LayerRef> = state
            .layers
            .iter()
            .map(|l| {
                Ok(LayerRef {
                    digest: l.digest.parse::<Digest>().map_err(|e| BuildError::Cache {
                        what: "bad digest in the build cache",
                        source: e.into(),
                    })?,
                    size: l.size,
                    media_type: l.media_type.clone(),
                    diff_id: l.diff_id.parse::<Digest>().map_err(|e| BuildError::Cache {
                        what: "bad digest in the build cache",
                        source: e.into(),
                    })?,
                })
            })
            .collect::<Result<_, BuildError>>()?;
        let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let config = archive::image_config(config, &diff_ids, history, self.options.epoch)?;
        Ok(self.images.write_image(&config, &layers)?)
    }
}

/// Where a FROM's `--platform` word is (the instruction, when it has none).
fn platform_pos(from: &Instruction) -> Pos {
    match &from.kind {
        Kind::From {
            platform: Some(word),
            ..
        } => word.pos,
        _ => from.pos,
    }
}

enum Action {
    Copy(LayerPlan),
    Run(Vec<String>),
}

fn cached_layer(layer: &crate::image::layer_writer::WrittenLayer) -> CachedLayer {
    CachedLayer {
        digest: layer.digest.to_string(),
        size: layer.size,
        media_type: layer.media_type.to_owned(),
        diff_id: layer.diff_id.to_string(),
    }
}

/// The build state an image starts a stage with.
fn state_of_image(image: &Image) -> State {
    let config = image.config.config().clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = config
        .labels()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let shell = labels
        .remove(SHELL_LABEL)
        .and_then(|s| serde_json::from_str::<Vec<String>>(&s).ok());
    let mut exposed = config.exposed_ports().clone().unwrap_or_default();
    exposed.sort();
    let mut volumes = config.volumes().clone().unwrap_or_default();
    volumes.sort();
    State {
        layers: image
            .layers
            .iter()
            .map(|l| CachedLayer {
                digest: l.digest.to_string(),
                size: l.size,
                media_type: l.media_type.clone(),
                diff_id: l.diff_id.to_string(),
            })
            .collect(),
        config: ExecConfig {
            env: config
                .env()
                .iter()
                .flatten()
                .filter_map(|v| v.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
                .collect(),
            entrypoint: config.entrypoint().clone(),
            cmd: config.cmd().clone(),
            workdir: config.working_dir().clone().filter(|w| !w.is_empty()),
            labels,
            exposed,
            volumes,
            user: config.user().clone(),
            stop_signal: config.stop_signal().clone(),
            shell,
        },
        history: image
            .config
            .history()
            .iter()
            .flatten()
            .map(|h| HistoryEntry {
                created_by: h.created_by().clone().unwrap_or_default(),
                empty_layer: h.empty_layer().unwrap_or(false),
            })
            .collect(),
    }
}

fn add_lower_entry(
    plan: &mut LayerPlan,
    lower: &Arc<LowerStack>,
    entry: LowerEntry,
    to: &str,
    chmod: Option<u32>,
) {
    match entry.node.kind {
        FsKind::Dir => plan.add_dir_entry(to, chmod.unwrap_or(0o755)),
        FsKind::Symlink => plan.add(
            to,
            Planned::Symlink {
                target: entry.node.link_target.clone().unwrap_or_default(),
            },
        ),
        FsKind::File => {
            let size = entry.node.size;
            let mode = chmod.unwrap_or_else(|| normal_file_mode(entry.node.mode));
            let lower = lower.clone();
            plan.add(
                to,
                Planned::File {
                    mode,
                    size,
                    open: Arc::new(move || {
                        Ok(Box::new(LowerReader {
                            lower: lower.clone(),
                            entry: entry.clone(),
                            pos: 0,
                        }) as Box<dyn Read>)
                    }),
                },
            );
        }
    }
}

struct LowerReader {
    lower: Arc<LowerStack>,
    entry: LowerEntry,
    pos: u64,
}

impl Read for LowerReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.lower.read_at(&self.entry, self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A layer plan of a host directory as it is (a RUN step's writable layer, whiteouts
/// included), with fixed modes.
fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}/{b}"),
    }
}

fn normalize_port(port: &str) -> Option<String> {
    let (num, proto) = match port.split_once('/') {
        Some((n, p)) => (n, p.to_lowercase()),
        None => (port, "tcp".to_owned()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return None;
    }
    let valid = |n: &str| n.parse::<u16>().is_ok_and(|n| n > 0);
    let ok = match num.split_once('-') {
        Some((a, b)) => valid(a) && valid(b),
        None => valid(num),
    };
    ok.then(|| format!("{num}/{proto}"))
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_default()
}

/// History's `created_by`, as BuildKit writes it.
fn history_text(text: &str) -> String {
    format!("{text} # capsule build")
}

/// A private work directory under the home's `tmp/`, locked while in use; stale ones
/// (left by a killed build, their lock free) are removed by the next build.
struct TmpDir {
    path: PathBuf,
    _lock: std::fs::File,
}

impl TmpDir {
    /// Removes work directories whose build is gone (killed: its lock is free).
    fn clean_stale(root: &std::path::Path) {
        let Ok(dir) = crate::ambient::open_dir(root) else {
            return;
        };
        if let Ok(entries) = dir.entries() {
            for entry in entries.flatten() {
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                let Some(stem) = name.strip_suffix(".lock") else {
                    continue;
                };
                if let Ok(file) = dir.open_with(
                    &name,
                    cap_std::fs::OpenOptions::new().read(true).write(true),
                ) {
                    let file = file.into_std();
                    if file.try_lock().is_ok() {
                        let _ = crate::ambient::remove_dir_all(&root.join(stem));
                        let _ = dir.remove_file(&name);
                        let _ = file.unlock();
                    }
                }
            }
        }
    }

    fn new(root: &std::path::Path) -> std::io::Result<Self> {
        let dir = crate::ambient::create_and_open_dir(root)?;
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
        let name: String = format!(
            "build-{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let lock = dir
            .open_with(
                format!("{name}.lock"),
                cap_std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true),
            )?
            .into_std();
        lock.lock()?;
        dir.create_dir(&name)?;
        Ok(Self {
            path: root.join(name),
            _lock: lock,
        })
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = crate::ambient::remove_dir_all(&self.path);
        if let Some(parent) = self.path.parent()
            && let Some(name) = self.path.file_name()
        {
            let _ = std::fs::remove_file(parent.join(format!("{}.lock", name.to_string_lossy())));
        }
    }
}

//! `capsule build`.

use super::images::source_date_epoch;
use super::progress::{self, Step};
use super::{Failure, exit};
use capsule_runtime::builder::{self, BuildOptions, Observer, StepOutcome};
use capsule_runtime::engine::FeatureSet;
use capsule_runtime::home::Home;
use capsule_runtime::image::Images;
use capsule_runtime::image::reference::Reference;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Name the image, name[:tag] (repeatable)
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    tag: Vec<String>,
    /// The recipe (default: CONTEXT/Capsulefile, then CONTEXT/Dockerfile)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Set a build argument declared with ARG (KEY=VALUE, or KEY to take the host's)
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    build_arg: Vec<String>,
    /// Rebuild every step, ignoring the build cache
    #[arg(long = "no-cache")]
    no_cache: bool,
    /// Build up to this stage (FROM ... AS NAME)
    #[arg(long = "target", value_name = "STAGE")]
    target: Option<String>,
    /// Print only the image ID
    #[arg(short, long)]
    quiet: bool,
    /// Turn a WebAssembly feature on or off for RUN steps (e.g. -W tail-call=n)
    #[arg(short = 'W', long = "wasm", value_name = "FEATURE=y|n")]
    wasm: Vec<String>,
    /// The build context: the directory COPY reads from
    #[arg(value_name = "CONTEXT")]
    context: PathBuf,
}

pub(super) struct Printer {
    quiet: bool,
    step: Option<Step>,
}

impl Printer {
    /// A printer of each step's progress on stderr.
    pub(super) fn new(quiet: bool) -> Self {
        Self { quiet, step: None }
    }
}

impl Observer for Printer {
    fn step_start(&mut self, number: usize, total: usize, text: &str) {
        if self.quiet {
            return;
        }
        let line = format!("[{number}/{total}] {text}");
        if text.starts_with("RUN ") && !progress::interactive() {
            eprintln!("{line}");
        }
        self.step = Some(Step::start(&line));
    }

    fn step_end(&mut self, number: usize, total: usize, text: &str, outcome: &StepOutcome) {
        if self.quiet {
            return;
        }
        let line = match outcome {
            StepOutcome::Cached => format!("[{number}/{total}] {text}  CACHED"),
            StepOutcome::Base(what) if what == "scratch" => format!("[{number}/{total}] {text}"),
            StepOutcome::Base(what) => format!("[{number}/{total}] {text}  ({what})"),
            StepOutcome::Built { elapsed, reason } => format!(
                "[{number}/{total}] {text}  {:.2}s  (rebuilt: {reason})",
                elapsed.as_secs_f64()
            ),
        };
        match self.step.take() {
            Some(step) => step.finish(&line),
            None => eprintln!("{line}"),
        }
    }

    fn warn(&mut self, message: &str) {
        match &self.step {
            Some(step) => step.println(&format!("warning: {message}")),
            None => eprintln!("warning: {message}"),
        }
    }

    fn guest_output(&mut self, f: &mut dyn FnMut()) {
        match &self.step {
            Some(step) => step.suspend(f),
            None => f(),
        }
    }
}

pub fn build(args: &BuildArgs) -> Result<u8, Failure> {
    let usage = |e: anyhow::Error| Failure::new(exit::USAGE, e);
    let started = Instant::now();
    let mut features = FeatureSet::default();
    for setting in &args.wasm {
        features
            .apply_setting(setting)
            .map_err(|e| Failure::new(exit::USAGE, e))?;
    }
    let tags = args
        .tag
        .iter()
        .map(|t| {
            let r = Reference::parse(t)?;
            if r.digest.is_some() {
                anyhow::bail!("-t {t}: a name cannot have a digest");
            }
            Ok(r)
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(usage)?;
    let mut build_args = Vec::new();
    for arg in &args.build_arg {
        match arg.split_once('=') {
            Some((k, v)) if !k.is_empty() => build_args.push((k.to_owned(), v.to_owned())),
            None if !arg.is_empty() => {
                if let Some(v) = capsule_runtime::ambient::host_env(arg) {
                    build_args.push((arg.clone(), v));
                }
            }
            _ => {
                return Err(usage(anyhow::anyhow!(
                    "--build-arg '{arg}': expected KEY=VALUE or KEY"
                )));
            }
        }
    }
    if !capsule_runtime::ambient::is_dir(&args.context) {
        return Err(usage(anyhow::anyhow!(
            "build context {} is not a directory",
            args.context.display()
        )));
    }
    let options = BuildOptions {
        context: args.context.clone(),
        recipe: args.file.clone(),
        tags: tags.clone(),
        build_args,
        no_cache: args.no_cache,
        target: args.target.clone(),
        epoch: source_date_epoch().map_err(usage)?,
        features,
    };
    let home = Home::from_env().map_err(|e| usage(e.into()))?;
    let images = Images::open(&home).map_err(|e| usage(e.into()))?;
    let mut printer = Printer {
        quiet: args.quiet,
        step: None,
    };
    let built =
        builder::build(&home, &images, &options, &mut printer).map_err(|e| Failure::new(1, e))?;
    if args.quiet {
        println!("{}", built.image.id());
    } else {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "Built {} in {:.2}s: {} steps, {} cached",
            built.image.id(),
            started.elapsed().as_secs_f64(),
            built.steps,
            built.cached
        );
        for tag in &tags {
            let _ = writeln!(err, "Named {}", tag.name().unwrap_or_default());
        }
    }
    let name = tags
        .first()
        .map_or_else(|| built.image.id().to_string(), ToString::to_string);
    super::warm::compile_ahead(&home, &images, &built.image, &name, args.quiet);
    Ok(0)
}

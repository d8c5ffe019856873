//! The executor: walks a recipe's stages, and for each step asks its instruction family
//! what the step is (`copy`, `run`, `metadata`), then keys it, serves it from the
//! cache or carries it out, and records it.

use super::cache::{self, BuildCache, CachedLayer, HistoryEntry, State, StepRecord};
use super::context::Context;
use super::error::{BuildError, at, failed};
use super::image_config::{state_of_image, write_image};
use super::recipe::{Instruction, Kind, Pos, RunMount, Word};
use super::workdir::TmpDir;
use super::{BuildOptions, Observer, StepOutcome};
use crate::fs::lower::LowerStack;
use crate::home::Home;
use crate::image::layer_writer::{LayerPlan, WrittenLayer};
use crate::image::{Image, Images, oci};
use crate::store::Digest;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

/// A stage being built.
pub(super) struct Stage {
    pub(super) name: Option<String>,
    pub(super) state: State,
    pub(super) key: Digest,
    /// ARGs declared in this stage, with their values.
    pub(super) args: BTreeMap<String, String>,
    /// Whether a CMD of this stage set the command (an ENTRYPOINT after it keeps it).
    pub(super) cmd_set_here: bool,
}

/// One build: what it runs over, what it has built so far, and its counters.
pub(super) struct Executor<'a> {
    pub(super) home: &'a Home,
    pub(super) images: &'a Images,
    pub(super) options: &'a BuildOptions,
    pub(super) observer: &'a mut dyn Observer,
    pub(super) file: String,
    pub(super) context: Context,
    pub(super) cache: BuildCache,
    pub(super) global_args: BTreeMap<String, Option<String>>,
    pub(super) used_args: HashSet<String>,
    pub(super) stages: Vec<Stage>,
    pub(super) records: Vec<StepRecord>,
    pub(super) previous: Vec<StepRecord>,
    pub(super) total: usize,
    pub(super) number: usize,
    pub(super) cached: usize,
    /// The first step that was rebuilt, which invalidates all after it.
    pub(super) rebuilt: Option<String>,
    /// The runner of the last RUN step (kept while the features stay the same).
    pub(super) runner: Option<crate::container::Runner>,
    /// The work directory of RUN steps, made by the first one.
    pub(super) tmp: Option<TmpDir>,
}

/// A step made concrete: its text (shown, and keyed), the inputs that key it besides
/// the text, and what it does when the cache cannot serve it.
pub(super) struct StepPlan {
    pub(super) text: String,
    pub(super) inputs: BTreeMap<String, String>,
    pub(super) action: Action,
}

/// What a step does when the cache cannot serve it.
pub(super) enum Action {
    /// Nothing more: the config changed, and the history gets an empty-layer entry.
    Config,
    /// Write this layer (COPY/ADD).
    Copy(LayerPlan),
    /// Run this program with these mounts; what it changes is the layer (RUN).
    Run(Vec<String>, Vec<RunMount>),
}

impl StepPlan {
    /// A step that changes the config only.
    fn config(text: String) -> Self {
        Self {
            text,
            inputs: BTreeMap::new(),
            action: Action::Config,
        }
    }
}

impl Executor<'_> {
    pub(super) fn run(&mut self, instructions: &[Instruction]) -> Result<Image, BuildError> {
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
        write_image(self.images, &state, self.options.epoch)
    }

    pub(super) fn build_arg(&mut self, name: &str) -> Option<String> {
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

    pub(super) fn expand(&self, stage: &Stage, word: &Word) -> Result<String, BuildError> {
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

    /// One step after a stage's FROM: its instruction family says what it is, then it
    /// is keyed and carried out.
    fn step(
        &mut self,
        stage_index: usize,
        step: usize,
        stage: &mut Stage,
        ins: &Instruction,
    ) -> Result<(), BuildError> {
        // The state after the step; metadata instructions change its config here.
        let mut next = stage.state.clone();
        let config = &mut next.config;
        let plan = match &ins.kind {
            Kind::From { .. } => return Err(at(&self.file, ins.pos, "unexpected FROM")),
            Kind::Copy(copy) => self.plan_copy(stage, copy, ins)?,
            Kind::Run(command, mounts) => self.plan_run(stage, command, mounts, ins.pos)?,
            Kind::Arg(args) => StepPlan::config(self.arg(stage, args)?),
            Kind::Env(pairs) => StepPlan::config(self.env(stage, config, pairs)?),
            Kind::Label(pairs) => StepPlan::config(self.label(stage, config, pairs, ins.pos)?),
            Kind::Workdir(word) => StepPlan::config(self.workdir(stage, config, word)?),
            Kind::Expose(words) => StepPlan::config(self.expose(stage, config, words)?),
            Kind::Volume(words) => StepPlan::config(self.volume(stage, config, words)?),
            Kind::User(word) => StepPlan::config(self.user(stage, config, word, ins.pos)?),
            Kind::StopSignal(word) => StepPlan::config(self.stop_signal(stage, config, word)?),
            Kind::Shell(shell) => StepPlan::config(Self::shell(config, shell)),
            Kind::Healthcheck(check) => StepPlan::config(Self::healthcheck(config, check)),
            Kind::Entrypoint(command) => {
                StepPlan::config(self.entrypoint(stage, config, command, ins.pos)?)
            }
            Kind::Cmd(command) => StepPlan::config(self.cmd(stage, config, command, ins.pos)?),
        };
        self.carry_out(stage_index, step, stage, ins, next, plan)
    }

    /// Keys a planned step, then serves it from the cache or does its work, and records
    /// it; `next` is the stage's state with the step's config change.
    fn carry_out(
        &mut self,
        stage_index: usize,
        step: usize,
        stage: &mut Stage,
        ins: &Instruction,
        mut next: State,
        plan: StepPlan,
    ) -> Result<(), BuildError> {
        let (number, total) = (self.number, self.total);
        let StepPlan {
            text,
            inputs,
            action,
        } = plan;
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
                let empty_layer = matches!(action, Action::Config);
                match action {
                    Action::Config => {}
                    Action::Copy(plan) => {
                        let layer = plan.write(
                            self.images.store(),
                            self.images.layer_cache(),
                            self.options.epoch,
                        )?;
                        next.layers.push(cached_layer(&layer));
                    }
                    Action::Run(argv, mounts) => {
                        let layer = self.run_program(stage, &argv, &mounts, ins)?;
                        next.layers.push(layer);
                    }
                }
                next.history.push(HistoryEntry {
                    created_by: history_text(&text),
                    empty_layer,
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

    /// The merged read-only view of a state's layers (its index saved by chain ID, as
    /// for containers).
    pub(super) fn lower_of(&self, state: &State) -> Result<LowerStack, BuildError> {
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

    /// Where a layer of a build state is on the host (made ready in the layer cache).
    pub(super) fn layer_path(&self, layer: &CachedLayer) -> Result<PathBuf, BuildError> {
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

/// A step's cache key: its parts, one per line.
pub(super) fn key_of(parts: &[&str]) -> Digest {
    Digest::of(parts.join("\n").as_bytes())
}

/// A layer just written, as the build cache records it.
pub(super) fn cached_layer(layer: &WrittenLayer) -> CachedLayer {
    CachedLayer {
        digest: layer.digest.to_string(),
        size: layer.size,
        media_type: layer.media_type.to_owned(),
        diff_id: layer.diff_id.to_string(),
    }
}

/// `a/b` of two relative paths, either of which may be empty.
pub(super) fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}/{b}"),
    }
}

/// History's `created_by`, as BuildKit writes it.
pub(super) fn history_text(text: &str) -> String {
    format!("{text} # capsule build")
}

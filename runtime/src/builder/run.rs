//! RUN: a wasm program of the image being built runs in the sandbox over the stage's
//! filesystem with a fresh writable layer, which becomes the step's layer.

use super::cache::CachedLayer;
use super::error::{BuildError, at};
use super::executor::{Action, Executor, Stage, StepPlan, cached_layer};
use super::image_config::json_list;
use super::recipe::{Command, Instruction, MountKind, Pos, RunMount};
use super::workdir::TmpDir;
use crate::engine::ModuleCache;
use crate::image::layer_writer::LayerPlan;
use crate::image::oci;
use crate::spec::{GuestPath, RunSpec};
use crate::store::Digest;

impl Executor<'_> {
    /// The program a RUN runs, its text, and its inputs: the build arguments in scope,
    /// which are the program's environment too.
    pub(super) fn plan_run(
        &self,
        stage: &Stage,
        command: &Command,
        mounts: &[RunMount],
        pos: Pos,
    ) -> Result<StepPlan, BuildError> {
        let argv = self.argv(&stage.state.config, command, "RUN", pos)?;
        let mut inputs: std::collections::BTreeMap<String, String> = stage
            .args
            .iter()
            .map(|(k, v)| (format!("build argument {k}"), v.clone()))
            .collect();
        // What a bind mount shows the step keys it, as a COPY's files key a COPY.
        for mount in mounts {
            if let MountKind::Bind { source, .. } = &mount.kind {
                let (name, hash) = self.bind_source_hash(source, pos)?;
                inputs.insert(
                    format!("mount {} of the context's {name}", mount.target),
                    hash,
                );
            }
        }
        let flags: String = mounts
            .iter()
            .map(|m| format!("--mount={} ", m.text))
            .collect();
        Ok(StepPlan {
            text: format!("RUN {flags}{}", json_list(&argv)),
            inputs,
            action: Action::Run(argv, mounts.to_vec()),
        })
    }

    /// RUN: the program runs over the stage's filesystem with a fresh writable layer,
    /// which becomes the step's layer.
    pub(super) fn run_program(
        &mut self,
        stage: &Stage,
        argv: &[String],
        mounts: &[RunMount],
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
            .map(|t| t.path().join(format!("step-{}", self.number)))
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
        // Held until the step ends: the locks of `sharing=locked` caches.
        let _locks = self.stage_mounts(&mut spec, mounts, &scratch, ins.pos)?;
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
            image: None,
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
}

//! COPY and ADD: a layer planned from build-context files, or from another stage's or
//! image's files (`--from`); the plan is written only when the cache misses.

use super::context::{self, EntryKind};
use super::error::{BuildError, at, failed};
use super::executor::{Action, Executor, Stage, StepPlan, join};
use super::image_config::state_of_image;
use super::pattern::Pattern;
use super::recipe::{self, Instruction, Pos};
use crate::fs::layer::Kind;
use crate::fs::lower::{LowerEntry, LowerStack};
use crate::image::layer_writer::{LayerPlan, Planned, normal_file_mode};
use crate::spec::GuestPath;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

impl Executor<'_> {
    /// The layer a COPY/ADD writes, the inputs that key it (each file's hash, mode and
    /// destination; the `--from` stage or image), and its text.
    pub(super) fn plan_copy(
        &mut self,
        stage: &Stage,
        copy: &recipe::Copy,
        ins: &Instruction,
    ) -> Result<StepPlan, BuildError> {
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
                .is_some_and(|e| e.node.kind == Kind::Dir)
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
                    if entry.node.kind == Kind::Dir {
                        let to = target("", "", true);
                        plan.add_dir_entry(&to, copy.chmod.unwrap_or(0o755));
                        let mut stack = vec![(rel.clone(), to.clone())];
                        while let Some((dir, to_dir)) = stack.pop() {
                            let children: Vec<(String, Kind)> = lower
                                .list(&dir)
                                .map(|(n, k, _)| (n.to_owned(), k))
                                .collect();
                            for (child, kind) in children {
                                let from_path = join(&dir, &child);
                                let to_path = join(&to_dir, &child);
                                if kind == Kind::Dir {
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
        Ok(StepPlan {
            text,
            inputs,
            action: Action::Copy(plan),
        })
    }

    /// Adds one context entry to the plan at `to`, and its input (hash, mode, target).
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
}

/// Adds one entry of another stage's or image's files to the plan at `to`; its bytes
/// are read from the lower when the layer is written.
fn add_lower_entry(
    plan: &mut LayerPlan,
    lower: &Arc<LowerStack>,
    entry: LowerEntry,
    to: &str,
    chmod: Option<u32>,
) {
    match entry.node.kind {
        Kind::Dir => plan.add_dir_entry(to, chmod.unwrap_or(0o755)),
        Kind::Symlink => plan.add(
            to,
            Planned::Symlink {
                target: entry.node.link_target.clone().unwrap_or_default(),
            },
        ),
        Kind::File => {
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

/// A file of a lower, read from its start.
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

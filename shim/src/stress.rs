//! The Linux side of `capsule-shim-stress` (see `bin/stress.rs`).

use anyhow::{Context, Result, bail, ensure};
use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{PrepareSnapshotRequest, RemoveSnapshotRequest};
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteRequest, DeleteTaskRequest, GetImageRequest, KillRequest, ReadContentRequest,
    StartRequest, WaitRequest,
};
use containerd_client::tonic::Request;
use containerd_client::tonic::transport::Channel;
use containerd_client::types::Mount;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SNAPSHOTTER: &str = "overlayfs";
const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
const SANDBOX_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";

const USAGE: &str = "usage: capsule-shim-stress --address SOCKET --image REF --spec FILE \
[--namespace NS] [--runtime NAME] [--count N] [--parallel P] [--expect TEXT] [--json FILE]";

#[derive(Debug)]
struct Options {
    address: PathBuf,
    namespace: String,
    image: String,
    runtime: String,
    count: usize,
    parallel: usize,
    spec: PathBuf,
    expect: Option<String>,
    json: Option<PathBuf>,
}

fn parse_options() -> Result<Options> {
    let mut options = Options {
        address: PathBuf::from("/run/containerd/containerd.sock"),
        namespace: "default".to_owned(),
        image: String::new(),
        runtime: "io.containerd.capsule.v1".to_owned(),
        count: 100,
        parallel: 1,
        spec: PathBuf::new(),
        expect: None,
        json: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value; {USAGE}"))?;
        let number = |what: &str| -> Result<usize> {
            value
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| format!("{what} must be a positive number, not '{value}'"))
        };
        match flag.as_str() {
            "--address" => options.address = PathBuf::from(&value),
            "--namespace" => options.namespace = value,
            "--image" => options.image = value,
            "--runtime" => options.runtime = value,
            "--count" => options.count = number("--count")?,
            "--parallel" => options.parallel = number("--parallel")?,
            "--spec" => options.spec = PathBuf::from(value),
            "--expect" => options.expect = Some(value),
            "--json" => options.json = Some(PathBuf::from(value)),
            _ => bail!("unknown option '{flag}'; {USAGE}"),
        }
    }
    ensure!(!options.image.is_empty(), "--image is required; {USAGE}");
    ensure!(
        !options.spec.as_os_str().is_empty(),
        "--spec is required (the Spec of `ctr containers info`); {USAGE}"
    );
    Ok(options)
}

/// A gRPC request in the namespace, under the lease when there is one.
fn request<T>(namespace: &str, lease: Option<&str>, message: T) -> Result<Request<T>> {
    let mut request = Request::new(message);
    let metadata = request.metadata_mut();
    metadata.insert("containerd-namespace", namespace.parse()?);
    if let Some(lease) = lease {
        metadata.insert("containerd-lease", lease.parse()?);
    }
    Ok(request)
}

struct Client {
    channel: Channel,
    namespace: String,
}

impl Client {
    fn req<T>(&self, message: T) -> Result<Request<T>> {
        request(&self.namespace, None, message)
    }

    async fn read(&self, digest: &str) -> Result<Vec<u8>> {
        let mut stream = ContentClient::new(self.channel.clone())
            .read(self.req(ReadContentRequest {
                digest: digest.to_owned(),
                ..Default::default()
            })?)
            .await
            .with_context(|| format!("reading {digest} from containerd's content store"))?
            .into_inner();
        let mut data = Vec::new();
        while let Some(chunk) = stream.message().await? {
            data.extend_from_slice(&chunk.data);
        }
        Ok(data)
    }

    async fn read_json(&self, digest: &str) -> Result<Value> {
        let bytes = self.read(digest).await?;
        serde_json::from_slice(&bytes).with_context(|| format!("{digest} is not JSON"))
    }

    /// The image's config: its manifest's config blob (the first manifest of an index).
    async fn image_config(&self, image: &str) -> Result<Value> {
        let found = ImagesClient::new(self.channel.clone())
            .get(self.req(GetImageRequest {
                name: image.to_owned(),
            })?)
            .await
            .with_context(|| {
                format!("image {image} is not in containerd: import it with ctr image import")
            })?
            .into_inner();
        let target = found
            .image
            .and_then(|i| i.target)
            .context("the image has no target")?;
        let mut manifest = self.read_json(&target.digest).await?;
        if let Some(manifests) = manifest.get("manifests").and_then(Value::as_array) {
            let digest = manifests
                .first()
                .and_then(|m| m.get("digest"))
                .and_then(Value::as_str)
                .context("the image index lists no manifest")?
                .to_owned();
            manifest = self.read_json(&digest).await?;
        }
        let config = manifest
            .pointer("/config/digest")
            .and_then(Value::as_str)
            .context("the manifest has no config")?
            .to_owned();
        self.read_json(&config).await
    }
}

/// The snapshot parent of an image's layers: the chain ID of its `rootfs.diff_ids`.
fn chain_id(config: &Value) -> Result<String> {
    let diffs = config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .context("the image config has no rootfs.diff_ids")?;
    let mut chain: Option<String> = None;
    for diff in diffs {
        let diff = diff.as_str().context("a diff ID is not a string")?;
        chain = Some(match chain {
            None => diff.to_owned(),
            Some(parent) => format!(
                "sha256:{:x}",
                Sha256::digest(format!("{parent} {diff}").as_bytes())
            ),
        });
    }
    chain.context("the image has no layers")
}

/// One task's spec: the base with the sandbox's annotation and, when the base has a
/// cgroup, a cgroup of its own.
fn task_spec(base: &Value, namespace: &str, sandbox: &str, id: &str) -> Result<Vec<u8>> {
    let mut spec = base.clone();
    let object = spec
        .as_object_mut()
        .context("the spec is not a JSON object")?;
    let annotations = object
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    annotations
        .as_object_mut()
        .context("the spec's annotations are not an object")?
        .insert(SANDBOX_ANNOTATION.to_owned(), Value::from(sandbox));
    if let Some(linux) = object
        .get_mut("linux")
        .and_then(Value::as_object_mut)
        .filter(|linux| linux.contains_key("cgroupsPath"))
    {
        linux.insert(
            "cgroupsPath".to_owned(),
            Value::from(format!("/{namespace}/{id}")),
        );
    }
    Ok(serde_json::to_vec(&spec)?)
}

/// A task ready to run: its snapshot's mounts, its spec and its output files.
struct Prepared {
    id: String,
    mounts: Vec<Mount>,
    spec: Vec<u8>,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// How long each step of one task took.
#[derive(Default, Clone, Copy)]
struct Steps {
    create_container: Duration,
    create_task: Duration,
    start: Duration,
    wait: Duration,
    delete: Duration,
}

struct Bench {
    client: Client,
    options: Options,
    image_name: String,
}

impl Bench {
    async fn create(&self, task: &Prepared) -> Result<(Duration, Duration)> {
        let began = Instant::now();
        ContainersClient::new(self.client.channel.clone())
            .create(self.client.req(CreateContainerRequest {
                container: Some(Container {
                    id: task.id.clone(),
                    image: self.image_name.clone(),
                    runtime: Some(Runtime {
                        name: self.options.runtime.clone(),
                        options: None,
                    }),
                    spec: Some(prost_types::Any {
                        type_url: SPEC_TYPE.to_owned(),
                        value: task.spec.clone(),
                    }),
                    snapshotter: SNAPSHOTTER.to_owned(),
                    snapshot_key: task.id.clone(),
                    ..Default::default()
                }),
            })?)
            .await
            .with_context(|| format!("creating container {}", task.id))?;
        let container = began.elapsed();
        let began = Instant::now();
        TasksClient::new(self.client.channel.clone())
            .create(self.client.req(CreateTaskRequest {
                container_id: task.id.clone(),
                rootfs: task.mounts.clone(),
                stdout: path_string(&task.stdout)?,
                stderr: path_string(&task.stderr)?,
                ..Default::default()
            })?)
            .await
            .with_context(|| format!("creating task {}", task.id))?;
        Ok((container, began.elapsed()))
    }

    async fn delete(&self, id: &str) -> Result<()> {
        TasksClient::new(self.client.channel.clone())
            .delete(self.client.req(DeleteTaskRequest {
                container_id: id.to_owned(),
            })?)
            .await
            .with_context(|| format!("deleting task {id}"))?;
        ContainersClient::new(self.client.channel.clone())
            .delete(
                self.client
                    .req(DeleteContainerRequest { id: id.to_owned() })?,
            )
            .await
            .with_context(|| format!("deleting container {id}"))?;
        Ok(())
    }

    /// One task from create to removal; `slot` is held from create to start.
    async fn run(
        self: Arc<Self>,
        task: Prepared,
        slots: Arc<tokio::sync::Semaphore>,
    ) -> Result<Steps> {
        let mut steps = Steps::default();
        let slot = slots.acquire().await?;
        let (container, created) = self.create(&task).await?;
        steps.create_container = container;
        steps.create_task = created;
        let began = Instant::now();
        TasksClient::new(self.client.channel.clone())
            .start(self.client.req(StartRequest {
                container_id: task.id.clone(),
                ..Default::default()
            })?)
            .await
            .with_context(|| format!("starting task {}", task.id))?;
        steps.start = began.elapsed();
        drop(slot);
        let began = Instant::now();
        let status = TasksClient::new(self.client.channel.clone())
            .wait(self.client.req(WaitRequest {
                container_id: task.id.clone(),
                ..Default::default()
            })?)
            .await
            .with_context(|| format!("waiting for task {}", task.id))?
            .into_inner()
            .exit_status;
        steps.wait = began.elapsed();
        let stdout = std::fs::read_to_string(&task.stdout).unwrap_or_default();
        let stderr = std::fs::read_to_string(&task.stderr).unwrap_or_default();
        ensure!(
            status == 0,
            "task {} exited {status}: stdout {stdout:?}, stderr {stderr:?}",
            task.id
        );
        if let Some(expect) = &self.options.expect {
            ensure!(
                stdout.contains(expect.as_str()),
                "task {}'s output lacks {expect:?}: {stdout:?}",
                task.id
            );
        }
        let began = Instant::now();
        self.delete(&task.id).await?;
        steps.delete = began.elapsed();
        Ok(steps)
    }
}

fn path_string(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn stress(options: Options) -> Result<()> {
    let channel = containerd_client::connect(&options.address)
        .await
        .with_context(|| format!("connecting to containerd at {}", options.address.display()))?;
    let client = Client {
        channel,
        namespace: options.namespace.clone(),
    };
    let parent = chain_id(&client.image_config(&options.image).await?)?;
    let text = std::fs::read_to_string(&options.spec)
        .with_context(|| format!("reading the spec {}", options.spec.display()))?;
    let base: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a JSON spec", options.spec.display()))?;

    // A lease holds the prepared snapshots until the end (runwasi's test does the same).
    let lease = LeasesClient::new(client.channel.clone())
        .create(client.req(CreateRequest::default())?)
        .await
        .context("creating a lease")?
        .into_inner()
        .lease
        .context("containerd returned no lease")?
        .id;
    let run_id = format!("stress-{}", std::process::id());
    let outputs = tempfile::Builder::new()
        .prefix("capsule-stress-")
        .tempdir()?;
    let mut prepared = Vec::with_capacity(options.count + 1);
    for i in 0..=options.count {
        let id = if i == 0 {
            format!("{run_id}-pause")
        } else {
            format!("{run_id}-{i}")
        };
        let mounts = SnapshotsClient::new(client.channel.clone())
            .prepare(request(
                &client.namespace,
                Some(&lease),
                PrepareSnapshotRequest {
                    snapshotter: SNAPSHOTTER.to_owned(),
                    key: id.clone(),
                    parent: parent.clone(),
                    ..Default::default()
                },
            )?)
            .await
            .with_context(|| {
                format!("preparing a snapshot of {parent}: has the image been unpacked (ctr run it once)?")
            })?
            .into_inner()
            .mounts;
        let stdout = outputs.path().join(format!("{id}.out"));
        let stderr = outputs.path().join(format!("{id}.err"));
        std::fs::write(&stdout, "")?;
        std::fs::write(&stderr, "")?;
        prepared.push(Prepared {
            spec: task_spec(&base, &client.namespace, &run_id, &id)?,
            id,
            mounts,
            stdout,
            stderr,
        });
    }
    let ids: Vec<String> = prepared.iter().map(|t| t.id.clone()).collect();
    let bench = Arc::new(Bench {
        client,
        image_name: options.image.clone(),
        options,
    });

    let result = timed(&bench, prepared).await;

    // Clean up whatever is left, even after a failure.
    let tasks = TasksClient::new(bench.client.channel.clone());
    for id in &ids {
        let _ = tasks
            .clone()
            .kill(bench.client.req(KillRequest {
                container_id: id.clone(),
                signal: 9,
                all: true,
                ..Default::default()
            })?)
            .await;
        let _ = bench.delete(id).await;
        let _ = SnapshotsClient::new(bench.client.channel.clone())
            .remove(bench.client.req(RemoveSnapshotRequest {
                snapshotter: SNAPSHOTTER.to_owned(),
                key: id.clone(),
            })?)
            .await;
    }
    LeasesClient::new(bench.client.channel.clone())
        .delete(bench.client.req(DeleteRequest {
            id: lease,
            sync: true,
        })?)
        .await
        .context("deleting the lease")?;
    result
}

async fn timed(bench: &Arc<Bench>, mut prepared: Vec<Prepared>) -> Result<()> {
    let options = &bench.options;
    // The pause task starts the sandbox's shim before the clock does.
    let pause = prepared.remove(0);
    bench.create(&pause).await?;

    let slots = Arc::new(tokio::sync::Semaphore::new(options.parallel));
    let began = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for task in prepared {
        running.spawn(bench.clone().run(task, slots.clone()));
    }
    let mut steps = Vec::with_capacity(options.count);
    while let Some(done) = running.join_next().await {
        steps.push(done??);
    }
    let elapsed = began.elapsed();
    let throughput = options.count as f64 / elapsed.as_secs_f64();

    let step = |f: fn(&Steps) -> Duration| millis(median(steps.iter().map(f).collect()));
    println!(
        "{} tasks through {} in {:.2} s (parallel {}): {throughput:.1} tasks/s",
        options.count,
        options.runtime,
        elapsed.as_secs_f64(),
        options.parallel,
    );
    println!(
        "  medians: create container {:.1} ms, create task {:.1} ms, start {:.1} ms, wait {:.1} ms, delete {:.1} ms",
        step(|s| s.create_container),
        step(|s| s.create_task),
        step(|s| s.start),
        step(|s| s.wait),
        step(|s| s.delete),
    );
    if let Some(path) = &options.json {
        let report = serde_json::json!({
            "runtime": options.runtime,
            "tasks": options.count,
            "parallel": options.parallel,
            "seconds": elapsed.as_secs_f64(),
            "tasks_per_second": throughput,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}

/// Runs the benchmark with the process's arguments; a failure ends the process with
/// one line.
pub fn main() {
    let result = parse_options().and_then(|options| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?
            .block_on(stress(options))
    });
    if let Err(e) = result {
        eprintln!("capsule-shim-stress: {e:#}");
        std::process::exit(1);
    }
}

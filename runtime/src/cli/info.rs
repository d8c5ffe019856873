//! `capsule version` and `capsule info`.

use super::{Failure, exit};
use capsule_runtime::engine::{CacheStats, Engine, EngineOptions, ModuleCache, WasmFeature};
use capsule_runtime::{VERSION, WASMTIME_VERSION};

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Output format: text (default) or json
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

/// The WASI versions Capsule runs.
fn wasi() -> String {
    format!(
        "preview1 (wasi_snapshot_preview1) and 0.2 (components: {})",
        capsule_runtime::component::WASI_VERSIONS
    )
}

/// The worlds Capsule runs, with what it does with each.
const WORLDS: [(&str, &str); 3] = [
    (
        "wasi_snapshot_preview1",
        "core modules: commands and reactors",
    ),
    (
        "wasi:cli/command",
        "components: run as commands (with outgoing wasi:http, as --allow-outbound allows)",
    ),
    (
        "wasi:http/proxy",
        "components: served on their published ports (outgoing requests as --allow-outbound allows)",
    ),
];

fn os_arch() -> String {
    format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH)
}

pub fn print_version() {
    println!("Capsule version {VERSION}");
    println!(" Wasmtime:  {WASMTIME_VERSION}");
    println!(" WASI:      {}", wasi());
    println!(" OS/Arch:   {}", os_arch());
}

#[derive(serde::Serialize)]
struct Info {
    version: &'static str,
    wasmtime_version: &'static str,
    wasi: String,
    worlds: Vec<WorldInfo>,
    os_arch: String,
    cpus: usize,
    home: String,
    module_cache: CacheInfo,
    wasm_features: Vec<FeatureInfo>,
}

#[derive(serde::Serialize)]
struct WorldInfo {
    name: &'static str,
    runs: &'static str,
}

#[derive(serde::Serialize)]
struct CacheInfo {
    path: String,
    entries: u64,
    bytes: u64,
}

#[derive(serde::Serialize)]
struct FeatureInfo {
    name: &'static str,
    enabled: bool,
}

pub fn info(args: &InfoArgs) -> Result<(), Failure> {
    let home = super::container::home()?;
    let engine =
        Engine::new(&EngineOptions::default()).map_err(|e| Failure::new(exit::USAGE, e))?;
    let cache_dir = home.module_cache_dir();
    let stats = match ModuleCache::open(&cache_dir) {
        Ok(cache) => cache.stats().unwrap_or_default(),
        Err(_) => CacheStats::default(),
    };
    let info = Info {
        version: VERSION,
        wasmtime_version: WASMTIME_VERSION,
        wasi: wasi(),
        worlds: WORLDS
            .iter()
            .map(|(name, runs)| WorldInfo { name, runs })
            .collect(),
        os_arch: os_arch(),
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        home: home.root().display().to_string(),
        module_cache: CacheInfo {
            path: cache_dir.display().to_string(),
            entries: stats.entries,
            bytes: stats.bytes,
        },
        wasm_features: WasmFeature::ALL
            .into_iter()
            .map(|f| FeatureInfo {
                name: f.name(),
                enabled: engine.features().contains(f),
            })
            .collect(),
    };
    match args.format {
        Format::Json => {
            let json =
                serde_json::to_string_pretty(&info).map_err(|e| Failure::new(exit::USAGE, e))?;
            println!("{json}");
        }
        Format::Text => print_text(&info),
    }
    Ok(())
}

fn print_text(info: &Info) {
    let names = |enabled: bool| {
        let list: Vec<&str> = info
            .wasm_features
            .iter()
            .filter(|f| f.enabled == enabled)
            .map(|f| f.name)
            .collect();
        if list.is_empty() {
            "none".to_owned()
        } else {
            list.join(" ")
        }
    };
    println!("Capsule:");
    println!(" Version:          {}", info.version);
    println!(" Wasmtime:         {}", info.wasmtime_version);
    println!(" WASI:             {}", info.wasi);
    for (i, world) in info.worlds.iter().enumerate() {
        let label = if i == 0 { "Worlds:" } else { "" };
        println!(" {label:<17} {:<23} {}", world.name, world.runs);
    }
    println!(" OS/Arch:          {}", info.os_arch);
    println!(" CPUs:             {}", info.cpus);
    println!("Store:");
    println!(" Home:             {}", info.home);
    println!(" Module cache:     {}", info.module_cache.path);
    println!(
        " Cached modules:   {} ({})",
        info.module_cache.entries,
        human_bytes(info.module_cache.bytes)
    );
    println!("Engine:");
    println!(" Compiler:         cranelift (opt-level speed)");
    println!(" Wasm features:    {}", names(true));
    println!(" Off (-W NAME=y):  {}", names(false));
}

fn human_bytes(bytes: u64) -> String {
    super::progress::binary_size(bytes, 1, " ")
}

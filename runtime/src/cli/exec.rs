//! `exec`, `top` and `stats`: what a running container's owner answers about it.

use super::container::{find, home};
use super::output::{print_table, wants_json};
use super::{Failure, exit};
use capsule_runtime::container::control::{ExecRequest, ProgramInfo, Usage};
use capsule_runtime::container::{Container, ContainerError, remote};
use capsule_runtime::spec::Env;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Keep stdin open: the program reads this command's stdin
    #[arg(short = 'i', long = "interactive")]
    interactive: bool,
    /// Accepted for Docker's sake: the program's streams are always this command's
    /// own, a terminal when it has one
    #[arg(short = 't', long = "tty")]
    tty: bool,
    /// Set an environment variable (KEY=VALUE), or copy the host's (KEY)
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    env: Vec<String>,
    /// Read environment variables from a file (KEY=VALUE lines, # comments)
    #[arg(long = "env-file", value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Working directory inside the container (default: the container's)
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    workdir: Option<String>,
    /// Not supported: WASI programs have no user ids
    #[arg(short = 'u', long = "user", value_name = "USER")]
    user: Option<String>,
    /// The running container
    container: String,
    /// The program (found through the container's PATH, as run finds it) and its
    /// arguments
    #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<OsString>,
}

fn usage(e: impl Into<anyhow::Error>) -> Failure {
    Failure::new(exit::USAGE, e)
}

/// Docker's exit codes for a container verb: 1 for one that is unknown or not running.
fn container_failure(e: ContainerError) -> Failure {
    let code = match e {
        ContainerError::NotFound(_)
        | ContainerError::Ambiguous(_)
        | ContainerError::State(_)
        | ContainerError::Owner(_) => 1,
        _ => exit::USAGE,
    };
    Failure::new(code, e)
}

/// `capsule exec`: exits with the program's exit code. On Unix the program gets
/// this command's own stdin, stdout and stderr; where descriptors cannot pass to
/// another process (Windows) its output comes back over the connection, and `-i`
/// is refused.
pub fn exec(args: &ExecArgs) -> Result<u8, Failure> {
    if let Some(user) = &args.user {
        return Err(usage(anyhow::anyhow!(
            "-u {user}: WASI programs have no user ids; every program of a container runs \
             with the container's capabilities (leave -u out)"
        )));
    }
    let _ = args.tty;
    let mut env = Env::default();
    for file in &args.env_file {
        env.apply_file_at(file).map_err(usage)?;
    }
    for flag in &args.env {
        env.apply_flag(flag).map_err(usage)?;
    }
    let command: Vec<String> = args
        .command
        .iter()
        .map(|a| {
            a.to_str().map(str::to_owned).ok_or_else(|| {
                usage(anyhow::anyhow!(
                    "argument {} is not valid UTF-8: WASI arguments are UTF-8",
                    a.to_string_lossy()
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    #[cfg(not(unix))]
    if args.interactive {
        return Err(usage(anyhow::anyhow!(
            "exec -i is Unix-only for now: the program would need this command's stdin, \
             which this system cannot pass to another process (leave -i out)"
        )));
    }
    let home = home()?;
    let container = find(&home, &args.container)?;
    let request = ExecRequest {
        args: command,
        env: env.vars().to_vec(),
        workdir: args.workdir.clone(),
        interactive: args.interactive,
        streamed: false,
        input: None,
    };
    #[cfg(unix)]
    let end = {
        use std::os::fd::AsFd;
        let stdin = std::io::stdin();
        let stdout = std::io::stdout();
        let stderr = std::io::stderr();
        let streams = remote::Streams {
            stdin: args.interactive.then(|| stdin.as_fd()),
            stdout: stdout.as_fd(),
            stderr: stderr.as_fd(),
        };
        remote::exec(&container, request, streams)
    };
    #[cfg(not(unix))]
    let end = remote::exec_streamed(
        &container,
        request,
        &[],
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    let end = end.map_err(container_failure)?;
    if let Some(error) = end.error {
        let _ = writeln!(std::io::stderr(), "capsule: {error}");
    }
    Ok(u8::try_from(end.exit).unwrap_or(exit::CANNOT_RUN))
}

#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// Print one JSON object per program
    #[arg(long = "format", value_name = "table|json")]
    format: Option<String>,
    /// The running container
    container: String,
}

/// `capsule top`: the programs running in a container.
pub fn top(args: &TopArgs) -> Result<u8, Failure> {
    let json = wants_json(args.format.as_deref())?;
    let home = home()?;
    let container = find(&home, &args.container)?;
    let programs = remote::top(&container).map_err(container_failure)?;
    let mut out = std::io::stdout().lock();
    if json {
        for program in &programs {
            let line = serde_json::to_string(program).map_err(usage)?;
            let _ = writeln!(out, "{line}");
        }
        return Ok(0);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut rows = vec![[
        "PID".to_owned(),
        "UP".to_owned(),
        "TIME".to_owned(),
        "MEM".to_owned(),
        "FDS".to_owned(),
        "CMD".to_owned(),
    ]];
    rows.extend(programs.iter().map(|p: &ProgramInfo| {
        [
            p.pid.to_string(),
            clock(Duration::from_millis(now.saturating_sub(p.started_ms))),
            p.cpu_ns
                .map_or_else(|| "-".to_owned(), |ns| clock(Duration::from_nanos(ns))),
            binary_size(p.memory),
            p.fds.to_string(),
            p.command.join(" "),
        ]
    }));
    print_table(&mut out, &rows);
    Ok(0)
}

/// `00:01:02`, as `ps` prints times.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Docker's sizes in `stats`: binary units (`1.5MiB / 4GiB`).
fn binary_size(bytes: u64) -> String {
    super::progress::binary_size(bytes, 2, "")
}

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Show every container (stopped ones with no usage), not only running ones
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Print once and exit (CPU % over half a second)
    #[arg(long = "no-stream")]
    no_stream: bool,
    /// table (default) or json: one object per container per sample
    #[arg(long = "format", value_name = "table|json")]
    format: Option<String>,
    /// Containers to show (default: all running ones)
    containers: Vec<String>,
}

/// One sample of a container.
struct Sample {
    id: String,
    name: String,
    usage: Option<Usage>,
    at: Instant,
}

fn sample(container: &Container) -> Sample {
    Sample {
        id: capsule_runtime::container::short_id(&container.config.id).to_owned(),
        name: container.name().to_owned(),
        usage: remote::stats(container).ok(),
        at: Instant::now(),
    }
}

/// `capsule stats`: CPU, memory, descriptors and programs of each container.
pub fn stats(args: &StatsArgs) -> Result<u8, Failure> {
    let json = wants_json(args.format.as_deref())?;
    let home = home()?;
    let containers: Vec<Container> = if args.containers.is_empty() {
        Container::list(&home)
            .into_iter()
            .filter(|c| args.all || c.state().is_active())
            .collect()
    } else {
        args.containers
            .iter()
            .map(|name| find(&home, name))
            .collect::<Result<_, _>>()?
    };
    let mut before: Vec<Sample> = containers.iter().map(sample).collect();
    let interval = if args.no_stream {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(1)
    };
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    loop {
        std::thread::sleep(interval);
        let after: Vec<Sample> = containers.iter().map(sample).collect();
        let mut out = std::io::stdout().lock();
        if terminal && !args.no_stream && !json {
            // Docker redraws the table in place.
            let _ = write!(out, "\x1b[2J\x1b[H");
        }
        print_stats(&mut out, &before, &after, json)?;
        let _ = out.flush();
        if args.no_stream {
            return Ok(0);
        }
        before = after;
    }
}

fn print_stats(
    out: &mut impl Write,
    before: &[Sample],
    after: &[Sample],
    json: bool,
) -> Result<(), Failure> {
    let mut rows = vec![[
        "CONTAINER ID".to_owned(),
        "NAME".to_owned(),
        "CPU %".to_owned(),
        "MEM USAGE / LIMIT".to_owned(),
        "MEM %".to_owned(),
        "FDS".to_owned(),
        "PIDS".to_owned(),
    ]];
    for (old, new) in before.iter().zip(after) {
        let (cpu, mem, mem_pct, fds, pids) = match (&old.usage, &new.usage) {
            (Some(a), Some(b)) => {
                let wall = new.at.duration_since(old.at).as_nanos().max(1) as f64;
                let cpu = b.cpu_ns.saturating_sub(a.cpu_ns) as f64 / wall * 100.0;
                let mem_pct = b.memory as f64 / b.memory_limit.max(1) as f64 * 100.0;
                (
                    format!("{cpu:.2}%"),
                    format!(
                        "{} / {}",
                        binary_size(b.memory),
                        binary_size(b.memory_limit)
                    ),
                    format!("{mem_pct:.2}%"),
                    b.fds.to_string(),
                    b.programs.to_string(),
                )
            }
            _ => (
                "--".to_owned(),
                "-- / --".to_owned(),
                "--".to_owned(),
                "--".to_owned(),
                "0".to_owned(),
            ),
        };
        if json {
            let value = serde_json::json!({
                "ID": new.id,
                "Name": new.name,
                "CPUPerc": cpu,
                "MemUsage": mem,
                "MemPerc": mem_pct,
                "Fds": fds,
                "PIDs": pids,
                "Usage": new.usage,
            });
            let _ = writeln!(out, "{value}");
        } else {
            rows.push([
                new.id.clone(),
                new.name.clone(),
                cpu,
                mem,
                mem_pct,
                fds,
                pids,
            ]);
        }
    }
    if !json {
        print_table(out, &rows);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times_read_as_docker_prints_them() {
        assert_eq!(binary_size(512), "512B");
        assert_eq!(binary_size(1536 * 1024), "1.5MiB");
        assert_eq!(binary_size(4 << 30), "4GiB");
        assert_eq!(clock(Duration::from_secs(3725)), "01:02:05");
    }
}

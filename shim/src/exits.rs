//! Exit codes of the shim's task processes.
//!
//! The shim kit's reaper (`containerd-shim`'s SIGCHLD handler) reaps every child of the
//! shim and publishes each exit on its monitor; one thread here subscribes once, before
//! the first task process is spawned, and hands each exit to the task waiting for that
//! PID. An exit that comes before its task registers (a process that failed at once) is
//! kept until it does.

use containerd_shim::monitor::{ExitEvent, Subject, Topic, monitor_subscribe};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use tokio::sync::oneshot;

#[derive(Default)]
struct Table {
    waiting: HashMap<i32, oneshot::Sender<i32>>,
    early: HashMap<i32, i32>,
}

static TABLE: OnceLock<Result<&'static Mutex<Table>, String>> = OnceLock::new();

/// Starts the watcher if it is not running: call before spawning a task process.
///
/// # Errors
/// The monitor refused a subscription (the message says why).
pub fn watch() -> Result<(), String> {
    TABLE
        .get_or_init(|| {
            let subscription = monitor_subscribe(Topic::Pid)
                .map_err(|e| format!("cannot watch task exits: {e}"))?;
            let table: &'static Mutex<Table> = Box::leak(Box::default());
            std::thread::Builder::new()
                .name("capsule-exits".to_owned())
                .spawn(move || {
                    while let Ok(ExitEvent { subject, exit_code }) = subscription.rx.recv() {
                        let Subject::Pid(pid) = subject else { continue };
                        let mut table = table.lock().unwrap_or_else(|e| e.into_inner());
                        match table.waiting.remove(&pid) {
                            Some(sender) => {
                                let _ = sender.send(exit_code);
                            }
                            None => {
                                table.early.insert(pid, exit_code);
                            }
                        }
                    }
                })
                .map_err(|e| format!("cannot start the exit watcher: {e}"))?;
            Ok(table)
        })
        .as_ref()
        .map(|_| ())
        .map_err(Clone::clone)
}

/// The exit code of task process `pid`, when it exits (128 + the signal that ended
/// it). [`watch`] must have been called before the process was spawned.
pub fn exit_of(pid: i32) -> oneshot::Receiver<i32> {
    let (sender, receiver) = oneshot::channel();
    if let Some(Ok(table)) = TABLE.get() {
        let mut table = table.lock().unwrap_or_else(|e| e.into_inner());
        match table.early.remove(&pid) {
            Some(code) => {
                let _ = sender.send(code);
            }
            None => {
                table.waiting.insert(pid, sender);
            }
        }
    }
    receiver
}

//! The Rust plugin of `examples/plugin-host`, which the plugin tests use too: bytes and
//! JSON functions, a host function, state that must not outlive a call, files and
//! environment through WASI, and misbehaviour on request (panic, endless allocation,
//! endless loop, a lot of work).

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU32, Ordering};

capsule_plugin::host_fn!(fn kv_get = "kv.get");

static CALLS: AtomicU32 = AtomicU32::new(0);
static mut NOTE: [u8; 64] = [0; 64];

#[derive(Deserialize)]
struct Pair {
    a: i64,
    b: i64,
}

#[derive(Serialize)]
struct Sum {
    sum: i64,
}

#[derive(Deserialize)]
struct FileWrite {
    path: String,
    data: String,
}

capsule_plugin::export! {
    fn echo(input: &[u8]) -> Result<Vec<u8>, String> {
        Ok(input.to_vec())
    }

    fn upper(input: &[u8]) -> Result<Vec<u8>, String> {
        Ok(input.to_ascii_uppercase())
    }

    fn fail(input: &[u8]) -> Result<Vec<u8>, String> {
        Err(format!("refused: {}", String::from_utf8_lossy(input)))
    }

    // How many calls this instance has seen (a global): 1 in every fresh instance.
    fn calls(input: &[u8]) -> Result<Vec<u8>, String> {
        let _ = input;
        Ok((CALLS.fetch_add(1, Ordering::SeqCst) + 1).to_string().into_bytes())
    }

    // Keeps the input in linear memory and returns what was there before.
    fn remember(input: &[u8]) -> Result<Vec<u8>, String> {
        // SAFETY: one thread per instance.
        let note = unsafe { &mut *std::ptr::addr_of_mut!(NOTE) };
        let before: Vec<u8> = note.iter().copied().take_while(|&b| b != 0).collect();
        let n = input.len().min(note.len() - 1);
        note.fill(0);
        note[..n].copy_from_slice(&input[..n]);
        Ok(before)
    }

    fn lookup(input: &[u8]) -> Result<Vec<u8>, String> {
        let value = kv_get(input).map_err(|e| format!("kv.get: {e}"))?;
        let mut out = b"rust:".to_vec();
        out.extend_from_slice(&value);
        Ok(out)
    }

    fn env(input: &[u8]) -> Result<Vec<u8>, String> {
        let name = String::from_utf8_lossy(input).into_owned();
        std::env::var(&name).map(String::into_bytes).map_err(|e| format!("{name}: {e}"))
    }

    fn read_file(input: &[u8]) -> Result<Vec<u8>, String> {
        let path = String::from_utf8_lossy(input).into_owned();
        std::fs::read(&path).map_err(|e| format!("{path}: {e}"))
    }

    fn panic(input: &[u8]) -> Result<Vec<u8>, String> {
        panic!("asked to panic: {}", String::from_utf8_lossy(input));
    }

    fn hog(input: &[u8]) -> Result<Vec<u8>, String> {
        let _ = input;
        let mut kept: Vec<Vec<u8>> = Vec::new();
        loop {
            kept.push(vec![1u8; 1 << 20]);
        }
    }

    fn spin(input: &[u8]) -> Result<Vec<u8>, String> {
        let _ = input;
        let mut n = 0u64;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

capsule_plugin::export_json! {
    fn add(pair: Pair) -> Result<Sum, String> {
        pair.a.checked_add(pair.b).map(|sum| Sum { sum }).ok_or_else(|| "overflow".to_owned())
    }

    // Sums 0..n in a loop that the optimiser keeps: about n * 10 units of fuel.
    fn work(n: u64) -> Result<u64, String> {
        let mut total = 0u64;
        for i in 0..n {
            total = std::hint::black_box(total.wrapping_add(i));
        }
        Ok(total)
    }

    fn write_file(w: FileWrite) -> Result<usize, String> {
        std::fs::write(&w.path, w.data.as_bytes()).map_err(|e| format!("{}: {e}", w.path))?;
        Ok(w.data.len())
    }
}

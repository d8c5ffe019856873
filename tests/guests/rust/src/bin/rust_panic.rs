//! A Rust guest that panics two calls deep, to check that traps show readable
//! (demangled) Rust names in the wasm backtrace.

#[inline(never)]
fn check_invariant(items: &[u32]) {
    if items.is_empty() {
        panic!("the invariant does not hold");
    }
}

#[inline(never)]
fn process(items: &[u32]) {
    check_invariant(items);
}

fn main() {
    let items: Vec<u32> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    process(&items);
    println!("processed {}", items.len());
}

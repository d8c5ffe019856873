//! Read-only memory maps of files Capsule wrote itself (saved layer indexes): the one
//! place in the filesystem code that needs `unsafe`.
#![allow(
    unsafe_code,
    reason = "mapping a file is unsafe in Rust; see SAFETY below"
)]

use std::io;

/// Maps a whole file read-only.
///
/// # Errors
/// The host's error.
pub fn map(file: &std::fs::File) -> io::Result<memmap2::Mmap> {
    // SAFETY: the map is only sound if nobody changes the file while it is mapped.
    // Saved indexes are written to a temporary name and renamed into place, never
    // written in place, so a mapped inode's bytes do not change under us; a user who
    // edits the file in place anyway can make lookups wrong, but every access through
    // `FlatIndex` is bounds-checked, so it cannot make them read outside the map.
    unsafe { memmap2::Mmap::map(file) }
}

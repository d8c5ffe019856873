//! Random bytes for `random_get`, from the operating system's generator.

use crate::fs::Errno;

/// Fills `out` with cryptographically secure random bytes.
///
/// # Errors
/// `EIO` if the operating system's generator fails.
pub fn fill(out: &mut [u8]) -> Result<(), Errno> {
    getrandom::fill(out).map_err(|_| Errno::Io)
}

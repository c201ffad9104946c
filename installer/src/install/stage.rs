//! Staging: the bundle is copied to the data directory in the same single read that
//! verifies every byte of it (a USB stick is read once; see the engine's `Stage` step,
//! which writes through the transaction so a failed check leaves nothing behind). The
//! staged copy is what the registry serves from and what `status`/`reset` run later.

use crate::host::{Host, HostPath};
use ferry_bundle::Bundle;

/// True if `dest` already holds exactly this bundle (same footer and length): a resumed
/// install does not copy 20 GB again.
pub fn already_staged(host: &Host, dest: &HostPath, bundle: &Bundle) -> bool {
    match Bundle::open(&host.path(dest)) {
        Ok(s) => s.footer == bundle.footer && s.file_len == bundle.file_len,
        Err(_) => false,
    }
}

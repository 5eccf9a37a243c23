//! glibc's `memcpy` on AMD CPUs: its vector loops, not `rep movsb`.
//!
//! glibc (2.36, Debian 12's) copies blocks from a few KiB up to the L2
//! cache's size with `rep movsb` on a CPU that says its string moves are
//! fast (ERMS, FSRM). AMD Zen 3 runs that far slower than glibc's own
//! vector loop when the source and the destination are not aligned alike,
//! and the copy rustls makes of every byte it encrypts (the plaintext into
//! a 16 KiB record, behind its 5-byte header) is such a copy: in bench (f)
//! (10 MiB over TLS) on an AMD EPYC (Zen 3) host, `__memmove_avx_unaligned_erms`
//! was 41% of the worker's CPU samples, three times the AES-GCM, where the
//! kernel's two copies of the same bytes (file to buffer, buffer to socket)
//! took 7% each. With glibc's tunable `x86_rep_movsb_threshold` above
//! any size it copies, the worker's CPU per GiB in (f) went from 1.02 and
//! 1.22 s to 0.60 and 0.62 s, and per request in (g) (64 KiB ranges over
//! TLS) from 105 and 115 µs to 93 and 96; (c) did not move
//! (`tools/bench --only c,f,g --duration 8 --rounds 1 --edgeslice BIN`,
//! builds without and with this alternated). HTTP/2 (bench (i)) gained
//! nothing: 63.7-78.5 µs per request without, 67.6-87.2 with, four runs
//! each, as widely spread as nginx's in the same runs.
//!
//! glibc reads its tunables once, when the process starts, so
//! [`prefer_vector_copies`] (the first thing `main` does) makes the process
//! execute itself again with the tunable added to `GLIBC_TUNABLES`: same
//! binary, arguments, PID and descriptors. Only on an AMD CPU (where it was
//! measured), only with glibc, and never when `GLIBC_TUNABLES` already
//! names `x86_rep_movsb_threshold`: an operator who sets it keeps theirs
//! (`glibc.cpu.x86_rep_movsb_threshold=2048` is glibc's own choice back).
//!
//! Executed as `/proc/self/exe`, the process would be named `exe` (the
//! kernel names it after the file executed): in `ps`, `top` and the
//! journal's `_COMM`. It takes its binary's name back first thing
//! ([`keep_name`]).
//!
//! Errors: none returned. If the new execution cannot start, the process
//! goes on as it is (glibc's copies, a warning on stderr).

/// The tunable this process sets.
pub const TUNABLE: &str = "glibc.cpu.x86_rep_movsb_threshold";
/// The value it runs with: larger than any copy it makes.
pub const VALUE: &str = "1073741824";

/// On an AMD CPU with glibc, unless `GLIBC_TUNABLES` already sets
/// [`TUNABLE`]: execute this binary again with it set (does not return
/// then). Call it first in `main`, before any thread exists.
pub fn prefer_vector_copies() {
    keep_name();
    #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;

        if !is_amd() {
            return;
        }
        let current = std::env::var_os("GLIBC_TUNABLES").unwrap_or_default();
        let Some(tunables) = with_tunable(&current.to_string_lossy()) else {
            return;
        };
        let mut args = std::env::args_os();
        let Some(arg0) = args.next() else {
            return;
        };
        let err = std::process::Command::new("/proc/self/exe")
            .arg0(arg0)
            .args(args)
            .env("GLIBC_TUNABLES", tunables)
            .exec();
        eprintln!("edgeslice: could not run again with {TUNABLE} set ({err}); copies stay glibc's `rep movsb`");
    }
}

/// A process executed as `/proc/self/exe` is named `exe`: it takes its
/// binary's file name back (the first 15 bytes, as the kernel keeps).
fn keep_name() {
    #[cfg(target_os = "linux")]
    {
        if std::fs::read("/proc/self/comm").map_or(true, |c| c != b"exe\n") {
            return;
        }
        let Ok(binary) = std::fs::read_link("/proc/self/exe") else {
            return;
        };
        let Some(name) = binary.file_name().filter(|n| *n != "exe") else {
            return;
        };
        let mut comm = [0u8; 16];
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(name);
        let len = bytes.len().min(15);
        comm[..len].copy_from_slice(&bytes[..len]);
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16
        // bytes; `comm` is 16 bytes with at least one NUL at its end.
        unsafe { libc::prctl(libc::PR_SET_NAME, comm.as_ptr()) };
    }
}

/// `GLIBC_TUNABLES` with [`TUNABLE`] added, or `None` when it names it.
fn with_tunable(current: &str) -> Option<String> {
    if current.contains("x86_rep_movsb_threshold") {
        return None;
    }
    let ours = format!("{TUNABLE}={VALUE}");
    Some(if current.is_empty() {
        ours
    } else {
        format!("{current}:{ours}")
    })
}

/// Whether the CPU says it is AMD's (CPUID leaf 0: "AuthenticAMD").
#[cfg(target_arch = "x86_64")]
pub fn is_amd() -> bool {
    #[allow(unused_unsafe)]
    // SAFETY: CPUID leaf 0 exists on every x86_64 CPU.
    let id = unsafe { std::arch::x86_64::__cpuid(0) };
    let mut vendor = [0u8; 12];
    vendor[..4].copy_from_slice(&id.ebx.to_le_bytes());
    vendor[4..8].copy_from_slice(&id.edx.to_le_bytes());
    vendor[8..].copy_from_slice(&id.ecx.to_le_bytes());
    &vendor == b"AuthenticAMD"
}

/// Not an x86_64 CPU, so not one of AMD's.
#[cfg(not(target_arch = "x86_64"))]
pub fn is_amd() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tunable_is_added_once_and_an_operators_value_is_kept() {
        assert_eq!(
            with_tunable("").as_deref(),
            Some("glibc.cpu.x86_rep_movsb_threshold=1073741824")
        );
        assert_eq!(
            with_tunable("glibc.malloc.arena_max=2").as_deref(),
            Some("glibc.malloc.arena_max=2:glibc.cpu.x86_rep_movsb_threshold=1073741824")
        );
        assert_eq!(with_tunable("glibc.cpu.x86_rep_movsb_threshold=2048"), None);
        let ours = with_tunable("").unwrap();
        assert_eq!(with_tunable(&ours), None, "a second start adds nothing");
    }
}

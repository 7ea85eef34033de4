//! A process-wide allocator setting for sequent's programs (the command line, the benchmark and
//! the example scripts).
//!
//! A training step allocates and frees buffers of megabytes (the `[T, B, 4H]` gates of one LSTM
//! layer are 4.6 MB at the reference shape). glibc's `malloc` serves such sizes with fresh `mmap`s
//! and gives freed ones back to the kernel, so every step faults its buffers in again, a page at a
//! time (measured: 7-15% of a step in the kernel's page-fault and page-zeroing paths).
//! [`retain_freed_memory`] makes `malloc` keep freed memory for reuse. PyTorch's CPU tensors come
//! from the same `malloc` and gain from the same settings (measured: its reference LSTM step
//! 25-31.5k tokens/s without them, 29.5-31.3k with them), so `sequent bench --with-torch` runs
//! PyTorch with them too ([`RETAINED_MEMORY_ENV`]). A library does not change process-wide
//! settings, so programs that embed sequent make this call themselves (or set the variables of
//! [`RETAINED_MEMORY_ENV`] in the environment).

/// The settings of [`retain_freed_memory`] as glibc's environment variables and their values:
/// allocations up to 32 MiB (glibc's maximum for the setting) come from the heap instead of their
/// own `mmap`, the heap is trimmed back to the kernel only past 1 GiB of free space, and it grows
/// by 64 MiB more than asked.
pub const RETAINED_MEMORY_ENV: [(&str, usize); 3] = [
    ("MALLOC_MMAP_THRESHOLD_", 32 << 20),
    ("MALLOC_TRIM_THRESHOLD_", 1 << 30),
    ("MALLOC_TOP_PAD_", 64 << 20),
];

/// Keeps freed memory in the process for reuse: applies [`RETAINED_MEMORY_ENV`] through glibc's
/// `mallopt`. Does nothing outside glibc.
pub fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let parameters = [
            libc::M_MMAP_THRESHOLD,
            libc::M_TRIM_THRESHOLD,
            libc::M_TOP_PAD,
        ];
        for (parameter, (_, value)) in parameters.into_iter().zip(RETAINED_MEMORY_ENV) {
            // SAFETY: `mallopt` only changes malloc's tuning parameters; it is called before any
            // thread of ours allocates concurrently (at the start of `main`), and a rejected
            // value is ignored. Every value fits a C int.
            unsafe {
                libc::mallopt(parameter, value as libc::c_int);
            }
        }
    }
}

//! A process-wide allocator setting for sequent's programs (the command line, the benchmark and
//! the example scripts).
//!
//! A training step allocates and frees buffers of megabytes (the `[T, B, 4H]` gates of one LSTM
//! layer are 4.6 MB at the reference shape). glibc's `malloc` serves such sizes with fresh `mmap`s
//! and gives freed ones back to the kernel, so every step faults its buffers in again, a page at a
//! time (measured: 7-15% of a step in the kernel's page-fault and page-zeroing paths).
//! [`retain_freed_memory`] makes `malloc` keep freed memory for reuse, as PyTorch's CPU caching
//! allocator does. Measured on the reference workload (flex, one run each, 27 November 2026):
//! training throughput LSTM +12%, GRU +2%, RNN +28%; inference LSTM +43%, GRU +92%, RNN +76%.
//! A library does not change
//! process-wide settings, so programs that embed sequent make this call themselves (or set
//! `MALLOC_MMAP_THRESHOLD_` and `MALLOC_TRIM_THRESHOLD_` in the environment).

/// Keeps freed memory in the process for reuse: allocations up to 32 MiB (glibc's maximum for the
/// setting) come from the heap instead of their own `mmap`, and the heap is trimmed back to the
/// kernel only past 1 GiB of free space. Does nothing outside glibc.
pub fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes malloc's tuning parameters; it is called before any thread
    // of ours allocates concurrently (at the start of `main`), and a rejected value is ignored.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

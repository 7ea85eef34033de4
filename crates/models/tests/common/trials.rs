//! The harness of the test files that have wgpu tests (`harness = false`, on libtest-mimic): they
//! run and report as under libtest, and a wgpu test on a machine without a wgpu adapter is reported
//! as ignored, on its own line with the reason and the driver to install, so that the suite passes
//! and its summary counts the tests that did not run. Under `SEQUENT_REQUIRE_WGPU=1` (set by
//! `.ci/run`) a missing adapter fails those tests instead.
//!
//! Shared by the models crate's tests (`common::trials`) and the command line's (`tests/cli.rs`).

use libtest_mimic::{Arguments, Trial};

/// The variable under which a missing wgpu adapter fails the wgpu tests instead of skipping them.
#[cfg(feature = "wgpu")]
pub const REQUIRE_WGPU: &str = "SEQUENT_REQUIRE_WGPU";

/// A test that runs on every machine.
pub fn test(name: impl Into<String>, check: impl FnOnce() + Send + 'static) -> Trial {
    Trial::test(name, move || {
        check();
        Ok(())
    })
}

/// A test on Burn's wgpu device: `check` gets the device where sequent's kernels run
/// ([`sequent_models::device::wgpu`]); elsewhere the test is ignored with the reason, or fails
/// under [`REQUIRE_WGPU`].
#[cfg(feature = "wgpu")]
pub fn wgpu_test(
    name: impl Into<String>,
    check: impl FnOnce(burn::tensor::Device) + Send + 'static,
) -> Trial {
    use libtest_mimic::Completion;
    Trial::ignorable_test(name, move || match sequent_models::device::wgpu() {
        Ok(device) => {
            check(device);
            Ok(Completion::Completed)
        }
        Err(why) if required() => Err(format!("{REQUIRE_WGPU} is set and {why}").into()),
        Err(why) => Ok(Completion::ignored_with(format!(
            "{why}; or set {REQUIRE_WGPU}=1 to fail instead"
        ))),
    })
}

/// Whether [`REQUIRE_WGPU`] is set to anything but empty or `0`.
#[cfg(feature = "wgpu")]
fn required() -> bool {
    std::env::var(REQUIRE_WGPU).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Runs `trials` as libtest would (the same arguments: filters, `--exact`, `--list`, threads) and
/// exits with its status.
pub fn run(trials: Vec<Trial>) -> ! {
    libtest_mimic::run(&Arguments::from_args(), trials).exit()
}

//! Run-time choice of a Burn device among the backends compiled in (cargo features).

use burn::tensor::Device;

/// The backends this build was compiled with, in order of preference for the default.
pub const COMPILED: &[&str] = &[
    #[cfg(feature = "flex")]
    "flex",
    #[cfg(feature = "ndarray")]
    "ndarray",
    #[cfg(feature = "wgpu")]
    "wgpu",
    #[cfg(feature = "cuda")]
    "cuda",
];

/// Every backend name sequent knows.
pub const KNOWN: &[&str] = &["flex", "ndarray", "wgpu", "cuda"];

/// The default device: `flex`, the faster of the two CPU backends on the reference workload
/// (see the README), else the first backend compiled in.
pub fn default_name() -> &'static str {
    COMPILED.first().copied().unwrap_or("none")
}

/// The device called `name` (`flex`, `ndarray`, `wgpu`, `cuda`), or a one-line error naming the
/// backends this build has.
#[allow(deprecated, unreachable_code)]
pub fn parse(name: &str) -> Result<Device, String> {
    let missing = || {
        if KNOWN.contains(&name) {
            format!(
                "device `{name}` is not compiled into this build (rebuild with `--features {name}`); available: {}",
                COMPILED.join(", ")
            )
        } else {
            format!(
                "unknown device `{name}`; expected one of: {}",
                COMPILED.join(", ")
            )
        }
    };
    match name {
        #[cfg(feature = "flex")]
        "flex" => Ok(Device::flex()),
        #[cfg(feature = "ndarray")]
        "ndarray" => Ok(Device::ndarray()),
        #[cfg(feature = "wgpu")]
        "wgpu" => sequent_models::device::wgpu().map_err(|e| e.to_string()),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(burn::tensor::DeviceIndex::Default)),
        _ => Err(missing()),
    }
}

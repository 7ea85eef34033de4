//! Burn's GPU device as sequent runs on it, checked before the first tensor, and the kernel launches
//! of the CubeCL backends counted.

#[cfg(feature = "wgpu")]
use burn::tensor::Device;

#[cfg(feature = "wgpu")]
use crate::SequentError;

/// Burn's default wgpu device, initialised once a process (later calls return the same device or
/// the same error), or why there is none: no adapter answered, or only an OpenGL one. Sequent's
/// kernels run on wgpu's Vulkan, Metal and DX12 backends (on Linux without a GPU, Mesa's lavapipe
/// is a Vulkan driver on the CPU); on Mesa's OpenGL software renderer, the only adapter on a
/// Linux machine without a Vulkan driver, its kernels do not finish in useful time.
///
/// `Device::wgpu(..)` on such a machine panics at the first tensor instead.
#[cfg(feature = "wgpu")]
pub fn wgpu() -> Result<Device, SequentError> {
    use burn::tensor::wgpu::wgpu::Backend;
    static DEVICE: std::sync::OnceLock<Result<Device, SequentError>> = std::sync::OnceLock::new();
    DEVICE
        .get_or_init(|| {
            let unavailable = |reason: String| SequentError::DeviceUnavailable {
                device: "wgpu",
                reason,
                install: "install a Vulkan driver (on Debian: apt-get install -y mesa-vulkan-drivers libvulkan1)",
            };
            let (device, setup) = Device::wgpu_options()
                .init_with_setup()
                .map_err(|e| unavailable(format!("no adapter answered ({e})").replace('\n', " ")))?;
            if setup.backend == Backend::Gl {
                let name = setup.adapter.get_info().name;
                return Err(unavailable(format!(
                    "only an OpenGL adapter answered ({name})"
                )));
            }
            Ok(device)
        })
        .clone()
}

/// Whether `device` has Burn's collective operations (all-reduce across devices): in Burn 0.22.1
/// only CUDA devices. Data-parallel training on devices that all have them synchronises the
/// gradients with them (burn-train's distributed data parallel strategy).
///
/// Burn's remote devices have them too, but only among the devices of one server: an all-reduce
/// across two servers panics in burn-remote 0.22.1 ("cross-peer all_reduce is not supported
/// yet"), and within one server it runs on the server's backend, which the client cannot see. So
/// remote devices do not count here.
pub fn has_collectives(device: &burn::tensor::Device) -> bool {
    #[allow(unused_imports)]
    use burn::backend::DispatchDevice;
    match device.clone().inner().as_dispatch() {
        #[cfg(feature = "cuda")]
        DispatchDevice::Cube(cube) => cube.runtime() == burn_cubecl::cubecl::RuntimeId::Cuda,
        _ => false,
    }
}

/// The CubeCL kernels (wgpu, cuda) launched while `f` runs, counted by a CubeCL launch observer
/// (`cubecl::logging::LaunchObserver`, told of every launch the process issues: from whichever
/// thread issues it, Burn's fusion executing on its own). So nothing else in the process should
/// launch kernels meanwhile, and CubeCL keeps one observer a process: two counts at the same time
/// miss each other's launches. Lazily executed work (Burn's fusion) launches when it is read
/// back, so `f` should end by reading a result.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub fn count_launches(f: impl FnOnce()) -> usize {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use burn_cubecl::cubecl::logging::{LaunchObservation, LaunchObserver};

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl LaunchObserver for Count {
        fn launched(&self, _kernel: &'static str) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    let count = Arc::new(Count::default());
    let watching = LaunchObservation::new(count.clone());
    f();
    drop(watching);
    count.0.load(Ordering::Relaxed)
}

//! Shared helpers of the integration tests: the backends compiled in, fixture reading, scratch
//! directories.
#![allow(dead_code, deprecated)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

pub mod trials;

/// The largest absolute difference between `a` and `b`.
pub fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    (a - b).abs().max().into_scalar()
}

/// The largest difference between the gradients `a` and `b`, relative to `b`'s largest value
/// where that is above 1 (float32 sums of large gradients differ in their last digits).
pub fn grad_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    let scale: f32 = b.clone().abs().max().into_scalar();
    max_diff(a, b) / scale.max(1.0)
}

/// The CPU backends compiled into this test build, by name (autodiff turned on). The wgpu device
/// is reached through [`per_backend`] (or [`trials::wgpu_test`]), which skips it where no adapter is.
pub fn backends() -> Vec<(&'static str, Device)> {
    vec![
        #[cfg(feature = "flex")]
        ("flex", Device::flex().autodiff()),
        #[cfg(feature = "ndarray")]
        ("ndarray", Device::ndarray().autodiff()),
    ]
}

/// `check` as one test per backend compiled in, named `name::backend`, on its device with autodiff
/// turned on: the CPU backends, and wgpu where an adapter answers ([`trials::wgpu_test`]).
pub fn per_backend(name: &str, check: fn(&str, Device)) -> Vec<libtest_mimic::Trial> {
    #[allow(unused_mut)] // pushed to behind the wgpu feature
    let mut out: Vec<_> = backends()
        .into_iter()
        .map(|(backend, device)| {
            trials::test(format!("{name}::{backend}"), move || check(backend, device))
        })
        .collect();
    #[cfg(feature = "wgpu")]
    out.push(trials::wgpu_test(format!("{name}::wgpu"), move |device| {
        check("wgpu", device.autodiff())
    }));
    out
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A safetensors file read into host vectors (float32 and int64 tensors).
pub struct Fixture {
    pub floats: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub ints: HashMap<String, Vec<i64>>,
}

impl Fixture {
    pub fn read(path: &Path) -> Self {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let st = SafeTensors::deserialize(&bytes).expect("valid safetensors");
        let mut floats = HashMap::new();
        let mut ints = HashMap::new();
        for name in st.names() {
            let view = st.tensor(name).unwrap();
            match view.dtype() {
                Dtype::F32 => {
                    let v = view
                        .data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                        .collect();
                    floats.insert(name.to_string(), (view.shape().to_vec(), v));
                }
                Dtype::I64 => {
                    let v = view
                        .data()
                        .chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
                        .collect();
                    ints.insert(name.to_string(), v);
                }
                other => panic!("unexpected dtype {other:?}"),
            }
        }
        Self { floats, ints }
    }

    pub fn has(&self, name: &str) -> bool {
        self.floats.contains_key(name)
    }

    pub fn tensor<const D: usize>(&self, name: &str, device: &Device) -> Tensor<D> {
        let (shape, v) = self
            .floats
            .get(name)
            .unwrap_or_else(|| panic!("fixture has no `{name}`"));
        Tensor::from_data(TensorData::new(v.clone(), shape.clone()), device)
    }
}

/// Largest absolute difference between a tensor and a fixture entry (shapes must agree).
pub fn max_abs_diff<const D: usize>(actual: &Tensor<D>, fixture: &Fixture, name: &str) -> f32 {
    let (shape, expected) = &fixture.floats[name];
    assert_eq!(&actual.dims().to_vec(), shape, "shape of `{name}`");
    let got = actual.to_data().try_to_vec::<f32>().unwrap();
    got.iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

/// A fresh directory for a test's files, removed with everything in it when dropped.
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sequent-test-")
        .tempdir()
        .expect("a temporary directory")
}

//! Shared helpers of the integration tests: the backends compiled in, fixture reading, scratch
//! directories.
#![allow(dead_code, deprecated)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use sequent_models::recurrent::{CellKind, Kernels, Recurrent};

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

/// With the same seed (the regularisers' masks drawn alike), `fused` (whose options run on the
/// whole-sequence op where the engine has it) gives the composed path's outputs and gradients of
/// the input and of the last layer's `W_hh` (each direction's), over an input of 3 rows of 7
/// steps, `lengths` steps long if given.
pub fn assert_seeded_fused_equals_composed<C: CellKind>(
    fused: Recurrent<C>,
    name: &str,
    device: &Device,
    lengths: Option<&[usize]>,
) {
    let mut composed = fused.clone();
    composed.kernels = Kernels::Composed;
    let x = Tensor::<3>::random(
        [3, 7, fused.input_size],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let run = |layer: &Recurrent<C>| {
        device.seed(11);
        let x = x.clone().require_grad();
        let (out, _) = layer.try_forward(x.clone(), None, lengths).unwrap();
        let grads = out.clone().powi_scalar(2).sum().backward();
        let gx = x.grad(&grads).unwrap();
        let last = layer.layers.last().unwrap();
        let params = GradientsParams::from_grads(grads, layer);
        let gw: Vec<Tensor<2>> = std::iter::once(&last.forward)
            .chain(&last.reverse)
            .map(|d| params.get::<2>(d.weight_hh.id).unwrap())
            .collect();
        (out, gx, gw)
    };
    let (o1, x1, w1) = run(&fused);
    let (o2, x2, w2) = run(&composed);
    assert!(max_diff(o1, o2) < 1e-5, "{name}: outputs differ");
    let dx = grad_diff(x1, x2);
    assert!(dx < 1e-4, "{name}: input gradients differ by {dx}");
    for (w1, w2) in w1.into_iter().zip(w2) {
        let dw = grad_diff(w1, w2);
        assert!(dw < 1e-4, "{name}: W_hh gradients differ by {dw}");
    }
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

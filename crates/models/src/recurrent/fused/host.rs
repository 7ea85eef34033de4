//! Tensors of the CPU backends as host slices, and host values back as tensors.

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, TensorMetadata};
use burn::tensor::{Shape, TensorData};

/// A tensor's f32 values on the host: read in place from a contiguous f32 Flex tensor (no copy:
/// the sequence ops read megabytes per call), copied out of any other.
#[derive(Clone, Debug)]
pub(super) enum HostValues<B: Backend> {
    InPlace(FloatTensor<B>),
    Copied(Vec<f32>),
}

impl<B: Backend> std::ops::Deref for HostValues<B> {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match self {
            HostValues::InPlace(t) => in_place::<B>(t).expect("checked when the view was made"),
            HostValues::Copied(v) => v,
        }
    }
}

/// The values of `t` without a copy, where its backend keeps them as a contiguous f32 slice.
fn in_place<B: Backend>(t: &FloatTensor<B>) -> Option<&[f32]> {
    #[cfg(feature = "flex")]
    if let Some(t) = (t as &dyn std::any::Any).downcast_ref::<burn::backend::flex::FlexTensor>() {
        return t.as_slice::<f32>();
    }
    None
}

/// A tensor's values on the host (f32) and its shape.
pub(super) fn host<B: Backend>(t: FloatTensor<B>) -> (HostValues<B>, Shape) {
    let shape = t.shape();
    if in_place::<B>(&t).is_some() {
        return (HostValues::InPlace(t), shape);
    }
    let data = burn::tensor::try_read_sync(B::float_into_data(t))
        .expect("CPU backends read synchronously")
        .expect("reading a CPU tensor does not fail");
    let values = data
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("converted to f32");
    (HostValues::Copied(values), shape)
}

/// `values` as a tensor of `shape` on the device of `like`.
pub(super) fn device_tensor<B: Backend>(
    values: Vec<f32>,
    shape: Shape,
    like: &FloatTensor<B>,
) -> FloatTensor<B> {
    B::float_from_data(TensorData::new(values, shape), &like.device())
}

/// The values of the integer tensor `t` as indices below `count` on the host, and its shape.
///
/// # Panics
/// On a value outside `0..count`, naming it and `what` it is.
pub(super) fn host_indices<B: Backend>(
    t: IntTensor<B>,
    count: usize,
    what: &str,
) -> (Vec<usize>, Shape) {
    let shape = t.shape();
    let ids = burn::tensor::try_read_sync(B::int_into_data(t))
        .expect("CPU backends read synchronously")
        .expect("reading a CPU tensor does not fail")
        .convert::<i64>()
        .try_into_vec::<i64>()
        .expect("converted to i64")
        .into_iter()
        .map(|i| {
            usize::try_from(i)
                .ok()
                .filter(|i| *i < count)
                .unwrap_or_else(|| panic!("{what} {i} is outside 0..{count}"))
        })
        .collect();
    (ids, shape)
}

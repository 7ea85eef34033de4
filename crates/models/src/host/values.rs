//! Tensors of the CPU backends as host slices, and host values back as tensors.

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, TensorMetadata};
use burn::tensor::{Shape, TensorData};

/// A tensor's f32 values on the host: read in place from a contiguous f32 Flex tensor or an
/// NdArray array in standard layout (no copy: the sequence ops read megabytes per call), copied
/// out of any other.
#[derive(Clone, Debug)]
pub(crate) enum HostValues<B: Backend> {
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

/// `t` as a Flex tensor, if that is its backend's.
#[cfg(feature = "flex")]
fn as_flex<B: Backend>(t: &FloatTensor<B>) -> Option<&burn::backend::flex::FlexTensor> {
    (t as &dyn std::any::Any).downcast_ref()
}

/// `t` as an NdArray tensor, if that is its backend's (burn-ndarray is deprecated in Burn 0.22
/// but still a backend sequent supports).
#[cfg(feature = "ndarray")]
#[allow(deprecated)]
fn as_ndarray<B: Backend>(t: &FloatTensor<B>) -> Option<&burn::backend::ndarray::NdArrayTensor> {
    (t as &dyn std::any::Any).downcast_ref()
}

/// The values of `t` without a copy, where its backend keeps them as a contiguous f32 slice
/// (a contiguous Flex tensor, an NdArray array in standard layout).
#[cfg_attr(
    not(any(feature = "flex", feature = "ndarray")),
    allow(unused_variables)
)]
#[allow(deprecated)]
fn in_place<B: Backend>(t: &FloatTensor<B>) -> Option<&[f32]> {
    #[cfg(feature = "flex")]
    if let Some(t) = as_flex::<B>(t) {
        return t.as_slice::<f32>();
    }
    #[cfg(feature = "ndarray")]
    if let Some(burn::backend::ndarray::NdArrayTensor::F32(storage)) = as_ndarray::<B>(t) {
        return storage.view().to_slice();
    }
    None
}

/// The values of an f32 NdArray tensor that is not in standard layout (a view with swapped
/// axes, as the layers hand their time-major input and output gradient to the sequence ops),
/// copied a row (of the last axis) at a time in row-major order. NdArray's own `into_data`
/// collects such an array, and any array another tensor shares, one element at a time through a
/// dynamic-rank iterator: measured, 46% of a tanh RNN's training step on NdArray.
#[cfg(feature = "ndarray")]
#[allow(deprecated)]
fn ndarray_rows<B: Backend>(t: &FloatTensor<B>) -> Option<Vec<f32>> {
    let Some(burn::backend::ndarray::NdArrayTensor::F32(storage)) = as_ndarray::<B>(t) else {
        return None;
    };
    let view = storage.view();
    if view.ndim() == 0 {
        return None;
    }
    let mut values = Vec::with_capacity(view.len());
    for row in view.rows() {
        match row.to_slice() {
            Some(run) => values.extend_from_slice(run),
            None => values.extend(row.iter().copied()),
        }
    }
    Some(values)
}

/// The values of a strided f32 Flex view whose last dimension is contiguous (a batch-first
/// tensor with its first two dimensions swapped, as the layers hand their time-major input and
/// output gradient to the sequence ops), copied a contiguous run at a time in row-major order.
/// Flex's own copy treats `[T, B, H]` with strides `[H, T H, 1]` as `T` transposes of `[B, H]`
/// tiles: measured at `[35, 32, 256]`, 165 us against 58 for the runs.
#[cfg(feature = "flex")]
fn strided_runs(t: &burn::backend::flex::FlexTensor) -> Option<Vec<f32>> {
    let layout = t.layout();
    let (shape, strides) = (layout.shape(), layout.strides());
    let rank = shape.num_dims();
    let positive = strides.iter().all(|&s| s > 0);
    if t.dtype() != burn::tensor::DType::F32 || rank < 2 || !positive || strides[rank - 1] != 1 {
        return None;
    }
    let storage = t.storage::<f32>();
    let (run, outer) = (shape[rank - 1], &shape[..rank - 1]);
    let mut values = Vec::with_capacity(shape.num_elements());
    let mut index = vec![0usize; outer.len()];
    for _ in 0..outer.iter().product::<usize>() {
        let start = layout.start_offset()
            + index
                .iter()
                .zip(strides)
                .map(|(&i, &s)| i * s as usize)
                .sum::<usize>();
        values.extend_from_slice(&storage[start..][..run]);
        // The next index of the outer dimensions, the last one fastest.
        for (i, &n) in index.iter_mut().zip(outer).rev() {
            *i += 1;
            if *i < n {
                break;
            }
            *i = 0;
        }
    }
    Some(values)
}

/// A tensor's values on the host (f32) and its shape.
pub(crate) fn host<B: Backend>(t: FloatTensor<B>) -> (HostValues<B>, Shape) {
    let shape = t.shape();
    if in_place::<B>(&t).is_some() {
        return (HostValues::InPlace(t), shape);
    }
    #[cfg(feature = "flex")]
    if let Some(values) = as_flex::<B>(&t).and_then(strided_runs) {
        return (HostValues::Copied(values), shape);
    }
    #[cfg(feature = "ndarray")]
    if let Some(values) = ndarray_rows::<B>(&t) {
        return (HostValues::Copied(values), shape);
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
pub(crate) fn device_tensor<B: Backend>(
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
pub(crate) fn host_indices<B: Backend>(
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

#[cfg(test)]
#[allow(deprecated)]
mod tests {
    use super::*;

    /// A contiguous tensor that another tensor shares is read in place, and views of it
    /// (dimensions swapped or permuted, sliced) come to the host with the values Burn's own copy
    /// gives.
    fn views_read_in_row_major_order<B: Backend>() {
        let values: Vec<f32> = (0..3 * 4 * 5).map(|i| i as f32).collect();
        let t = B::float_from_data(TensorData::new(values, [3, 4, 5]), &Default::default());
        let views = [
            B::float_swap_dims(t.clone(), 0, 1),
            B::float_permute(t.clone(), &[1, 2, 0]),
            B::float_slice(
                B::float_swap_dims(t.clone(), 0, 1),
                &[(1..3).into(), (0..3).into(), (1..4).into()],
            ),
            t.clone(),
        ];
        let (shared, _) = host::<B>(t);
        assert!(matches!(shared, HostValues::InPlace(_)), "{shared:?}");
        for view in views {
            let (got, shape) = host::<B>(view.clone());
            let want = burn::tensor::try_read_sync(B::float_into_data(view))
                .unwrap()
                .unwrap();
            assert_eq!(shape, *want.shape());
            assert_eq!(&*got, want.as_slice::<f32>().unwrap());
        }
    }

    #[cfg(feature = "flex")]
    #[test]
    fn flex_views_read_in_row_major_order() {
        views_read_in_row_major_order::<burn::backend::Flex>();
    }

    #[cfg(feature = "ndarray")]
    #[test]
    fn ndarray_views_read_in_row_major_order() {
        views_read_in_row_major_order::<burn::backend::NdArray>();
    }
}

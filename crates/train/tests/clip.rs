//! Global-norm clipping equals `torch.nn.utils.clip_grad_norm_` (fixture from
//! `scripts/gen_clip_fixture.py`).

use std::collections::HashMap;

use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use sequent_train::clip::clip_grad_norm;

fn fixture() -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip.safetensors");
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.names()
        .into_iter()
        .map(|n| {
            let v = st.tensor(n).unwrap();
            let f = v
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (n.to_string(), (v.shape().to_vec(), f))
        })
        .collect()
}

#[allow(deprecated)]
fn device() -> Device {
    #[cfg(feature = "flex")]
    return Device::flex().autodiff();
    #[cfg(not(feature = "flex"))]
    return Device::ndarray().autodiff();
}

#[test]
fn global_norm_clipping_matches_pytorch() {
    let f = fixture();
    let d = device();
    let t = |name: &str| {
        let (shape, v) = &f[name];
        Tensor::<2>::from_data(TensorData::new(v.clone(), shape.clone()), &d)
    };
    // A linear 3 -> 2: Burn stores its weight as [in, out], PyTorch's A is [out, in].
    let layer: Linear = LinearConfig::new(3, 2).init(&d);
    let a = t("A");
    let c: Tensor<1> = Tensor::from_data(TensorData::new(f["c"].1.clone(), [2]), &d);
    for max_norm in [1.0, 100.0] {
        // loss = sum(W * A^T) + sum(b * c) gives grad W = A^T, grad b = c.
        let loss = (layer.weight.val() * a.clone().transpose()).sum()
            + (layer.bias.as_ref().unwrap().val() * c.clone()).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &layer);
        let (clipped, total) = clip_grad_norm(&layer, grads, max_norm);
        let tag = format!("{}", max_norm as i64);
        let expected_total = f[&format!("total_{tag}")].1[0] as f64;
        assert!(
            (total - expected_total).abs() < 1e-5,
            "total norm {total} vs {expected_total}"
        );
        let gw: Tensor<2> = clipped.get(layer.weight.id).unwrap();
        let gb: Tensor<1> = clipped.get(layer.bias.as_ref().unwrap().id).unwrap();
        let want_w = t(&format!("A_{tag}")).transpose();
        let err_w: f32 = (gw - want_w).abs().max().into_scalar();
        let want_b: Tensor<1> =
            Tensor::from_data(TensorData::new(f[&format!("c_{tag}")].1.clone(), [2]), &d);
        let err_b: f32 = (gb - want_b).abs().max().into_scalar();
        assert!(
            err_w < 1e-6 && err_b < 1e-6,
            "max_norm {max_norm}: {err_w} {err_b}"
        );
    }
}

//! The learner reseeds the device once per epoch, on the epoch's first training batch (its own
//! test binary: tests in one binary share the backend's random generator).

mod common;

use burn::tensor::Tensor;
use burn::train::Interrupter;
use sequent_train::learner::StepControl;

use common::device;

#[test]
fn the_device_is_reseeded_once_per_epoch() {
    let device = device();
    let ctl = StepControl::new(None, 1, Interrupter::new());
    let draw = || -> f32 {
        Tensor::<1>::random([1], burn::tensor::Distribution::Default, &device).into_scalar()
    };
    ctl.start_epoch(&device, 0);
    let first = draw();
    // Later batches of the same epoch leave the generator running: a new draw.
    ctl.start_epoch(&device, 0);
    assert_ne!(draw(), first);
    // The next epoch reseeds, and the same epoch seed reproduces its draws.
    ctl.start_epoch(&device, 1);
    let next = draw();
    StepControl::new(None, 1, Interrupter::new()).start_epoch(&device, 1);
    assert_eq!(draw(), next);
}

//! The CPU side of sequent's backend extensions (the fused recurrent ops and the fused loss): the
//! values of Flex and NdArray tensors on the host ([`values`]), the vectorised maths the host
//! kernels share ([`math`]), and the one helper every hand-written backward node is registered
//! through ([`autodiff`]).

pub(crate) mod autodiff;
#[cfg(test)]
pub(crate) mod gradcheck;
pub(crate) mod math;
pub(crate) mod values;

pub(crate) use values::{HostValues, device_tensor, host, host_indices};

//! One forward and backward pass: the loss, the outputs and `∂L/∂W` for chosen layers.

use crate::loss::Loss;
use burn::tensor::Tensor;
use overparam_device::to_f64_scalar;
use overparam_models::{ModelConfig, forward_train};

/// The result of [`loss_and_gradients`].
pub struct LossGradients {
    /// The loss value.
    pub loss: f64,
    /// The outputs `f(θ, x_i)`, without autodiff.
    pub outputs: Tensor<2>,
    /// `∂L/∂W` for each layer whose mask entry is true, `None` for the others.
    pub gradients: Vec<Option<Tensor<2>>>,
    /// The updated BatchNorm running statistics of this batch (by layer; `None` elsewhere).
    pub statistics: Vec<Option<Tensor<2>>>,
}

/// Computes `L(θ)` on `(x, y)` and its gradient with respect to the layers selected by `mask`
/// through Burn autodiff. The selected layers become autodiff leaves; the others enter the
/// graph as constants. The pass is in training mode (BatchNorm normalizes with the batch's
/// statistics). The loss is returned even when it is not finite (no backward then).
pub fn loss_and_gradients(
    model: &ModelConfig,
    values: &[Tensor<2>],
    mask: &[bool],
    x: Tensor<2>,
    y: Tensor<2>,
    loss: Loss,
) -> LossGradients {
    let leaves: Vec<Tensor<2>> = values
        .iter()
        .zip(mask)
        .map(|(v, &train)| {
            if train {
                v.clone().autodiff().require_grad()
            } else {
                v.clone()
            }
        })
        .collect();
    let (outputs, statistics) = forward_train(model, &leaves, x);
    let loss_tensor = loss.tensor(outputs.clone(), y);
    let value = to_f64_scalar(loss_tensor.clone().without_autodiff());
    let outputs = outputs.without_autodiff();
    if !value.is_finite() || !mask.contains(&true) {
        return LossGradients {
            loss: value,
            outputs,
            gradients: vec![None; values.len()],
            statistics,
        };
    }
    let grads = loss_tensor.backward();
    let gradients = leaves
        .iter()
        .zip(mask)
        .map(|(leaf, &train)| {
            train.then(|| leaf.grad(&grads).expect("a selected layer has a gradient"))
        })
        .collect();
    LossGradients {
        loss: value,
        outputs,
        gradients,
        statistics,
    }
}

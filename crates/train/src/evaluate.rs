//! Batched evaluation: logits, loss and accuracy on a whole data set.

use candle_core::{DType, Tensor};

use crate::network::Network;
use crate::Result;

const EVAL_BATCH: usize = 4096;

/// Rows `range` of the row-major `inputs` (`dim` wide) as a tensor on the
/// network's device.
fn rows_of(
    net: &Network,
    inputs: &[f32],
    dim: usize,
    range: std::ops::Range<usize>,
) -> Result<Tensor> {
    let rows = range.len();
    let x = &inputs[range.start * dim..range.end * dim];
    Ok(Tensor::from_slice(x, (rows, dim), net.device())?)
}

/// Logits for every row of `inputs` (`n × dim`, row-major), row-major `n × outputs`.
pub fn logits(net: &Network, inputs: &[f32], dim: usize) -> Result<Vec<f32>> {
    let n = inputs.len() / dim.max(1);
    let mut out = Vec::new();
    for start in (0..n).step_by(EVAL_BATCH) {
        let rows = EVAL_BATCH.min(n - start);
        let x = rows_of(net, inputs, dim, start..start + rows)?;
        out.extend(net.forward(&x)?.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(out)
}

/// Mean cross-entropy and accuracy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
}

/// Loss and accuracy of the network on labelled inputs.
pub fn evaluate(net: &Network, inputs: &[f32], labels: &[u32], dim: usize) -> Result<Evaluation> {
    let n = labels.len();
    let (mut loss, mut correct) = (0.0f64, 0.0f64);
    for start in (0..n).step_by(EVAL_BATCH) {
        let rows = EVAL_BATCH.min(n - start);
        let x = rows_of(net, inputs, dim, start..start + rows)?;
        let y = Tensor::from_slice(&labels[start..start + rows], rows, net.device())?;
        let logits = net.forward(&x)?;
        loss += f64::from(candle_nn::loss::cross_entropy(&logits, &y)?.to_scalar::<f32>()?)
            * rows as f64;
        correct += f64::from(
            logits
                .argmax(1)?
                .eq(&y)?
                .to_dtype(DType::F32)?
                .sum_all()?
                .to_scalar::<f32>()?,
        );
    }
    let n = n.max(1) as f64;
    Ok(Evaluation {
        loss: loss / n,
        accuracy: correct / n,
    })
}

/// Predicted class (argmax of the logits) of every row.
pub fn predictions(net: &Network, inputs: &[f32], dim: usize) -> Result<Vec<u32>> {
    let logits = logits(net, inputs, dim)?;
    let outputs = net.architecture().output_dim();
    Ok(logits
        .chunks(outputs)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 {
                        (i, v)
                    } else {
                        best
                    }
                })
                .0 as u32
        })
        .collect())
}

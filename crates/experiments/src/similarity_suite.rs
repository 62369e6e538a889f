//! The matrices every checkpoint experiment computes, with timing and a
//! progress bar: tensor similarity (total and all class slices from one pass),
//! Gaussian similarity, matrix cosine, output cosine on named input sets, CKA.

use anyhow::Result;
use indicatif::ProgressBar;
use tensim_core::cka::CkaPrepared;
use tensim_core::output_cosine::mean_row_cosine;
use tensim_core::pairwise::{pairwise_values, GramMatrices};
use tensim_core::{weight_cosine, GaussianPrepared, Mat, Model, Par, TensorPrepared};

/// All class slices and the total of an inner-product metric.
pub struct SlicedMatrices {
    pub total: Mat<f64>,
    pub slices: Vec<Mat<f64>>,
}

fn sliced(gram: &GramMatrices) -> Result<SlicedMatrices> {
    Ok(SlicedMatrices {
        total: gram.cosine_total()?,
        slices: (0..gram.outputs())
            .map(|c| gram.cosine_output(c))
            .collect::<Result<_, _>>()?,
    })
}

/// Tensor similarity (weight space) in f64, with its Gram matrices kept for update similarity.
pub fn tensor(models: &[Model], bar: &ProgressBar) -> Result<(SlicedMatrices, GramMatrices)> {
    let prepared: Vec<TensorPrepared<f64>> = models
        .iter()
        .map(TensorPrepared::new)
        .collect::<Result<_, _>>()?;
    let gram = GramMatrices::compute(&prepared, &|| bar.inc(1))?;
    Ok((sliced(&gram)?, gram))
}

/// Gaussian functional similarity (uncentred, moment propagation) in f64.
pub fn gaussian(models: &[Model], bar: &ProgressBar) -> Result<(SlicedMatrices, GramMatrices)> {
    let prepared: Vec<GaussianPrepared<f64>> = models
        .iter()
        .map(GaussianPrepared::new)
        .collect::<Result<_, _>>()?;
    let gram = GramMatrices::compute(&prepared, &|| bar.inc(1))?;
    Ok((sliced(&gram)?, gram))
}

/// Cosine of all weights concatenated.
pub fn matrix_cosine(models: &[Model], bar: &ProgressBar) -> Result<Mat<f64>> {
    let mut m = pairwise_values(models, |a, b| Ok(vec![weight_cosine(a, b)?.all]), &|| {
        bar.inc(1)
    })?;
    Ok(m.remove(0))
}

/// Logits of every model on `inputs` (`n × d`, f64).
pub fn outputs(models: &[Model], inputs: &Mat<f64>) -> Result<Vec<Mat<f64>>> {
    use rayon::prelude::*;
    Ok(models
        .par_iter()
        .map(|m| m.forward(inputs.as_ref()))
        .collect::<Result<_, _>>()?)
}

/// Mean per-input cosine of logits (EXPERIMENTS "output cosine").
pub fn output_cosine(outputs: &[Mat<f64>], bar: &ProgressBar) -> Result<Mat<f64>> {
    let mut m = pairwise_values(
        outputs,
        |a, b| Ok(vec![mean_row_cosine(a.as_ref(), b.as_ref())?]),
        &|| bar.inc(1),
    )?;
    Ok(m.remove(0))
}

/// Linear CKA of logits.
pub fn cka(outputs: &[Mat<f64>], bar: &ProgressBar) -> Result<Mat<f64>> {
    let prepared: Vec<CkaPrepared> = outputs
        .iter()
        .map(|o| CkaPrepared::new(o.as_ref()))
        .collect::<Result<_, _>>()?;
    let mut m = pairwise_values(&prepared, |a, b| Ok(vec![a.cka(b, Par::Seq)?]), &|| {
        bar.inc(1)
    })?;
    Ok(m.remove(0))
}

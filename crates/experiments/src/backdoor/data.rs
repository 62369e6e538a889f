//! The backdoor experiment's data: the trigger, the evaluation sets (clean,
//! triggered, the attack set) and conversions of image sets.

use anyhow::Result;
use tensim_core::Mat;
use tensim_data::{ImageSet, Split};

use super::Settings;

/// The sets every checkpoint is evaluated on, and the trigger value.
pub(super) struct EvalSets {
    pub trigger: f32,
    /// Training images the train accuracy is measured on.
    pub train_eval: ImageSet,
    /// The whole test set, triggered.
    pub triggered_test: ImageSet,
    /// Triggered test images whose true label is not the target.
    pub attack_set: ImageSet,
    /// Clean and triggered test images for the output-cosine baselines.
    pub eval_clean: ImageSet,
    pub eval_triggered: ImageSet,
}

impl EvalSets {
    /// Builds the sets; fails if the trigger does not fit the images.
    pub fn new(data: &Split, s: &Settings) -> Result<Self> {
        let trigger = tensim_data::trigger::trigger_value(&data.name);
        let train_eval = match s.train_eval_images {
            Some(n) => data.train.first(n),
            None => data.train.clone(),
        };
        let triggered_test = stamped(&data.test, trigger)?;
        let attack_indices: Vec<usize> = (0..data.test.len())
            .filter(|&i| data.test.labels[i] != s.target_class)
            .collect();
        let attack_set = triggered_test.subset(&attack_indices);
        let eval_clean = data.test.first(s.eval_images);
        let eval_triggered = stamped(&eval_clean, trigger)?;
        Ok(EvalSets {
            trigger,
            train_eval,
            triggered_test,
            attack_set,
            eval_clean,
            eval_triggered,
        })
    }
}

/// The images (flattened) and labels of `indices`.
pub(super) fn gather(set: &ImageSet, indices: &[usize]) -> (Vec<f32>, Vec<u32>) {
    let dim = set.dim();
    let mut x = Vec::with_capacity(indices.len() * dim);
    for &i in indices {
        x.extend_from_slice(set.image(i));
    }
    (
        x,
        indices.iter().map(|&i| u32::from(set.labels[i])).collect(),
    )
}

/// A copy of `set` with the trigger stamped on every image.
fn stamped(set: &ImageSet, value: f32) -> Result<ImageSet> {
    let mut out = set.clone();
    let dim = set.dim();
    for chunk in out.images.chunks_mut(dim) {
        tensim_data::trigger::stamp_diamond(chunk, set.height, set.width, value)?;
    }
    Ok(out)
}

/// The images as an `n × dim` f64 matrix.
pub(super) fn to_mat(set: &ImageSet) -> Mat<f64> {
    let dim = set.dim();
    Mat::from_fn(set.len(), dim, |i, j| f64::from(set.images[i * dim + j]))
}

pub(super) fn labels_u32(set: &ImageSet) -> Vec<u32> {
    set.labels.iter().map(|&l| u32::from(l)).collect()
}

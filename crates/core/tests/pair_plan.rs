//! Matrices computed in parts: a run resumed from some of its pairs, or
//! split into shards and merged, equals the uninterrupted run bit for bit,
//! for every metric of either kind.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use tensim_core::metric::{Metric, MetricError, MetricOptions};
use tensim_core::network::Network;
use tensim_core::pair_plan::{all_pairs, assemble, shard_pairs, PairPlan, PairValues};
use tensim_core::pairwise::GramMatrices;
use tensim_core::sequence::{SequenceGeometry, SequencePrepared};
use tensim_core::{Error, Mat, TensorPrepared};

fn assert_bit_identical(a: &Mat<f64>, b: &Mat<f64>, what: &str) {
    assert_eq!(a.shape(), b.shape(), "{what}");
    for i in 0..a.nrows() {
        for j in 0..a.ncols() {
            assert_eq!(
                a[(i, j)].to_bits(),
                b[(i, j)].to_bits(),
                "{what} ({i}, {j})"
            );
        }
    }
}

/// The pairs a plan's listener hears of.
fn listening<'a>(
    heard: &'a Mutex<PairValues>,
) -> impl Fn(usize, usize, &[f64]) -> Result<(), String> + Sync + 'a {
    move |i, j, v| {
        heard
            .lock()
            .unwrap()
            .insert((i, j), v.to_vec())
            .map_err(|e| e.to_string())
    }
}

/// Runs `metric` whole, resumed after a first part, and in three shards.
fn check_parts(metric: Metric, nets: &[Network], options: MetricOptions<'_>) {
    let refs: Vec<&Network> = nets.iter().collect();
    let n = nets.len();
    let job = metric.job(&refs, options).unwrap();
    let whole = job.run(&()).unwrap().values;

    // Interrupted after the first third of the pairs, then resumed.
    let first: Vec<_> = all_pairs(n).into_iter().take(n * (n + 1) / 6).collect();
    let heard = Mutex::new(PairValues::new());
    let listener = listening(&heard);
    job.pair_values(&(), &PairPlan::all().only(first.clone()).on_pair(&listener))
        .unwrap();
    drop(listener);
    let done = heard.into_inner().unwrap();
    assert_eq!(
        done.len(),
        first.len(),
        "{metric}: the listener hears every new pair"
    );
    let rest = Mutex::new(PairValues::new());
    let listener = listening(&rest);
    let resumed = job
        .pair_values(&(), &PairPlan::all().known(done.clone()).on_pair(&listener))
        .unwrap();
    drop(listener);
    let rest = rest.into_inner().unwrap();
    assert_eq!(
        rest.len(),
        all_pairs(n).len() - done.len(),
        "{metric}: known pairs are not recomputed"
    );
    assert_bit_identical(
        &assemble(metric, n, &resumed).unwrap(),
        &whole,
        &format!("{metric} resumed"),
    );

    // Three shards, merged.
    let mut merged = PairValues::new();
    for k in 0..3 {
        let part = job
            .pair_values(&(), &PairPlan::all().only(shard_pairs(n, k, 3)))
            .unwrap();
        for (pair, v) in part.iter() {
            merged.insert(pair, v.to_vec()).unwrap();
        }
    }
    assert_bit_identical(
        &assemble(metric, n, &merged).unwrap(),
        &whole,
        &format!("{metric} sharded"),
    );
}

#[test]
fn resumed_and_sharded_matrices_equal_the_whole_run_bit_for_bit() {
    let nets = sequential(5);
    let without_inputs = "tensor slice:3 gaussian gaussian-centred gaussian-slice:0 matrix-cosine";
    for name in without_inputs.split(' ') {
        check_parts(name.parse().unwrap(), &nets, MetricOptions::default());
    }
    let x = Mat::from_fn(9, 6, |i, j| ((i * 6 + j) as f64 * 0.7).sin());
    let with_inputs = MetricOptions {
        inputs: Some(x.as_ref()),
        samples: 500,
        ..MetricOptions::default()
    };
    for name in ["output-cosine", "cka", "monte-carlo"] {
        check_parts(name.parse().unwrap(), &nets, with_inputs);
    }
    let nets = transformers(4);
    let two_positions = MetricOptions {
        positions: Some(2),
        samples: 200,
        ..MetricOptions::default()
    };
    for name in [
        "gaussian",
        "gaussian-slice:1",
        "matrix-cosine",
        "monte-carlo",
    ] {
        check_parts(name.parse().unwrap(), &nets, two_positions);
    }
}

/// The planned path is the Gram-matrix path it replaced, to the bit.
#[test]
fn a_job_equals_the_gram_matrices_of_its_prepared_models() {
    let nets = sequential(4);
    let refs: Vec<&Network> = nets.iter().collect();
    let job = Metric::Tensor.job(&refs, MetricOptions::default()).unwrap();
    let prepared: Vec<_> = nets
        .iter()
        .map(|n| TensorPrepared::<f64>::new(n.as_sequential().unwrap()).unwrap())
        .collect();
    let gram = GramMatrices::compute(&prepared, &|| {}).unwrap();
    assert_bit_identical(
        &job.run(&()).unwrap().values,
        &gram.cosine_total().unwrap(),
        "tensor",
    );
}

/// The planned Gram matrices (what the experiments resume through) are
/// [`GramMatrices::compute`]'s, whole and resumed from a third of the pairs,
/// for models through attention.
#[test]
fn planned_gram_matrices_equal_the_computed_ones_bit_for_bit() {
    let nets = transformers(4);
    let first = nets[0].as_transformer().unwrap();
    let geometry = Arc::new(SequenceGeometry::new(&first.shape(), 2).unwrap());
    let prepared: Vec<SequencePrepared> = nets
        .iter()
        .map(|n| SequencePrepared::new(n.as_transformer().unwrap(), geometry.clone()).unwrap())
        .collect();
    let computed = GramMatrices::compute(&prepared, &|| {}).unwrap();
    let whole = GramMatrices::planned(&prepared, &PairPlan::all(), &|| {}).unwrap();
    let heard = Mutex::new(PairValues::new());
    let listener = listening(&heard);
    let first_third = all_pairs(4).into_iter().take(3);
    GramMatrices::planned(
        &prepared,
        &PairPlan::all().only(first_third).on_pair(&listener),
        &|| {},
    )
    .unwrap_err(); // a plan that leaves pairs out makes no matrices
    drop(listener);
    let known = heard.into_inner().unwrap();
    assert_eq!(known.len(), 3);
    let resumed = GramMatrices::planned(&prepared, &PairPlan::all().known(known), &|| {}).unwrap();
    for gram in [&whole, &resumed] {
        assert_eq!(gram.log_scales, computed.log_scales);
        for (a, b) in gram.raw.iter().zip(&computed.raw) {
            assert_bit_identical(a, b, "raw inner products");
        }
    }
}

#[test]
fn shards_cover_every_pair_once_and_evenly() {
    for (n, shards) in [(1, 1), (5, 3), (20, 7), (200, 16)] {
        let mut seen: Vec<(usize, usize)> = (0..shards)
            .flat_map(|k| shard_pairs(n, k, shards))
            .collect();
        let sizes: Vec<usize> = (0..shards)
            .map(|k| shard_pairs(n, k, shards).len())
            .collect();
        seen.sort();
        assert_eq!(seen, all_pairs(n), "n {n}, {shards} shards");
        let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(hi - lo <= 1, "{sizes:?}");
    }
}

#[test]
fn incomplete_overlapping_and_unrecordable_parts_are_errors() {
    let nets = sequential(3);
    let refs: Vec<&Network> = nets.iter().collect();
    let job = Metric::Tensor.job(&refs, MetricOptions::default()).unwrap();
    let part = job
        .pair_values(&(), &PairPlan::all().only(shard_pairs(3, 0, 2)))
        .unwrap();
    let err = assemble(Metric::Tensor, 3, &part).unwrap_err();
    assert!(
        matches!(err, MetricError::Job(Error::PairMissing { .. })),
        "{err}"
    );

    let mut twice = part.clone();
    let (pair, v) = part.iter().next().unwrap();
    assert!(matches!(
        twice.insert(pair, v.to_vec()),
        Err(Error::PairTwice { .. })
    ));

    let failing = |_: usize, _: usize, _: &[f64]| Err("disk full".to_string());
    let err = job
        .pair_values(&(), &PairPlan::all().on_pair(&failing))
        .unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
}

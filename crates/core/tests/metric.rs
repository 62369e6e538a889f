//! The metric vocabulary: names round-trip, kinds are checked before any
//! work, and a job's matrix equals the metric computed pair by pair.

mod common;

use common::*;
use faer::Par;
use tensim_core::metric::{Metric, MetricError, MetricOptions, Precision};
use tensim_core::network::{Network, NetworkKind};
use tensim_core::sequence::sequence_similarity;
use tensim_core::transformer::TransformerShape;
use tensim_core::{
    similarity, weight_cosine, Centring, GaussianPrepared, Mat, Model, TensorPrepared,
};

const NAMES: [&str; 9] = [
    "tensor",
    "slice:3",
    "gaussian",
    "gaussian-centred",
    "gaussian-slice:0",
    "matrix-cosine",
    "output-cosine",
    "cka",
    "monte-carlo",
];

/// The default options with `positions` Gaussian positions.
fn at_positions(positions: usize) -> MetricOptions<'static> {
    MetricOptions {
        positions: Some(positions),
        ..MetricOptions::default()
    }
}

fn refs(nets: &[Network]) -> Vec<&Network> {
    nets.iter().collect()
}

#[test]
fn names_round_trip_and_bad_names_say_what_is_allowed() {
    for name in NAMES {
        let m: Metric = name.parse().unwrap();
        assert_eq!(m.to_string(), name);
        assert!(!m.describe().is_empty());
    }
    assert_eq!(
        "gaussian-centered".parse::<Metric>().unwrap(),
        Metric::Gaussian(Centring::Centred)
    );
    let err = "bogus".parse::<Metric>().unwrap_err().to_string();
    assert!(err.contains("unknown metric `bogus`") && err.contains("monte-carlo"));
    assert!("slice:x".parse::<Metric>().is_err());
}

#[test]
fn applicability_by_kind() {
    for name in NAMES {
        let m: Metric = name.parse().unwrap();
        assert!(m.applies_to(NetworkKind::Sequential), "{name}");
        let on_transformers = !matches!(name, "gaussian-centred" | "output-cosine" | "cka");
        assert_eq!(
            m.applies_to(NetworkKind::Transformer),
            on_transformers,
            "{name}"
        );
    }
}

#[test]
fn jobs_are_refused_before_any_work() {
    let seq = sequential(2);
    let tr: Network = TransformerShape::benchmark(1)
        .random_model(3)
        .unwrap()
        .into();
    let mixed = vec![&seq[0], &tr];
    match Metric::Tensor.job(&mixed, MetricOptions::default()) {
        Err(MetricError::Model { index: 1, source }) => {
            assert!(
                source.to_string().contains("transformer network"),
                "{source}"
            )
        }
        other => panic!("{:?}", other.err()),
    }
    let err = |m: Metric, nets: &[&Network]| {
        m.job(nets, MetricOptions::default())
            .err()
            .expect("refused")
            .to_string()
    };
    assert!(err(Metric::TensorSlice(4), &refs(&seq)).contains("class 4 does not exist"));
    assert!(err(Metric::OutputCosine, &refs(&seq)).contains("needs --inputs"));
    assert!(err(Metric::Cka, &[&tr]).contains("not available for transformer"));
    assert!(err(Metric::TensorSlice(64), &[&tr]).contains("outside the vocabulary"));
    let few = MetricOptions {
        samples: 1,
        ..MetricOptions::default()
    };
    assert!(Metric::MonteCarlo.job(&refs(&seq), few).is_err());
    let other: Network = TransformerShape::benchmark(2)
        .random_model(4)
        .unwrap()
        .into();
    assert!(err(Metric::Gaussian(Centring::Uncentred), &[&tr, &other])
        .contains("different transformer architectures"));
}

#[test]
fn sequential_matrices_equal_the_pair_metrics() {
    let nets = sequential(3);
    let models: Vec<&Model> = nets.iter().map(|n| n.as_sequential().unwrap()).collect();
    for precision in [Precision::F64, Precision::F32] {
        let options = MetricOptions {
            precision,
            ..MetricOptions::default()
        };
        let run = |m: Metric| m.job(&refs(&nets), options).unwrap().run(&()).unwrap();
        let tensor = run(Metric::Tensor).values;
        let slice = run(Metric::TensorSlice(2)).values;
        let gaussian = run(Metric::Gaussian(Centring::Centred)).values;
        for i in 0..3 {
            for j in 0..3 {
                let (a, b) = (models[i], models[j]);
                let t = match precision {
                    Precision::F64 => similarity(
                        &TensorPrepared::<f64>::new(a).unwrap(),
                        &TensorPrepared::<f64>::new(b).unwrap(),
                        Par::Seq,
                    ),
                    Precision::F32 => similarity(
                        &TensorPrepared::<f32>::new(a).unwrap(),
                        &TensorPrepared::<f32>::new(b).unwrap(),
                        Par::Seq,
                    ),
                }
                .unwrap();
                let tol = if precision == Precision::F64 {
                    1e-12
                } else {
                    1e-5
                };
                assert!((tensor[(i, j)] - t.total).abs() < tol);
                assert!((slice[(i, j)] - t.per_output[2]).abs() < tol);
                if precision == Precision::F64 {
                    let g = similarity(
                        &GaussianPrepared::<f64>::with_centring(a, Centring::Centred).unwrap(),
                        &GaussianPrepared::<f64>::with_centring(b, Centring::Centred).unwrap(),
                        Par::Seq,
                    )
                    .unwrap();
                    assert!((gaussian[(i, j)] - g.total).abs() < 1e-12);
                }
            }
        }
    }
    let cosine = Metric::MatrixCosine
        .job(&refs(&nets), MetricOptions::default())
        .unwrap()
        .run(&())
        .unwrap()
        .values;
    assert_eq!(
        cosine[(0, 1)],
        weight_cosine(models[0], models[1]).unwrap().all
    );
    let x = Mat::from_fn(9, 6, |i, j| ((i * 6 + j) as f64 * 0.7).sin());
    let with_inputs = MetricOptions {
        inputs: Some(x.as_ref()),
        ..MetricOptions::default()
    };
    for m in [Metric::OutputCosine, Metric::Cka] {
        let v = m
            .job(&refs(&nets), with_inputs)
            .unwrap()
            .run(&())
            .unwrap()
            .values;
        assert!((v[(1, 1)] - 1.0).abs() < 1e-12, "{m}");
        assert_eq!(v[(0, 2)], v[(2, 0)], "{m}");
    }
}

#[test]
fn transformer_matrix_equals_sequence_similarity_and_counts_progress() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct Count(AtomicUsize, AtomicUsize);
    impl tensim_core::metric::MatrixProgress for Count {
        fn model_prepared(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        fn pair_done(&self) {
            self.1.fetch_add(1, Ordering::Relaxed);
        }
    }
    let nets = transformers(3);
    let job = Metric::Gaussian(Centring::Uncentred)
        .job(&refs(&nets), at_positions(2))
        .unwrap();
    assert_eq!(job.positions(), Some(2));
    assert!(job.peak_bytes().unwrap() > 0.0);
    let count = Count(AtomicUsize::new(0), AtomicUsize::new(0));
    let m = job.run(&count).unwrap();
    assert_eq!(count.0.load(Ordering::Relaxed), 3);
    assert_eq!(count.1.load(Ordering::Relaxed), 6);
    assert!(m.description.contains("2 Gaussian positions"));
    let (a, b) = (
        nets[0].as_transformer().unwrap(),
        nets[2].as_transformer().unwrap(),
    );
    let direct = sequence_similarity(a, b, 2).unwrap().0.total;
    assert!((m.values[(0, 2)] - direct).abs() < 1e-12);
    assert!((m.values[(1, 1)] - 1.0).abs() < 1e-12);
}

#[test]
fn pair_is_the_similarity_of_the_prepared_networks_of_either_kind() {
    let nets = sequential(2);
    let (a, b) = (
        nets[0].as_sequential().unwrap(),
        nets[1].as_sequential().unwrap(),
    );
    let direct = similarity(
        &TensorPrepared::<f64>::new(a).unwrap(),
        &TensorPrepared::<f64>::new(b).unwrap(),
        Par::rayon(0),
    )
    .unwrap();
    let pair = Metric::TensorSlice(2)
        .pair(&nets[0], &nets[1], MetricOptions::default())
        .unwrap();
    assert_eq!(pair, direct);
    let centred = Metric::Gaussian(Centring::Centred)
        .pair(&nets[0], &nets[1], MetricOptions::default())
        .unwrap();
    let direct = similarity(
        &GaussianPrepared::<f64>::with_centring(a, Centring::Centred).unwrap(),
        &GaussianPrepared::<f64>::with_centring(b, Centring::Centred).unwrap(),
        Par::rayon(0),
    )
    .unwrap();
    assert_eq!(centred, direct);

    let lms = transformers(2);
    let pair = Metric::Tensor
        .pair(&lms[0], &lms[1], at_positions(2))
        .unwrap();
    let (ta, tb) = (
        lms[0].as_transformer().unwrap(),
        lms[1].as_transformer().unwrap(),
    );
    assert_eq!(pair, sequence_similarity(ta, tb, 2).unwrap().0);
    assert_eq!(
        pair.per_output.len(),
        TransformerShape::benchmark(1).outputs
    );

    let err = Metric::MatrixCosine
        .pair(&nets[0], &nets[1], MetricOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("not an inner product"), "{err}");
    assert!(Metric::Tensor
        .pair(&nets[0], &lms[0], MetricOptions::default())
        .is_err());
}

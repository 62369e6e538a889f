//! Training converges on a task a bilinear layer can solve, checkpoints
//! convert to core models with the same logits, and schedules are right.

use rand::{Rng, SeedableRng};
use tensim_core::Residual;
use tensim_core::{Architecture, LayerShape, Mat};
use tensim_train::evaluate::{evaluate, logits};
use tensim_train::{Batch, Device, Network, Schedule, TrainConfig, Trainer};

fn deep_arch() -> Architecture {
    Architecture {
        layers: vec![
            LayerShape::Linear {
                input: 6,
                output: 8,
                bias: true,
            },
            LayerShape::Bilinear {
                input: 8,
                hidden: 12,
                output: 8,
                left_bias: true,
                right_bias: true,
                down_bias: true,
                residual: Residual::Lerp(0.6),
            },
            LayerShape::Linear {
                input: 8,
                output: 2,
                bias: false,
            },
        ],
    }
}

/// XOR of the signs of two coordinates: not linearly separable, but a product
/// of two linear forms solves it.
fn xor_data(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut x = Vec::with_capacity(n * 6);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let row: Vec<f32> = (0..6).map(|_| rng.random_range(-1.0..1.0)).collect();
        y.push(u32::from((row[0] > 0.0) != (row[1] > 0.0)));
        x.extend(row);
    }
    (x, y)
}

/// The batch of XOR rows `idx` of `(x, y)`.
fn xor_batch(x: &[f32], y: &[u32], idx: &[usize]) -> Batch {
    Batch {
        inputs: idx
            .iter()
            .flat_map(|&i| x[i * 6..i * 6 + 6].iter().copied())
            .collect(),
        labels: idx.iter().map(|&i| y[i]).collect(),
        dim: 6,
    }
}

/// Trains for `steps` on batches of the trainer's batch size drawn from the
/// XOR data `(x, y)` in shuffled passes, calling `on_checkpoint` at
/// `checkpoints`.
fn train_on_xor(
    trainer: &mut Trainer,
    (x, y): (&[f32], &[u32]),
    steps: u64,
    checkpoints: &[u64],
    mut on_checkpoint: impl FnMut(u64, &Network) -> tensim_train::Result<()>,
) {
    let batch_size = trainer.config().batch_size;
    let mut shuffler = tensim_train::trainer::Shuffler::new(y.len());
    trainer
        .run_stage(
            steps,
            checkpoints,
            |rng| xor_batch(x, y, &shuffler.next_indices(batch_size, rng)),
            |step, net, _| on_checkpoint(step, net),
            |_, _| {},
        )
        .unwrap();
}

#[test]
fn learns_xor_and_checkpoints_give_identical_logits() {
    let (x, y) = xor_data(2048, 1);
    let (tx, ty) = xor_data(512, 2);
    let net = Network::init(&deep_arch(), 3, &Device::Cpu).unwrap();
    let before = evaluate(&net, &tx, &ty, 6).unwrap();
    let config = TrainConfig {
        learning_rate: 1e-2,
        weight_decay: 1e-4,
        batch_size: 128,
        input_noise: 0.01,
        cosine_decay: true,
        seed: 4,
    };
    let mut trainer = Trainer::new(net, config).unwrap();
    let mut seen = Vec::new();
    let checkpoints = Schedule::Every(200).steps(600).unwrap();
    train_on_xor(&mut trainer, (&x, &y), 600, &checkpoints, |step, _| {
        seen.push(step);
        Ok(())
    });
    assert_eq!(seen, vec![0, 200, 400, 600]);
    let after = evaluate(trainer.network(), &tx, &ty, 6).unwrap();
    assert!(
        after.accuracy > 0.93,
        "test accuracy {} (before {})",
        after.accuracy,
        before.accuracy
    );
    assert!(after.loss < before.loss);

    // The saved weights, loaded into the core model, give the same logits.
    let model = trainer.network().to_model().unwrap();
    let candle_logits = logits(trainer.network(), &tx, 6).unwrap();
    let core_logits = model
        .forward(Mat::from_fn(512, 6, |i, j| f64::from(tx[i * 6 + j])).as_ref())
        .unwrap();
    for i in 0..512 {
        for j in 0..2 {
            let (a, b) = (f64::from(candle_logits[i * 2 + j]), core_logits[(i, j)]);
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "row {i}: candle {a} vs core {b}"
            );
        }
    }
    // And a round trip through the core model keeps every weight.
    let again = Network::from_model(&model, &Device::Cpu)
        .unwrap()
        .to_model()
        .unwrap();
    assert_eq!(again, model);
}

#[test]
fn checkpoint_schedules() {
    assert_eq!(
        Schedule::Every(250).steps(1000).unwrap(),
        vec![0, 250, 500, 750, 1000]
    );
    let power = Schedule::Power {
        count: 100,
        exponent: 5.0,
    }
    .steps(100_000)
    .unwrap();
    assert_eq!(power.len(), 90, "EXPERIMENTS §3: 90 distinct steps");
    assert_eq!((power[0], *power.last().unwrap()), (0, 100_000));
    let log = Schedule::Log { count: 20 }.steps(10_000).unwrap();
    assert_eq!((log[0], log[1], *log.last().unwrap()), (0, 1, 10_000));
    assert!(log.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        Schedule::List(vec![5, 1, 5, 99]).steps(10).unwrap(),
        vec![1, 5]
    );
    assert!(Schedule::Every(0).steps(10).is_err());
}

#[test]
fn same_seed_same_training() {
    let (x, y) = xor_data(256, 5);
    let run = || {
        let net = Network::init(&deep_arch(), 7, &Device::Cpu).unwrap();
        let config = TrainConfig {
            learning_rate: 1e-2,
            weight_decay: 0.0,
            batch_size: 64,
            input_noise: 0.05,
            cosine_decay: false,
            seed: 8,
        };
        let mut t = Trainer::new(net, config).unwrap();
        train_on_xor(&mut t, (&x, &y), 20, &[], |_, _| Ok(()));
        t.network().to_model().unwrap()
    };
    assert_eq!(run(), run());
}

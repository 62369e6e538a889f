//! The candle transformer computes the core's function (after training, in
//! f32 against f64), learns a repeating sequence, and its held-out loss,
//! logits and checkpoints agree with the core.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tensim_core::transformer::MlpShape;
use tensim_core::transformer::{
    AttentionBias, AttentionShape, BlockShape, Mask, Transformer, TransformerShape,
};
use tensim_core::Mat;
use tensim_core::Residual;
use tensim_io::{load_checkpoint, save_checkpoint, CheckpointMeta, StoredDtype};
use tensim_train::language_model::{logits, mean_loss};
use tensim_train::{Device, LmConfig, LmTrainer, TransformerNetwork};

fn shape(mask: Mask) -> TransformerShape {
    let block =
        |attention: f64, hidden: usize, mlp: f64| {
            BlockShape::attention_only(AttentionBias::all(true), Residual::Lerp(attention))
                .with_mlp(hidden, [true; 3], Residual::Lerp(mlp))
        };
    let blocks = vec![block(0.35, 12, 0.5), block(0.6, 10, 0.8)];
    TransformerShape {
        mask,
        ..TransformerShape::causal(11, 8, (2, 4), 6, blocks)
    }
}

fn random_rows(rows: usize, n: usize, vocab: usize, rng: &mut StdRng) -> Vec<Vec<u32>> {
    (0..rows)
        .map(|_| (0..n).map(|_| rng.random_range(0..vocab as u32)).collect())
        .collect()
}

/// Largest |a − b| over the largest |b|.
fn relative_error(candle: &[f32], core: &Mat<f64>) -> f64 {
    let vocab = core.ncols();
    let (mut diff, mut scale) = (0.0f64, 0.0f64);
    for p in 0..core.nrows() {
        for j in 0..vocab {
            let b = core[(p, j)];
            diff = diff.max((f64::from(candle[p * vocab + j]) - b).abs());
            scale = scale.max(b.abs());
        }
    }
    diff / scale
}

/// The published family: attention-only blocks with q/k biases and an
/// additive residual, then an MLP-only block with a down bias only, and 7
/// logits from a vocabulary of 11.
fn family_shape() -> TransformerShape {
    let paper = BlockShape::attention_only(AttentionBias::QK, Residual::Add(0.35));
    let mlp_only = BlockShape::mlp_only(9, [false, false, true], Residual::Add(0.5));
    TransformerShape {
        outputs: 7,
        blocks: vec![paper, mlp_only],
        ..shape(Mask::Causal)
    }
}

/// Trains a few steps with a large learning rate (so the weights move away
/// from the initialisation), then compares candle and core logits.
fn trained_network_matches_core(shape: TransformerShape) {
    let mask = shape.mask;
    let ids = shape.vocab.min(shape.outputs);
    let net = TransformerNetwork::init(&shape, 7, &Device::Cpu).unwrap();
    let start = net.to_transformer().unwrap();
    let config = LmConfig {
        learning_rate: 3e-2,
        weight_decay: 1e-3,
        ..LmConfig::default()
    };
    let mut trainer = LmTrainer::new(net, config).unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    for _ in 0..5 {
        let rows = random_rows(16, 7, ids, &mut rng);
        let inputs: Vec<Vec<u32>> = rows.iter().map(|r| r[..6].to_vec()).collect();
        let targets: Vec<Vec<u32>> = rows.iter().map(|r| r[1..].to_vec()).collect();
        trainer.step(&inputs, &targets, 3e-2).unwrap();
    }
    let net = trainer.network();
    let model = net.to_transformer().unwrap();
    assert_eq!(model.shape(), shape);
    let moved: f64 = model
        .parameters()
        .iter()
        .flatten()
        .zip(start.parameters().iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(moved > 1e-2, "training moved the weights by only {moved}");

    let mut worst = 0.0f64;
    for n in [1, 3, 6] {
        let rows = random_rows(4, n, shape.vocab, &mut rng);
        let candle = logits(net, &rows).unwrap();
        let width = shape.outputs;
        assert_eq!(candle.len(), 4 * n * width);
        for (r, row) in rows.iter().enumerate() {
            let core = model.forward_tokens(row).unwrap();
            let block = &candle[r * n * width..(r + 1) * n * width];
            let err = relative_error(block, &core);
            assert!(
                err < 1e-4,
                "{mask:?}, n = {n}, row {r}: relative error {err:e}"
            );
            worst = worst.max(err);
        }
    }
    eprintln!("{mask:?}: largest relative error, candle f32 vs core f64: {worst:.2e}");
}

#[test]
fn trained_causal_network_gives_the_core_logits() {
    trained_network_matches_core(shape(Mask::Causal));
}

#[test]
fn trained_full_mask_network_gives_the_core_logits() {
    trained_network_matches_core(shape(Mask::Full));
}

#[test]
fn trained_network_of_the_published_family_gives_the_core_logits() {
    trained_network_matches_core(family_shape())
}

#[test]
fn initialisation_is_the_cores_rounded_to_f32() {
    let s = shape(Mask::Causal);
    let core = s.random_model(3).unwrap();
    let net = TransformerNetwork::init(&s, 3, &Device::Cpu).unwrap();
    let back = net.to_transformer().unwrap();
    for (x, y) in back
        .parameters()
        .iter()
        .flatten()
        .zip(core.parameters().iter().flatten())
    {
        assert_eq!(*x, f64::from(*y as f32));
    }
    let names: Vec<&str> = net.named_vars().map(|(n, _)| n).collect();
    let specs = s.parameter_specs();
    assert_eq!(
        names,
        specs.iter().map(|p| p.name.as_str()).collect::<Vec<_>>()
    );
    for ((_, var), spec) in net.named_vars().zip(&specs) {
        assert_eq!(var.dims(), spec.shape.as_slice(), "{}", spec.name);
    }
    let count: usize = specs
        .iter()
        .map(|p| p.shape.iter().product::<usize>())
        .sum();
    assert_eq!(net.parameter_count(), count);
}

/// Cyclic sequence 0, 1, …, period−1, 0, 1, …: windows at random offsets.
fn cyclic_batch(
    rows: usize,
    n: usize,
    period: u32,
    rng: &mut StdRng,
) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let mut inputs = Vec::with_capacity(rows);
    let mut targets = Vec::with_capacity(rows);
    for _ in 0..rows {
        let offset = rng.random_range(0..period);
        let window: Vec<u32> = (0..=n as u32).map(|t| (offset + t) % period).collect();
        inputs.push(window[..n].to_vec());
        targets.push(window[1..].to_vec());
    }
    (inputs, targets)
}

#[test]
fn loss_decreases_on_a_repeating_sequence() {
    let s = TransformerShape {
        blocks: vec![BlockShape {
            attention: Some(AttentionShape {
                bias: AttentionBias::all(true),
                residual: Residual::Lerp(0.5),
            }),
            mlp: Some(MlpShape {
                hidden: 16,
                bias: [true; 3],
                residual: Residual::Lerp(0.5),
            }),
        }],
        ..shape(Mask::Causal)
    };
    let net = TransformerNetwork::init(&s, 5, &Device::Cpu).unwrap();
    let mut rng = StdRng::seed_from_u64(2);
    let (val_x, val_y) = cyclic_batch(32, 6, 7, &mut StdRng::seed_from_u64(99));
    let before = mean_loss(&net, &val_x, &val_y, 0).unwrap();
    let config = LmConfig {
        learning_rate: 5e-2,
        weight_decay: 0.0,
        cosine_decay: true,
        warmup_steps: 3,
        grad_clip: Some(10.0),
    };
    let mut trainer = LmTrainer::new(net, config).unwrap();
    let mut losses = Vec::new();
    let mut saved = Vec::new();
    trainer
        .run_stage(
            30,
            &[0, 10, 30],
            || cyclic_batch(32, 6, 7, &mut rng),
            |step, _, _| {
                saved.push(step);
                Ok(())
            },
            |_, stats| {
                assert!(stats.grad_norm.is_some());
                losses.push(stats.loss);
            },
        )
        .unwrap();
    assert_eq!(saved, [0, 10, 30]);
    assert_eq!(trainer.step_count(), 30);
    let after = mean_loss(trainer.network(), &val_x, &val_y, 0).unwrap();
    let first = losses[..5].iter().sum::<f32>() / 5.0;
    let last = losses[25..].iter().sum::<f32>() / 5.0;
    eprintln!("held-out {before:.3} → {after:.3}, batch {first:.3} → {last:.3}");
    assert!(
        after < 0.5 * before && last < 0.5 * first,
        "held-out {before:.3} → {after:.3}, batch {first:.3} → {last:.3}"
    );
}

#[test]
fn held_out_loss_is_the_mean_log_loss_of_the_exported_logits() {
    let s = shape(Mask::Causal);
    let net = TransformerNetwork::init(&s, 9, &Device::Cpu).unwrap();
    let mut rng = StdRng::seed_from_u64(4);
    let inputs = random_rows(300, 6, s.vocab, &mut rng); // two evaluation chunks
    let targets = random_rows(300, 6, s.vocab, &mut rng);
    let flat = logits(&net, &inputs).unwrap();
    let model = net.to_transformer().unwrap();
    for from in [0, 2, 5] {
        let (mut sum, mut count) = (0.0f64, 0usize);
        for r in 0..inputs.len() {
            for t in from..6 {
                let row = &flat[(r * 6 + t) * s.vocab..(r * 6 + t + 1) * s.vocab];
                let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let log_z = f64::from(max)
                    + row
                        .iter()
                        .map(|&v| f64::from(v - max).exp())
                        .sum::<f64>()
                        .ln();
                sum += log_z - f64::from(row[targets[r][t] as usize]);
                count += 1;
            }
        }
        let loss = mean_loss(&net, &inputs, &targets, from).unwrap();
        assert!(
            (loss - sum / count as f64).abs() < 1e-5,
            "from {from}: {loss} vs {}",
            sum / count as f64
        );
    }
    // The same number from the core model, on the first rows.
    let core_loss: f64 = (0..4)
        .map(|r| {
            let l = model.forward_tokens(&inputs[r]).unwrap();
            (0..6)
                .map(|t| {
                    let max = (0..s.vocab)
                        .map(|j| l[(t, j)])
                        .fold(f64::NEG_INFINITY, f64::max);
                    let log_z = max
                        + (0..s.vocab)
                            .map(|j| (l[(t, j)] - max).exp())
                            .sum::<f64>()
                            .ln();
                    log_z - l[(t, targets[r][t] as usize)]
                })
                .sum::<f64>()
        })
        .sum::<f64>()
        / 24.0;
    let loss = mean_loss(&net, &inputs[..4], &targets[..4], 0).unwrap();
    assert!(
        (loss - core_loss).abs() < 1e-5,
        "{loss} vs core {core_loss}"
    );
}

#[test]
fn bad_token_rows_are_refused() {
    let s = shape(Mask::Causal);
    let net = TransformerNetwork::init(&s, 1, &Device::Cpu).unwrap();
    let err = |rows: Vec<Vec<u32>>| logits(&net, &rows).unwrap_err().to_string();
    assert!(err(vec![vec![0, 11]]).contains("id 11 is outside the vocabulary (11)"));
    assert!(err(vec![vec![0; 7]]).contains("do not fit the context of 6"));
    assert!(err(vec![vec![0; 3], vec![0; 2]]).contains("row 1 has 2 positions"));
    assert!(err(vec![]).contains("no input rows"));
    let rows = vec![vec![1u32, 2, 3]];
    let e = mean_loss(&net, &rows, &[vec![1, 2]], 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("3 tokens") && e.contains("2"), "{e}");
    let e = mean_loss(&net, &rows, &rows, 3).unwrap_err().to_string();
    assert!(e.contains("no position t ≥ 3"), "{e}");
}

#[test]
fn learning_rate_schedule_warms_up_and_decays() {
    let c = LmConfig {
        learning_rate: 1.0,
        cosine_decay: true,
        warmup_steps: 4,
        ..LmConfig::default()
    };
    assert!((c.learning_rate_at(0, 100) - 0.25).abs() < 1e-3);
    assert!((c.learning_rate_at(3, 100) - 1.0).abs() < 1e-2);
    assert!((c.learning_rate_at(50, 100) - 0.5).abs() < 1e-12);
    assert!(c.learning_rate_at(99, 100) < 1e-3);
    let flat = LmConfig::default();
    assert_eq!(flat.learning_rate_at(77, 100), flat.learning_rate);
}

#[test]
fn checkpoint_of_a_trained_network_loads_as_the_same_transformer() {
    let s = shape(Mask::Full);
    let net = TransformerNetwork::init(&s, 12, &Device::Cpu).unwrap();
    let model: Transformer = net.to_transformer().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lm.safetensors");
    // f32 storage is exact for weights that came from f32.
    save_checkpoint(
        &path,
        &model.clone().into(),
        &CheckpointMeta::default(),
        StoredDtype::F32,
    )
    .unwrap();
    let loaded = load_checkpoint(&path)
        .unwrap()
        .network
        .into_transformer()
        .unwrap();
    assert_eq!(loaded, model);
    let again = TransformerNetwork::from_transformer(&loaded, &Device::Cpu).unwrap();
    let rows = vec![vec![3u32, 1, 4, 1, 5, 9]];
    assert_eq!(logits(&net, &rows).unwrap(), logits(&again, &rows).unwrap());
}

/// A language-model stage stopped at a checkpoint and resumed from the saved
/// weights, optimiser state and sampler stream takes the uninterrupted
/// run's steps, bit for bit.
#[test]
fn a_resumed_language_model_takes_the_steps_of_the_uninterrupted_one() {
    let tokens: Vec<u32> = (0..400u32).map(|i| (i * 7 + i / 3) % 11).collect();
    let config = LmConfig {
        learning_rate: 2e-2,
        weight_decay: 0.1,
        cosine_decay: true,
        warmup_steps: 4,
        grad_clip: Some(1.0),
    };
    let net = TransformerNetwork::init(&family_shape_full_vocab(), 8, &Device::Cpu).unwrap();
    let sampler = std::cell::RefCell::new(tensim_data::BatchSampler::new(&tokens, 6, 5));
    let mut whole = LmTrainer::new(net, config.clone()).unwrap();
    let mut saved = None;
    let mut losses = Vec::new();
    whole
        .run_stage(
            20,
            &[0, 9, 20],
            || {
                let b = sampler.borrow_mut().next_batch(8);
                (b.inputs, b.targets)
            },
            |step, net, state| {
                if step == 9 {
                    let rng = sampler.borrow().rng().clone();
                    saved = Some((net.to_transformer()?, state.clone(), rng));
                }
                Ok(())
            },
            |_, st| losses.push(st.loss),
        )
        .unwrap();
    let (model, state, rng) = saved.unwrap();
    let net = TransformerNetwork::from_transformer(&model, &Device::Cpu).unwrap();
    let mut resumed = LmTrainer::resume(net, config, &state).unwrap();
    let mut sampler = tensim_data::BatchSampler::with_rng(&tokens, 6, rng);
    let mut again = Vec::new();
    resumed
        .run_stage_from(
            9,
            20,
            &[0, 9, 20],
            || {
                let b = sampler.next_batch(8);
                (b.inputs, b.targets)
            },
            |_, _, _| Ok(()),
            |_, st| again.push(st.loss),
        )
        .unwrap();
    assert_eq!(again, losses[9..]);
    let parameters = |t: &LmTrainer| t.network().to_transformer().unwrap().parameters();
    assert_eq!(parameters(&resumed), parameters(&whole));
}

/// [`family_shape`] with one logit per vocabulary entry (a language model).
fn family_shape_full_vocab() -> TransformerShape {
    TransformerShape {
        outputs: 11,
        ..family_shape()
    }
}

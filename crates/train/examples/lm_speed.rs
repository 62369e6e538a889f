//! Training speed of the candle transformer on the bundled Shakespeare
//! (character tokens): vocab 59, d_model 32, 2 heads × 16, context 16, one
//! block with a bilinear MLP of 64 hidden units, batch 64.
//!
//! ```sh
//! cargo run --release -p tensim-train --example lm_speed -- [steps] [--threads N]
//! ```
//!
//! Prints steps per second (after a few warm-up steps) and the held-out loss
//! before and after, beside the bigram and trigram losses on the same
//! windows and positions.
//!
//! `--threads N` sets `CANDLE_NUM_THREADS` and `RAYON_NUM_THREADS` before
//! candle starts. A model this small trains fastest on one CPU thread: with
//! more, every tiny matrix product and element-wise op pays for waking and
//! joining the worker threads.

use std::time::Instant;

use tensim_core::transformer::MlpShape;
use tensim_core::transformer::{AttentionBias, AttentionShape, BlockShape, Mask, TransformerShape};
use tensim_core::Residual;
use tensim_data::{
    eval_windows, load_text_dataset, split_train_val, BatchSampler, CharTokenizer, NgramModel,
    Smoothing, DEFAULT_VAL_FRACTION, MAX_VOCAB,
};
use tensim_train::language_model::mean_loss;
use tensim_train::{default_device, LmConfig, LmTrainer, TransformerNetwork};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut steps: u64 = 300;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--threads" {
            let n: usize = args.next().ok_or("--threads needs a number")?.parse()?;
            // Before any candle call, while the program has one thread.
            std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
            std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        } else {
            steps = arg.parse()?;
        }
    }
    let text = load_text_dataset("shakespeare")?;
    let tokenizer = CharTokenizer::from_text(&text, MAX_VOCAB);
    let tokens = tokenizer.encode(&text);
    let split = split_train_val(&tokens, DEFAULT_VAL_FRACTION);
    let context = 16;
    let shape = TransformerShape {
        vocab: tokenizer.vocab_size(),
        outputs: tokenizer.vocab_size(),
        d_model: 32,
        heads: 2,
        head_dim: 16,
        context,
        mask: Mask::Causal,
        rotary_base: 10000.0,
        blocks: vec![BlockShape {
            attention: Some(AttentionShape {
                bias: AttentionBias::all(true),
                residual: Residual::Lerp(0.35),
            }),
            mlp: Some(MlpShape {
                hidden: 64,
                bias: [true; 3],
                residual: Residual::Lerp(0.35),
            }),
        }],
    };
    let device = default_device();
    let net = TransformerNetwork::init(&shape, 0, &device)?;
    println!(
        "vocab {}, {} parameters, {} training tokens, device {:?}, {} CPU threads",
        shape.vocab,
        net.parameter_count(),
        split.train.len(),
        device,
        candle_core::utils::get_num_threads()
    );
    let val = eval_windows(&split.val, context, Some(512));
    let before = mean_loss(&net, &val.inputs, &val.targets, 0)?;

    let config = LmConfig {
        learning_rate: 3e-3,
        weight_decay: 0.01,
        cosine_decay: true,
        warmup_steps: 20,
        grad_clip: Some(1.0),
    };
    let mut trainer = LmTrainer::new(net, config)?;
    let mut sampler = BatchSampler::new(&split.train, context, 1);
    let warm_up = 10.min(steps);
    let mut timer = Instant::now();
    let mut last_loss = f32::NAN;
    trainer.run_stage(
        steps,
        &[],
        || {
            let b = sampler.next_batch(64);
            (b.inputs, b.targets)
        },
        |_, _, _| Ok(()),
        |step, stats| {
            if step == warm_up {
                timer = Instant::now();
            }
            last_loss = stats.loss;
        },
    )?;
    let elapsed = timer.elapsed().as_secs_f64();
    let timed = steps - warm_up;
    println!(
        "{timed} steps in {elapsed:.2} s: {:.1} steps/s (batch 64 × {context} tokens; last batch loss {last_loss:.3})",
        timed as f64 / elapsed
    );
    let after = mean_loss(trainer.network(), &val.inputs, &val.targets, 0)?;
    println!("held-out loss (nats, all positions): {before:.3} → {after:.3}");
    for order in [2, 3] {
        let ngram = NgramModel::fit(&split.train, order, shape.vocab, Smoothing::KneserNey);
        let first = ngram.first_scored_position();
        let model = mean_loss(trainer.network(), &val.inputs, &val.targets, first)?;
        let reference = ngram.mean_cross_entropy(&val);
        println!(
            "{order}-gram: {reference:.4} nats; model on the same positions (t ≥ {first}) {model:.4} (score {:.3})",
            model / reference
        );
    }
    Ok(())
}

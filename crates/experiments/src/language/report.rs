//! `report.md` of the language experiment: settings, the n-gram score, and
//! per model its losses, scores and how each similarity matrix looks.

use std::fmt::Write as _;

use super::{ModelOutcome, Outcome, Settings};

/// The whole `report.md`.
pub(super) fn render(o: &Outcome, s: &Settings, quick: bool) -> String {
    let mut md = String::new();
    header(&mut md, o, s, quick);
    for m in &o.models {
        model(&mut md, m);
    }
    md
}

/// Title, models, training and what the metrics measure.
fn header(md: &mut String, o: &Outcome, s: &Settings, quick: bool) {
    let _ = writeln!(md, "# n-gram language models with bilinear attention\n");
    let _ = writeln!(
        md,
        "Corpus: {}, vocabulary {} characters, context {}. Transformers of bilinear components \
         (d_model {}, {} heads × {}, MLP hidden {}, residual scale {}, causal mask, rotary), \
         {} and {} layer(s); AdamW lr {} (warm-up, cosine decay), weight decay {}, batch {}, \
         {} steps{}, {} log-spaced checkpoints. Wall time {:.0} s.\n",
        s.corpus,
        s.vocab,
        s.context,
        s.d_model,
        s.heads,
        s.head_dim,
        s.mlp_hidden,
        s.residual_scale,
        s.layers[0],
        s.layers[1],
        s.learning_rate,
        s.weight_decay,
        s.batch_size,
        s.steps,
        if quick { " (**--quick**)" } else { "" },
        s.checkpoints,
        o.seconds_total
    );
    let _ = writeln!(
        md,
        "**n-gram score** (EXPERIMENTS §4, after the tensor-similarity paper): the model's held-out \
         cross-entropy divided by that of an interpolated Kneser–Ney n-gram model fitted to the \
         training text (Chen & Goodman 1999), both on the same held-out windows and on positions \
         with n−1 tokens of context inside the window. Below 1: the model beats the n-gram model.\n"
    );
    let _ = writeln!(
        md,
        "The similarity `gaussian` is the exact Gaussian functional similarity (uncentred, MATH.md §3) \
         through attention on {} independent N(0, I) input positions. Output cosines flatten all \
         samples × positions × vocabulary into one cosine: on {} held-out windows (one-hot tokens), on {} \
         Gaussian sequences (N(0, I) in token space), and on residual-stream activations (the same \
         held-out windows through the final checkpoint's embedding, fed to every checkpoint's blocks \
         and unembedding, so all checkpoints see one input set).\n",
        s.gaussian_positions, s.gaussian_samples, s.gaussian_samples
    );
}

/// One model's losses, scores and matrix summaries.
fn model(md: &mut String, m: &ModelOutcome) {
    let _ = writeln!(md, "## {} layer(s)\n", m.layers);
    let _ = writeln!(
            md,
            "Final held-out loss {:.3} nats; n-gram losses 2/3/4: {:.3} / {:.3} / {:.3}; final scores \
             2/3/4-gram: {:.3} / {:.3} / {:.3}. Training {:.0} s ({:.1} steps/s), matrices and figures \
             {:.0} s. Gaussian metric: {}.\n",
            m.final_heldout_loss,
            m.ngram_losses[0],
            m.ngram_losses[1],
            m.ngram_losses[2],
            m.final_ngram_scores[0],
            m.final_ngram_scores[1],
            m.final_ngram_scores[2],
            m.seconds_training,
            m.steps_per_second,
            m.seconds_matrices,
            m.gaussian_exactness
        );
    let _ = writeln!(
            md,
            "| metric | mean off-diagonal | first vs last | mean consecutive | best two-block split (contrast) |\n|---|---|---|---|---|"
        );
    for x in &m.metrics {
        let split = match (x.best_split_step, x.best_split_contrast) {
            (Some(st), Some(c)) => format!("step {st} ({c:.3})"),
            _ => "—".into(),
        };
        let _ = writeln!(
            md,
            "| {} | {:.3} | {:.3} | {:.3} | {} |",
            x.metric, x.mean_off_diagonal, x.first_vs_last, x.mean_consecutive, split
        );
    }
    let _ = writeln!(
            md,
            "\n![{} layer(s)](figures/{}-layer.png)\n\n![{} layer(s), losses](figures/{}-layer-loss.png)\n",
            m.layers, m.layers, m.layers, m.layers
        );
}

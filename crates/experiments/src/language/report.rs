//! `report.md` of the language experiment: settings, the n-gram score, and
//! per model its losses, scores and how each similarity matrix looks.

use std::fmt::Write as _;

use super::{ModelOutcome, Outcome, Settings};

/// The paper's final 2-, 3- and 4-gram scores (its 2-layer model on the Pile).
const PAPER_NGRAM_SCORES: [f64; 3] = [1.11, 2.06, 2.37];

/// The whole `report.md`.
pub(super) fn render(o: &Outcome, s: &Settings) -> String {
    let mut md = String::new();
    header(&mut md, o, s);
    for m in &o.models {
        model(&mut md, m, s);
    }
    md
}

/// Title, models, training and what the metrics measure.
fn header(md: &mut String, o: &Outcome, s: &Settings) {
    let _ = writeln!(md, "# n-gram language models with bilinear attention\n");
    let layers: Vec<String> = s.layers.iter().map(usize::to_string).collect();
    let _ = writeln!(
        md,
        "Preset **{}**. Corpus: {}, byte-pair vocabulary of {} tokens learnt on the training text \
         (the last 10% held out), context {}. Transformers of the paper's family: attention-only \
         bilinear blocks (d_model {}, {} heads × {}, biases on q/k only, causal mask, rotary), each \
         added to the stream as `x + {}·attention(x)`, with {} layer(s); AdamW lr {} ({} warm-up \
         steps, cosine decay), weight decay {}, batch {}, {} steps; step 0 and log-spaced \
         checkpoints from step {} ({} distinct of {} requested). Wall time {:.0} s.\n",
        s.preset,
        s.corpus,
        s.vocab,
        s.context,
        s.d_model,
        s.heads,
        s.head_dim,
        s.attention_scale,
        layers.join(" and "),
        s.learning_rate,
        s.warmup_steps,
        s.weight_decay,
        s.batch_size,
        s.steps,
        s.first_checkpoint,
        o.models.first().map_or(0, |m| m.checkpoints),
        s.checkpoints,
        o.seconds_total
    );
    let _ = writeln!(
        md,
        "**n-gram score** (the paper's, EXPERIMENTS §4): `l_test(n) / l_gram(n)`, both the model's own \
         losses. `l_test(n)` is its cross-entropy of the n-th token of {} held-out sequences given \
         the n−1 before it; `l_gram(n)` its cross-entropy of the last token of the {} most common \
         n-grams of the training tokens given their first n−1. It starts near 1 and rises as the \
         model learns the common n-grams: higher is better. The paper prepends a BOS token to both; \
         this corpus has no documents and the model no BOS, so both are read at position n−1 of a \
         sequence that starts at the first token.\n",
        s.ngram_sequences, s.common_ngrams
    );
    let _ = writeln!(
        md,
        "**Kneser–Ney ratio** (tensim's own, not the paper's): the model's held-out cross-entropy \
         divided by that of an interpolated Kneser–Ney n-gram model fitted to the training tokens \
         (Chen & Goodman 1999), both on the same held-out windows and on positions with n−1 tokens \
         of context inside the window. Below 1: the model beats the n-gram model.\n"
    );
    let _ = writeln!(
        md,
        "The similarity `gaussian` is the Gaussian functional similarity (uncentred, MATH.md §3.7) \
         through attention on {} independent N(0, I) token positions: exact moments for one \
         attention layer, Gaussian closure from the second layer on (MATH.md §3.7.9). Every model's \
         section checks it against a Monte-Carlo estimate of the same cosine at a few pairs of \
         checkpoints. Output cosines flatten all samples × positions × vocabulary into one cosine: \
         on {} held-out windows (one-hot tokens), on {} Gaussian sequences of {} positions (N(0, I) \
         in token space; a different quantity from `gaussian`, which reads {} positions), and on \
         residual-stream activations (the same held-out windows through the final checkpoint's \
         embedding, fed to every checkpoint's blocks and unembedding, so all checkpoints see one \
         input set).\n",
        s.gaussian_positions,
        s.gaussian_samples,
        s.gaussian_samples,
        s.context,
        s.gaussian_positions
    );
}

/// One model's losses, scores and matrix summaries.
fn model(md: &mut String, m: &ModelOutcome, s: &Settings) {
    let _ = writeln!(md, "## {} layer(s)\n", m.layers);
    let _ = writeln!(
        md,
        "Final held-out loss {:.3} nats. Training {:.0} s ({:.1} steps/s), matrices and figures \
         {:.0} s. Gaussian metric: {}.\n",
        m.final_heldout_loss,
        m.seconds_training,
        m.steps_per_second,
        m.seconds_matrices,
        m.gaussian_exactness
    );
    let _ = writeln!(
        md,
        "| n | n-gram score (final) | paper (final) | Kneser–Ney loss | Kneser–Ney ratio (final) |\n|---|---|---|---|---|"
    );
    for k in 0..3 {
        let _ = writeln!(
            md,
            "| {} | {:.3} | {:.2} | {:.3} | {:.3} |",
            k + 2,
            m.final_ngram_scores[k],
            PAPER_NGRAM_SCORES[k],
            m.ngram_losses[k],
            m.final_kn_ratios[k]
        );
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "`gaussian` against a Monte-Carlo estimate of the same cosine (the same {} positions of \
         N(0, I) tokens, logits of all positions flattened; ± one delta-method standard error). The \
         last column is the largest share one sequence has of either model's summed squared logits: \
         near 1, a single draw dominates and the standard error cannot be trusted.\n",
        s.gaussian_positions
    );
    let _ = writeln!(
        md,
        "| checkpoints | `gaussian` ({}) | Monte-Carlo | samples | difference / SE | largest one-sequence share |\n|---|---|---|---|---|---|",
        if m.gaussian_exactness == "exact" { "exact" } else { "closure" }
    );
    for c in &m.monte_carlo_checks {
        let _ = writeln!(
            md,
            "| step {} vs {} | {:.3} | {} | {} | {} | {:.3} |",
            c.step_a,
            c.step_b,
            c.moments,
            if c.monte_carlo.is_finite() {
                format!("{:.3} ± {:.3}", c.monte_carlo, c.std_error)
            } else {
                "not resolvable (logits overflow f64)".into()
            },
            c.samples,
            if c.z().is_finite() {
                format!("{:+.1}", c.z())
            } else {
                "—".into()
            },
            c.largest_share
        );
    }
    let _ = writeln!(md);
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

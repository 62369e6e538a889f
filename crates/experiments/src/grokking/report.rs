//! `report.md` of the grokking experiment: learning curves, frequencies,
//! and the phase change seen in the similarity matrix.

use std::fmt::Write as _;

use super::{Outcome, Record, Settings};
use crate::markdown::three_column_table;

/// `step N`, or "not reached".
fn step(x: Option<u64>) -> String {
    x.map_or_else(|| "not reached".to_string(), |v| format!("step {v}"))
}

/// The whole `report.md`.
pub(super) fn render(o: &Outcome, s: &Settings, quick: bool, records: &[Record]) -> String {
    let mut md = String::new();
    header(&mut md, o, s, quick);
    curves_and_frequencies(&mut md, o);
    phase_change(&mut md, o);
    figure_and_timing(&mut md, o, records);
    md
}

/// Title, task, model and training.
fn header(md: &mut String, o: &Outcome, s: &Settings, quick: bool) {
    let _ = writeln!(
        md,
        "# Grokking modular addition: the phase change seen from the weights\n"
    );
    let _ = writeln!(
        md,
        "Task `(a + b) mod {p}`, input one-hot(a) ⊕ one-hot(b) ({} dims), {:.0}% of the {} pairs for \
         training; model `Bilinear({} → {}, no bias)` then `Linear({} → {p})` (one bilinear form). AdamW lr {}, \
         weight decay {}, batch {}, {} steps{}; {} checkpoints at `int(steps·(i/99)^5)`. \
         Similarity: `tensor` (weight space, MATH.md §2). Wall time {:.0} s ({:.0} steps/s in training).\n",
        2 * s.modulus,
        100.0 * s.train_fraction,
        s.modulus * s.modulus,
        2 * s.modulus,
        s.hidden,
        s.hidden,
        s.learning_rate,
        s.weight_decay,
        s.batch_size,
        s.steps,
        if quick { " (**--quick**)" } else { "" },
        o.checkpoints,
        o.seconds_total,
        o.steps_per_second,
        p = s.modulus
    );
}

/// When the curves cross their levels, and the dominant frequencies.
fn curves_and_frequencies(md: &mut String, o: &Outcome) {
    let _ = writeln!(md, "## Learning curves\n");
    let final_accuracy = format!(
        "{:.3} / {:.3}",
        o.final_train_accuracy, o.final_validation_accuracy
    );
    let rows = [
        (
            "train accuracy ≥ 0.99",
            step(o.train_crosses_099),
            "~1k steps",
        ),
        (
            "validation accuracy ≥ 0.5",
            step(o.validation_crosses_05),
            "—",
        ),
        (
            "validation accuracy ≥ 0.99",
            step(o.validation_crosses_099),
            "13,168 (the paper's run)",
        ),
        (
            "final train / validation accuracy",
            final_accuracy,
            "1.0 / 1.0",
        ),
    ];
    three_column_table(md, "| event | this run | paper |", &rows);
    let _ = writeln!(md, "## Frequencies read from the weights\n");
    let _ = writeln!(
        md,
        "Per class: the symmetrised 226×226 interaction matrix, its 4 eigenvectors of largest |λ|, \
         |DFT| of their a-half weighted by |λ|, normalised per class and averaged over classes. \
         Dominant frequencies at the last checkpoint:\n"
    );
    let _ = writeln!(md, "| frequency | share |\n|---|---|");
    for (k, v) in &o.dominant_frequencies {
        let _ = writeln!(md, "| {k} | {v:.3} |");
    }
}

/// The detected boundary against the grokking step.
fn phase_change(md: &mut String, o: &Outcome) {
    let _ = writeln!(md, "\n## Phase change in the similarity matrix\n");
    let grok = o.validation_crosses_05;
    let _ = writeln!(
        md,
        "The split of the checkpoint sequence that maximises (within-block − across-block) tensor \
         similarity starts its second block at **step {}** (contrast {:.3}). Validation accuracy first \
         reaches 0.5 at {}{}.\n",
        o.detected_phase_change_step,
        o.phase_change_contrast,
        step(grok),
        match grok {
            Some(g) => {
                let ratio = (o.detected_phase_change_step.max(1) as f64 / g.max(1) as f64).log10().abs();
                format!(
                    "; the detected boundary is within a factor {:.1} of it on the log-step axis ({})",
                    10f64.powf(ratio),
                    if ratio < 0.5 { "a phase change near the grokking step" } else { "not close to the grokking step" }
                )
            }
            None => String::new(),
        }
    );
}

/// The figure, timing and checkpoint range.
fn figure_and_timing(md: &mut String, o: &Outcome, records: &[Record]) {
    let _ = writeln!(md, "## Figure\n\n![grokking](figures/grokking.png)\n");
    let _ = writeln!(md, "Rows: accuracy (log step); log10 loss; tensor similarity (black line: detected boundary); frequency × checkpoint.\n");
    let _ = writeln!(
        md,
        "## Timing\n\n| stage | seconds |\n|---|---|\n| training (incl. checkpoint evaluation) | {:.1} |\n| frequencies + similarity + figures | {:.1} |\n| total | {:.1} |\n",
        o.seconds_training, o.seconds_analysis, o.seconds_total
    );
    let _ = writeln!(
        md,
        "Checkpoints: {} (first step {}, last step {}).",
        records.len(),
        records[0].step,
        records[records.len() - 1].step
    );
}

//! Held-out cross-entropy of the n-gram baselines on the bundled Shakespeare
//! corpus: `cargo run --release -p tensim-data --example ngram_baselines`.
//!
//! Prints the vocabulary, the split, and for n = 1..=4 and both smoothings
//! the mean next-token cross-entropy (nats) on the evaluation windows of
//! the held-out 10%, with the time each model took to fit.

use std::time::Instant;

use tensim_data::{
    eval_windows, load_text_dataset, split_train_val, CharTokenizer, NgramModel, Smoothing,
    DEFAULT_VAL_FRACTION, MAX_VOCAB,
};

/// The window length of the evaluation windows.
const CONTEXT: usize = 128;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let text = load_text_dataset("shakespeare")?;
    let tokenizer = CharTokenizer::from_text(&text, MAX_VOCAB);
    let tokens = tokenizer.encode(&text);
    let split = split_train_val(&tokens, DEFAULT_VAL_FRACTION);
    println!(
        "corpus: {} characters, vocab {} (load + tokenize {:.2} s)",
        text.len(),
        tokenizer.vocab_size(),
        start.elapsed().as_secs_f64()
    );
    println!(
        "symbols: {:?}",
        tokenizer.symbols().iter().collect::<String>()
    );
    println!(
        "train {} tokens, held out {} tokens; windows of {CONTEXT}, ln V = {:.4}",
        split.train.len(),
        split.val.len(),
        (tokenizer.vocab_size() as f64).ln()
    );
    let windows = eval_windows(&split.val, CONTEXT, None);
    for smoothing in [Smoothing::default_add_k(), Smoothing::KneserNey] {
        for order in 1..=4 {
            let fit_start = Instant::now();
            let model = NgramModel::fit(&split.train, order, tokenizer.vocab_size(), smoothing);
            let fit_s = fit_start.elapsed().as_secs_f64();
            let eval_start = Instant::now();
            let loss = model.mean_cross_entropy(&windows);
            println!(
                "{smoothing:?} n={order}: held-out cross-entropy {loss:.4} nats \
                 (fit {fit_s:.2} s, eval {:.2} s, discounts {:?})",
                eval_start.elapsed().as_secs_f64(),
                model.discounts()
            );
        }
    }
    Ok(())
}

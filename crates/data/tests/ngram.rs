//! n-gram baselines: normalisation, hand-computed values, and the ordering
//! of the held-out losses on the real corpus.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tensim_data::ngram::DEFAULT_ADD_K;
use tensim_data::{
    eval_windows, load_text_dataset, most_common_ngrams, ngram_score, split_train_val, Batch,
    CharTokenizer, NgramModel, Smoothing, DEFAULT_VAL_FRACTION, MAX_VOCAB,
};

const SMOOTHINGS: [Smoothing; 2] = [Smoothing::AddK { k: DEFAULT_ADD_K }, Smoothing::KneserNey];

/// A skewed pseudo-random stream with some structure (each token depends on
/// the one before), so that many n-grams are seen and many are not.
fn stream(len: usize, vocab: u32, seed: u64) -> Vec<u32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tokens = vec![0u32];
    while tokens.len() < len {
        let prev = *tokens.last().unwrap();
        let next = if rng.random_bool(0.6) {
            (prev * 3 + 1) % vocab
        } else {
            let r: f64 = rng.random();
            ((r * r * r) * f64::from(vocab)) as u32
        };
        tokens.push(next);
    }
    tokens
}

fn assert_normalised(model: &NgramModel, context: &[u32]) {
    let p = model.distribution(context);
    assert_eq!(p.len(), model.vocab_size());
    let sum: f64 = p.iter().sum();
    assert!(
        (sum - 1.0).abs() < 1e-12,
        "{:?} n={} context {context:?}: sum {sum}",
        model.smoothing(),
        model.order()
    );
    for (w, &pw) in p.iter().enumerate() {
        assert!(pw > 0.0, "zero probability for {w}");
        let single = model.prob(context, w as u32);
        assert!(
            (single - pw).abs() < 1e-15,
            "prob {single} vs distribution {pw}"
        );
    }
}

#[test]
fn distributions_sum_to_one_for_random_contexts() {
    let mut rng = StdRng::seed_from_u64(5);
    for vocab in [3u32, 17, 59] {
        let tokens = stream(20_000, vocab, u64::from(vocab));
        for smoothing in SMOOTHINGS {
            for order in 1..=4 {
                let model = NgramModel::fit(&tokens, order, vocab as usize, smoothing);
                for _ in 0..40 {
                    // Random contexts of every length, seen and unseen.
                    let len = rng.random_range(0..=order + 1);
                    let context: Vec<u32> = (0..len).map(|_| rng.random_range(0..vocab)).collect();
                    assert_normalised(&model, &context);
                }
                // Contexts taken from the stream (seen ones).
                for _ in 0..10 {
                    let end = rng.random_range(order..tokens.len());
                    assert_normalised(&model, &tokens[end + 1 - order..end]);
                }
            }
        }
    }
}

#[test]
fn large_context_spaces_use_the_hashed_index() {
    // 200^3 contexts of a 4-gram exceed the direct index; results must still
    // be proper distributions and agree with counting by hand.
    let tokens = stream(30_000, 200, 9);
    for smoothing in SMOOTHINGS {
        let model = NgramModel::fit(&tokens, 4, 200, smoothing);
        for end in [3usize, 1000, 29_999] {
            assert_normalised(&model, &tokens[end - 3..end]);
        }
    }
    let k = 0.5;
    let model = NgramModel::fit(&tokens, 4, 200, Smoothing::AddK { k });
    let context = &tokens[500..503];
    let mut counts = vec![0u32; 200];
    for w in tokens.windows(4) {
        if w[..3] == context[..] {
            counts[w[3] as usize] += 1;
        }
    }
    let total: u32 = counts.iter().sum();
    for (w, &c) in counts.iter().enumerate() {
        let expected = (f64::from(c) + k) / (f64::from(total) + k * 200.0);
        assert!((model.prob(context, w as u32) - expected).abs() < 1e-15);
    }
}

#[test]
fn add_k_by_hand() {
    // Bigrams: 0→1 twice, 1→0 once, 1→2 once.
    let tokens = [0, 1, 0, 1, 2];
    let model = NgramModel::fit(&tokens, 2, 3, Smoothing::AddK { k: 0.5 });
    let p = model.distribution(&[0]);
    let expected = [0.5 / 3.5, 2.5 / 3.5, 0.5 / 3.5];
    for (a, b) in p.iter().zip(expected) {
        assert!((a - b).abs() < 1e-15, "{p:?}");
    }
    // Only the last token of a longer context matters.
    assert_eq!(model.distribution(&[2, 2, 0]), p);
    // Unseen context: uniform. Empty context: add-k unigram (2, 2, 1 of 5).
    assert_eq!(model.distribution(&[2]), vec![1.0 / 3.0; 3]);
    let unigram = model.distribution(&[]);
    assert!((unigram[2] - 1.5 / 6.5).abs() < 1e-15, "{unigram:?}");
}

#[test]
fn kneser_ney_by_hand() {
    let tokens = [0, 1, 0, 1, 2];
    let model = NgramModel::fit(&tokens, 2, 3, Smoothing::KneserNey);
    // Unigram counts 2, 2, 1: n1 = 1, n2 = 2, D1 = 1/5. Bigram counts
    // 2, 1, 1: n1 = 2, n2 = 1, D2 = 1/2.
    assert_eq!(model.discounts(), &[0.2, 0.5]);
    // Continuation counts N(• w) = 1, 1, 1 (D = 1 clamped to 0.95), so the
    // lower level is uniform: (1 − 0.95)/3 + 0.95·3/3·1/3 = 1/3.
    // After 1 (counts 1, 0, 1; total 2; 2 distinct):
    //   P(0) = (1 − 0.5)/2 + 0.5·2/2·1/3 = 1/4 + 1/6, P(1) = 1/6, P(2) = P(0).
    let p = model.distribution(&[1]);
    let expected = [0.25 + 1.0 / 6.0, 1.0 / 6.0, 0.25 + 1.0 / 6.0];
    for (a, b) in p.iter().zip(expected) {
        assert!((a - b).abs() < 1e-12, "{p:?}");
    }
    // Unseen context: the continuation level alone (uniform here).
    for a in model.distribution(&[2]) {
        assert!((a - 1.0 / 3.0).abs() < 1e-12);
    }
    // Empty context: the ordinary unigram counts with D1 = 0.2:
    // (2 − 0.2)/5 + 0.2·3/5·1/3 = 0.4, 0.4, then 0.8/5 + 0.04 = 0.2.
    let p = model.distribution(&[]);
    for (a, b) in p.iter().zip([0.4, 0.4, 0.2]) {
        assert!((a - b).abs() < 1e-12, "{p:?}");
    }
}

#[test]
fn cross_entropy_scores_positions_with_full_context() {
    let tokens = [0, 1, 0, 1, 2];
    let model = NgramModel::fit(&tokens, 3, 3, Smoothing::AddK { k: 0.5 });
    assert_eq!(model.first_scored_position(), 1);
    let windows = Batch {
        inputs: vec![vec![0, 1, 0], vec![1, 2, 2]],
        targets: vec![vec![1, 0, 1], vec![2, 2, 0]],
    };
    // Positions 1 and 2 of each row, with the two tokens before the target.
    let expected = -(model.prob(&[0, 1], 0).ln()
        + model.prob(&[1, 0], 1).ln()
        + model.prob(&[1, 2], 2).ln()
        + model.prob(&[2, 2], 0).ln())
        / 4.0;
    assert!((model.mean_cross_entropy(&windows) - expected).abs() < 1e-12);
    let unigram = NgramModel::fit(&tokens, 1, 3, Smoothing::KneserNey);
    assert_eq!(unigram.first_scored_position(), 0);
    assert_eq!(ngram_score(3.0, 2.0), 1.5);
}

#[test]
fn held_out_losses_on_shakespeare_are_ordered() {
    let text = load_text_dataset("shakespeare").unwrap();
    let tokenizer = CharTokenizer::from_text(&text, MAX_VOCAB);
    let vocab = tokenizer.vocab_size();
    let split = split_train_val(&tokenizer.encode(&text), DEFAULT_VAL_FRACTION);
    let windows = eval_windows(&split.val, 128, None);
    let ln_v = (vocab as f64).ln();
    for smoothing in SMOOTHINGS {
        let losses: Vec<f64> = (1..=2)
            .map(|n| {
                NgramModel::fit(&split.train, n, vocab, smoothing).mean_cross_entropy(&windows)
            })
            .collect();
        // Measured: 3.062 (1-gram), 2.499 (2-gram) with either smoothing.
        assert!(
            losses[1] < losses[0] && losses[0] < ln_v,
            "{smoothing:?}: {losses:?}, ln V {ln_v}"
        );
        assert!(
            (losses[0] - 3.06).abs() < 0.05 && (losses[1] - 2.50).abs() < 0.05,
            "{losses:?}"
        );
    }
}

#[test]
fn higher_orders_keep_improving_on_a_slice() {
    // 3- and 4-grams on the first 1.5 M characters (held-out: the last 10%).
    let text = load_text_dataset("shakespeare").unwrap();
    let tokenizer = CharTokenizer::from_text(&text, MAX_VOCAB);
    let split = split_train_val(&tokenizer.encode(&text[..1_500_000]), DEFAULT_VAL_FRACTION);
    let windows = eval_windows(&split.val, 64, None);
    let losses: Vec<f64> = (1..=4)
        .map(|n| {
            NgramModel::fit(
                &split.train,
                n,
                tokenizer.vocab_size(),
                Smoothing::KneserNey,
            )
            .mean_cross_entropy(&windows)
        })
        .collect();
    assert!(losses.windows(2).all(|w| w[1] < w[0]), "{losses:?}");
}

#[test]
fn most_common_ngrams_by_hand() {
    // 1 2 1 2 1 3: bigrams (1,2)×2, (2,1)×2, (1,3)×1.
    let tokens = [1, 2, 1, 2, 1, 3];
    let top = most_common_ngrams(&tokens, 2, 2);
    assert_eq!(top, vec![(vec![1, 2], 2), (vec![2, 1], 2)]);
    let all = most_common_ngrams(&tokens, 2, 10);
    assert_eq!(all.len(), 3);
    assert_eq!(all[2], (vec![1, 3], 1));
    assert_eq!(
        most_common_ngrams(&tokens, 6, 5),
        vec![(tokens.to_vec(), 1)]
    );
    assert!(most_common_ngrams(&tokens, 7, 5).is_empty());
}

#[test]
fn most_common_ngrams_match_brute_force_counting() {
    let tokens = stream(3_000, 7, 11);
    for n in 1..=4 {
        // Every distinct n-gram, counted by scanning the whole stream.
        let mut distinct: Vec<Vec<u32>> = tokens.windows(n).map(<[u32]>::to_vec).collect();
        distinct.sort();
        distinct.dedup();
        let mut brute: Vec<(Vec<u32>, usize)> = distinct
            .into_iter()
            .map(|g| {
                let c = (0..=tokens.len() - n)
                    .filter(|&i| tokens[i..i + n] == g[..])
                    .count();
                (g, c)
            })
            .collect();
        brute.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for k in [1, 5, 40, 10_000] {
            let expected: Vec<_> = brute.iter().take(k).cloned().collect();
            assert_eq!(
                most_common_ngrams(&tokens, n, k),
                expected,
                "n = {n}, k = {k}"
            );
        }
    }
}

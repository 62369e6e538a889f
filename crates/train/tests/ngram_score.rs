//! The paper's n-gram score (`tensim_data::ngram_score` of
//! `last_token_loss` on held-out sequences and on the most common n-grams)
//! against a brute-force computation on a tiny example: n-grams counted by
//! scanning, log-softmax of the core's f64 logits, one sequence at a time.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tensim_core::transformer::{AttentionBias, BlockShape, TransformerShape};
use tensim_core::Residual;
use tensim_data::{most_common_ngrams, ngram_score};
use tensim_train::language_model::last_token_loss;
use tensim_train::{Device, TransformerNetwork};

/// −ln softmax(logits)[target] of the last position of `context`, by the core in f64.
fn brute_loss(model: &tensim_core::transformer::Transformer, context: &[u32], target: u32) -> f64 {
    let logits = model.forward_tokens(context).unwrap();
    let last = logits.nrows() - 1;
    let row: Vec<f64> = (0..logits.ncols()).map(|j| logits[(last, j)]).collect();
    let top = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let log_z = top + row.iter().map(|v| (v - top).exp()).sum::<f64>().ln();
    log_z - row[target as usize]
}

#[test]
fn paper_ngram_score_matches_brute_force() {
    let vocab = 6;
    let block = BlockShape::attention_only(AttentionBias::QK, Residual::Add(0.35));
    let shape = TransformerShape::causal(vocab, 8, (2, 4), 5, vec![block; 2]);
    let net = TransformerNetwork::init(&shape, 3, &Device::Cpu).unwrap();
    let model = net.to_transformer().unwrap();

    let mut rng = StdRng::seed_from_u64(9);
    // A skewed training stream so that some n-grams are much more common.
    let train: Vec<u32> = (0..400)
        .map(|_| {
            let r: f64 = rng.random();
            (r * r * vocab as f64) as u32
        })
        .collect();
    let held_out: Vec<Vec<u32>> = (0..30)
        .map(|_| (0..5).map(|_| rng.random_range(0..vocab as u32)).collect())
        .collect();

    for n in [2usize, 3, 4] {
        let k = 7;
        // Brute force: count every n-gram by scanning, rank by count then
        // lexicographically, average the core's losses one sequence at a time.
        let mut counts: BTreeMap<Vec<u32>, usize> = BTreeMap::new();
        for i in 0..=train.len() - n {
            *counts.entry(train[i..i + n].to_vec()).or_default() += 1;
        }
        let mut ranked: Vec<(Vec<u32>, usize)> = counts.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(k);
        let l_gram = ranked
            .iter()
            .map(|(g, _)| brute_loss(&model, &g[..n - 1], g[n - 1]))
            .sum::<f64>()
            / k as f64;
        let l_test = held_out
            .iter()
            .map(|s| brute_loss(&model, &s[..n - 1], s[n - 1]))
            .sum::<f64>()
            / held_out.len() as f64;
        let expected = l_test / l_gram;

        // The pipeline of the language experiment.
        let common: Vec<Vec<u32>> = most_common_ngrams(&train, n, k)
            .into_iter()
            .map(|(g, _)| g)
            .collect();
        assert_eq!(common.len(), k);
        let firsts: Vec<Vec<u32>> = held_out.iter().map(|s| s[..n].to_vec()).collect();
        let got = ngram_score(
            last_token_loss(&net, &firsts).unwrap(),
            last_token_loss(&net, &common).unwrap(),
        );
        assert!(
            (got - expected).abs() < 1e-5 * expected,
            "n = {n}: pipeline {got} vs brute force {expected}"
        );
    }
}

#[test]
fn last_token_loss_rejects_ragged_and_short_rows() {
    let block = BlockShape::attention_only(AttentionBias::QK, Residual::Add(0.35));
    let shape = TransformerShape::causal(5, 4, (1, 4), 4, vec![block]);
    let net = TransformerNetwork::init(&shape, 1, &Device::Cpu).unwrap();
    assert!(last_token_loss(&net, &[vec![1]]).is_err());
    assert!(last_token_loss(&net, &[vec![1, 2], vec![1, 2, 3]]).is_err());
    assert!(last_token_loss(&net, &[vec![1, 2, 3]]).is_ok());
}

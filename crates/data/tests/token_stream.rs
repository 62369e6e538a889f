//! Train/validation split, seeded batches and evaluation windows.

use tensim_data::{eval_windows, split_train_val, BatchSampler, DEFAULT_VAL_FRACTION};

#[test]
fn split_holds_out_the_last_tenth() {
    let tokens: Vec<u32> = (0..1005).collect();
    let split = split_train_val(&tokens, DEFAULT_VAL_FRACTION);
    // round(1005 · 0.1) = 101 (100.5 rounds away from zero).
    assert_eq!(split.val.len(), 101);
    assert_eq!(split.train.len(), 904);
    assert_eq!(split.train[..], tokens[..904]);
    assert_eq!(split.val[..], tokens[904..]);
    assert_eq!(split, split_train_val(&tokens, DEFAULT_VAL_FRACTION));
    assert!(split_train_val(&tokens, 0.0).val.is_empty());
    assert!(split_train_val(&tokens, 1.0).train.is_empty());
}

#[test]
fn sampler_is_deterministic_by_seed_and_targets_shift_inputs() {
    let tokens: Vec<u32> = (0..500u32).map(|i| (i * 7 + i / 3) % 61).collect();
    let context = 16;
    let mut a = BatchSampler::new(&tokens, context, 42);
    let mut b = BatchSampler::new(&tokens, context, 42);
    let mut c = BatchSampler::new(&tokens, context, 43);
    let (a1, a2) = (a.next_batch(8), a.next_batch(8));
    assert_eq!(a1, b.next_batch(8));
    assert_eq!(a2, b.next_batch(8));
    assert_ne!(a1, a2);
    assert_ne!(a1, c.next_batch(8));
    for batch in [&a1, &a2] {
        assert_eq!(batch.len(), 8);
        for (inputs, targets) in batch.inputs.iter().zip(&batch.targets) {
            assert_eq!(inputs.len(), context);
            assert_eq!(targets.len(), context);
            assert_eq!(inputs[1..], targets[..context - 1]);
            // The row is a window of the stream.
            let start = tokens
                .windows(context + 1)
                .position(|w| w[..context] == inputs[..] && w[context] == targets[context - 1]);
            assert!(start.is_some());
        }
    }
}

#[test]
fn sampler_reaches_both_ends_of_the_stream() {
    let tokens: Vec<u32> = (0..10).collect();
    let mut sampler = BatchSampler::new(&tokens, 4, 7);
    let batch = sampler.next_batch(400);
    let firsts: std::collections::BTreeSet<u32> = batch.inputs.iter().map(|r| r[0]).collect();
    // Starts 0..=5: the last window's last target is token 9.
    assert_eq!(
        firsts.into_iter().collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5]
    );
}

#[test]
#[should_panic(expected = "too short")]
fn sampler_needs_a_window_and_a_target() {
    let tokens = [1u32, 2, 3];
    let _ = BatchSampler::new(&tokens, 3, 0);
}

#[test]
fn eval_windows_cover_the_stream_once() {
    let tokens: Vec<u32> = (0..23).collect();
    let windows = eval_windows(&tokens, 5, None);
    // Starts 0, 5, 10, 15; a window at 20 would need token 25.
    assert_eq!(windows.len(), 4);
    let targets: Vec<u32> = windows.targets.concat();
    assert_eq!(targets, (1..21).collect::<Vec<u32>>());
    assert_eq!(windows.inputs[1], vec![5, 6, 7, 8, 9]);
    assert_eq!(eval_windows(&tokens, 5, Some(2)).len(), 2);
    assert!(eval_windows(&tokens[..5], 5, None).is_empty());
}

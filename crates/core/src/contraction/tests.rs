//! Tests: the contraction engine equals a naive einsum on random networks, including
//! hyperedges (indices shared by three tensors or kept in the output).

use super::{
    contract, contract_pair, einsum_naive, greedy_plan, optimal_plan, Label, Plan, Tensor,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random_tensor(labels: &[Label], dims_of: &dyn Fn(Label) -> usize, rng: &mut StdRng) -> Tensor {
    let dims: Vec<usize> = labels.iter().map(|&l| dims_of(l)).collect();
    let n = dims.iter().product();
    Tensor::new(
        labels.to_vec(),
        dims,
        (0..n).map(|_| rng.random_range(-1.0..1.0)).collect(),
    )
    .unwrap()
}

fn assert_same(a: &Tensor, b: &Tensor) {
    assert_eq!(a.labels, b.labels);
    assert_eq!(a.dims, b.dims);
    for (x, y) in a.data.iter().zip(&b.data) {
        assert!((x - y).abs() <= 1e-10 * y.abs().max(1.0), "{x} vs {y}");
    }
}

#[test]
fn random_networks_match_naive_einsum() {
    let mut rng = StdRng::seed_from_u64(11);
    let dims_of = |l: Label| 2 + (l as usize * 7) % 3;
    for trial in 0..40 {
        let labels: Vec<Label> = (0..7).collect();
        let tensors: Vec<Tensor> = (0..rng.random_range(2..6))
            .map(|_| {
                let mut ls: Vec<Label> = labels
                    .iter()
                    .copied()
                    .filter(|_| rng.random_bool(0.4))
                    .collect();
                if ls.is_empty() {
                    ls.push(rng.random_range(0..7));
                }
                random_tensor(&ls, &dims_of, &mut rng)
            })
            .collect();
        let present: Vec<Label> = labels
            .iter()
            .copied()
            .filter(|l| tensors.iter().any(|t| t.labels.contains(l)))
            .collect();
        let mut output: Vec<Label> = present
            .iter()
            .copied()
            .filter(|_| rng.random_bool(0.3))
            .collect();
        output.reverse();
        let shapes: Vec<(Vec<Label>, Vec<usize>)> = tensors
            .iter()
            .map(|t| (t.labels.clone(), t.dims.clone()))
            .collect();
        let plan = greedy_plan(&shapes, &output);
        assert_eq!(plan.steps.len(), tensors.len() - 1);
        let fast = contract(&tensors, &output, &plan).unwrap();
        assert_same(&fast, &einsum_naive(&tensors, &output));
        let best = optimal_plan(&shapes, &output);
        assert_eq!(best.steps.len(), tensors.len() - 1);
        assert_same(
            &contract(&tensors, &output, &best).unwrap(),
            &einsum_naive(&tensors, &output),
        );
        // The plan depends on shapes only: reuse it with new numbers.
        let fresh: Vec<Tensor> = tensors
            .iter()
            .map(|t| random_tensor(&t.labels, &dims_of, &mut rng))
            .collect();
        assert_same(
            &contract(&fresh, &output, &plan).unwrap(),
            &einsum_naive(&fresh, &output),
        );
        let _ = trial;
    }
}

#[test]
fn a_matrix_product_with_a_batch_index() {
    // C[b,i,k] = Σ_j A[b,i,j] B[b,j,k]
    let mut rng = StdRng::seed_from_u64(3);
    let dims_of = |l: Label| [3, 4, 5, 2][l as usize];
    let a = random_tensor(&[3, 0, 1], &dims_of, &mut rng);
    let b = random_tensor(&[3, 1, 2], &dims_of, &mut rng);
    let c = contract_pair(&a, &b, &[3, 0, 2]).unwrap();
    assert_eq!(c.labels, vec![3, 0, 2]);
    assert_same(&c, &einsum_naive(&[a, b], &[3, 0, 2]));
}

#[test]
fn bad_networks_are_refused() {
    assert!(Tensor::new(vec![0, 0], vec![2, 2], vec![0.0; 4]).is_err());
    assert!(Tensor::new(vec![0], vec![3], vec![0.0; 2]).is_err());
    let a = Tensor::new(vec![0], vec![2], vec![1.0, 2.0]).unwrap();
    let b = Tensor::new(vec![0], vec![3], vec![1.0, 2.0, 3.0]).unwrap();
    assert!(contract_pair(&a, &b, &[])
        .unwrap_err()
        .to_string()
        .contains("dimension"));
}

/// Renaming labels so that some indices merge equals contracting the original
/// network with Kronecker deltas tying those indices together.
#[test]
fn relabeling_equals_contracting_with_kronecker_deltas() {
    let mut rng = StdRng::seed_from_u64(11);
    let dims_of = |l: Label| [3, 4, 3, 2, 3][l as usize];
    // Labels 0, 2 and 4 (all of size 3) become one index, 0.
    let map = |l: Label| if l == 2 || l == 4 { 0 } else { l };
    let network = vec![
        random_tensor(&[0, 1, 2], &dims_of, &mut rng),
        random_tensor(&[2, 3], &dims_of, &mut rng),
        random_tensor(&[4, 1, 3], &dims_of, &mut rng),
    ];
    let delta = |a: Label, b: Label| {
        Tensor::new(
            vec![a, b],
            vec![3, 3],
            (0..9)
                .map(|k| if k / 3 == k % 3 { 1.0 } else { 0.0 })
                .collect(),
        )
        .unwrap()
    };
    for output in [vec![0, 1], vec![3], vec![]] {
        let mut with_deltas = network.clone();
        with_deltas.push(delta(0, 2));
        with_deltas.push(delta(0, 4));
        let expected = einsum_naive(&with_deltas, &output);
        let merged: Vec<Tensor> = network
            .iter()
            .map(|t| t.relabeled(map).into_owned())
            .collect();
        assert_eq!(merged[0].labels, vec![0, 1]);
        assert_eq!(merged[2].labels, vec![0, 1, 3]);
        let got = einsum_naive(&merged, &output);
        assert_same(&got, &expected);
    }
    // Nothing renamed: borrowed; renamed without merging: same values.
    assert!(matches!(
        network[1].relabeled(|l| l),
        std::borrow::Cow::Borrowed(_)
    ));
    let renamed = network[1].relabeled(|l| l + 10);
    assert_eq!(renamed.labels, vec![12, 13]);
    assert_eq!(renamed.data, network[1].data);
}

#[test]
fn plan_cost_counts_the_gemms_of_a_matrix_chain() {
    // A[i,j] B[j,k] C[k,l] -> [i,l], dims i=2, j=3, k=5, l=7.
    let shapes = vec![
        (vec![0, 1], vec![2, 3]),
        (vec![1, 2], vec![3, 5]),
        (vec![2, 3], vec![5, 7]),
    ];
    // (A B) then (AB) C: 2·2·3·5 + 2·2·5·7 flops; largest is C (35 entries).
    let left = Plan {
        steps: vec![(0, 1), (0, 1)],
    };
    let cost = left.cost(&shapes, &[0, 3]);
    assert_eq!(cost.flops, 2.0 * 30.0 + 2.0 * 70.0);
    assert_eq!(cost.largest, 35);
    // A (B C): 2·3·5·7 + 2·2·3·7.
    let right = Plan {
        steps: vec![(1, 2), (0, 1)],
    };
    assert_eq!(right.cost(&shapes, &[0, 3]).flops, 2.0 * 105.0 + 2.0 * 42.0);
    // The optimal order is the cheaper one; a kept batch label counts once.
    let best = optimal_plan(&shapes, &[0, 3]);
    assert_eq!(best.cost(&shapes, &[0, 3]).flops, 200.0);
    let batched = vec![
        (vec![9, 0, 1], vec![4, 2, 3]),
        (vec![9, 1, 2], vec![4, 3, 5]),
    ];
    let c = Plan {
        steps: vec![(0, 1)],
    }
    .cost(&batched, &[9, 0, 2]);
    assert_eq!(c.flops, 2.0 * 4.0 * 30.0);
    assert_eq!(c.largest, 60);
}

/// Every permutation of a tensor with axes longer than the transposing
/// gather's tiles, against the value read at the permuted index.
#[test]
fn permutations_move_every_value_to_its_permuted_index() {
    let mut rng = StdRng::seed_from_u64(5);
    let dims = [3usize, 20, 5, 18];
    let dims_of = |l: Label| dims[l as usize];
    let t = random_tensor(&[0, 1, 2, 3], &dims_of, &mut rng);
    let mut orders: Vec<Vec<Label>> = vec![vec![]];
    for _ in 0..4 {
        orders = orders
            .into_iter()
            .flat_map(|o| {
                (0..4)
                    .filter(|l| !o.contains(l))
                    .map(|l| [o.clone(), vec![l]].concat())
                    .collect::<Vec<_>>()
            })
            .collect();
    }
    assert_eq!(orders.len(), 24);
    for order in orders {
        let p = t.permuted(&order);
        let pd: Vec<usize> = order.iter().map(|&l| dims[l as usize]).collect();
        assert_eq!(p.dims, pd);
        for (flat, &v) in p.data.iter().enumerate() {
            // The index of `flat` in the permuted tensor, mapped back.
            let mut rest = flat;
            let mut index = [0usize; 4];
            for k in (0..4).rev() {
                index[order[k] as usize] = rest % pd[k];
                rest /= pd[k];
            }
            let source = ((index[0] * 20 + index[1]) * 5 + index[2]) * 18 + index[3];
            assert_eq!(v, t.data[source], "order {order:?}");
        }
    }
}

/// Pairs whose products take each route of the pairwise contraction (GEMM,
/// tiny products with the row or the column loop innermost, operands read
/// in place or permuted, batch and outer-loop labels) equal the naive sum.
#[test]
fn pair_contractions_of_every_size_class_match_naive_einsum() {
    let mut rng = StdRng::seed_from_u64(9);
    let dims = [7usize, 1, 9, 2, 33, 3];
    let dims_of = |l: Label| dims[l as usize];
    let cases: [(&[Label], &[Label], &[Label]); 7] = [
        (&[0, 2], &[2, 4], &[0, 4]),
        (&[4, 2], &[2, 0], &[4, 0]),
        (&[3, 0, 1], &[3, 1, 2], &[3, 0, 2]),
        (&[3, 4, 1], &[3, 1, 5], &[3, 4, 5]),
        (&[0, 3, 2], &[2, 5, 3], &[3, 0, 5]),
        (&[4, 5, 2, 3], &[3, 2, 0], &[3, 5, 4, 0]),
        (&[2, 4, 0], &[5, 0, 2], &[4, 5]),
    ];
    for (la, lb, keep) in cases {
        let a = random_tensor(la, &dims_of, &mut rng);
        let b = random_tensor(lb, &dims_of, &mut rng);
        let plan = Plan {
            steps: vec![(0, 1)],
        };
        let fast = contract(&[a.clone(), b.clone()], keep, &plan).unwrap();
        assert_same(&fast, &einsum_naive(&[a, b], keep));
    }
}

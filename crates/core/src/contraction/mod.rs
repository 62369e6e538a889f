//! Tensor-network contraction (MATH.md §3.7, "Sequences and attention"; plans §3.7.7):
//! dense tensors with labelled indices ([`tensor`]), one pairwise
//! contraction as permute + reshape + GEMM ([`pair`]), contraction orders
//! found once per topology and their arithmetic cost ([`plan`]), whole
//! networks along a plan and a naive reference ([`network`]), and index
//! utilities for diagonals and repeated labels ([`diagonal`]).
//!
//! Indices shared by two tensors are summed unless they are still needed
//! (by the output or a tensor not yet contracted); needed shared indices are
//! batch indices (hyperedges such as sequence positions) and the GEMM runs
//! once per batch element. An index only one tensor carries and nothing else
//! needs is summed out first.

pub(crate) mod buffers;
pub mod diagonal;
pub mod network;
pub mod pair;
pub mod plan;
pub mod tensor;

pub use diagonal::{add_on_diagonals, dedup_in_order, flat, tensor_with_diagonals};
#[cfg(any(test, feature = "reference"))]
pub use network::contract_refs;
#[cfg(test)]
pub use network::{contract, einsum_naive};
pub use network::{contract_renamed_into, contract_renamed_unordered};
#[cfg(test)]
pub use pair::contract_pair;
pub use plan::{greedy_plan, optimal_plan, Cost, Plan};
pub use tensor::Tensor;

#[cfg(test)]
mod tests;

/// An index label.
pub type Label = u32;

//! Recycled value buffers for intermediate tensors. A network contraction
//! allocates and frees intermediates of the same few sizes thousands of times
//! per pair; taking them from a per-thread pool skips both the allocation
//! and the zero-fill of results that are overwritten anyway.

use std::cell::RefCell;

/// At most this many buffers, and this many bytes, are kept per thread.
const POOLED_BUFFERS: usize = 8;
const POOLED_BYTES: usize = 256 << 20;

thread_local! {
    static POOL: RefCell<Vec<Vec<f64>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` values with unspecified (initialised) contents, for a
/// result every element of which is written before it is read. Takes the
/// pooled buffer whose length fits best, so repeated sizes reuse memory
/// without writing it.
pub(crate) fn scratch(len: usize) -> Vec<f64> {
    let taken = POOL.with_borrow_mut(|pool| {
        let fits = |b: &Vec<f64>| b.capacity() >= len;
        let best = pool
            .iter()
            .enumerate()
            .filter(|(_, b)| fits(b))
            .min_by_key(|(_, b)| (b.len() < len, b.len().abs_diff(len)))
            .map(|(i, _)| i);
        best.map(|i| pool.swap_remove(i))
    });
    match taken {
        Some(mut buffer) => {
            if buffer.len() >= len {
                buffer.truncate(len);
            } else {
                buffer.resize(len, 0.0);
            }
            buffer
        }
        None => vec![0.0; len],
    }
}

/// A buffer of `len` zeros.
pub(crate) fn zeroed(len: usize) -> Vec<f64> {
    let mut buffer = scratch(len);
    buffer.fill(0.0);
    buffer
}

/// The most bytes one thread's pool keeps when its buffers hold up to
/// `largest` bytes each.
pub(crate) fn pooled_bytes(largest: f64) -> f64 {
    (POOLED_BUFFERS as f64 * largest).min(POOLED_BYTES as f64)
}

/// Returns a buffer to this thread's pool (dropping the smallest buffers
/// beyond the pool's limits).
pub(crate) fn recycle(buffer: Vec<f64>) {
    if buffer.is_empty() {
        return;
    }
    POOL.with_borrow_mut(|pool| {
        pool.push(buffer);
        let bytes = |pool: &Vec<Vec<f64>>| pool.iter().map(|b| b.capacity() * 8).sum::<usize>();
        while pool.len() > POOLED_BUFFERS || bytes(pool) > POOLED_BYTES {
            let smallest = (0..pool.len())
                .min_by_key(|&i| pool[i].capacity())
                .expect("non-empty pool");
            pool.swap_remove(smallest);
        }
    });
}

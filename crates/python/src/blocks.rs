//! A matrix in blocks of pairs, for executors that spread one matrix over
//! processes or machines (`tensim.ray`): [`matrix_pairs`] reads only the
//! checkpoint files its pairs touch, prepares each model once and returns
//! the pairs' raw values; [`assemble`] builds the matrix from the values of
//! every pair, bit for bit the one `tensim.matrix` computes (the core's
//! `pair_plan`: a pair's values depend on its two models and the options
//! alone, never on which other models share the job).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use numpy::ndarray::{Array2, ArrayView2};
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use rayon::prelude::*;
use tensim_core::metric::{Metric, MetricError, MetricOptions};
use tensim_core::network::Network;
use tensim_core::pair_plan::{PairPlan, PairValues};
use tensim_io::ArchSpec;

use crate::{matrix_arg, parse_metric, to_numpy, value_error};

/// A block's pairs `(k, 2)` (global indices, `i ≤ j`, row by row) and their
/// values `(k, m)`.
type Block<'py> = (Bound<'py, PyArray2<i64>>, Bound<'py, PyArray2<f64>>);

/// The raw values of some pairs of the matrix over `paths`, one checkpoint
/// per file (a file holding several, a step → state dict file, is an
/// error: `tensim convert FILE --arch SPEC -o DIR` splits it). Only the
/// files the pairs touch are read; each model is prepared once; the pairs
/// run in parallel with the GIL released, on `threads` threads (`None` or
/// 0: every core).
///
/// Returns `(pairs, values)`: the pairs `(i, j)` as an `int64` array
/// `(k, 2)`, row by row, and their values `(k, m)`: raw inner products per
/// output for `tensor`, `gaussian` and their slices, the metric's one value
/// otherwise. `assemble` makes the matrix from the blocks of all pairs.
/// `metric`, `inputs`, `samples`, `seed` and `positions` are those of
/// `tensim.matrix`; `arch` is a TOML spec for foreign checkpoints, as for
/// `tensim.load`. With no pairs nothing is read: only the metric and the
/// options are checked.
#[pyfunction]
#[pyo3(signature = (
    paths, pairs, metric = "tensor", arch = None, inputs = None,
    samples = 20_000, seed = 0, positions = None, threads = None
))]
#[allow(clippy::too_many_arguments)] // the keyword arguments of `tensim.matrix`, plus arch and threads
pub fn matrix_pairs<'py>(
    py: Python<'py>,
    paths: Vec<PathBuf>,
    pairs: Vec<(usize, usize)>,
    metric: &str,
    arch: Option<PathBuf>,
    inputs: Option<Bound<'py, PyAny>>,
    samples: usize,
    seed: u64,
    positions: Option<usize>,
    threads: Option<usize>,
) -> PyResult<Block<'py>> {
    let metric = parse_metric(metric)?;
    if metric.needs_inputs() && inputs.is_none() {
        return Err(PyValueError::new_err(format!(
            "metric `{metric}` needs inputs (an n × d_in array)"
        )));
    }
    let touched = Touched::new(&pairs, paths.len())?;
    let spec = arch
        .map(|a| ArchSpec::from_file(&a))
        .transpose()
        .map_err(value_error)?;
    let inputs = inputs.map(|x| matrix_arg(&x, "inputs")).transpose()?;
    if pairs.is_empty() {
        return block_arrays(py, &PairValues::new(), &[]);
    }
    let files: Vec<&Path> = touched.models.iter().map(|&g| paths[g].as_path()).collect();
    let options = crate::matrix_options(inputs.as_ref(), samples, seed, positions);
    let values = py
        .detach(|| {
            in_pool(threads, || {
                pair_values(&files, spec.as_ref(), metric, options, &touched.pairs)
            })
        })
        .map_err(PyValueError::new_err)?;
    block_arrays(py, &values, &touched.models)
}

/// The models a set of pairs touches and the pairs in their terms.
struct Touched {
    /// Indices into `paths` of the models, ascending.
    models: Vec<usize>,
    /// The pairs as positions in `models` (still `i ≤ j`: the map is monotone).
    pairs: Vec<(usize, usize)>,
}

impl Touched {
    /// Checks that every pair is `i ≤ j < n` and given once.
    fn new(pairs: &[(usize, usize)], n: usize) -> PyResult<Self> {
        let mut seen = HashSet::with_capacity(pairs.len());
        for &(i, j) in pairs {
            if i > j || j >= n {
                return Err(PyValueError::new_err(format!(
                    "pair ({i}, {j}) is not a pair i ≤ j < {n} of the {n} paths"
                )));
            }
            if !seen.insert((i, j)) {
                return Err(PyValueError::new_err(format!(
                    "pair ({i}, {j}) is given twice"
                )));
            }
        }
        let mut models: Vec<usize> = pairs.iter().flat_map(|&(i, j)| [i, j]).collect();
        models.sort_unstable();
        models.dedup();
        let local = |g: usize| models.binary_search(&g).expect("every index was collected");
        let pairs = pairs.iter().map(|&(i, j)| (local(i), local(j))).collect();
        Ok(Touched { models, pairs })
    }
}

/// Runs `f` on a pool of `threads` threads (`None` or 0: rayon's global pool).
fn in_pool<T: Send>(
    threads: Option<usize>,
    f: impl FnOnce() -> Result<T, String> + Send,
) -> Result<T, String> {
    match threads.filter(|&t| t > 0) {
        None => f(),
        Some(t) => rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .map_err(|e| format!("starting {t} threads: {e}"))?
            .install(f),
    }
}

/// Loads `files` and computes the `pairs` (positions in `files`) of
/// `metric`; errors name the files they are about.
fn pair_values(
    files: &[&Path],
    spec: Option<&ArchSpec>,
    metric: Metric,
    options: MetricOptions<'_>,
    pairs: &[(usize, usize)],
) -> Result<PairValues, String> {
    let networks: Vec<Network> = files
        .par_iter()
        .map(|path| load_one(path, spec))
        .collect::<Result<_, _>>()?;
    let refs: Vec<&Network> = networks.iter().collect();
    let plan = PairPlan::all().only(pairs.iter().copied());
    metric
        .job(&refs, options)
        .and_then(|job| job.pair_values(&(), &plan))
        .map_err(|e| name_files(e, files))
}

/// The one checkpoint in `path`.
fn load_one(path: &Path, spec: Option<&ArchSpec>) -> Result<Network, String> {
    let mut all = tensim_io::load_models(path, spec).map_err(|e| e.to_string())?;
    if all.len() != 1 {
        return Err(format!(
            "{}: holds {} checkpoints (a step → state dict file); give one checkpoint per path \
             (`tensim convert {} --arch SPEC -o DIR` writes one file per step)",
            path.display(),
            all.len(),
            path.display()
        ));
    }
    Ok(all.remove(0).network)
}

/// A metric error with the files it is about: the pair that failed, or the
/// model that does not fit beside the first (which set the job's shape).
fn name_files(err: MetricError, files: &[&Path]) -> String {
    let file = |i: usize| files[i].display();
    match err {
        MetricError::Pair(p) => format!("comparing {} with {}: {}", file(p.i), file(p.j), p.source),
        MetricError::Model { index, source } if index > 0 => {
            format!("{} and {}: {source}", file(0), file(index))
        }
        MetricError::Model { index, source } => format!("{}: {source}", file(index)),
        MetricError::Job(e) => e.to_string(),
    }
}

/// The pairs (indices mapped back through `models`) and values as numpy arrays.
fn block_arrays<'py>(
    py: Python<'py>,
    values: &PairValues,
    models: &[usize],
) -> PyResult<Block<'py>> {
    let k = values.len();
    let width = values.iter().next().map_or(0, |(_, v)| v.len());
    let mut pairs = Vec::with_capacity(2 * k);
    let mut flat = Vec::with_capacity(width * k);
    for ((i, j), v) in values.iter() {
        pairs.extend([models[i] as i64, models[j] as i64]);
        flat.extend_from_slice(v);
    }
    let pairs = Array2::from_shape_vec((k, 2), pairs).map_err(value_error)?;
    let values = Array2::from_shape_vec((k, width), flat).map_err(value_error)?;
    Ok((pairs.into_pyarray(py), values.into_pyarray(py)))
}

/// The N×N matrix of `metric` over `n` models from blocks of
/// `matrix_pairs` (its `(pairs, values)` tuples) that together hold every
/// pair `i ≤ j < n` exactly once: bit for bit the matrix `tensim.matrix`
/// computes from the same models and options.
#[pyfunction]
pub fn assemble<'py>(
    py: Python<'py>,
    metric: &str,
    n: usize,
    blocks: Vec<(PyReadonlyArray2<'py, i64>, PyReadonlyArray2<'py, f64>)>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let metric = parse_metric(metric)?;
    if n == 0 {
        return Err(PyValueError::new_err("no models"));
    }
    let mut all = PairValues::new();
    for (pairs, values) in &blocks {
        add_block(&mut all, pairs.as_array(), values.as_array(), n)?;
    }
    if let Some((i, j)) = all.first_missing(n) {
        return Err(PyValueError::new_err(format!(
            "pair ({i}, {j}) is in none of the {} blocks",
            blocks.len()
        )));
    }
    let m = py
        .detach(|| tensim_core::pair_plan::assemble(metric, n, &all))
        .map_err(value_error)?;
    to_numpy(py, &m)
}

/// Adds one block's pairs to `all`: each a pair `i ≤ j < n` not seen before.
fn add_block(
    all: &mut PairValues,
    pairs: ArrayView2<'_, i64>,
    values: ArrayView2<'_, f64>,
    n: usize,
) -> PyResult<()> {
    if pairs.ncols() != 2 || pairs.nrows() != values.nrows() {
        return Err(PyValueError::new_err(format!(
            "a block of {} pairs (shape {:?}) with {} rows of values: not a block of matrix_pairs",
            pairs.nrows(),
            pairs.shape(),
            values.nrows()
        )));
    }
    for (pair, v) in pairs.rows().into_iter().zip(values.rows()) {
        let (i, j) = (pair[0], pair[1]);
        let index = |x: i64| usize::try_from(x).ok().filter(|&x| x < n);
        let (Some(iu), Some(ju)) = (index(i), index(j)) else {
            return Err(PyValueError::new_err(format!(
                "pair ({i}, {j}) is not a pair of {n} models"
            )));
        };
        if iu > ju {
            return Err(PyValueError::new_err(format!(
                "pair ({i}, {j}) is not a pair i ≤ j"
            )));
        }
        all.insert((iu, ju), v.to_vec())
            .map_err(|_| PyValueError::new_err(format!("pair ({i}, {j}) is in two blocks")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Touched;

    #[test]
    fn touched_models_are_ascending_and_pairs_stay_upper() {
        let t = Touched::new(&[(7, 9), (2, 7), (2, 2)], 10).unwrap();
        assert_eq!(t.models, vec![2, 7, 9]);
        assert_eq!(t.pairs, vec![(1, 2), (0, 1), (0, 0)]);
        assert!(Touched::new(&[(3, 1)], 10).is_err());
        assert!(Touched::new(&[(1, 10)], 10).is_err());
        assert!(Touched::new(&[(1, 2), (1, 2)], 10).is_err());
    }
}

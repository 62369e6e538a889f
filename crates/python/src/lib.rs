//! `tensim._tensim`, the native half of `import tensim`: tensor similarity
//! of bilinear networks from Python (the package `python/tensim` re-exports
//! it and adds `tensim.ray`).
//!
//! Models are built from arrays (numpy, PyTorch tensors, anything with
//! `__array__`; PyTorch layout `[out, in]`) or loaded
//! from files (tensim safetensors; PyTorch, npz or safetensors with an
//! architecture spec). Similarities run in Rust with the GIL released.

mod blocks;

use std::path::PathBuf;

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tensim_core::metric::{Metric, MetricError, MetricOptions};
use tensim_core::network::{Network, NetworkKind};
use tensim_core::{weight_cosine, Bilinear, Layer, Linear, Mat, Model};

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// Any array-like as a float64 or float32 numpy array: numpy arrays as they
/// are; PyTorch tensors (anything with `detach`) detached and moved to the
/// CPU, half precisions widened to float32; then `numpy.asarray`, other
/// dtypes cast to float64.
fn float_array<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let array = numpy_array(obj)?;
    let kind = array.getattr("dtype")?.getattr("name")?.to_string();
    if kind == "float64" || kind == "float32" {
        Ok(array)
    } else {
        array.call_method1("astype", ("float64",))
    }
}

/// Any array-like as a numpy array of its own dtype (PyTorch tensors
/// detached, moved to the CPU, half precisions widened to float32).
fn numpy_array<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let np = obj.py().import("numpy")?;
    let mut obj = obj.clone();
    if obj.hasattr("detach")? {
        obj = obj.call_method0("detach")?.call_method0("cpu")?;
        let dtype = obj.getattr("dtype")?.str()?.to_string();
        if dtype.ends_with("float16") {
            obj = obj.call_method0("float")?;
        }
    }
    np.call_method1("asarray", (obj,))
}

/// A state dict's entries as the tensors of a foreign file (f64 values,
/// dtype names as tensim's readers give them: `f32`, `i64`, …).
fn tensor_set(state_dict: &Bound<'_, PyDict>) -> PyResult<tensim_io::foreign::TensorSet> {
    let mut tensors = Vec::with_capacity(state_dict.len());
    for (key, value) in state_dict.iter() {
        let name: String = key.extract()?;
        let array = numpy_array(&value)?;
        let dtype = match array
            .getattr("dtype")?
            .getattr("name")?
            .to_string()
            .as_str()
        {
            "float64" => "f64".to_string(),
            "float32" => "f32".to_string(),
            "float16" => "f16".to_string(),
            other => other.replace("int", "i").replace("ui", "u"),
        };
        let shape: Vec<usize> = array.getattr("shape")?.extract()?;
        let flat = array
            .call_method1("astype", ("float64",))?
            .call_method1("reshape", (-1,))?;
        let values = vector_arg(&flat, &name)?;
        tensors.push(tensim_io::foreign::NamedTensor {
            name,
            shape,
            values,
            dtype,
        });
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tensim_io::foreign::TensorSet {
        tensors,
        step: None,
        format: "state dict",
    })
}

/// A 2-D array-like ([`float_array`]) as an f64 matrix; `what` names it in errors.
fn matrix_arg(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Mat<f64>> {
    let array = float_array(obj)?;
    let shape_error = || {
        let shape = array
            .getattr("shape")
            .map_or_else(|_| "?".into(), |s| s.to_string());
        PyValueError::new_err(format!("{what}: expected a 2-D array, found shape {shape}"))
    };
    if let Ok(a) = array.extract::<PyReadonlyArray2<'_, f64>>() {
        let v = a.as_array();
        return Ok(Mat::from_fn(v.nrows(), v.ncols(), |i, j| v[[i, j]]));
    }
    let a = array
        .extract::<PyReadonlyArray2<'_, f32>>()
        .map_err(|_| shape_error())?;
    let v = a.as_array();
    Ok(Mat::from_fn(v.nrows(), v.ncols(), |i, j| {
        f64::from(v[[i, j]])
    }))
}

/// A 1-D array-like ([`float_array`]) as f64 values; `what` names it in errors.
fn vector_arg(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<f64>> {
    let array = float_array(obj)?;
    if let Ok(a) = array.extract::<PyReadonlyArray1<'_, f64>>() {
        return Ok(a.as_array().to_vec());
    }
    match array.extract::<PyReadonlyArray1<'_, f32>>() {
        Ok(a) => Ok(a.as_array().iter().map(|&x| f64::from(x)).collect()),
        Err(_) => Err(PyValueError::new_err(format!(
            "{what}: expected a 1-D array, found shape {}",
            array.getattr("shape")?
        ))),
    }
}

/// Row-major copy of a faer matrix as a numpy array.
fn to_numpy<'py>(py: Python<'py>, m: &Mat<f64>) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let values: Vec<f64> = (0..m.nrows())
        .flat_map(|i| (0..m.ncols()).map(move |j| m[(i, j)]))
        .collect();
    Ok(Array2::from_shape_vec((m.nrows(), m.ncols()), values)
        .map_err(value_error)?
        .into_pyarray(py))
}

/// A bilinear network (f64 weights): a sequential model or a transformer.
#[pyclass(name = "Model", module = "tensim", frozen)]
struct PyModel {
    inner: Network,
}

impl PyModel {
    /// The sequential model, or a `ValueError` for a transformer.
    fn sequential(&self) -> PyResult<&Model> {
        self.inner.as_sequential().map_err(value_error)
    }
}

impl From<Model> for PyModel {
    fn from(m: Model) -> Self {
        PyModel { inner: m.into() }
    }
}

#[pymethods]
impl PyModel {
    /// `"sequential"` or `"transformer"`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.kind().name()
    }

    /// Input width (sequential models).
    #[getter]
    fn input_dim(&self) -> PyResult<usize> {
        Ok(self.sequential()?.input_dim())
    }

    /// Output width: classes, or a transformer's logits.
    #[getter]
    fn output_dim(&self) -> usize {
        self.inner.output_dim()
    }

    /// The architecture as tensim's checkpoint JSON.
    #[getter]
    fn architecture(&self) -> String {
        tensim_io::shape_json::shape_to_json(&self.inner.shape())
    }

    /// Logits: for a sequential model of a batch `x` of shape
    /// `(n, input_dim)`; for a transformer of one sequence `x` of shape
    /// `(positions, vocab)` (one-hot tokens or any vectors), `positions ≤
    /// context`.
    fn forward<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let x = matrix_arg(x, "x")?;
        let y = py
            .detach(|| match &self.inner {
                Network::Sequential(m) => m.forward(x.as_ref()),
                Network::Transformer(t) => t.forward(x.as_ref()),
            })
            .map_err(value_error)?;
        to_numpy(py, &y)
    }

    /// Logits `(len(tokens), outputs)` of a transformer on one token sequence.
    fn forward_tokens<'py>(
        &self,
        py: Python<'py>,
        tokens: Vec<u32>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let t = self.inner.as_transformer().map_err(value_error)?;
        let y = py
            .detach(|| t.forward_tokens(&tokens))
            .map_err(value_error)?;
        to_numpy(py, &y)
    }

    /// Every parameter by its tensim name (`embed.weight`,
    /// `blocks.0.attn.q1.weight`, `layers.0.left.weight`, …) as a numpy array
    /// of its shape, PyTorch layout `[out, in]`; `from_state_dict(m.state_dict(),
    /// architecture=m.architecture)` rebuilds the model.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        let specs = self.inner.shape().parameter_specs();
        for (spec, values) in specs.into_iter().zip(self.inner.parameters()) {
            let array = PyArray1::from_vec(py, values).reshape(spec.shape.as_slice())?;
            out.set_item(spec.name, array)?;
        }
        Ok(out)
    }

    /// Saves the model as a self-describing tensim safetensors checkpoint (f64).
    #[pyo3(signature = (path, step = None))]
    fn save(&self, path: PathBuf, step: Option<u64>) -> PyResult<()> {
        let meta = tensim_io::CheckpointMeta {
            step,
            ..Default::default()
        };
        tensim_io::save_checkpoint(&path, &self.inner, &meta, tensim_io::StoredDtype::F64)
            .map_err(value_error)
    }

    fn __repr__(&self) -> String {
        format!("tensim.Model({})", self.architecture())
    }
}

/// The single-layer classifier `y = P((L x) ⊙ (R x))` from `[h, d]`, `[h, d]`,
/// `[o, h]` arrays (numpy, PyTorch tensors, anything `numpy.asarray` takes).
#[pyfunction]
fn bilinear_classifier(
    left: &Bound<'_, PyAny>,
    right: &Bound<'_, PyAny>,
    head: &Bound<'_, PyAny>,
) -> PyResult<PyModel> {
    let (left, right, head) = (
        matrix_arg(left, "left")?,
        matrix_arg(right, "right")?,
        matrix_arg(head, "head")?,
    );
    let inner = Model::bilinear_classifier(left, right, head).map_err(value_error)?;
    Ok(inner.into())
}

fn optional_vec(d: &Bound<'_, PyDict>, key: &str) -> PyResult<Option<Vec<f64>>> {
    match d.get_item(key)? {
        Some(v) if !v.is_none() => Ok(Some(vector_arg(&v, key)?)),
        _ => Ok(None),
    }
}

fn required_mat(d: &Bound<'_, PyDict>, key: &str, layer: usize) -> PyResult<Mat<f64>> {
    let v = d
        .get_item(key)?
        .ok_or_else(|| PyValueError::new_err(format!("layer {layer}: missing `{key}`")))?;
    matrix_arg(&v, &format!("layer {layer}: `{key}`"))
}

/// A model from a list of layer dicts:
/// `{"kind": "linear", "weight": W, "bias": b}` or
/// `{"kind": "bilinear", "left": L, "right": R, "down": D, "left_bias": …,
/// "right_bias": …, "down_bias": …, "residual_scale": 1.0}`.
#[pyfunction]
fn model(layers: Vec<Bound<'_, PyDict>>) -> PyResult<PyModel> {
    let mut out = Vec::with_capacity(layers.len());
    for (i, d) in layers.iter().enumerate() {
        let kind: String = d
            .get_item("kind")?
            .ok_or_else(|| PyValueError::new_err(format!("layer {i}: missing `kind`")))?
            .extract()?;
        out.push(match kind.as_str() {
            "linear" => Layer::Linear(Linear {
                weight: required_mat(d, "weight", i)?,
                bias: optional_vec(d, "bias")?,
            }),
            "bilinear" => Layer::Bilinear(Bilinear {
                left: required_mat(d, "left", i)?,
                right: required_mat(d, "right", i)?,
                down: required_mat(d, "down", i)?,
                left_bias: optional_vec(d, "left_bias")?,
                right_bias: optional_vec(d, "right_bias")?,
                down_bias: optional_vec(d, "down_bias")?,
                residual: tensim_core::Residual::from_lerp_scale(
                    match d.get_item("residual_scale")? {
                        Some(v) if !v.is_none() => v.extract()?,
                        _ => 1.0,
                    },
                ),
            }),
            other => {
                return Err(PyValueError::new_err(format!(
                    "layer {i}: unknown kind `{other}` (linear or bilinear)"
                )))
            }
        });
    }
    Ok(PyModel {
        inner: Model::new(out).map_err(value_error)?.into(),
    })
}

/// A model from a state dict (name → array-like: numpy arrays, PyTorch
/// tensors, …), described by exactly one of: `architecture`, the JSON of a
/// tensim checkpoint (`Model.architecture`) with tensim's parameter names;
/// `arch`, a TOML architecture spec (a path, or the TOML text) for any
/// other names (README: Loading other checkpoints); `config`, the path of a
/// published run's `config.json`. Every tensor is checked; entries the
/// description does not use are an error.
#[pyfunction]
#[pyo3(signature = (state_dict, architecture = None, arch = None, config = None))]
fn from_state_dict(
    state_dict: &Bound<'_, PyDict>,
    architecture: Option<&str>,
    arch: Option<&str>,
    config: Option<PathBuf>,
) -> PyResult<PyModel> {
    let spec = match (architecture, arch, config) {
        (Some(json), None, None) => return native_state_dict(state_dict, json),
        (None, Some(arch), None) if std::path::Path::new(arch).is_file() => {
            tensim_io::ArchSpec::from_file(std::path::Path::new(arch)).map_err(value_error)?
        }
        (None, Some(text), None) => tensim_io::ArchSpec::parse(text)
            .map_err(|e| PyValueError::new_err(format!("arch: {e}")))?,
        (None, None, Some(config)) => {
            tensim_io::published::spec_from_config(&config).map_err(value_error)?
        }
        _ => {
            return Err(PyValueError::new_err(
                "give exactly one of architecture (tensim JSON), arch (TOML spec) or config (config.json)",
            ))
        }
    };
    let set = tensor_set(state_dict)?;
    let mapped = spec
        .build(&set, std::path::Path::new("state_dict"))
        .map_err(value_error)?;
    Ok(PyModel {
        inner: mapped.network,
    })
}

/// [`from_state_dict`] with tensim's names and `architecture` JSON.
fn native_state_dict(state_dict: &Bound<'_, PyDict>, architecture: &str) -> PyResult<PyModel> {
    let kind = if architecture.contains("\"layers\"") {
        NetworkKind::Sequential
    } else {
        NetworkKind::Transformer
    };
    let shape = tensim_io::shape_json::shape_from_json(kind, architecture, 2)
        .map_err(|e| PyValueError::new_err(format!("architecture: {e}")))?;
    let specs = shape.parameter_specs();
    let mut values = Vec::with_capacity(specs.len());
    for spec in &specs {
        let item = state_dict.get_item(&spec.name)?.ok_or_else(|| {
            PyValueError::new_err(format!(
                "`{}` is missing: the architecture needs shape {:?}",
                spec.name, spec.shape
            ))
        })?;
        values.push(tensor_values(&item, &spec.name, &spec.shape)?);
    }
    for key in state_dict.keys() {
        let key: String = key.extract()?;
        if !specs.iter().any(|s| s.name == key) {
            return Err(PyValueError::new_err(format!(
                "`{key}` is not a parameter of the architecture"
            )));
        }
    }
    let inner = shape.from_parameters(values).map_err(value_error)?;
    Ok(PyModel { inner })
}

/// The values of an array-like `name`, row-major, checked to have `shape`.
fn tensor_values(obj: &Bound<'_, PyAny>, name: &str, shape: &[usize]) -> PyResult<Vec<f64>> {
    let array = float_array(obj)?;
    let found: Vec<usize> = array.getattr("shape")?.extract()?;
    if found != shape {
        return Err(PyValueError::new_err(format!(
            "`{name}`: expected shape {shape:?}, found {found:?}"
        )));
    }
    let flat = array.call_method1("reshape", (-1,))?;
    vector_arg(&flat, name)
}

/// Loads a checkpoint: a tensim safetensors file, or with `arch` (a TOML spec)
/// a PyTorch `.pt`, `.npz` or safetensors file. A file holding several
/// checkpoints (step → state dict) gives a list ordered by step.
#[pyfunction]
#[pyo3(signature = (path, arch = None))]
fn load(py: Python<'_>, path: PathBuf, arch: Option<PathBuf>) -> PyResult<Py<PyAny>> {
    let spec = match arch {
        Some(a) => Some(tensim_io::ArchSpec::from_file(&a).map_err(value_error)?),
        None => None,
    };
    let mut models = tensim_io::load_models(&path, spec.as_ref()).map_err(value_error)?;
    if models.len() == 1 {
        let inner = models.remove(0).network;
        return Ok(Py::new(py, PyModel { inner })?.into_any());
    }
    let list: Vec<Py<PyModel>> = models
        .into_iter()
        .map(|c| Py::new(py, PyModel { inner: c.network }))
        .collect::<PyResult<_>>()?;
    Ok(list.into_pyobject(py)?.into_any().unbind())
}

/// A metric by name, through the core's one vocabulary.
fn parse_metric(text: &str) -> PyResult<Metric> {
    text.parse().map_err(value_error)
}

/// The options of a matrix: `inputs` for `output-cosine` and `cka`,
/// `samples` and `seed` for `monte-carlo`, `positions` for transformers.
pub(crate) fn matrix_options(
    inputs: Option<&Mat<f64>>,
    samples: usize,
    seed: u64,
    positions: Option<usize>,
) -> MetricOptions<'_> {
    MetricOptions {
        inputs: inputs.map(Mat::as_ref),
        samples,
        seed,
        positions,
        ..MetricOptions::default()
    }
}

/// Total (or slice) value and per-output values of one pair: per class or
/// token for the inner-product metrics, per layer for a sequential
/// `matrix-cosine` (one value for a transformer's).
fn pair_values(
    a: &Network,
    b: &Network,
    metric: Metric,
    positions: Option<usize>,
) -> Result<(f64, Vec<f64>), MetricError> {
    let options = MetricOptions {
        positions,
        ..MetricOptions::default()
    };
    if metric.is_inner_product() {
        let s = metric.pair(a, b, options)?;
        let value = metric.slice().map_or(s.total, |c| s.per_output[c]);
        return Ok((value, s.per_output));
    }
    if let (Metric::MatrixCosine, Ok(a), Ok(b)) = (metric, a.as_sequential(), b.as_sequential()) {
        let w = weight_cosine(a, b)?;
        return Ok((w.all, w.per_layer));
    }
    if metric == Metric::MatrixCosine {
        let value = metric.job(&[a, b], options)?.run(&())?.values[(0, 1)];
        return Ok((value, vec![value]));
    }
    Err(tensim_core::Error::Invalid(format!(
        "metric `{metric}` compares whole matrices of models: use tensim.matrix"
    ))
    .into())
}

/// Similarity of two models of one kind: `metric` is "tensor", "gaussian",
/// "gaussian-centred", "matrix-cosine", "slice:<c>" or "gaussian-slice:<c>"
/// (for transformers "tensor" and "gaussian" are both the exact Gaussian
/// similarity on `positions` Gaussian positions, default 4).
#[pyfunction]
#[pyo3(name = "similarity", signature = (a, b, metric = "tensor", positions = None))]
fn similarity_of(
    py: Python<'_>,
    a: &PyModel,
    b: &PyModel,
    metric: &str,
    positions: Option<usize>,
) -> PyResult<f64> {
    let metric = parse_metric(metric)?;
    py.detach(|| pair_values(&a.inner, &b.inner, metric, positions))
        .map(|r| r.0)
        .map_err(value_error)
}

/// Per-class (per-token for transformers) similarities of the tensor or
/// Gaussian metric, or per-layer matrix cosines.
#[pyfunction]
#[pyo3(signature = (a, b, metric = "tensor", positions = None))]
fn slices<'py>(
    py: Python<'py>,
    a: &PyModel,
    b: &PyModel,
    metric: &str,
    positions: Option<usize>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let metric = parse_metric(metric)?;
    let (_, per) = py
        .detach(|| pair_values(&a.inner, &b.inner, metric, positions))
        .map_err(value_error)?;
    Ok(per.into_pyarray(py))
}

/// The N×N matrix of a metric over models of one kind (the CLI's `matrix`:
/// models prepared and pairs computed in parallel, GIL released). `inputs`
/// (`n × d_in`) for `output-cosine` and `cka`; `samples`, `seed` for
/// `monte-carlo`; `positions` for transformers.
#[pyfunction]
#[pyo3(signature = (models, metric = "tensor", inputs = None, samples = 20_000, seed = 0, positions = None))]
fn matrix<'py>(
    py: Python<'py>,
    models: Vec<PyRef<'py, PyModel>>,
    metric: &str,
    inputs: Option<Bound<'py, PyAny>>,
    samples: usize,
    seed: u64,
    positions: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let metric = parse_metric(metric)?;
    if models.is_empty() {
        return Err(PyValueError::new_err("no models"));
    }
    let inputs = inputs.map(|x| matrix_arg(&x, "inputs")).transpose()?;
    let networks: Vec<&Network> = models.iter().map(|m| &m.inner).collect();
    let options = matrix_options(inputs.as_ref(), samples, seed, positions);
    let m = py
        .detach(|| metric.job(&networks, options)?.run(&()))
        .map_err(value_error)?;
    to_numpy(py, &m.values)
}

#[pymodule]
#[pyo3(name = "_tensim")]
fn tensim(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyModel>()?;
    m.add_function(wrap_pyfunction!(bilinear_classifier, m)?)?;
    m.add_function(wrap_pyfunction!(model, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(from_state_dict, m)?)?;
    m.add_function(wrap_pyfunction!(similarity_of, m)?)?;
    m.add_function(wrap_pyfunction!(slices, m)?)?;
    m.add_function(wrap_pyfunction!(matrix, m)?)?;
    m.add_function(wrap_pyfunction!(blocks::matrix_pairs, m)?)?;
    m.add_function(wrap_pyfunction!(blocks::assemble, m)?)?;
    Ok(())
}

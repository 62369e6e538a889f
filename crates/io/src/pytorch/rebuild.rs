//! A tensor as a PyTorch pickle describes it, and its values gathered from
//! the storage with its strides.
//!
//! `torch.save` pickles a tensor as the call
//! `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)`, its
//! storage as the persistent id `("storage", torch.FloatStorage, key,
//! location, numel[, view])`, a parameter as `_rebuild_parameter(tensor, …)`
//! and a tensor subclass as `_rebuild_from_type_v2(func, type, args, state)`.
//! None of these is called: the arguments are read and checked.

use crate::pickle::{Graph, Id, Value};
use crate::raw::{element_count, RawDtype};

/// One storage of a checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageRef {
    pub key: String,
    pub dtype: RawDtype,
    /// Elements the storage declares.
    pub numel: u64,
}

/// One tensor: a strided view of a storage.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub offset: u64,
    pub size: Vec<usize>,
    pub stride: Vec<usize>,
}

/// Rebuild calls are followed at most this deep (a parameter of a tensor
/// subclass is three).
const MAX_REBUILD_DEPTH: usize = 8;

/// The tensor that `id` rebuilds, `None` when it is not a tensor (an int, a
/// string, a nested dict is handled by the caller), an error when it is a
/// tensor call with arguments PyTorch never writes.
pub fn tensor_ref(g: &Graph, id: Id) -> Result<Option<TensorRef>, String> {
    let mut id = id;
    for _ in 0..MAX_REBUILD_DEPTH {
        let (callable, args) = match g.get(id) {
            Value::Build { object, .. } => {
                id = *object;
                continue;
            }
            Value::Call { callable, args } => (*callable, *args),
            _ => return Ok(None),
        };
        let Some(function) = g.global(callable) else {
            return Ok(None);
        };
        let args = g.items(args).ok_or_else(|| {
            format!(
                "{}.{} called without an argument tuple",
                function.0, function.1
            )
        })?;
        match function {
            ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
                return strided(g, args).map(Some)
            }
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state")
            | ("torch.nn.parameter", "Parameter") => {
                id = *args.first().ok_or("a parameter rebuilt from no tensor")?;
            }
            ("torch._tensor", "_rebuild_from_type_v2") => {
                let [func, _, inner, ..] = args else {
                    return Err("_rebuild_from_type_v2 with fewer than 3 arguments".into());
                };
                // `func(*inner)`: the same call one level down.
                let inner_args = g
                    .items(*inner)
                    .ok_or("_rebuild_from_type_v2 without an argument tuple")?;
                return rebuild_from_type(g, *func, inner_args);
            }
            _ => return Ok(None),
        }
    }
    Err(format!(
        "tensor rebuild calls nested deeper than {MAX_REBUILD_DEPTH}"
    ))
}

/// `func(*args)` of `_rebuild_from_type_v2`, where `func` is itself a rebuild.
fn rebuild_from_type(g: &Graph, func: Id, args: &[Id]) -> Result<Option<TensorRef>, String> {
    match g.global(func) {
        Some(("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor")) => {
            strided(g, args).map(Some)
        }
        Some(("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state")) => {
            tensor_ref(
                g,
                *args.first().ok_or("a parameter rebuilt from no tensor")?,
            )
        }
        _ => Err("_rebuild_from_type_v2 of a function that does not rebuild a tensor".into()),
    }
}

/// `(storage, offset, size, stride, …)` of `_rebuild_tensor_v2`.
fn strided(g: &Graph, args: &[Id]) -> Result<TensorRef, String> {
    let [storage, offset, size, stride, ..] = args else {
        return Err(format!(
            "_rebuild_tensor_v2 with {} arguments (PyTorch writes at least 4)",
            args.len()
        ));
    };
    let storage = storage_ref(g, *storage)?;
    let offset = g
        .int(*offset)
        .and_then(|o| u64::try_from(o).ok())
        .ok_or("the storage offset is not a non-negative integer")?;
    let size = usizes(g, *size).ok_or("the size is not a tuple of non-negative integers")?;
    let stride = usizes(g, *stride).ok_or("the stride is not a tuple of non-negative integers")?;
    if size.len() != stride.len() {
        return Err(format!(
            "size {size:?} and stride {stride:?} differ in rank"
        ));
    }
    Ok(TensorRef {
        storage,
        offset,
        size,
        stride,
    })
}

fn usizes(g: &Graph, id: Id) -> Option<Vec<usize>> {
    let items = match g.get(id) {
        // `torch.Size((…))` in some writers.
        Value::Call { args, .. } => g.items(*args)?.first().and_then(|&t| g.items(t))?,
        _ => g.items(id)?,
    };
    items
        .iter()
        .map(|&i| g.int(i).and_then(|v| usize::try_from(v).ok()))
        .collect()
}

/// The persistent id `("storage", torch.XStorage, key, location, numel[, view])`.
fn storage_ref(g: &Graph, id: Id) -> Result<StorageRef, String> {
    let Value::Persistent(pid) = g.get(id) else {
        return Err("the tensor's storage is not a persistent id".into());
    };
    let items = g.items(*pid).ok_or("a storage id that is not a tuple")?;
    let [tag, class, key, _location, numel, rest @ ..] = items else {
        return Err(format!(
            "a storage id of {} fields (PyTorch writes 5)",
            items.len()
        ));
    };
    if g.text(*tag) != Some("storage") {
        return Err("a persistent id that is not a storage".into());
    }
    let dtype = match g.global(*class) {
        Some(("torch", class)) => RawDtype::of_torch_storage(class).ok_or_else(|| {
            format!("storage type torch.{class} is not read (floats and integers only)")
        })?,
        _ => return Err("a storage whose type is not a torch storage class".into()),
    };
    let key = g
        .key_text(*key)
        .ok_or("a storage key that is not a string")?;
    let numel = g
        .int(*numel)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or("a storage size that is not a non-negative integer")?;
    // Legacy files of PyTorch < 0.4 could describe a storage as a view of
    // another; no later version writes one.
    if rest.first().is_some_and(|&v| g.get(v) != &Value::None) {
        return Err("a storage that is a view of another (PyTorch < 0.4); load and save the file with a current PyTorch".into());
    }
    Ok(StorageRef { key, dtype, numel })
}

impl TensorRef {
    /// Elements of the tensor (checked).
    pub fn elements(&self) -> Result<usize, String> {
        element_count(&self.size).ok_or_else(|| format!("shape {:?} overflows", self.size))
    }

    /// The values in row-major order, read from `storage` (the decoded
    /// storage, `storage.len()` elements) with the tensor's offset and
    /// strides; an error when any index falls outside the storage.
    pub fn gather(&self, storage: &[f64]) -> Result<Vec<f64>, String> {
        let n = self.elements()?;
        if n == 0 {
            return Ok(Vec::new());
        }
        // A dimension of size 1 never steps, whatever its stride says.
        let stride: Vec<usize> = self
            .size
            .iter()
            .zip(&self.stride)
            .map(|(&d, &s)| if d == 1 { 0 } else { s })
            .collect();
        let last = self
            .size
            .iter()
            .zip(&stride)
            .try_fold(self.offset, |acc, (&d, &s)| {
                (d as u64 - 1)
                    .checked_mul(s as u64)
                    .and_then(|x| acc.checked_add(x))
            });
        if last.is_none_or(|last| last >= storage.len() as u64) {
            return Err(format!(
                "size {:?}, stride {:?} and offset {} reach past the storage's {} elements",
                self.size,
                self.stride,
                self.offset,
                storage.len()
            ));
        }
        let mut out = Vec::with_capacity(n);
        let mut index = vec![0usize; self.size.len()];
        let mut at = self.offset as usize;
        for _ in 0..n {
            out.push(storage[at]);
            for d in (0..self.size.len()).rev() {
                index[d] += 1;
                at += stride[d];
                if index[d] < self.size[d] {
                    break;
                }
                at -= stride[d] * self.size[d];
                index[d] = 0;
            }
        }
        Ok(out)
    }
}

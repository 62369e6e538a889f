//! Checkpoints in `torch.save`'s layout, written without torch.
//!
//! `torch.save` writes a zip of stored entries: `archive/data.pkl` (pickle
//! protocol 2), `archive/data/<key>` (each tensor's raw little-endian storage)
//! and `archive/version`. A tensor pickles as
//! `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
//! requires_grad, OrderedDict())`, its storage as the persistent id
//! `("storage", torch.FloatStorage, key, "cpu", numel)`; a module's
//! `state_dict()` as an `OrderedDict` whose `_metadata` attribute follows as
//! BUILD state. The CLI tests include this file by path.

#![allow(dead_code)] // each test file uses its own subset

use std::io::Write;
use std::path::Path;

/// The stored values of one tensor, in the dtype written to disk.
#[derive(Clone, Debug)]
pub enum Storage {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
}

impl Storage {
    fn class(&self) -> &'static str {
        match self {
            Storage::F32(_) => "FloatStorage",
            Storage::F64(_) => "DoubleStorage",
            Storage::I64(_) => "LongStorage",
        }
    }

    fn len(&self) -> usize {
        match self {
            Storage::F32(v) => v.len(),
            Storage::F64(v) => v.len(),
            Storage::I64(v) => v.len(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            Storage::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Storage::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Storage::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// A Python object as a training script saves it.
#[derive(Clone, Debug)]
pub enum Py {
    Int(i64),
    Float(f64),
    Str(String),
    /// A plain dict.
    Dict(Vec<(Py, Py)>),
    /// A module's `state_dict()`: an `OrderedDict` with `_metadata`.
    StateDict(Vec<(String, Py)>),
    Tensor {
        shape: Vec<usize>,
        storage: Storage,
    },
    /// `module.name()` (e.g. a numpy scalar's constructor): a callable that
    /// is not PyTorch's.
    Foreign {
        module: String,
        name: String,
    },
}

impl Py {
    pub fn str(s: &str) -> Py {
        Py::Str(s.to_string())
    }

    /// A dict with string keys.
    pub fn dict(entries: Vec<(&str, Py)>) -> Py {
        Py::Dict(entries.into_iter().map(|(k, v)| (Py::str(k), v)).collect())
    }

    pub fn f32_tensor(shape: &[usize], values: &[f64]) -> Py {
        assert_eq!(shape.iter().product::<usize>(), values.len());
        Py::Tensor {
            shape: shape.to_vec(),
            storage: Storage::F32(values.iter().map(|&v| v as f32).collect()),
        }
    }
}

/// Protocol-2 pickle of a [`Py`] and the storages its tensors refer to.
#[derive(Default)]
struct Pickler {
    out: Vec<u8>,
    storages: Vec<Vec<u8>>,
}

impl Pickler {
    fn int(&mut self, v: i64) {
        if (0..256).contains(&v) {
            self.out.extend([b'K', v as u8]);
        } else if let Ok(small) = i32::try_from(v) {
            self.out.push(b'J');
            self.out.extend(small.to_le_bytes());
        } else {
            self.out.extend([0x8a, 8]); // LONG1, 8 bytes
            self.out.extend(v.to_le_bytes());
        }
    }

    fn text(&mut self, s: &str) {
        self.out.push(b'X');
        self.out.extend((s.len() as u32).to_le_bytes());
        self.out.extend(s.as_bytes());
    }

    fn global(&mut self, module: &str, name: &str) {
        self.out.push(b'c');
        self.out.extend(format!("{module}\n{name}\n").as_bytes());
    }

    fn int_tuple(&mut self, values: &[usize]) {
        self.out.push(b'(');
        for &v in values {
            self.int(v as i64);
        }
        self.out.push(b't');
    }

    /// `EMPTY_DICT`, then the entries in one `SETITEMS`.
    fn dict_items(&mut self, entries: &[(Py, Py)]) {
        self.out.push(b'}');
        if !entries.is_empty() {
            self.out.push(b'(');
            for (k, v) in entries {
                self.value(k);
                self.value(v);
            }
            self.out.push(b'u');
        }
    }

    fn tensor(&mut self, shape: &[usize], storage: &Storage) {
        let key = self.storages.len().to_string();
        self.storages.push(storage.bytes());
        let mut stride = vec![1; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            stride[i] = stride[i + 1] * shape[i + 1];
        }
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.out.push(b'(');
        self.out.push(b'(');
        self.text("storage");
        self.global("torch", storage.class());
        self.text(&key);
        self.text("cpu");
        self.int(storage.len() as i64);
        self.out.extend([b't', b'Q']); // the persistent id
        self.int(0);
        self.int_tuple(shape);
        self.int_tuple(&stride);
        self.out.push(0x89); // requires_grad = False
        self.global("collections", "OrderedDict");
        self.out.extend([b')', b'R']);
        self.out.extend([b't', b'R']);
    }

    fn state_dict(&mut self, entries: &[(String, Py)]) {
        self.global("collections", "OrderedDict");
        self.out.extend([b')', b'R']);
        let items: Vec<(Py, Py)> = entries
            .iter()
            .map(|(k, v)| (Py::Str(k.clone()), v.clone()))
            .collect();
        self.out.push(b'(');
        for (k, v) in &items {
            self.value(k);
            self.value(v);
        }
        self.out.push(b'u');
        // state: {"_metadata": OrderedDict({"": {"version": 1}})}, then BUILD.
        self.out.push(b'}');
        self.out.push(b'(');
        self.text("_metadata");
        self.global("collections", "OrderedDict");
        self.out.extend([b')', b'R']);
        self.out.push(b'(');
        self.text("");
        self.dict_items(&[(Py::str("version"), Py::Int(1))]);
        self.out.push(b'u');
        self.out.push(b'u');
        self.out.push(b'b');
    }

    fn value(&mut self, v: &Py) {
        match v {
            Py::Int(i) => self.int(*i),
            Py::Float(x) => {
                self.out.push(b'G');
                self.out.extend(x.to_be_bytes());
            }
            Py::Str(s) => self.text(s),
            Py::Dict(entries) => self.dict_items(entries),
            Py::StateDict(entries) => self.state_dict(entries),
            Py::Tensor { shape, storage } => self.tensor(shape, storage),
            Py::Foreign { module, name } => {
                self.global(module, name);
                self.out.extend([b')', b'R']);
            }
        }
    }
}

/// Writes `obj` as `torch.save(obj, path)` would.
pub fn torch_save(path: &Path, obj: &Py) {
    let mut p = Pickler::default();
    p.out.extend([0x80, 2]);
    p.value(obj);
    p.out.push(b'.');
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut entry = |name: String, bytes: &[u8]| {
        zip.start_file(name, stored).unwrap();
        zip.write_all(bytes).unwrap();
    };
    entry("archive/data.pkl".into(), &p.out);
    for (key, bytes) in p.storages.iter().enumerate() {
        entry(format!("archive/data/{key}"), bytes);
    }
    entry("archive/version".into(), b"3\n");
    zip.finish().unwrap();
}

/// splitmix64: deterministic test weights without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Uniform in `[-1, 1)`, rounded to f32 (what a checkpoint stores).
    pub fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
        f64::from((2.0 * unit - 1.0) as f32)
    }

    pub fn values(&mut self, n: usize, scale: f64) -> Vec<f64> {
        (0..n)
            .map(|_| f64::from((scale * self.next()) as f32))
            .collect()
    }
}

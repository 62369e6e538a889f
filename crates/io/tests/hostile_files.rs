//! Files written to hurt: each defect class of issue 16 as a crafted
//! pickle. A hostile file is an error naming the file (and the tensor where
//! there is one), never a panic, an abort, a stack overflow or an
//! allocation the file's bytes do not justify. Mutated real files of every
//! format are the `tensim-fuzz` crate's work (`crates/fuzz`).

mod common;

use std::path::{Path, PathBuf};

use common::assert_mentions;
use common::torch_files::write_pt_raw;
use tensim_io::{read_tensor_sets, read_tensor_sets_with, Limits};

/// A pickle assembled opcode by opcode (protocol 2).
struct P(Vec<u8>);

impl P {
    fn new() -> P {
        P(vec![0x80, 2])
    }
    fn op(mut self, bytes: &[u8]) -> P {
        self.0.extend(bytes);
        self
    }
    fn global(self, module: &str, name: &str) -> P {
        self.op(format!("c{module}\n{name}\n").as_bytes())
    }
    fn text(mut self, s: &str) -> P {
        self.0.push(b'X');
        self.0.extend((s.len() as u32).to_le_bytes());
        self.0.extend(s.as_bytes());
        self
    }
    fn int(mut self, v: i64) -> P {
        self.0.push(0x8a);
        self.0.push(8);
        self.0.extend(v.to_le_bytes());
        self
    }
    /// `(a, b, …)` of the ints given.
    fn ints(self, v: &[i64]) -> P {
        v.iter().fold(self.op(b"("), |p, &i| p.int(i)).op(b"t")
    }
    /// The persistent id of a float storage.
    fn storage(self, key: &str, numel: i64) -> P {
        self.op(b"(")
            .text("storage")
            .global("torch", "FloatStorage")
            .text(key)
            .text("cpu")
            .int(numel)
            .op(b"tQ")
    }
    /// `_rebuild_tensor_v2(storage, offset, size, stride, False, {})`.
    fn tensor(self, key: &str, numel: i64, offset: i64, size: &[i64], stride: &[i64]) -> P {
        self.global("torch._utils", "_rebuild_tensor_v2")
            .op(b"(")
            .storage(key, numel)
            .int(offset)
            .ints(size)
            .ints(stride)
            .op(b"\x89}tR")
    }
    /// Ends the stream after a dict `{name: <what the body pushed>}`.
    fn finish(self) -> Vec<u8> {
        self.op(b"s.").0
    }
    /// Starts `{name: …`.
    fn entry(self, name: &str) -> P {
        self.op(b"}").text(name)
    }
}

fn f32_bytes(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect()
}

fn write(dir: &Path, name: &str, pickle: &[u8], storages: &[(&str, Vec<u8>)]) -> PathBuf {
    let path = dir.join(name);
    let storages: Vec<(String, Vec<u8>)> = storages
        .iter()
        .map(|(k, b)| (k.to_string(), b.clone()))
        .collect();
    write_pt_raw(&path, pickle, &storages, false);
    path
}

/// The error of reading `path`, which must name the file.
fn error(path: &Path) -> String {
    let err = read_tensor_sets(path, None).unwrap_err().to_string();
    let file = path.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(file), "{err}");
    err
}

#[test]
fn a_well_formed_crafted_file_loads() {
    let dir = tempfile::tempdir().unwrap();
    let pkl = P::new()
        .entry("w")
        .tensor("0", 6, 0, &[2, 3], &[3, 1])
        .finish();
    let path = write(dir.path(), "ok.pt", &pkl, &[("0", f32_bytes(6))]);
    let sets = read_tensor_sets(&path, None).unwrap();
    assert_eq!(sets[0].tensors[0].values, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
}

#[test]
fn short_argument_tuples_are_errors_naming_the_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, P, &str)> = vec![
        (
            "rebuild.pt",
            P::new()
                .entry("w")
                .global("torch._utils", "_rebuild_tensor_v2")
                .op(b"(")
                .storage("0", 6)
                .int(0)
                .op(b"tR"),
            "2 arguments",
        ),
        (
            "persistent.pt",
            P::new()
                .entry("w")
                .global("torch._utils", "_rebuild_tensor_v2")
                .op(b"((")
                .text("storage")
                .op(b"tQ")
                .int(0)
                .ints(&[2])
                .ints(&[1])
                .op(b"tR"),
            "1 fields",
        ),
        (
            "parameter.pt",
            P::new()
                .entry("w")
                .global("torch._utils", "_rebuild_parameter")
                .op(b")R"),
            "no tensor",
        ),
        (
            "from_type.pt",
            P::new()
                .entry("w")
                .global("torch._tensor", "_rebuild_from_type_v2")
                .op(b"(")
                .global("torch._utils", "_rebuild_tensor_v2")
                .op(b"tR"),
            "fewer than 3",
        ),
    ];
    for (name, pickle, why) in cases {
        let path = write(dir.path(), name, &pickle.finish(), &[("0", f32_bytes(6))]);
        assert_mentions(&error(&path), &["tensor `w`", why]);
    }
}

#[test]
fn deep_nesting_overflows_no_stack() {
    let dir = tempfile::tempdir().unwrap();
    let depth = 300_000;
    // {"w": [[[…]]]}: a list nested 300,000 deep is no tensor and is skipped.
    let mut lists = P::new().entry("w");
    lists.0.extend(std::iter::repeat_n(b'(', depth));
    lists.0.extend(std::iter::repeat_n(b'l', depth));
    let path = write(dir.path(), "lists.pt", &lists.finish(), &[]);
    let sets = read_tensor_sets(&path, None).unwrap();
    assert!(sets[0].tensors.is_empty());
    // Dicts nested that deep would be tensor names of 300,000 parts.
    let mut dicts = P::new();
    for _ in 0..depth {
        dicts = dicts.op(b"}").text("a");
    }
    let mut bytes = dicts.op(b"}").0;
    bytes.extend(std::iter::repeat_n(b's', depth));
    bytes.push(b'.');
    let path = write(dir.path(), "dicts.pt", &bytes, &[]);
    assert_mentions(&error(&path), &["nested deeper than 64"]);
}

#[test]
fn the_memo_cannot_multiply_memory() {
    let dir = tempfile::tempdir().unwrap();
    // x0 = []; x(k+1) = (xk, xk): 2^80 leaves if fetches copied.
    let mut p = P::new().entry("w").op(b"]\x940");
    for k in 0..80u32 {
        let get = [&b"j"[..], &k.to_le_bytes()].concat();
        p = p.op(&get).op(&get).op(b"\x86\x940");
    }
    let p = p.op(&[&b"j"[..], &80u32.to_le_bytes()].concat());
    let path = write(dir.path(), "memo.pt", &p.finish(), &[]);
    let start = std::time::Instant::now();
    let sets = read_tensor_sets(&path, None).unwrap();
    assert!(sets[0].tensors.is_empty());
    assert!(start.elapsed().as_secs() < 5);
}

#[test]
fn declared_sizes_are_checked_before_anything_is_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let six = || vec![("0", f32_bytes(6))];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        // A storage of 2^60 floats behind 24 bytes.
        (
            "huge.pt",
            P::new()
                .entry("w")
                .tensor("0", 1 << 60, 0, &[6], &[1])
                .finish(),
            "limit",
        ),
        // Sizes whose product wraps around usize.
        (
            "wrap.pt",
            P::new()
                .entry("w")
                .tensor("0", 6, 0, &[1 << 40, 1 << 40, 1 << 40], &[0, 0, 0])
                .finish(),
            "overflows",
        ),
        // Strides that reach past the storage.
        (
            "stride.pt",
            P::new()
                .entry("w")
                .tensor("0", 6, 0, &[3, 2], &[2, 4])
                .finish(),
            "reach past",
        ),
        (
            "offset.pt",
            P::new().entry("w").tensor("0", 6, 5, &[2], &[1]).finish(),
            "reach past",
        ),
        // A storage that declares more than the archive holds.
        (
            "short.pt",
            P::new().entry("w").tensor("0", 8, 0, &[8], &[1]).finish(),
            "truncated",
        ),
        // A storage the archive does not hold at all.
        (
            "missing.pt",
            P::new().entry("w").tensor("7", 6, 0, &[6], &[1]).finish(),
            "missing",
        ),
    ];
    for (name, pickle, why) in cases {
        let path = write(dir.path(), name, &pickle, &six());
        assert_mentions(&error(&path), &["tensor `w`", why]);
    }
    // A stride-0 view of one element may not expand past the budget either.
    let path = write(
        dir.path(),
        "expand.pt",
        &P::new()
            .entry("w")
            .tensor("0", 1, 0, &[1 << 30, 1 << 20], &[0, 0])
            .finish(),
        &[("0", f32_bytes(1))],
    );
    assert_mentions(&error(&path), &["tensor `w`", "limit"]);
    // And the budget is the caller's to set.
    let ok = write(
        dir.path(),
        "small.pt",
        &P::new().entry("w").tensor("0", 6, 0, &[6], &[1]).finish(),
        &six(),
    );
    let tight = Limits {
        max_tensor_bytes: 40,
        ..Limits::default()
    };
    let err = read_tensor_sets_with(&ok, None, &tight)
        .unwrap_err()
        .to_string();
    assert_mentions(&err, &["small.pt", "limit of 40 bytes"]);
}

#[test]
fn a_forbidden_global_anywhere_in_the_stream_refuses_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let call = |p: P| p.global("os", "system").text("echo hi").op(b"\x85R");
    let cases = [
        // Built, then popped: the result never holds it.
        ("popped.pt", call(P::new()).op(b"0")),
        // Built and kept in the memo only.
        ("memo.pt", call(P::new()).op(b"\x940")),
        // Named by STACK_GLOBAL, never called.
        ("stack.pt", P::new().text("os").text("system").op(b"\x930")),
    ];
    for (name, prefix) in cases {
        let pkl = prefix.entry("w").tensor("0", 6, 0, &[6], &[1]).finish();
        let path = write(dir.path(), name, &pkl, &[("0", f32_bytes(6))]);
        assert_mentions(&error(&path), &["os.system", "never executes"]);
    }
}

#[test]
fn broken_npy_headers_and_legacy_streams_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let npz = |name: &str, header: &str, data: &[u8]| {
        let path = dir.path().join(name);
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        zip.start_file("a.npy", zip::write::SimpleFileOptions::default())
            .unwrap();
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend(data);
        std::io::Write::write_all(&mut zip, &bytes).unwrap();
        zip.finish().unwrap();
        path
    };
    // (file, npy header, data, what the error must name beside the array).
    let cases: [(&str, &str, &[u8], &str); 4] = [
        (
            "huge.npz",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }",
            &[],
            "overflows",
        ),
        (
            "big.npz",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776,), }",
            &[0; 8],
            "limit",
        ),
        (
            "short.npz",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
            &[0; 8],
            "truncated",
        ),
        (
            "complex.npz",
            "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }",
            &[0; 8],
            "<c8",
        ),
    ];
    for (name, header, data, defect) in cases {
        assert_mentions(&error(&npz(name, header, data)), &["array `a`", defect]);
    }

    // A legacy stream whose storage holds fewer elements than its tensor uses.
    let legacy = std::fs::read(fixture("legacy.pt")).unwrap();
    let cut = dir.path().join("cut.pt");
    std::fs::write(&cut, &legacy[..legacy.len() - 3]).unwrap();
    assert_mentions(&error(&cut), &["legacy PyTorch file", "truncated"]);
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

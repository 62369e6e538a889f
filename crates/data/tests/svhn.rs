//! The SVHN loader on small MATLAB v5 files written by a tiny writer here.

use std::io::Write;
use std::path::{Path, PathBuf};

use tensim_data::svhn::load_svhn_file;
use tensim_data::{load_svhn, DataError};

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_DOUBLE: u32 = 9;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MX_CHAR: u8 = 4;
const MX_DOUBLE: u8 = 6;
const MX_UINT8: u8 = 9;

/// Numbers to store in a variable.
enum Data {
    U8(Vec<u8>),
    F64(Vec<f64>),
}

/// A minimal MATLAB v5 writer.
struct Writer {
    big: bool,
}

impl Writer {
    /// `little_endian` bytes of a number in the file's byte order.
    fn ordered<const N: usize>(&self, mut little_endian: [u8; N]) -> [u8; N] {
        if self.big {
            little_endian.reverse();
        }
        little_endian
    }

    fn u32(&self, v: u32) -> [u8; 4] {
        self.ordered(v.to_le_bytes())
    }

    fn header(&self) -> Vec<u8> {
        let mut h = b"MATLAB 5.0 MAT-file, written by the tensim-data tests".to_vec();
        h.resize(116, b' ');
        h.extend_from_slice(&[0; 8]);
        if self.big {
            h.extend_from_slice(&0x0100u16.to_be_bytes());
            h.extend_from_slice(b"MI");
        } else {
            h.extend_from_slice(&0x0100u16.to_le_bytes());
            h.extend_from_slice(b"IM");
        }
        h
    }

    /// A data element with a full tag, padded to 8 bytes.
    fn element(&self, mi_type: u32, data: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        e.extend_from_slice(&self.u32(mi_type));
        e.extend_from_slice(&self.u32(data.len() as u32));
        e.extend_from_slice(data);
        e.resize(e.len().div_ceil(8) * 8, 0);
        e
    }

    /// A small data element (at most 4 bytes of data).
    fn small_element(&self, mi_type: u32, data: &[u8]) -> Vec<u8> {
        assert!(data.len() <= 4);
        let mut e = self.u32(((data.len() as u32) << 16) | mi_type).to_vec();
        e.extend_from_slice(data);
        e.resize(8, 0);
        e
    }

    fn numbers(&self, data: &Data) -> (u32, Vec<u8>) {
        match data {
            Data::U8(v) => (MI_UINT8, v.clone()),
            Data::F64(v) => (
                MI_DOUBLE,
                v.iter()
                    .flat_map(|x| self.ordered(x.to_le_bytes()))
                    .collect(),
            ),
        }
    }

    /// An miMATRIX element; the real part is written as `data`'s own type.
    fn matrix(&self, name: &str, class: u8, dims: &[i32], data: &Data) -> Vec<u8> {
        let mut body = Vec::new();
        let flags: Vec<u8> = [self.u32(u32::from(class)), self.u32(0)].concat();
        body.extend(self.element(MI_UINT32, &flags));
        let dims: Vec<u8> = dims.iter().flat_map(|&d| self.u32(d as u32)).collect();
        body.extend(self.element(MI_INT32, &dims));
        if name.len() <= 4 {
            body.extend(self.small_element(MI_INT8, name.as_bytes()));
        } else {
            body.extend(self.element(MI_INT8, name.as_bytes()));
        }
        let (mi_type, bytes) = self.numbers(data);
        body.extend(self.element(mi_type, &bytes));
        self.element(MI_MATRIX, &body)
    }

    /// A character array (not numeric), which the loader must skip.
    fn char_matrix(&self, name: &str, text: &str) -> Vec<u8> {
        let mut body = Vec::new();
        let flags: Vec<u8> = [self.u32(u32::from(MX_CHAR)), self.u32(0)].concat();
        body.extend(self.element(MI_UINT32, &flags));
        let dims: Vec<u8> = [1, text.len() as u32]
            .iter()
            .flat_map(|&d| self.u32(d))
            .collect();
        body.extend(self.element(MI_INT32, &dims));
        body.extend(self.element(MI_INT8, name.as_bytes()));
        let chars: Vec<u8> = text
            .bytes()
            .flat_map(|b| self.ordered(u16::from(b).to_le_bytes()))
            .collect();
        body.extend(self.element(MI_UINT16, &chars));
        self.element(MI_MATRIX, &body)
    }

    /// An miCOMPRESSED element wrapping `element` (not padded).
    fn compressed(&self, element: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(element).unwrap();
        let z = enc.finish().unwrap();
        let mut e = Vec::new();
        e.extend_from_slice(&self.u32(MI_COMPRESSED));
        e.extend_from_slice(&self.u32(z.len() as u32));
        e.extend_from_slice(&z);
        e
    }
}

const N: usize = 3;
const LABELS: [u8; N] = [10, 1, 5];

/// RGB value of pixel (r, c), channel ch, image n of the fixture.
fn pixel(r: usize, c: usize, ch: usize, n: usize) -> u8 {
    ((r * 7 + c * 3 + ch * 50 + n * 11 + r * c) % 256) as u8
}

/// X in MATLAB's column-major order: (r, c, ch, n) at r + 32 (c + 32 (ch + 3 n)).
fn x_column_major() -> Vec<u8> {
    let mut x = vec![0u8; 32 * 32 * 3 * N];
    for n in 0..N {
        for ch in 0..3 {
            for c in 0..32 {
                for r in 0..32 {
                    x[r + 32 * (c + 32 * (ch + 3 * n))] = pixel(r, c, ch, n);
                }
            }
        }
    }
    x
}

fn expected_gray(r: usize, c: usize, n: usize) -> f32 {
    let v = |ch| f32::from(pixel(r, c, ch, n));
    (0.2989 * v(0) + 0.5870 * v(1) + 0.1140 * v(2)) / 255.0
}

fn x_data(double: bool) -> Data {
    let x = x_column_major();
    if double {
        Data::F64(x.iter().map(|&v| f64::from(v)).collect())
    } else {
        Data::U8(x)
    }
}

fn y_data(double: bool) -> Data {
    if double {
        Data::F64(LABELS.iter().map(|&v| f64::from(v)).collect())
    } else {
        Data::U8(LABELS.to_vec())
    }
}

const X_DIMS: [i32; 4] = [32, 32, 3, N as i32];
const Y_DIMS: [i32; 2] = [N as i32, 1];

/// A fixture file: X and y (uint8 or double), optionally compressed, with an
/// unrelated char variable in front.
fn fixture(w: &Writer, x_double: bool, y_double: bool, compress: bool) -> Vec<u8> {
    let x_class = if x_double { MX_DOUBLE } else { MX_UINT8 };
    let y_class = if y_double { MX_DOUBLE } else { MX_UINT8 };
    let vars = [
        w.char_matrix("__note__", "fixture"),
        w.matrix("X", x_class, &X_DIMS, &x_data(x_double)),
        w.matrix("y", y_class, &Y_DIMS, &y_data(y_double)),
    ];
    let mut file = w.header();
    for var in vars {
        if compress {
            file.extend(w.compressed(&var));
        } else {
            file.extend(var);
        }
    }
    file
}

fn check(path: &Path) {
    let set = load_svhn_file(path).unwrap();
    assert_eq!(set.len(), N);
    assert_eq!((set.height, set.width), (32, 32));
    assert_eq!(set.labels, vec![0, 1, 5]);
    for n in 0..N {
        let image = set.image(n);
        for r in 0..32 {
            for c in 0..32 {
                let got = image[r * 32 + c];
                let want = expected_gray(r, c, n);
                assert!(
                    (got - want).abs() <= 1e-6,
                    "image {n} pixel ({r}, {c}): {got} vs {want}"
                );
            }
        }
    }
    assert!(set.images.iter().all(|&p| (0.0..=1.0).contains(&p)));
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

const LITTLE: Writer = Writer { big: false };
const BIG: Writer = Writer { big: true };

/// Each variant of the fixture loads to the same images and labels: X and y
/// as uint8 or double, compressed or not, little- or big-endian.
#[test]
fn every_storage_variant_loads() {
    let tmp = tempfile::tempdir().unwrap();
    // (file, byte order, X double, y double, compressed)
    for (name, w, x_double, y_double, compress) in [
        ("a.mat", &LITTLE, false, true, false),
        ("b.mat", &LITTLE, true, false, true),
        ("c.mat", &LITTLE, false, false, true),
        ("d.mat", &BIG, true, true, false),
        ("e.mat", &BIG, false, true, true),
    ] {
        let bytes = fixture(w, x_double, y_double, compress);
        check(&write(tmp.path(), name, &bytes));
    }
}

#[test]
fn load_svhn_reads_both_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "train_32x32.mat", &fixture(&LITTLE, false, true, true));
    write(dir, "test_32x32.mat", &fixture(&LITTLE, false, true, false));
    let split = load_svhn(tmp.path()).unwrap();
    assert_eq!(split.name, "svhn");
    assert_eq!(split.train.len(), N);
    assert_eq!(split.test.len(), N);
    assert_eq!(split.train.images, split.test.images);
}

#[test]
fn missing_test_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let train = fixture(&LITTLE, false, true, false);
    write(tmp.path(), "train_32x32.mat", &train);
    let err = load_svhn(tmp.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::NotFound { .. }), "{msg}");
    assert!(msg.contains("test_32x32.mat: file not found"), "{msg}");
    assert!(msg.contains("not bundled"), "{msg}");
    assert!(msg.contains("--svhn-dir"), "{msg}");
}

fn error_of(bytes: &[u8]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(tmp.path(), "bad.mat", bytes);
    let msg = load_svhn_file(&path).unwrap_err().to_string();
    assert!(msg.contains("bad.mat"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    msg
}

/// Asserts that loading `bytes` fails with a message that contains `expected`.
fn assert_refused(bytes: &[u8], expected: &str) {
    let msg = error_of(bytes);
    assert!(msg.contains(expected), "{msg}");
}

/// A little-endian, uncompressed file of `X` (uint8) and `y` (double) with
/// these dimensions and numbers.
fn x_and_y(x_dims: &[i32], x: &Data, y_dims: &[i32], y: &Data) -> Vec<u8> {
    let mut file = LITTLE.header();
    file.extend(LITTLE.matrix("X", MX_UINT8, x_dims, x));
    file.extend(LITTLE.matrix("y", MX_DOUBLE, y_dims, y));
    file
}

#[test]
fn not_a_v5_file() {
    assert_refused(
        b"just some text, not a mat file",
        "not a MATLAB v5 .mat file",
    );
    let mut v4 = vec![0u8; 300];
    v4[..6].copy_from_slice(b"abcdef");
    assert_refused(&v4, "not a MATLAB v5 .mat file");
    let mut v73 = LITTLE.header();
    v73[124..126].copy_from_slice(&0x0200u16.to_le_bytes());
    assert_refused(&v73, "v7.3");
}

#[test]
fn missing_variables() {
    let w = LITTLE;
    let mut only_x = w.header();
    only_x.extend(w.matrix("X", MX_UINT8, &X_DIMS, &x_data(false)));
    assert_refused(&only_x, "no variable `y`");

    let mut only_y = w.header();
    only_y.extend(w.compressed(&w.matrix("y", MX_DOUBLE, &Y_DIMS, &y_data(true))));
    assert_refused(&only_y, "no variable `X`");
}

#[test]
fn wrong_dims() {
    let x = Data::U8(vec![0; 32 * 32 * N]);
    let msg = error_of(&x_and_y(&[32, 32, 1, N as i32], &x, &Y_DIMS, &y_data(true)));
    assert!(msg.contains("32x32x1x3"), "{msg}");
    assert!(msg.contains("expected 32x32x3xN"), "{msg}");

    let (x, ones) = (x_data(false), |n| Data::F64(vec![1.0; n]));
    assert_refused(&x_and_y(&X_DIMS, &x, &[2, 2], &ones(4)), "expected Nx1");
    let short_y = x_and_y(&X_DIMS, &x, &[2, 1], &ones(2));
    assert_refused(&short_y, "3 images but `y` 2 labels");
}

#[test]
fn bad_label_and_truncation() {
    let labels = Data::F64(vec![1.0, 11.0, 2.0]);
    assert_refused(
        &x_and_y(&X_DIMS, &x_data(false), &Y_DIMS, &labels),
        "label 11",
    );

    let full = fixture(&LITTLE, false, true, false);
    assert_refused(&full[..full.len() - 100], "truncated");
    let full = fixture(&LITTLE, false, true, true);
    assert_refused(&full[..full.len() - 20], "truncated or corrupt");
}

/// A compressed element inflates to the element its tag declares and no
/// further: a zlib stream that carries 32 MB more (a decompression bomb,
/// here behind a tag that claims a gigabyte) is cut at the element's end,
/// and an element that declares more than tensim inflates is refused.
#[test]
fn compressed_elements_inflate_no_further_than_they_declare() {
    let w = LITTLE;
    let mut bomb = w.matrix("y", MX_DOUBLE, &Y_DIMS, &y_data(true));
    bomb.extend(w.u32(MI_MATRIX));
    bomb.extend(w.u32(1 << 30));
    bomb.extend(std::iter::repeat_n(0u8, 32 << 20));
    let mut file = w.header();
    file.extend(w.matrix("X", MX_UINT8, &X_DIMS, &x_data(false)));
    file.extend(w.compressed(&bomb));
    let tmp = tempfile::tempdir().unwrap();
    check(&write(tmp.path(), "bomb.mat", &file));

    let mut huge = w.u32(MI_MATRIX).to_vec();
    huge.extend(w.u32(u32::MAX));
    let mut file = w.header();
    file.extend(w.compressed(&huge));
    assert_refused(&file, "more than tensim inflates");

    let mut nested = w.header();
    nested.extend(w.compressed(&w.compressed(&w.matrix("y", MX_DOUBLE, &Y_DIMS, &y_data(true)))));
    assert_refused(&nested, "a compressed element inside another");
}

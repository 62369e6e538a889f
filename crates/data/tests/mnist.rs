//! MNIST and the IDX reader, on the bundled files and on tiny files written here.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use tensim_data::{bundled_data_dir, load_mnist, read_idx_images, read_idx_labels, DataError};

fn mnist_dir() -> PathBuf {
    bundled_data_dir().join("mnist")
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A tiny IDX images file (n images of rows × cols) and its labels file.
fn tiny_idx(n: u32, rows: u32, cols: u32) -> (Vec<u8>, Vec<u8>) {
    let mut images = Vec::new();
    images.extend_from_slice(&0x0803u32.to_be_bytes());
    for d in [n, rows, cols] {
        images.extend_from_slice(&d.to_be_bytes());
    }
    images.extend((0..n * rows * cols).map(|i| (i * 37 % 256) as u8));
    let mut labels = Vec::new();
    labels.extend_from_slice(&0x0801u32.to_be_bytes());
    labels.extend_from_slice(&n.to_be_bytes());
    labels.extend((0..n).map(|i| (i % 10) as u8));
    (images, labels)
}

/// Writes `bytes` as `dir/name` and returns the path.
fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Writes `bytes` as `name` in a fresh directory and asserts that `read`
/// refuses the file with a message that contains each of `expected`.
fn assert_refused<T: std::fmt::Debug>(
    name: &str,
    bytes: &[u8],
    read: impl Fn(&Path) -> Result<T, DataError>,
    expected: &[&str],
) {
    let tmp = tempfile::tempdir().unwrap();
    let msg = read(&write(tmp.path(), name, bytes))
        .unwrap_err()
        .to_string();
    for e in expected {
        assert!(msg.contains(e), "{msg}");
    }
}

#[test]
fn bundled_mnist_loads() {
    let split = load_mnist(&mnist_dir()).unwrap();
    assert_eq!(split.name, "mnist");
    for (set, n) in [(&split.train, 60_000), (&split.test, 10_000)] {
        assert_eq!(set.len(), n);
        assert_eq!((set.height, set.width), (28, 28));
        assert_eq!(set.dim(), 784);
        assert_eq!(set.images.len(), n * 784);
        assert!(set.labels.iter().all(|&l| l < 10));
        let (lo, hi) = set
            .images
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), &p| (lo.min(p), hi.max(p)));
        assert_eq!((lo, hi), (0.0, 1.0));
        let counts = set.label_counts();
        assert_eq!(counts.len(), 10);
        assert_eq!(counts.iter().sum::<usize>(), n);
        // Every digit is well represented (between 8% and 12% of the samples).
        assert!(counts.iter().all(|&c| c * 100 > 8 * n && c * 100 < 12 * n));
    }
    // The canonical first labels of MNIST.
    assert_eq!(&split.train.labels[..5], &[5, 0, 4, 1, 9]);
    assert_eq!(&split.test.labels[..5], &[7, 2, 1, 0, 4]);
}

fn assert_checksum_error(err: DataError, file: &str) {
    let msg = err.to_string();
    assert!(matches!(err, DataError::Checksum { .. }), "{msg}");
    assert!(msg.contains(file), "{msg}");
    assert!(msg.contains("SHA-256 mismatch"), "{msg}");
    assert!(msg.contains("corrupt"), "{msg}");
    assert!(msg.contains("git checkout"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
}

#[test]
fn corrupted_raw_copy_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = gunzip(&mnist_dir().join("train-images.idx3-ubyte.gz"));
    // Flip a pixel byte: the IDX header stays valid, only the checksum can tell.
    bytes[16 + 400] ^= 0x40;
    let raw = write(tmp.path(), "train-images.idx3-ubyte", &bytes);
    let err = load_mnist(tmp.path()).unwrap_err();
    assert_checksum_error(err, &raw.display().to_string());
}

#[test]
fn corrupted_gz_copy_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let src = mnist_dir();
    std::fs::copy(
        src.join("train-images.idx3-ubyte.gz"),
        tmp.path().join("train-images.idx3-ubyte.gz"),
    )
    .unwrap();
    let mut labels = gunzip(&src.join("train-labels.idx1-ubyte.gz"));
    labels[8 + 123] = (labels[8 + 123] + 1) % 10;
    let gz = write(tmp.path(), "train-labels.idx1-ubyte.gz", &gzip(&labels));
    let err = load_mnist(tmp.path()).unwrap_err();
    assert_checksum_error(err, &gz.display().to_string());
}

#[test]
fn missing_mnist_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let err = load_mnist(tmp.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::NotFound { .. }), "{msg}");
    assert!(msg.contains("train-images.idx3-ubyte"), "{msg}");
    assert!(msg.contains("not found"), "{msg}");
}

#[test]
fn raw_and_gzipped_idx_read_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let (images, labels) = tiny_idx(3, 4, 5);
    let raw_images = write(tmp.path(), "imgs.idx3-ubyte", &images);
    let raw_labels = write(tmp.path(), "labels.idx1-ubyte", &labels);

    let (pixels, n, rows, cols) = read_idx_images(&raw_images).unwrap();
    assert_eq!((n, rows, cols), (3, 4, 5));
    assert_eq!(pixels, images[16..].to_vec());
    assert_eq!(pixels[7], (7 * 37 % 256) as u8);
    assert_eq!(read_idx_labels(&raw_labels).unwrap(), vec![0, 1, 2]);

    // Gzip is recognised by its magic bytes, not by the file name.
    let gz_images = write(tmp.path(), "imgs.bin", &gzip(&images));
    assert_eq!(read_idx_images(&gz_images).unwrap(), (pixels, 3, 4, 5));
}

#[test]
fn truncated_idx_is_rejected() {
    let (images, labels) = tiny_idx(3, 4, 5);
    let short = &images[..images.len() - 1];
    let expected = ["truncated", "short.idx3-ubyte", "3x4x5"];
    assert_refused("short.idx3-ubyte", short, read_idx_images, &expected);

    // Too long is also a mismatch.
    let mut long = labels.clone();
    long.push(0);
    let expected = ["truncated or corrupt"];
    assert_refused("long.idx1-ubyte", &long, read_idx_labels, &expected);

    // Header cut short.
    assert_refused(
        "header.idx3-ubyte",
        &images[..10],
        read_idx_images,
        &["header"],
    );

    // A truncated gzip stream.
    let gz = gzip(&images);
    let cut = &gz[..gz.len() / 2];
    let expected = ["cut.idx3-ubyte.gz", "truncated"];
    assert_refused("cut.idx3-ubyte.gz", cut, read_idx_images, &expected);
}

#[test]
fn wrong_magic_is_rejected() {
    let (_, labels) = tiny_idx(3, 4, 5);
    let expected = ["not an IDX images file", "0x00000801"];
    assert_refused("labels.idx1-ubyte", &labels, read_idx_images, &expected);
}

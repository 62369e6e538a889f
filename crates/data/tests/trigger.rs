//! The backdoor trigger's shape and placement.

use tensim_data::trigger::{diamond_contains, stamp_all};
use tensim_data::{stamp_diamond, trigger_value, DataError, ImageSet};

fn stamped(height: usize, width: usize) -> Vec<f32> {
    let mut image = vec![0.0; height * width];
    stamp_diamond(&mut image, height, width, 1.0).unwrap();
    image
}

#[test]
fn diamond_shape() {
    // Rows of the 7x5 box: 1, 3, 3, 5, 3, 3, 1 pixels on.
    let rows: Vec<usize> = (0..7)
        .map(|r| (0..5).filter(|&c| diamond_contains(r, c)).count())
        .collect();
    assert_eq!(rows, vec![1, 3, 3, 5, 3, 3, 1]);
}

#[test]
fn stamp_on_mnist_sized_image() {
    let (h, w) = (28, 28);
    let image = stamped(h, w);
    assert_eq!(image.iter().filter(|&&p| p == 1.0).count(), 19);
    let (top, left) = (2, w - 7);
    // The box centre is on; its corners are off.
    assert_eq!(image[(top + 3) * w + left + 2], 1.0);
    for (r, c) in [(0, 0), (0, 4), (6, 0), (6, 4)] {
        assert_eq!(image[(top + r) * w + left + c], 0.0);
    }
    // Everything on lies inside the box; the box is symmetric both ways.
    for r in 0..h {
        for c in 0..w {
            let on = image[r * w + c] == 1.0;
            let in_box = (top..top + 7).contains(&r) && (left..left + 5).contains(&c);
            if !in_box {
                assert!(!on, "({r}, {c}) outside the box is on");
                continue;
            }
            let (br, bc) = (r - top, c - left);
            let mirror_v = image[(top + 6 - br) * w + c];
            let mirror_h = image[r * w + left + 4 - bc];
            assert_eq!(image[r * w + c], mirror_v);
            assert_eq!(image[r * w + c], mirror_h);
        }
    }
    // Top row of the diamond at row 2, rightmost pixel 2 px from the right edge.
    assert_eq!(image[2 * w + left + 2], 1.0);
    assert_eq!(image[(top + 3) * w + w - 3], 1.0);
    assert!((0..h).all(|r| image[r * w + w - 2] == 0.0 && image[r * w + w - 1] == 0.0));
}

#[test]
fn stamp_on_svhn_sized_image_with_value() {
    let (h, w) = (32, 32);
    let mut image = vec![0.5; h * w];
    stamp_diamond(&mut image, h, w, trigger_value("svhn")).unwrap();
    assert_eq!(image.iter().filter(|&&p| p == 0.0).count(), 19);
    assert_eq!(image[5 * w + (w - 7) + 2], 0.0);
}

#[test]
fn trigger_that_does_not_fit_errors() {
    let mut image = vec![0.0; 64];
    let err = stamp_diamond(&mut image, 8, 8, 1.0).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::TriggerDoesNotFit { .. }), "{msg}");
    assert!(msg.contains("8x8"), "{msg}");
    assert!(image.iter().all(|&p| p == 0.0));
    // Buffer of the wrong length.
    let mut image = vec![0.0; 10];
    assert!(stamp_diamond(&mut image, 28, 28, 1.0).is_err());
}

#[test]
fn trigger_values() {
    assert_eq!(trigger_value("mnist"), 1.0);
    assert_eq!(trigger_value("digits"), 1.0);
    assert_eq!(trigger_value("svhn"), 0.0);
}

#[test]
fn stamp_all_images() {
    let mut set = ImageSet {
        images: vec![0.0; 2 * 28 * 28],
        labels: vec![3, 4],
        height: 28,
        width: 28,
    };
    stamp_all(&mut set, 1.0).unwrap();
    for i in 0..2 {
        assert_eq!(set.image(i), stamped(28, 28).as_slice());
    }
    let mut digits = ImageSet {
        images: vec![0.0; 64],
        labels: vec![1],
        height: 8,
        width: 8,
    };
    assert!(stamp_all(&mut digits, 1.0).is_err());
}

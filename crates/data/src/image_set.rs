//! In-memory image datasets: [`ImageSet`] and a train/test [`Split`].

/// Grayscale images in `[0, 1]`, flattened row-major, with labels.
///
/// Image `i` occupies `images[i * dim() .. (i + 1) * dim()]`, and pixel
/// `(r, c)` of it is at offset `r * width + c`. `labels[i]` is its class.
#[derive(Clone, Debug)]
pub struct ImageSet {
    /// All pixels, image after image, each image row-major.
    pub images: Vec<f32>,
    /// One label per image.
    pub labels: Vec<u8>,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels per image: `height * width`.
    pub fn dim(&self) -> usize {
        self.height * self.width
    }

    /// The pixels of image `i`, row-major.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn image(&self, i: usize) -> &[f32] {
        let d = self.dim();
        &self.images[i * d..(i + 1) * d]
    }

    /// A new set of the images at `indices`, in that order (repeats allowed).
    ///
    /// # Panics
    /// If an index is `>= self.len()`.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let d = self.dim();
        let mut images = Vec::with_capacity(indices.len() * d);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        ImageSet {
            images,
            labels,
            height: self.height,
            width: self.width,
        }
    }

    /// A new set of only the samples whose label is in `classes`, in their
    /// original order. Labels are kept as they are (not renumbered).
    pub fn with_classes(&self, classes: &[u8]) -> ImageSet {
        let indices: Vec<usize> = (0..self.len())
            .filter(|&i| classes.contains(&self.labels[i]))
            .collect();
        self.subset(&indices)
    }

    /// A new set of the first `n` samples (all of them if `n >= len()`).
    pub fn first(&self, n: usize) -> ImageSet {
        let n = n.min(self.len());
        let d = self.dim();
        ImageSet {
            images: self.images[..n * d].to_vec(),
            labels: self.labels[..n].to_vec(),
            height: self.height,
            width: self.width,
        }
    }

    /// How many samples carry each label: entry `k` counts label `k`.
    /// The vector is as long as the largest label plus one (empty for an empty set).
    pub fn label_counts(&self) -> Vec<usize> {
        let len = self
            .labels
            .iter()
            .map(|&l| l as usize + 1)
            .max()
            .unwrap_or(0);
        let mut counts = vec![0; len];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

/// A dataset's training and test sets.
#[derive(Clone, Debug)]
pub struct Split {
    /// Training samples.
    pub train: ImageSet,
    /// Held-out test samples.
    pub test: ImageSet,
    /// The dataset's name: `"mnist"`, `"digits"` or `"svhn"`.
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> ImageSet {
        // 4 images of 1x2 pixels: image i is [i, i + 0.5] / 10.
        let images = (0..4)
            .flat_map(|i| [i as f32 / 10.0, (i as f32 + 0.5) / 10.0])
            .collect();
        ImageSet {
            images,
            labels: vec![3, 1, 3, 0],
            height: 1,
            width: 2,
        }
    }

    #[test]
    fn accessors() {
        let s = toy();
        assert_eq!(s.len(), 4);
        assert!(!s.is_empty());
        assert_eq!(s.dim(), 2);
        assert_eq!(s.image(2), &[0.2, 0.25]);
        assert_eq!(s.label_counts(), vec![1, 1, 0, 2]);
    }

    #[test]
    fn subset_classes_first() {
        let s = toy();
        let sub = s.subset(&[3, 0, 3]);
        assert_eq!(sub.labels, vec![0, 3, 0]);
        assert_eq!(sub.image(1), s.image(0));
        assert_eq!(sub.images.len(), 6);

        let c = s.with_classes(&[3, 0]);
        assert_eq!(c.labels, vec![3, 3, 0]);
        assert_eq!(c.image(1), s.image(2));

        let f = s.first(2);
        assert_eq!(f.labels, vec![3, 1]);
        assert_eq!(f.images, s.images[..4].to_vec());
        assert_eq!(s.first(99).len(), 4);
        assert!(s.first(0).is_empty());
        assert!(s.with_classes(&[7]).is_empty());
    }
}

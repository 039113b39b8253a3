//! Data: the IDX reader, MNIST and Shakespeare location/fetching/verification, and seeded
//! minibatches.

pub mod idx;
pub(crate) mod mnist;
pub(crate) mod shakespeare;

use autodiff::Tensor;
use rand::seq::SliceRandom;
use rand::Rng;
use std::path::PathBuf;

/// `name`'s directory in the per-user cache (`$XDG_CACHE_HOME/backprop/name` or
/// `~/.cache/backprop/name`), if a cache or home directory is known.
pub(crate) fn user_cache_dir(name: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("backprop").join(name))
}

/// Examples as rows of pixels with their labels. Pixels are kept as bytes (a quarter
/// of the memory of f32) and become f32 in [0, 1] when a batch is gathered, which also
/// makes gathering a batch read four times less memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pixels: Vec<u8>,
    features: usize,
    /// One class index per row.
    pub labels: Vec<usize>,
}

/// A minibatch: copied rows and their labels.
#[derive(Clone, Debug)]
pub struct Batch {
    /// `[batch, features]`, values in [0, 1].
    pub images: Tensor<f32>,
    /// One class index per row.
    pub labels: Vec<usize>,
}

impl Dataset {
    /// A dataset of `labels.len()` rows of `features` byte-valued pixels (0-255 maps to
    /// 0.0-1.0). Panics if the pixel count is not `labels.len() * features`.
    pub fn from_bytes(pixels: Vec<u8>, features: usize, labels: Vec<usize>) -> Self {
        assert_eq!(
            pixels.len(),
            labels.len() * features,
            "Dataset: {} pixels do not make {} rows of {features}",
            pixels.len(),
            labels.len()
        );
        Dataset {
            pixels,
            features,
            labels,
        }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per example (784 for MNIST).
    pub fn features(&self) -> usize {
        self.features
    }

    /// The raw pixel bytes, row-major.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Every example as one `[n, features]` f32 tensor.
    pub fn images(&self) -> Tensor<f32> {
        self.slice(0, self.len()).images
    }

    /// The examples `start..end` as one batch, in order.
    pub fn slice(&self, start: usize, end: usize) -> Batch {
        let indices: Vec<usize> = (start..end.min(self.len())).collect();
        self.gather(&indices)
    }

    /// The examples at `indices`, as one batch. Large batches are gathered in one band
    /// of rows per thread ([`Tensor::gather_rows`]); the first layer's product is split
    /// the same way, so each core multiplies the rows it just wrote.
    pub fn gather(&self, indices: &[usize]) -> Batch {
        self.gather_rows(indices, indices.len())
    }

    /// [`Dataset::gather`] into storage with room for at least `capacity_rows` rows.
    fn gather_rows(&self, indices: &[usize], capacity_rows: usize) -> Batch {
        // Pixels become f32 in [0, 1].
        let images = Tensor::gather_rows_with_capacity(
            &self.pixels,
            self.features,
            indices,
            capacity_rows,
            |p| f32::from(p) * (1.0 / 255.0),
        );
        Batch {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// The first `n` examples (all of them if there are fewer).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            pixels: self.pixels[..n * self.features].to_vec(),
            features: self.features,
            labels: self.labels[..n].to_vec(),
        }
    }

    /// Shuffles the examples with `rng` and yields batches of `batch_size` (the last
    /// one may be smaller). The same seed gives the same order.
    pub fn batches<'a, R: Rng + ?Sized>(
        &'a self,
        batch_size: usize,
        rng: &mut R,
    ) -> impl Iterator<Item = Batch> + 'a {
        assert!(batch_size > 0, "batches: batch size must be positive");
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(rng);
        let chunks: Vec<Vec<usize>> = order.chunks(batch_size).map(<[usize]>::to_vec).collect();
        // Every batch, the short last one too, is allocated at the full size, so that
        // the allocator hands every step the same blocks (a smaller last batch made
        // buffers swap places every other epoch, one layout slower; docs/performance.md).
        chunks
            .into_iter()
            .map(move |idx| self.gather_rows(&idx, batch_size))
    }

    /// A copy in which every image (rows of `width` pixels; `features / width` rows) is
    /// moved by its own random whole-pixel offset, `dx` and `dy` each drawn uniformly
    /// from `-max_shift..=max_shift` with `rng`; pixels moved in from outside the frame
    /// are 0 and pixels moved out are dropped. Labels are kept. The same generator state
    /// gives the same copy, so augmentation seeded from (seed, epoch) is deterministic.
    /// Panics if `width` does not divide the features.
    pub fn shifted<R: Rng + ?Sized>(&self, width: usize, max_shift: usize, rng: &mut R) -> Self {
        let f = self.features;
        assert!(
            width > 0 && f.is_multiple_of(width),
            "shifted: rows of {width} pixels do not tile images of {f}"
        );
        let height = f / width;
        let k = max_shift as i64;
        let mut pixels = vec![0u8; self.pixels.len()];
        for (src, dst) in self.pixels.chunks_exact(f).zip(pixels.chunks_exact_mut(f)) {
            let dx = rng.random_range(-k..=k);
            let dy = rng.random_range(-k..=k);
            // Output column x reads input column x - dx; the columns with an input.
            let x0 = dx.clamp(0, width as i64) as usize;
            let x1 = (width as i64 + dx).clamp(0, width as i64) as usize;
            for y in 0..height {
                let sy = y as i64 - dy;
                if sy < 0 || sy >= height as i64 || x0 >= x1 {
                    continue;
                }
                let sy = sy as usize;
                let sx0 = (x0 as i64 - dx) as usize;
                dst[y * width + x0..y * width + x1]
                    .copy_from_slice(&src[sy * width + sx0..sy * width + sx0 + (x1 - x0)]);
            }
        }
        Dataset {
            pixels,
            features: f,
            labels: self.labels.clone(),
        }
    }

    /// Number of batches of `batch_size` in one pass.
    pub fn num_batches(&self, batch_size: usize) -> usize {
        self.len().div_ceil(batch_size.max(1))
    }
}

#[cfg(test)]
mod shift_tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// Three 4x3 images whose pixels are their own (index + 1).
    fn counting() -> Dataset {
        let pixels: Vec<u8> = (0..3).flat_map(|_| 1..=12u8).collect();
        Dataset::from_bytes(pixels, 12, vec![7, 8, 9])
    }

    /// The image shifted by (dx, dy) the slow way, to compare with.
    fn shift_by(src: &[u8], width: usize, dx: i64, dy: i64) -> Vec<u8> {
        let height = src.len() / width;
        let mut out = vec![0; src.len()];
        for y in 0..height as i64 {
            for x in 0..width as i64 {
                let (sx, sy) = (x - dx, y - dy);
                if (0..width as i64).contains(&sx) && (0..height as i64).contains(&sy) {
                    out[(y * width as i64 + x) as usize] = src[(sy * width as i64 + sx) as usize];
                }
            }
        }
        out
    }

    #[test]
    fn every_image_is_one_of_its_shifts_and_keeps_its_label() {
        let data = counting();
        for seed in 0..20 {
            let shifted = data.shifted(4, 2, &mut StdRng::seed_from_u64(seed));
            assert_eq!(shifted.labels, data.labels);
            for (i, row) in shifted.pixels().chunks(12).enumerate() {
                let src = &data.pixels()[i * 12..(i + 1) * 12];
                let found = (-2..=2)
                    .flat_map(|dx| (-2..=2).map(move |dy| (dx, dy)))
                    .any(|(dx, dy)| shift_by(src, 4, dx, dy) == row);
                assert!(
                    found,
                    "seed {seed}, image {i}: {row:?} is no shift of {src:?}"
                );
            }
        }
    }

    #[test]
    fn shifts_are_deterministic_per_seed_and_vary_between_seeds() {
        let data = counting();
        let a = data.shifted(4, 1, &mut StdRng::seed_from_u64(3));
        let b = data.shifted(4, 1, &mut StdRng::seed_from_u64(3));
        assert_eq!(a, b);
        let differs = (4..30).any(|s| data.shifted(4, 1, &mut StdRng::seed_from_u64(s)) != a);
        assert!(differs);
        // No shift at all is the identity.
        assert_eq!(data.shifted(4, 0, &mut StdRng::seed_from_u64(1)), data);
    }

    #[test]
    fn a_one_pixel_right_shift_moves_columns() {
        let src: Vec<u8> = (1..=12).collect();
        assert_eq!(
            shift_by(&src, 4, 1, 0),
            vec![0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11]
        );
    }
}

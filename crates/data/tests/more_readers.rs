//! The readers for the rest of D's Figure 1: CIFAR-100 (binary) and SVHN (cropped digits,
//! level-5 MAT files): round trips through files the tests write, and errors naming the file
//! (never panics) on truncated, corrupt and foreign files.

use overparam_data::{
    Cifar100Labels, DataError, Split, encode_mat, parse_cifar100, parse_mat, parse_svhn,
    read_cifar100_dir, read_svhn_dir,
};
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("overparam-more-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn expect_error_naming(result: Result<impl std::fmt::Debug, DataError>, path: &Path, what: &str) {
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains(&path.display().to_string()),
        "no file name in: {err}"
    );
    assert!(err.contains(what), "'{what}' not in: {err}");
}

/// Three CIFAR-100 records: (coarse, fine) labels and pixels `(i·7 + k) mod 256`.
fn cifar100(labels: &[(u8, u8)]) -> Vec<u8> {
    labels
        .iter()
        .enumerate()
        .flat_map(|(i, &(coarse, fine))| {
            [coarse, fine]
                .into_iter()
                .chain((0..3072).map(move |k| ((i * 7 + k) % 256) as u8))
        })
        .collect()
}

#[test]
fn cifar100_reads_fine_or_coarse_labels() {
    let dir = scratch("cifar100");
    std::fs::write(dir.join("test.bin"), cifar100(&[(3, 41), (19, 99), (0, 0)])).unwrap();
    let fine = read_cifar100_dir(&dir, Split::Test, Cifar100Labels::Fine).unwrap();
    assert_eq!(fine.labels, vec![41, 99, 0]);
    assert_eq!(fine.shape, vec![3, 32, 32]);
    // Image 1, green plane (channel 1), row 2, column 5: byte 1024 + 2·32 + 5 of its record.
    assert_eq!(
        fine.pixels[3072 + 1024 + 2 * 32 + 5],
        ((7 + 1024 + 69) % 256) as f64
    );
    let coarse = read_cifar100_dir(&dir, Split::Test, Cifar100Labels::Coarse).unwrap();
    assert_eq!(coarse.labels, vec![3, 19, 0]);
    assert_eq!(coarse.pixels, fine.pixels);

    let path = dir.join("train.bin");
    expect_error_naming(
        read_cifar100_dir(&dir, Split::Train, Cifar100Labels::Fine),
        &path,
        "No such file",
    );
    let bytes = cifar100(&[(3, 41)]);
    expect_error_naming(
        parse_cifar100(&bytes[..3000], &path, Cifar100Labels::Fine),
        &path,
        "3074",
    );
    for (labels, what) in [((20, 5), "label 20"), ((2, 100), "label 100")] {
        let bytes = cifar100(&[labels]);
        expect_error_naming(
            parse_cifar100(&bytes, &path, Cifar100Labels::Fine),
            &path,
            what,
        );
    }
    // A CIFAR-10 batch (3073-byte records) is not CIFAR-100.
    expect_error_naming(
        parse_cifar100(&vec![0u8; 3 * 3073], &path, Cifar100Labels::Fine),
        &path,
        "CIFAR-100",
    );
}

/// SVHN's X (32 × 32 × 3 × n, column-major) with pixel `(row·7 + col·3 + c·50 + image·11) mod
/// 256`, and y.
fn svhn(labels: &[f64], compress: bool, extra: bool) -> Vec<u8> {
    let n = labels.len();
    let mut x = vec![0.0; 32 * 32 * 3 * n];
    for image in 0..n {
        for c in 0..3 {
            for col in 0..32 {
                for row in 0..32 {
                    x[row + 32 * col + 1024 * c + 3072 * image] =
                        ((row * 7 + col * 3 + c * 50 + image * 11) % 256) as f64;
                }
            }
        }
    }
    let dims = [32, 32, 3, n];
    let ydims = [n, 1];
    let mut arrays: Vec<(&str, &[usize], &[f64])> = vec![("X", &dims, &x)];
    let note = [1.0, 2.0];
    if extra {
        arrays.push(("note", &[1, 2], &note));
    }
    let mut file = encode_mat(&arrays, true, compress);
    // y is stored as double, as SVHN's is.
    let y = encode_mat(&[("y", &ydims, labels)], false, compress);
    file.extend_from_slice(&y[128..]);
    file
}

#[test]
fn svhn_reads_images_and_maps_label_10_to_0() {
    let dir = scratch("svhn");
    for compress in [false, true] {
        std::fs::write(
            dir.join("train_32x32.mat"),
            svhn(&[10.0, 3.0, 1.0], compress, true),
        )
        .unwrap();
        let set = read_svhn_dir(&dir, Split::Train).unwrap();
        assert_eq!(set.labels, vec![0, 3, 1]);
        assert_eq!(set.shape, vec![3, 32, 32]);
        // Image 2, blue (channel 2), row 4, column 9.
        let value = set.pixels[2 * 3072 + 2 * 1024 + 4 * 32 + 9];
        assert_eq!(
            value,
            f64::from(4 * 7 + 9 * 3 + 2 * 50 + 2 * 11),
            "{compress}"
        );
    }
    let arrays = parse_mat(&svhn(&[1.0], true, true), Path::new("x.mat")).unwrap();
    let names: Vec<&str> = arrays.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["X", "note", "y"]);
    assert_eq!(arrays[1].values, vec![1.0, 2.0]);
}

#[test]
fn bad_svhn_files_are_errors_naming_the_file() {
    let path = Path::new("/data/svhn/train_32x32.mat");
    expect_error_naming(parse_svhn(b"not a mat file", path), path, "not a MAT file");
    let mut v73 = svhn(&[1.0], false, false);
    v73[..10].copy_from_slice(b"MATLAB 7.3");
    expect_error_naming(parse_svhn(&v73, path), path, "v7.3");
    expect_error_naming(
        parse_svhn(&svhn(&[11.0], false, false), path),
        path,
        "label 0 is 11",
    );
    let only_x = encode_mat(&[("X", &[32, 32, 3, 1], &vec![0.0; 3072])], true, false);
    expect_error_naming(
        parse_svhn(&only_x, path),
        path,
        "no variable 'y' (found: X)",
    );
    let small = encode_mat(
        &[("X", &[28, 28, 1], &vec![0.0; 784]), ("y", &[1, 1], &[1.0])],
        true,
        true,
    );
    expect_error_naming(parse_svhn(&small, path), path, "[28, 28, 1]");
    // Every truncation and a corrupted compressed stream: errors, never panics.
    for compress in [false, true] {
        let good = svhn(&[2.0, 5.0], compress, false);
        for cut in (129..good.len()).step_by(97) {
            let result = std::panic::catch_unwind(|| parse_svhn(&good[..cut], path));
            assert!(
                matches!(result, Ok(Err(_))),
                "cut at {cut} (compressed: {compress})"
            );
        }
        let mut corrupt = good.clone();
        for b in corrupt.iter_mut().skip(150).step_by(13) {
            *b ^= 0x5A;
        }
        let result = std::panic::catch_unwind(|| parse_svhn(&corrupt, path));
        assert!(
            matches!(result, Ok(Err(_))),
            "corrupt (compressed: {compress})"
        );
    }
}

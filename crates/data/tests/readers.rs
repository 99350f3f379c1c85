//! The IDX, CIFAR-10, CIFAR-100 and SVHN (level-5 MAT) readers: round trips, real
//! Fashion-MNIST, and errors (never panics) on missing, malformed, truncated and random files.

use flate2::Compression;
use flate2::write::GzEncoder;
use overparam_data::{
    Cifar100Labels, DataError, FASHION_MNIST_DIR, Prepare, Split, TargetEncoding, encode_idx_u8,
    encode_mat, parse_cifar10, parse_cifar100, parse_idx, parse_mat, parse_svhn, random_images,
    read_cifar10_dir, read_cifar100_dir, read_idx, read_idx_images, read_mnist_layout,
    read_svhn_dir,
};
use overparam_rng::{Purpose, RngExt, stream};
use std::io::Write;
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("overparam-data-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Four 2×3 images of classes 0, 1, 2, 1 and their labels.
fn tiny_mnist(dir: &Path, gz: bool) -> (PathBuf, PathBuf) {
    let pixels: Vec<u8> = (0..24).map(|i| (i * 10) as u8).collect();
    let images = encode_idx_u8(&[4, 2, 3], &pixels);
    let labels = encode_idx_u8(&[4], &[0, 1, 2, 1]);
    let (ext, images, labels) = if gz {
        (".gz", gzip(&images), gzip(&labels))
    } else {
        ("", images, labels)
    };
    let img = dir.join(format!("train-images-idx3-ubyte{ext}"));
    let lab = dir.join(format!("train-labels-idx1-ubyte{ext}"));
    std::fs::write(&img, images).unwrap();
    std::fs::write(&lab, labels).unwrap();
    (img, lab)
}

#[test]
fn idx_round_trips_raw_and_gz() {
    for gz in [false, true] {
        let dir = scratch(if gz { "gz" } else { "raw" });
        let (img, lab) = tiny_mnist(&dir, gz);
        let arr = read_idx(&img).unwrap();
        assert_eq!(arr.dims, vec![4, 2, 3]);
        assert_eq!(arr.values[5], 50.0);
        let set = read_mnist_layout(&dir, Split::Train).unwrap();
        assert_eq!(set, read_idx_images(&img, &lab).unwrap());
        assert_eq!(set.labels, vec![0, 1, 2, 1]);
        assert_eq!(set.shape, vec![1, 2, 3]);
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[test]
fn prepare_selects_encodes_and_normalizes() {
    let dir = scratch("prepare");
    let (img, lab) = tiny_mnist(&dir, false);
    let set = read_idx_images(&img, &lab).unwrap();
    let binary = set
        .prepare(&Prepare {
            classes: Some(vec![1, 0]),
            encoding: TargetEncoding::Sign,
            keep_channels: true,
            ..Prepare::default()
        })
        .unwrap();
    // Images 0 (class 0), 1 and 3 (class 1); class 1 is listed first, so it is +1.
    assert_eq!(binary.targets(), &[-1.0, 1.0, 1.0]);
    assert_eq!(binary.shape(), &[1, 2, 3]);
    for row in binary.inputs().chunks(6) {
        assert!((row.iter().map(|v| v * v).sum::<f64>() - 1.0).abs() < 1e-12);
    }
    let onehot = set
        .prepare(&Prepare {
            center: true,
            unit_norm: false,
            ..Prepare::default()
        })
        .unwrap();
    assert_eq!(onehot.target_dim(), 3);
    for c in 0..6 {
        let mean: f64 = onehot.inputs().iter().skip(c).step_by(6).sum::<f64>() / 4.0;
        assert!(mean.abs() < 1e-12);
    }
    assert_eq!(&onehot.targets()[3..6], &[0.0, 1.0, 0.0]);
    let err = set
        .prepare(&Prepare {
            encoding: TargetEncoding::Sign,
            ..Prepare::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("exactly two classes"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn random_labels_and_subsamples_are_seeded() {
    let set = random_images(200, &[3, 4, 4], 10, 1).unwrap();
    let options = Prepare {
        n: Some(50),
        random_labels: true,
        seed: 9,
        ..Prepare::default()
    };
    let a = set.prepare(&options).unwrap();
    assert_eq!(a, set.prepare(&options).unwrap());
    assert_eq!(a.len(), 50);
    let err = set
        .prepare(&Prepare {
            n: Some(201),
            ..Prepare::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("201"), "{err}");
}

#[test]
fn real_fashion_mnist_loads_when_installed() {
    let dir = Path::new(FASHION_MNIST_DIR);
    if !dir.exists() {
        println!(
            "skipped: {FASHION_MNIST_DIR} not present (apt-get install dataset-fashion-mnist)"
        );
        return;
    }
    let test = read_mnist_layout(dir, Split::Test).unwrap();
    assert_eq!(test.len(), 10_000);
    assert_eq!(test.shape, vec![1, 28, 28]);
    // Fashion-MNIST's test set is balanced: 1000 images of each of the 10 classes.
    for class in 0..10 {
        assert_eq!(test.labels.iter().filter(|&&l| l == class).count(), 1000);
    }
    let two = test
        .prepare(&Prepare {
            classes: Some(vec![0, 9]),
            n: Some(100),
            encoding: TargetEncoding::Sign,
            ..Prepare::default()
        })
        .unwrap();
    assert_eq!(two.len(), 100);
    assert_eq!(two.input_dim(), 784);
}

fn expect_error_naming(result: Result<impl std::fmt::Debug, DataError>, path: &Path, what: &str) {
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains(&path.display().to_string()),
        "no file name in: {err}"
    );
    assert!(err.contains(what), "'{what}' not in: {err}");
}

#[test]
fn bad_files_are_errors_naming_the_file_and_problem() {
    let dir = scratch("bad");
    let missing = dir.join("missing-idx3-ubyte");
    expect_error_naming(read_idx(&missing), &missing, "No such file");

    let magic = dir.join("magic");
    std::fs::write(&magic, [1, 2, 8, 1, 0, 0, 0, 1, 5]).unwrap();
    expect_error_naming(read_idx(&magic), &magic, "magic");

    let truncated = dir.join("truncated");
    let mut bytes = encode_idx_u8(&[3, 2, 2], &[7; 12]);
    bytes.truncate(bytes.len() - 5);
    std::fs::write(&truncated, &bytes).unwrap();
    expect_error_naming(read_idx(&truncated), &truncated, "truncated");

    let truncated_gz = dir.join("truncated.gz");
    let full = gzip(&encode_idx_u8(&[3, 2, 2], &[7; 12]));
    std::fs::write(&truncated_gz, &full[..full.len() / 2]).unwrap();
    expect_error_naming(read_idx(&truncated_gz), &truncated_gz, "gzip");

    // Wrong dimensions: a label file with 3 labels for 4 images, and a 2-D image file.
    let (img, _) = tiny_mnist(&dir, false);
    let labels = dir.join("labels3");
    std::fs::write(&labels, encode_idx_u8(&[3], &[0, 1, 2])).unwrap();
    expect_error_naming(read_idx_images(&img, &labels), &labels, "[3]");
    let flat = dir.join("flat");
    std::fs::write(&flat, encode_idx_u8(&[4, 6], &[0; 24])).unwrap();
    expect_error_naming(read_idx_images(&flat, &labels), &flat, "[4, 6]");

    let cifar = dir.join("data_batch_1.bin");
    expect_error_naming(parse_cifar10(&[0; 3000], &cifar), &cifar, "3073");
    let mut record = vec![0u8; 3073];
    record[0] = 12;
    expect_error_naming(parse_cifar10(&record, &cifar), &cifar, "label 12");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn cifar10_directory_reads_test_batch() {
    let dir = scratch("cifar");
    let mut bytes = Vec::new();
    for label in [3u8, 7] {
        bytes.push(label);
        bytes.extend((0..3072).map(|i| (i % 251) as u8));
    }
    std::fs::write(dir.join("test_batch.bin"), &bytes).unwrap();
    let set = read_cifar10_dir(&dir, Split::Test).unwrap();
    assert_eq!(set.labels, vec![3, 7]);
    assert_eq!(set.shape, vec![3, 32, 32]);
    // Red plane first: pixel 1024 is the first green value.
    assert_eq!(set.pixels[1024], f64::from((1024 % 251) as u8));
    let err = read_cifar10_dir(&dir, Split::Train)
        .unwrap_err()
        .to_string();
    assert!(err.contains("data_batch_1.bin"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = stream(2024, Purpose::Data);
    let path = Path::new("random.bin");
    for case in 0..1000 {
        let len = rng.random_range(0..64usize);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        // Half of the cases get a plausible IDX prefix, to reach the deeper checks.
        if case % 2 == 0 && bytes.len() >= 4 {
            bytes[0] = 0;
            bytes[1] = 0;
            bytes[2] = [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E][case % 6];
            bytes[3] %= 4;
        }
        let parsed = std::panic::catch_unwind(|| parse_idx(&bytes, path));
        assert!(parsed.is_ok(), "parse_idx panicked on {bytes:?}");
        if let Ok(Err(e)) = parsed {
            assert!(e.to_string().contains("random.bin"), "{e}");
        }
        assert!(std::panic::catch_unwind(|| parse_cifar10(&bytes, path)).is_ok());
    }
}

#[test]
fn pooling_averages_blocks_per_channel() {
    // 2 images of 2 channels × 4 × 6, pooled by 2: each output pixel is the mean of its block.
    let set = random_images(2, &[2, 4, 6], 3, 4).unwrap();
    let pooled = set.pool(2).unwrap();
    assert_eq!(pooled.shape, vec![2, 2, 3]);
    assert_eq!(pooled.labels, set.labels);
    let pixel =
        |img: usize, c: usize, y: usize, x: usize| set.pixels[img * 48 + c * 24 + y * 6 + x];
    for img in 0..2 {
        for c in 0..2 {
            for y in 0..2 {
                for x in 0..3 {
                    let block = pixel(img, c, 2 * y, 2 * x)
                        + pixel(img, c, 2 * y + 1, 2 * x)
                        + pixel(img, c, 2 * y, 2 * x + 1)
                        + pixel(img, c, 2 * y + 1, 2 * x + 1);
                    let got = pooled.pixels[img * 12 + c * 6 + y * 3 + x];
                    assert!((got - block / 4.0).abs() < 1e-12);
                }
            }
        }
    }
    let err = set.pool(4).unwrap_err();
    assert!(err.to_string().contains("cannot pool 4 × 6"), "{err}");
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

//! The `overparam` binary: bad inputs exit with a message naming the value (never a panic),
//! results are written, and saved parameters reload to bit-identical losses.

mod common;

use common::scratch;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn overparam(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_overparam"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Runs the binary and fails the test, showing its stderr, unless it succeeds.
fn overparam_ok(args: &[&str]) -> Output {
    let result = overparam(args);
    assert!(
        result.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    result
}

/// Runs the binary and fails the test unless it exits with an error whose message contains
/// every one of `needles`.
fn overparam_fails(args: &[&str], needles: &[&str]) {
    let result = overparam(args);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        !result.status.success() && needles.iter().all(|n| stderr.contains(n)),
        "{args:?}: {stderr}"
    );
}

/// `overparam kernel` of A's fc net with relu, before `--data`'s value.
const KERNEL_FC_RELU: [&str; 6] = ["kernel", "--model", "fc", "--activation", "relu", "--data"];

#[test]
fn bad_inputs_exit_with_a_message_naming_the_value() {
    let cases: &[(&[&str], &str)] = &[
        (&["--width", "0"], "got 0"),
        (&["--depth", "0"], "depth H must be at least 1, got 0"),
        (&["--step-size", "0"], "got 0"),
        (&["--step-size", "-1"], "got -1"),
        (&["--step-size", "NaN"], "got NaN"),
        (&["--model", "resnet", "--c-res", "0"], "c_res"),
        (&["--model", "resnet", "--c-res", "-0.5"], "-0.5"),
        (
            &[
                "--model",
                "conv_resnet",
                "--channels",
                "2",
                "--spatial",
                "5",
                "--d",
                "7",
            ],
            "d = 7",
        ),
        (&["--n", "0"], "sample count n"),
        (&["--data", "idx"], "--data-dir"),
        (&["--data", "separated", "--mu", "1.5"], "1.5"),
        (
            &["--data", "idx", "--data-dir", "/nonexistent/idx"],
            "/nonexistent/idx",
        ),
        (&["--device", "tpu"], "'tpu'"),
        (&["--dtype", "f16"], "'f16'"),
        (&["--activation", "swish"], "'swish'"),
        (
            &["--model", "two_layer", "--activation", "tanh"],
            "ReLU by definition",
        ),
        (&["--loss", "logistic"], "{-1, +1}"),
        (&["--trainable", "W9"], "'W9'"),
        (&["--optimizer", "sgd", "--batch-size", "0"], "got 0"),
        // 8·10¹² parameters: refused with the bytes before anything is allocated.
        (&["--width", "2000000", "--depth", "3"], "needs about"),
        (
            &["--init-from", "/nonexistent/file.safetensors"],
            "/nonexistent/file.safetensors",
        ),
    ];
    let out = scratch("bad");
    for (args, needle) in cases {
        let mut full = vec!["train", "--quiet", "--steps", "1", "--out"];
        full.push(out.to_str().unwrap());
        full.extend_from_slice(args);
        let result = overparam(&full);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success(), "{args:?} succeeded");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: '{needle}' not in: {stderr}"
        );
    }
    // The kernel limits of 200 000 samples hold (H + 2)·n² = 2·10¹¹ entries: refused up front,
    // before the input checks, with the bytes and what to change, not an allocation failure.
    let too_big = overparam(&[
        "kernel",
        "--model",
        "fc",
        "--depth",
        "3",
        "--data",
        "sphere",
        "--d",
        "3",
        "--n",
        "200000",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&too_big.stderr);
    assert!(
        !too_big.status.success() && !stderr.contains("panicked"),
        "{stderr}"
    );
    for needle in ["needs about", "TB", "--n", "--pool"] {
        assert!(stderr.contains(needle), "'{needle}' not in: {stderr}");
    }
    if !cfg!(feature = "wgpu") {
        let result = overparam(&["train", "--device", "wgpu"]);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(stderr.contains("--features wgpu"), "{stderr}");
    }
}

fn losses(dir: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(dir.join("result.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["status"], "ok");
    json["history"]["loss"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

/// The loss of `train --steps 0` started from the `final.safetensors` of the run in `run`
/// (with the options `common`), written to `out`.
fn reloaded_loss(run: &Path, out: &Path, common: &[&str]) -> f64 {
    let final_path = run.join("final.safetensors");
    let mut args = vec!["train", "--steps", "0", "--out", out.to_str().unwrap()];
    args.extend_from_slice(&["--init-from", final_path.to_str().unwrap()]);
    args.extend_from_slice(common);
    overparam_ok(&args);
    losses(out)[0]
}

#[test]
fn train_writes_results_and_parameters_that_reload_exactly() {
    for dtype in ["f32", "f64"] {
        let base = scratch(&format!("run-{dtype}"));
        let first = base.join("first");
        let common = ["--quiet", "--dtype", dtype, "--n", "12", "--d", "5"];
        let model = [
            "--model", "resnet", "--depth", "3", "--width", "16", "--c-res", "0.5",
        ];
        let mut args = vec!["train", "--steps", "5", "--step-size", "0.05", "--out"];
        args.push(first.to_str().unwrap());
        args.extend_from_slice(&common);
        args.extend_from_slice(&model);
        overparam_ok(&args);
        let run = losses(&first);
        assert_eq!(run.len(), 6);
        assert!(run[5] < run[0]);

        // θ(5) from final.safetensors gives exactly L(θ(5)).
        let reloaded = reloaded_loss(&first, &base.join("reload"), &common);
        assert_eq!(reloaded.to_bits(), run[5].to_bits(), "{dtype}");

        // θ(0) from init.safetensors replays the whole run bit for bit.
        let replay = base.join("replay");
        let init_path = first.join("init.safetensors");
        let mut args = vec!["train", "--steps", "5", "--step-size", "0.05"];
        args.extend_from_slice(&["--out", replay.to_str().unwrap()]);
        args.extend_from_slice(&["--init-from", init_path.to_str().unwrap()]);
        args.extend_from_slice(&common);
        overparam_ok(&args);
        let replayed: Vec<u64> = losses(&replay).iter().map(|v| v.to_bits()).collect();
        assert_eq!(
            replayed,
            run.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        std::fs::remove_dir_all(&base).ok();
    }
}

#[test]
fn resnet18_saves_its_batchnorm_statistics_and_has_no_gram_of_them() {
    let base = scratch("resnet18");
    let first = base.join("first");
    // A tiny ResNet-18 on random images, for both commands.
    let net = [
        "--model",
        "resnet18",
        "--width",
        "2",
        "--data",
        "random-images",
        "--image-shape",
        "3x6x6",
    ];
    let common = [
        &net[..],
        &["--quiet", "--dtype", "f64", "--n", "16", "--outputs", "4"],
        &["--classes", "0,1,2,3", "--loss", "cross-entropy"],
    ]
    .concat();
    let mut args = vec!["train", "--steps", "6", "--step-size", "0.05"];
    args.extend_from_slice(&["--optimizer", "sgd", "--batch-size", "8"]);
    args.extend_from_slice(&["--out", first.to_str().unwrap()]);
    args.extend_from_slice(&common);
    overparam_ok(&args);
    let run = losses(&first);
    // The final loss uses the running statistics the training moved; reloading the file
    // without them would give another value.
    let reloaded = reloaded_loss(&first, &base.join("reload"), &common);
    assert_eq!(reloaded.to_bits(), run[6].to_bits());

    let gram = base.join("gram");
    let mut args = vec!["gram", "--out", gram.to_str().unwrap()];
    args.extend_from_slice(&net);
    args.extend_from_slice(&["--n", "5", "--outputs", "1"]);
    overparam_ok(&args);
    let files: Vec<String> = std::fs::read_dir(&gram)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files.contains(&"gram_layer2.0.downsample.1.weight.npy".to_string()),
        "{files:?}"
    );
    assert!(files.iter().all(|f| !f.contains("running")), "{files:?}");
    std::fs::remove_dir_all(&base).ok();
}

#[test]
fn divergence_writes_the_partial_history_and_fails() {
    let out = scratch("diverge");
    let result = overparam(&[
        "train",
        "--quiet",
        "--steps",
        "300",
        "--step-size",
        "10",
        "--activation",
        "relu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("diverged") && stderr.contains("step"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(out.join("result.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["status"], "diverged");
    assert!(!json["history"]["loss"].as_array().unwrap().is_empty());
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn help_names_the_paper_symbols() {
    let result = overparam(&["train", "--help"]);
    let help = String::from_utf8_lossy(&result.stdout);
    for symbol in ["η", "c_res", "σ", "m:", "H (A)", "B: SGD"] {
        assert!(help.contains(symbol), "'{symbol}' missing from --help");
    }
}

#[test]
fn gram_and_recorded_dynamics_are_written() {
    let out = scratch("gram");
    let gram = |extra: &[&str]| {
        let mut args = vec!["gram", "--model", "resnet", "--depth", "3", "--width", "16"];
        args.extend_from_slice(&["--n", "10", "--d", "4", "--dtype", "f64"]);
        args.extend_from_slice(extra);
        overparam_ok(&args);
    };
    gram(&["--out", out.to_str().unwrap()]);
    for name in ["W1", "W2", "W3", "a", "total"] {
        let bytes = std::fs::read(out.join(format!("gram_{name}.npy"))).unwrap();
        assert!(bytes.starts_with(b"\x93NUMPY"));
    }
    let text = std::fs::read_to_string(out.join("spectrum.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let total = &json["spectra"][4];
    assert_eq!(total["layer"], "total");
    // G = Σ_h G^(h) is PSD and λmin(G) ≥ λmin(G^(H)) (A §4).
    let lmin_total = total["lambda_min"].as_f64().unwrap();
    assert!(lmin_total >= json["spectra"][2]["lambda_min"].as_f64().unwrap());

    // f32 products: the same spectrum to f32 accuracy, but not the same bits.
    let f32_out = scratch("gram-f32");
    gram(&["--gram-dtype", "f32", "--out", f32_out.to_str().unwrap()]);
    let text = std::fs::read_to_string(f32_out.join("spectrum.json")).unwrap();
    let f32_json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(f32_json["gram_dtype"], "f32");
    let lmax = |j: &serde_json::Value| j["spectra"][4]["lambda_max"].as_f64().unwrap();
    let rel = (lmax(&f32_json) - lmax(&json)).abs() / lmax(&json);
    assert!(rel < 1e-6 && rel > 0.0, "λ_max differs by {rel:e}");
    overparam_fails(
        &["gram", "--gram-dtype", "f16", "--n", "4"],
        &["use f64 or f32"],
    );

    let run = scratch("dynamics");
    overparam_ok(&[
        "train",
        "--quiet",
        "--model",
        "two_layer",
        "--width",
        "64",
        "--n",
        "12",
        "--d",
        "5",
        "--dtype",
        "f64",
        "--steps",
        "6",
        "--step-size",
        "0.5",
        "--record-every",
        "3",
        "--lambda0",
        "0.1",
        "--out",
        run.to_str().unwrap(),
    ]);
    let csv = std::fs::read_to_string(run.join("dynamics.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "header + steps 0, 3, 6");
    assert!(lines[0].starts_with("step,loss,ln_mse,lambda_min,gram_drift,bound"));
    std::fs::remove_dir_all(&out).ok();
    std::fs::remove_dir_all(&run).ok();
}

#[test]
fn conv_kernel_of_pooled_images_is_written() {
    // 6 random 1 × 8 × 8 images pooled by 2: the conv ResNet limit over 4 × 4 positions.
    let dir = scratch("conv-kernel");
    let out = overparam(&[
        "kernel",
        "--model",
        "conv_resnet",
        "--depth",
        "2",
        "--activation",
        "tanh",
        "--data",
        "random-images",
        "--image-shape",
        "1x8x8",
        "--pool",
        "2",
        "--n",
        "6",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("spectrum.json")).unwrap()).unwrap();
    assert_eq!(
        summary["model"]["arch"]["spatial"],
        serde_json::json!([4, 4])
    );
    assert_eq!(summary["n"], 6);
    let total = summary["spectra"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["layer"] == "total")
        .unwrap();
    assert!(total["lambda_min"].as_f64().unwrap() > 0.0, "{total}");
    for layer in ["W1", "W2", "a", "total"] {
        assert!(dir.join(format!("kernel_{layer}.npy")).exists(), "{layer}");
    }
    let err = overparam(&[
        "kernel",
        "--model",
        "conv_resnet",
        "--data",
        "random-images",
        "--image-shape",
        "1x8x8",
        "--pool",
        "3",
        "--n",
        "6",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("cannot pool 8 × 8"));
}

#[test]
fn user_npy_data_feeds_every_command() {
    use overparam::data::encode_npy_f64;
    let dir = scratch("npy");
    // 12 random-ish 2 × 3 × 3 images and ±1 targets.
    let (n, d) = (12, 18);
    let x: Vec<f64> = (0..n * d)
        .map(|i| ((i * 37 % 23) as f64 - 11.0) / 7.0)
        .collect();
    let y: Vec<f64> = (0..n)
        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let (xs, ys) = (dir.join("x.npy"), dir.join("y.npy"));
    std::fs::write(&xs, encode_npy_f64(&[n, 2, 3, 3], &x)).unwrap();
    std::fs::write(&ys, encode_npy_f64(&[n], &y)).unwrap();
    let out = dir.join("out");
    let (xs, ys, out) = (
        xs.to_str().unwrap(),
        ys.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let data = ["--data", "npy", "--inputs", xs];
    let conv = [
        "--model",
        "conv_resnet",
        "--depth",
        "2",
        "--width",
        "4",
        "--c-res",
        "0.5",
    ];
    let runs: [Vec<&str>; 4] = [
        [
            &["train", "--quiet", "--steps", "2", "--step-size", "1e-3"][..],
            &conv,
            &data,
            &["--targets", ys, "--out", out],
        ]
        .concat(),
        [&["gram"][..], &conv, &data, &["--n", "8", "--out", out]].concat(),
        [&["kernel"][..], &conv, &data, &["--out", out]].concat(),
        [
            &["kernel", "--model", "fc", "--depth", "2"][..],
            &data,
            &["--out", out],
        ]
        .concat(),
    ];
    for args in &runs {
        overparam_ok(args);
    }
    let spectrum: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/spectrum.json")).unwrap())
            .unwrap();
    assert_eq!(spectrum["n"], n);
    for (args, needle) in [
        (vec!["kernel", "--data", "npy", "--out", out], "--inputs"),
        (
            [&["train", "--quiet"][..], &data, &["--out", out]].concat(),
            "--targets",
        ),
        (
            [&["kernel"][..], &data, &["--targets", xs, "--out", out]].concat(),
            "(12,)",
        ),
        (
            vec![
                "kernel",
                "--data",
                "npy",
                "--inputs",
                "/nonexistent/x.npy",
                "--out",
                out,
            ],
            "/nonexistent/x.npy",
        ),
    ] {
        let result = overparam(&args);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(
            !result.status.success() && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains(needle),
            "{args:?}: '{needle}' not in {stderr}"
        );
    }
}

/// Writes a tiny MNIST-layout data set (train and t10k files) of 4 × 4 images, classes 0–2.
fn tiny_idx(dir: &std::path::Path, train: usize, test: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let pixels: Vec<u8> = (0..n * 16).map(|i| ((i * 37 + n) % 251) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
        let write = |name: String, bytes: Vec<u8>| std::fs::write(dir.join(name), bytes).unwrap();
        write(
            format!("{prefix}-images-idx3-ubyte"),
            overparam::data::encode_idx_u8(&[n, 4, 4], &pixels),
        );
        write(
            format!("{prefix}-labels-idx1-ubyte"),
            overparam::data::encode_idx_u8(&[n], &labels),
        );
    }
}

#[test]
fn kernel_predicts_test_outputs() {
    let dir = scratch("kernel-test");
    tiny_idx(&dir.join("data"), 30, 12);
    let out = dir.join("out");
    overparam_ok(&[
        "kernel",
        "--model",
        "conv_resnet",
        "--depth",
        "2",
        "--activation",
        "relu",
        "--data",
        "idx",
        "--data-dir",
        dir.join("data").to_str().unwrap(),
        "--classes",
        "0,1",
        "--n",
        "12",
        "--test-n",
        "6",
        "--predict-steps",
        "0,50",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let cross = std::fs::read(out.join("kernel_test_total.npy")).unwrap();
    let header = String::from_utf8_lossy(&cross[..128]);
    assert!(header.contains("(6, 12)"), "{header}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("predictions.json")).unwrap())
            .unwrap();
    let rows = json["predictions"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    // At k = 0 the outputs are the limit's mean at init, 0: loss ½ y² = ½ for targets ±1.
    assert_eq!(rows[0]["steps"], 0);
    assert!((rows[0]["test_loss"].as_f64().unwrap() - 0.5).abs() < 1e-12);
    assert!(rows[2]["steps"].is_null());
    for row in rows {
        let accuracy = row["test_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&accuracy));
    }
    // Synthetic data have no test split: a clear error.
    overparam_fails(
        &[
            "kernel",
            "--model",
            "fc",
            "--data",
            "sphere",
            "--n",
            "5",
            "--d",
            "3",
            "--test-n",
            "2",
            "--out",
            out.to_str().unwrap(),
        ],
        &["test split"],
    );
}

#[test]
fn sharded_kernel_merges_to_the_unsharded_one_bit_for_bit() {
    let dir = scratch("kernel-shards");
    let common = [
        "kernel",
        "--model",
        "resnet",
        "--depth",
        "3",
        "--activation",
        "softplus",
        "--data",
        "sphere",
        "--n",
        "11",
        "--d",
        "4",
        "--quiet",
    ];
    let run = |extra: &[&str]| overparam_ok(&[&common[..], extra].concat());
    let whole = dir.join("whole");
    run(&["--spectrum", "none", "--out", whole.to_str().unwrap()]);
    // Tiles of 4 rows: 6 lower tiles over 7 shards (the last one gets none).
    let shards: Vec<PathBuf> = (0..7).map(|i| dir.join(format!("shard{i}"))).collect();
    for (i, shard) in shards.iter().enumerate() {
        let label = format!("{i}/7");
        run(&[
            "--tile",
            "4",
            "--shard",
            &label,
            "--out",
            shard.to_str().unwrap(),
        ]);
    }
    let merged = dir.join("merged");
    let mut args = vec!["merge", "--into", merged.to_str().unwrap()];
    args.extend(shards.iter().map(|s| s.to_str().unwrap()));
    overparam_ok(&args);
    for name in ["W1", "W2", "W3", "a", "total"] {
        let file = format!("kernel_{name}.npy");
        let (a, b) = (
            std::fs::read(whole.join(&file)).unwrap(),
            std::fs::read(merged.join(&file)).unwrap(),
        );
        assert!(a == b, "{file} differs");
    }
    // A missing shard is named, not silently zero-filled.
    overparam_fails(
        &[
            "merge",
            "--into",
            dir.join("partial").to_str().unwrap(),
            shards[0].to_str().unwrap(),
        ],
        &["in none of the 1 shards"],
    );
}

#[test]
fn cifar100_and_svhn_feed_the_commands() {
    let dir = scratch("more-readers");
    // CIFAR-100: 6 records (coarse, fine, 3072 pixels).
    let records: Vec<u8> = (0..6u8)
        .flat_map(|i| {
            [i % 20, i * 7]
                .into_iter()
                .chain((0..3072).map(move |k| ((k * 13 + i as usize * 31) % 256) as u8))
        })
        .collect();
    let cifar = dir.join("cifar-100-binary");
    std::fs::create_dir_all(&cifar).unwrap();
    std::fs::write(cifar.join("train.bin"), &records).unwrap();
    // SVHN: 5 images, labels 1 … 5.
    let x: Vec<f64> = (0..3072 * 5)
        .map(|k| ((k * 29 + k / 3072 * 17) % 256) as f64)
        .collect();
    let labels = [1.0, 2.0, 3.0, 4.0, 5.0];
    let svhn = dir.join("svhn");
    std::fs::create_dir_all(&svhn).unwrap();
    let mut file = overparam::data::encode_mat(&[("X", &[32, 32, 3, 5], &x)], true, true);
    let y = overparam::data::encode_mat(&[("y", &[5, 1], &labels)], false, true);
    file.extend_from_slice(&y[128..]);
    std::fs::write(svhn.join("train_32x32.mat"), file).unwrap();
    for (source, data_dir, extra) in [
        ("cifar100", &cifar, vec!["--coarse"]),
        ("svhn", &svhn, vec![]),
    ] {
        let out = dir.join(format!("out-{source}"));
        let mut args = KERNEL_FC_RELU.to_vec();
        args.extend([
            source,
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--n",
            "4",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]);
        args.extend(extra);
        overparam_ok(&args);
        let kernel = std::fs::read(out.join("kernel_total.npy")).unwrap();
        assert!(String::from_utf8_lossy(&kernel[..128]).contains("(4, 4)"));
    }
    // A missing file is named.
    let result = overparam(&[
        "kernel",
        "--model",
        "fc",
        "--data",
        "svhn",
        "--data-dir",
        "/nonexistent/svhn",
        "--out",
        dir.join("x").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("/nonexistent/svhn/train_32x32.mat"),
        "{stderr}"
    );
}

#[test]
fn train_resumes_from_its_checkpoint_to_the_same_bits() {
    let dir = scratch("resume");
    let common = [
        "train",
        "--model",
        "fc",
        "--depth",
        "2",
        "--width",
        "16",
        "--data",
        "sphere",
        "--n",
        "12",
        "--d",
        "4",
        "--optimizer",
        "sgd",
        "--batch-size",
        "4",
        "--momentum",
        "0.9",
        "--weight-decay",
        "0.001",
        "--step-size",
        "0.05",
        "--quiet",
    ];
    let run = |out: &Path, extra: &[&str]| {
        overparam_ok(&[&common[..], &["--out", out.to_str().unwrap()], extra].concat())
    };
    let (straight, pieces) = (dir.join("straight"), dir.join("pieces"));
    run(&straight, &["--steps", "15"]);
    // 10 steps with checkpoints every 3, then continued to 15 from the checkpoint of step 10.
    run(&pieces, &["--steps", "10", "--checkpoint-every", "3"]);
    assert!(pieces.join("checkpoint.safetensors").exists());
    run(
        &pieces,
        &["--steps", "15", "--checkpoint-every", "3", "--resume"],
    );
    let read = |dir: &Path, file: &str| std::fs::read(dir.join(file)).unwrap();
    assert!(read(&straight, "final.safetensors") == read(&pieces, "final.safetensors"));
    let losses = |dir: &Path| -> Vec<u64> {
        let json: serde_json::Value = serde_json::from_slice(&read(dir, "result.json")).unwrap();
        json["history"]["loss"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap().to_bits())
            .collect()
    };
    assert_eq!(losses(&pieces).len(), 16);
    // JSON text is compared at its printed precision (both were printed from the same bits).
    assert_eq!(losses(&straight), losses(&pieces));
    // Other options than the checkpoint's are refused with the file named.
    let mut args: Vec<&str> = common
        .iter()
        .map(|a| if *a == "0.9" { "0.5" } else { a })
        .collect();
    args.extend_from_slice(&[
        "--out",
        pieces.to_str().unwrap(),
        "--steps",
        "20",
        "--resume",
    ]);
    overparam_fails(&args, &["checkpoint.safetensors", "another run"]);
}

#[test]
fn kernel_predicts_on_npy_test_arrays() {
    use overparam::data::encode_npy_f64;
    let dir = scratch("npy-test");
    let (n, n_test, d) = (10, 4, 6);
    let rows = |count: usize, offset: usize| -> Vec<f64> {
        (0..count * d)
            .map(|i| (((i + offset) * 37 % 23) as f64 - 11.0) / 7.0)
            .collect()
    };
    let signs = |count: usize| -> Vec<f64> {
        (0..count)
            .map(|i| if i % 3 == 0 { 1.0 } else { -1.0 })
            .collect()
    };
    let write = |name: &str, shape: &[usize], values: &[f64]| {
        let path = dir.join(name);
        std::fs::write(&path, encode_npy_f64(shape, values)).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (x, y) = (
        write("x.npy", &[n, d], &rows(n, 0)),
        write("y.npy", &[n], &signs(n)),
    );
    let (xt, yt) = (
        write("xt.npy", &[n_test, d], &rows(n_test, 5)),
        write("yt.npy", &[n_test], &signs(n_test)),
    );
    let out = dir.join("out");
    let base = [
        &KERNEL_FC_RELU[..],
        &[
            "npy",
            "--inputs",
            &x,
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ],
    ]
    .concat();
    overparam_ok(
        &[
            &base[..],
            &["--targets", &y, "--test-inputs", &xt, "--test-targets", &yt],
        ]
        .concat(),
    );
    let cross = std::fs::read(out.join("kernel_test_total.npy")).unwrap();
    assert!(String::from_utf8_lossy(&cross[..128]).contains("(4, 10)"));
    // Without training targets, or with test inputs of another width: clear errors.
    let result = overparam(&[&base[..], &["--test-inputs", &xt, "--test-targets", &yt]].concat());
    assert!(String::from_utf8_lossy(&result.stderr).contains("--targets"));
    let wide = write(
        "wide.npy",
        &[n_test, d + 1],
        &rows(n_test, 1)[..n_test * d]
            .iter()
            .chain(&[0.5; 4])
            .copied()
            .collect::<Vec<_>>(),
    );
    let args = [
        &base[..],
        &[
            "--targets",
            &y,
            "--test-inputs",
            &wide,
            "--test-targets",
            &yt,
        ],
    ]
    .concat();
    overparam_fails(&args, &["7 inputs"]);
}

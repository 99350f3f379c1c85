//! Every experiment binary at a tiny grid: the files it writes, the claims that are
//! unambiguous at that size, and the sweep mechanics (kill-and-resume, shards + merge).

use overparam_data::encode_idx_u8;
use overparam_experiments::store::merge;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("overparam-sweeps-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn command(bin: &str, dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .args(["--no-progress", "--seeds", "1"])
        .arg("--results")
        .arg(dir.join("results"))
        .arg("--plots")
        .arg(dir.join("plots"));
    c
}

fn run(bin: &str, dir: &Path, args: &[&str]) -> Output {
    let out = command(bin, dir, args).output().unwrap();
    assert!(
        out.status.success(),
        "{bin} {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `bin` with `args` in `dir` and kills it once `reached()` holds (or after 120 s).
fn kill_when(bin: &str, dir: &Path, args: &[&str], reached: impl Fn() -> bool) {
    let mut child = command(bin, dir, args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !reached() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The run JSONs of a results folder, by id, without the fields that vary between executions.
fn outputs(results: &Path) -> Vec<(String, Value)> {
    let mut runs: Vec<(String, Value)> = std::fs::read_dir(results.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let v = read_json(&p);
            (v["id"].as_str().unwrap().to_string(), v["output"].clone())
        })
        .collect();
    runs.sort_by(|a, b| a.0.cmp(&b.0));
    runs
}

/// Checks the files every sweep writes and returns the summary rows.
fn check_files(dir: &Path, runs: usize, plots: &[&str]) -> Vec<Value> {
    let results = dir.join("results");
    let manifest = read_json(&results.join("manifest.json"));
    assert_eq!(manifest["grid_size"], runs);
    assert!(
        manifest["crate_versions"]["burn"]
            .as_str()
            .unwrap()
            .starts_with("0.22")
    );
    assert!(manifest["commit"].is_string());
    assert_eq!(outputs(&results).len(), runs);
    let csvs = std::fs::read_dir(results.join("runs"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|e| e == "csv")
        })
        .count();
    assert_eq!(csvs, runs, "one CSV per run");
    let csv = std::fs::read_to_string(results.join("summary.csv")).unwrap();
    assert!(csv.lines().count() > 1, "summary.csv has rows");
    // The gallery's provenance: the same summary and manifest beside the plots.
    for file in overparam_experiments::runner::PROVENANCE {
        assert_eq!(
            std::fs::read(dir.join("plots").join(file)).unwrap(),
            std::fs::read(results.join(file)).unwrap(),
            "{file} beside the plots"
        );
    }
    for stem in plots {
        for ext in ["svg", "png"] {
            let path = dir.join("plots").join(format!("{stem}.{ext}"));
            assert!(
                std::fs::metadata(&path)
                    .map(|m| m.len() > 1000)
                    .unwrap_or(false),
                "{}",
                path.display()
            );
        }
    }
    read_json(&results.join("summary.json"))["rows"]
        .as_array()
        .unwrap()
        .clone()
}

fn column(rows: &[Value], name: &str) -> Vec<f64> {
    rows.iter()
        .map(|r| r[name].as_f64().unwrap_or(f64::NAN))
        .collect()
}

const TWO_LAYER: &str = env!("CARGO_BIN_EXE_two_layer");
const PRACTICAL_SIZES: &str = env!("CARGO_BIN_EXE_practical_sizes");

/// A ResNet-18 of width 4 on 40 images (D's Random at 3×8×8 where it runs), SGD with
/// momentum, scored on 100 test images.
const RESNET18_TINY: &[&str] = &[
    "--model",
    "resnet18",
    "--random-shape",
    "3x8x8",
    "--sizes",
    "40",
    "--widths",
    "4",
    "--batch",
    "10",
    "--momentum",
    "0.9",
    "--step-size",
    "0.05",
    "--test-size",
    "100",
];
const TWO_LAYER_TINY: &[&str] = &[
    "--n",
    "30",
    "--d",
    "30",
    "--widths",
    "50,3200",
    "--steps",
    "20",
    "--record-every",
    "5",
];

#[test]
fn two_layer_writes_fig1_and_wider_nets_move_less() {
    let dir = scratch("two-layer");
    run(TWO_LAYER, &dir, TWO_LAYER_TINY);
    let rows = check_files(
        &dir,
        2,
        &[
            "fig1a_training_error",
            "fig1b_pattern_changes",
            "fig1c_max_distance",
            "lambda_min_h",
            "h0_concentration",
        ],
    );
    let (patterns, distance, h0) = (
        column(&rows, "pattern_change_last"),
        column(&rows, "max_distance_last"),
        column(&rows, "h0_error"),
    );
    // B Lemmas 3.1–3.3: a 64× wider net moves less, flips fewer patterns, starts closer to H^∞.
    assert!(patterns[1] < patterns[0], "{patterns:?}");
    assert!(distance[1] < distance[0], "{distance:?}");
    assert!(h0[1] < h0[0], "{h0:?}");
}

#[test]
fn an_interrupted_sweep_resumes_to_the_same_results() {
    let args: &[&str] = &[
        "--n",
        "40",
        "--d",
        "40",
        "--widths",
        "100,200,400,800",
        "--steps",
        "30",
        "--record-every",
        "1",
    ];
    let reference = scratch("resume-reference");
    run(TWO_LAYER, &reference, args);

    let dir = scratch("resume");
    let runs = dir.join("results").join("runs");
    let count = || {
        std::fs::read_dir(&runs)
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|e| e == "json")
                })
                .count()
            })
            .unwrap_or(0)
    };
    kill_when(TWO_LAYER, &dir, args, || count() >= 1);
    let done = count();
    assert!((1..4).contains(&done), "killed after {done} of 4 runs");
    let out = run(TWO_LAYER, &dir, args);
    let log = String::from_utf8_lossy(&out.stderr);
    let manifest = read_json(&dir.join("results").join("manifest.json"));
    let skipped = manifest["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "skipped")
        .count();
    assert_eq!(skipped, done, "finished runs are skipped on resume: {log}");
    assert_eq!(
        outputs(&dir.join("results")),
        outputs(&reference.join("results"))
    );
}

#[test]
fn a_run_killed_mid_training_resumes_from_its_checkpoint_to_the_same_results() {
    // One ResNet-18 run on D's Random, killed after a few epochs (checkpoint and observed
    // epochs on disk, no results yet), then started again with the same command.
    let args = &[
        RESNET18_TINY,
        &["--settings", "random-pixels", "--epochs", "120"],
    ]
    .concat();
    let reference = scratch("resume-in-run-reference");
    run(PRACTICAL_SIZES, &reference, args);

    let dir = scratch("resume-in-run");
    let results = dir.join("results");
    let epochs = results
        .join("checkpoints")
        .join("resnet18_random_n40_m4_seed0")
        .join("epochs.json");
    let seen = || {
        std::fs::read_to_string(&epochs)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .map_or(0, |v| v.as_object().map_or(0, |o| o.len()))
    };
    kill_when(PRACTICAL_SIZES, &dir, args, || seen() >= 4);
    assert!(seen() >= 4, "the run observed {} epochs", seen());
    assert!(
        !results
            .join("runs")
            .join("resnet18_random_n40_m4_seed0.json")
            .exists(),
        "killed mid-run, not after it"
    );
    // Mark epoch 0 in the observed file: a resumed run keeps it (it goes on from its
    // checkpoint, past epoch 0); a run restarted from scratch would observe epoch 0 again.
    let mut observed: Value =
        serde_json::from_str(&std::fs::read_to_string(&epochs).unwrap()).unwrap();
    observed["0"] = serde_json::json!([123.0, 0.5, 7.0, 0.25]);
    std::fs::write(&epochs, observed.to_string()).unwrap();
    run(PRACTICAL_SIZES, &dir, args);
    let mut expected = outputs(&reference.join("results"));
    expected[0].1["loss"][0] = serde_json::json!(123.0);
    expected[0].1["accuracy"][0] = serde_json::json!(0.5);
    expected[0].1["test_loss"][0] = serde_json::json!(7.0);
    expected[0].1["test_accuracies"][0] = serde_json::json!(0.25);
    assert_eq!(outputs(&results), expected);
    assert!(!results.join("checkpoints").exists());
}

#[test]
fn shards_merged_equal_the_whole_sweep() {
    let whole = scratch("shards-whole");
    run(TWO_LAYER, &whole, TWO_LAYER_TINY);
    let (a, b, joined) = (
        scratch("shard-a"),
        scratch("shard-b"),
        scratch("shards-joined"),
    );
    run(
        TWO_LAYER,
        &a,
        &[TWO_LAYER_TINY, &["--shard", "0/2"]].concat(),
    );
    run(
        TWO_LAYER,
        &b,
        &[TWO_LAYER_TINY, &["--shard", "1/2"]].concat(),
    );
    assert!(
        !a.join("results/summary.csv").exists(),
        "a shard alone writes no report"
    );
    let copied = merge(
        &joined.join("results"),
        &[a.join("results"), b.join("results")],
    )
    .unwrap();
    assert_eq!(copied, 2);
    let out = run(TWO_LAYER, &joined, TWO_LAYER_TINY);
    assert!(String::from_utf8_lossy(&out.stderr).contains("report written"));
    assert_eq!(
        outputs(&joined.join("results")),
        outputs(&whole.join("results"))
    );
    let summary = |d: &Path| std::fs::read_to_string(d.join("results/summary.csv")).unwrap();
    assert_eq!(summary(&joined), summary(&whole));
    // A run folder from another grid point is refused, not silently mixed in.
    let other = scratch("shard-other");
    run(
        TWO_LAYER,
        &other,
        &["--n", "31", "--d", "30", "--widths", "50", "--steps", "2"],
    );
    std::fs::rename(
        other.join("results/runs/n31_d30_m50_seed0.json"),
        other.join("results/runs/n30_d30_m50_seed0.json"),
    )
    .unwrap();
    let err = merge(&joined.join("results"), &[other.join("results")]).unwrap_err();
    assert!(err.to_string().contains("different grids"), "{err}");
}

#[test]
fn deep_gram_errors_shrink_with_width() {
    let dir = scratch("deep-gram");
    run(
        env!("CARGO_BIN_EXE_deep_gram"),
        &dir,
        &[
            "--n", "8", "--depths", "2,3", "--widths", "32,2048", "--steps", "5",
        ],
    );
    let rows = check_files(
        &dir,
        8,
        &[
            "gram_error_vs_width",
            "movement_vs_width",
            "lambda0_vs_depth",
            "lambda_min_during_gd",
            "loss_vs_bound",
        ],
    );
    // Rows: per (arch, H) the two widths in increasing order.
    for pair in rows.chunks(2) {
        let (e, mv) = (column(pair, "gh_rel_error"), column(pair, "movement"));
        assert!(e[1] < e[0], "G^(H)(0) approaches K^(H): {pair:?}");
        assert!(mv[1] < mv[0], "per-neuron movement shrinks: {pair:?}");
        assert!(column(pair, "lambda0")[0] > 0.0);
    }
}

#[test]
fn deep_gram_conv_resnet_approaches_its_kernel() {
    // A §7 on six 3 × 3 Gaussian images: the conv limit of the kernels crate is what the
    // finite Gram approaches.
    let dir = scratch("deep-gram-conv");
    run(
        env!("CARGO_BIN_EXE_deep_gram"),
        &dir,
        &[
            "--archs",
            "conv_resnet",
            "--image-side",
            "3",
            "--n",
            "6",
            "--depths",
            "2",
            "--widths",
            "16,1024",
            "--steps",
            "3",
        ],
    );
    let rows = check_files(&dir, 2, &["gram_error_vs_width", "lambda0_vs_depth"]);
    let e = column(&rows, "gh_rel_error");
    assert!(
        e[1] < e[0] && e[1] < 0.1,
        "G^(H)(0) approaches K^(H): {rows:?}"
    );
    assert!(column(&rows, "lambda0")[0] > 0.0);
}

#[test]
fn depth_width_reports_the_width_needed() {
    let dir = scratch("depth-width");
    run(
        env!("CARGO_BIN_EXE_depth_width"),
        &dir,
        &[
            "--depths",
            "2",
            "--widths",
            "16,64",
            "--n",
            "8",
            "--max-steps",
            "200",
        ],
    );
    let rows = check_files(&dir, 4, &["width_needed_vs_depth"]);
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert!(r["eta"].as_f64().unwrap() > 0.0 && r["budget"].as_f64().unwrap() <= 200.0);
    }
}

#[test]
fn sgd_classification_fits_and_wider_nets_move_less() {
    let dir = scratch("sgd-classification");
    run(
        env!("CARGO_BIN_EXE_sgd_classification"),
        &dir,
        &[
            "--data",
            "synthetic",
            "--n",
            "40",
            "--widths",
            "32,1024",
            "--steps",
            "150",
            "--record-every",
            "10",
        ],
    );
    let rows = check_files(
        &dir,
        4,
        &[
            "loss_synthetic",
            "error_synthetic",
            "spectral_movement_vs_width",
            "pattern_change_vs_width",
        ],
    );
    // C: with η ∝ 1/m the layers move less, in spectral norm, as m grows; GD fits the data.
    for pair in rows.chunks(2) {
        let mv = column(pair, "spectral_movement");
        assert!(mv[1] < mv[0], "{pair:?}");
    }
    let gd_wide = rows
        .iter()
        .find(|r| r["method"] == "GD" && r["width"] == 1024.0)
        .unwrap();
    assert_eq!(gd_wide["final_error"].as_f64().unwrap(), 0.0, "{gd_wide}");
}

/// Tiny Fashion-MNIST-layout IDX files in `dir/fashion` (returned): n images of 4×4 pixels per
/// split, 10 classes.
fn tiny_fashion(dir: &Path, n: usize) -> PathBuf {
    let dir = dir.join("fashion");
    std::fs::create_dir_all(&dir).unwrap();
    for (prefix, seed) in [("train", 1u32), ("t10k", 2)] {
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (state >> 16) as u8
        };
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        // Class-dependent mean pixel plus noise, so natural labels are learnable.
        let pixels: Vec<u8> = labels
            .iter()
            .flat_map(|&l| {
                (0..16)
                    .map(|p| if p % 10 == l as usize { 200 } else { 0 })
                    .collect::<Vec<u8>>()
            })
            .map(|v| v.saturating_add(next() % 40))
            .collect();
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte")),
            encode_idx_u8(&[n, 4, 4], &pixels),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte")),
            encode_idx_u8(&[n], &labels),
        )
        .unwrap();
    }
    dir
}

#[test]
fn kernel_regression_trains_fc_and_conv_nets_toward_their_kernels() {
    // Classes 5 and 7 of the tiny 4×4 set: two limits, fc nets at the quick widths and conv
    // ResNets at 4 and 64 channels, each against its own limit on the test images.
    let dir = scratch("kernel-regression");
    let data = tiny_fashion(&dir, 200);
    run(
        env!("CARGO_BIN_EXE_kernel_regression"),
        &dir,
        &[
            "--quick",
            "--fashion-dir",
            data.to_str().unwrap(),
            "--n",
            "30",
            "--n-test",
            "30",
            "--steps",
            "40",
            "--conv-depth",
            "2",
            "--conv-widths",
            "4,64",
        ],
    );
    let rows = check_files(
        &dir,
        6,
        &["test_accuracy_vs_width", "distance_to_kernel_vs_width"],
    );
    let row = |model: &str, width: Option<f64>| {
        rows.iter()
            .find(|r| r["model"] == model && r["width"].as_f64() == width)
            .unwrap_or_else(|| panic!("{model} {width:?} in {rows:?}"))
    };
    let field = |r: &Value, name: &str| r[name].as_f64().unwrap();
    // The two classes differ in one pixel: kernel regression separates them.
    for limit in ["fc_limit", "conv_resnet_limit"] {
        assert!(
            field(row(limit, None), "regression_accuracy") > 0.9,
            "{rows:?}"
        );
    }
    // 16× the channels bring the conv net's test outputs closer to its kernel's prediction
    // (the leading term shrinks like m^{-1/2}: 4×), and GD at the limit's η = 1/λ_max(Θ)
    // converges: the training loss falls at every step.
    let (narrow, wide) = (
        row("conv_resnet", Some(4.0)),
        row("conv_resnet", Some(64.0)),
    );
    assert!(
        field(wide, "distance_to_kernel_mean") < 0.5 * field(narrow, "distance_to_kernel_mean"),
        "{rows:?}"
    );
    let history =
        std::fs::read_to_string(dir.join("results/runs/conv_resnet-m64-seed0.csv")).unwrap();
    let loss: Vec<f64> = history
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(loss.windows(2).all(|w| w[1] < w[0]), "{loss:?}");
    assert_eq!(field(wide, "train_loss_mean"), *loss.last().unwrap());
}

#[test]
fn practical_sizes_memorizes_and_generalizes_only_on_natural_labels() {
    let dir = scratch("practical");
    let data = tiny_fashion(&dir, 200);
    run(
        PRACTICAL_SIZES,
        &dir,
        &[
            "--fashion-dir",
            data.to_str().unwrap(),
            "--sizes",
            "40",
            "--widths",
            "4,256",
            "--epochs",
            "150",
            "--test-size",
            "100",
            "--batch",
            "10",
        ],
    );
    let rows = check_files(
        &dir,
        6,
        &[
            "training_loss",
            "training_accuracy",
            "parameters_needed_vs_n",
        ],
    );
    let acc = |setting: &str, field: &str| {
        rows.iter().find(|r| r["setting"] == setting).unwrap()[field]
            .as_f64()
            .unwrap()
    };
    let (natural, random_labels) = ("fashion-mnist natural", "fashion-mnist random-labels");
    for setting in [natural, random_labels, "random"] {
        assert_eq!(
            acc(setting, "train_accuracy_largest"),
            1.0,
            "{setting} is memorized"
        );
    }
    assert!(acc(natural, "test_accuracy_largest") > 0.8);
    assert!(acc(random_labels, "test_accuracy_largest") < 0.4);
    assert!(acc("random", "test_accuracy_largest") < 0.4);
    // Finished runs leave no checkpoints behind.
    assert!(!dir.join("results/checkpoints").exists());
}

#[test]
fn practical_sizes_trains_resnet18_and_skips_missing_sets() {
    let dir = scratch("practical-resnet18");
    let data = tiny_fashion(&dir, 60);
    let sets = dir.join("sets");
    let extra = [
        "--sets",
        "fashion-mnist,cifar10",
        "--fashion-dir",
        data.to_str().unwrap(),
        "--settings",
        "natural,random-pixels",
        "--epochs",
        "60",
        "--stop-at-fit",
        "--data-root",
        sets.to_str().unwrap(),
    ];
    let out = run(PRACTICAL_SIZES, &dir, &[RESNET18_TINY, &extra].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let missing = sets.join("cifar10");
    assert!(
        stderr.contains(&format!(
            "skipping cifar10: no folder {}",
            missing.display()
        )),
        "{stderr}"
    );
    let rows = check_files(&dir, 2, &["training_loss", "training_accuracy"]);
    for row in &rows {
        assert_eq!(row["train_accuracy_largest"].as_f64(), Some(1.0), "{row}");
    }
    let run = read_json(&dir.join("results/runs/resnet18_random_n40_m4_seed0.json"));
    let config = overparam_experiments::setups::d_resnet18(&[3, 8, 8], 4, 10, 0);
    assert_eq!(
        run["output"]["parameters"].as_u64(),
        Some(config.parameter_count() as u64)
    );
    // Test accuracy is recorded every epoch; the last is the final network's.
    let tests = run["output"]["test_accuracies"].as_array().unwrap();
    assert_eq!(tests.last(), Some(&run["output"]["test_accuracy"]));
    // --stop-at-fit ended the run at its first epoch with 100% accuracy.
    let accuracy = run["output"]["accuracy"].as_array().unwrap();
    assert_eq!(tests.len(), accuracy.len());
    assert_eq!(accuracy.last().unwrap().as_f64(), Some(1.0));
    assert_eq!(
        run["output"]["epochs_to_fit"].as_u64(),
        Some(accuracy.len() as u64 - 1)
    );
}

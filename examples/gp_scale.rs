//! NNGP regression at scale: `cargo run --release --example gp_scale [P] [TEST]`.
//!
//! Trains a depth-10 erf NNGP on P digits (the bundled 10,000 MNIST images; beyond that, the
//! same images shifted by one pixel, which are new patterns of the same distribution) and
//! predicts TEST held-out digits (default 1000). Prints the time of the kernel, of the GP
//! step, of faer's bare Cholesky of the same P×P matrix (measured in the same run, so the
//! ratio is meaningful), and the peak resident set (VmHWM) in units of one P×P f64 matrix.

use ndarray::{Array2, s};
use saddle::solve::gp::regress;
use saddle::solve::nngp::NngpSettings;
use saddle::solve::predict::prediction_kernels;
use std::time::Instant;

fn vm_hwm_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The 28×28 image `row` shifted by (dy, dx) pixels, zero-filled.
fn shifted(row: ndarray::ArrayView1<f64>, dy: isize, dx: isize) -> Vec<f64> {
    let mut out = vec![0.0; 784];
    for y in 0..28isize {
        for x in 0..28isize {
            let (sy, sx) = (y - dy, x - dx);
            if (0..28).contains(&sy) && (0..28).contains(&sx) {
                out[(y * 28 + x) as usize] = row[(sy * 28 + sx) as usize];
            }
        }
    }
    out
}

/// `n` patterns: the images, then their one-pixel shifts (right, down, left, up, …).
fn digits(mnist: &saddle::data::mnist::Mnist, n: usize) -> (Array2<f64>, Vec<u8>) {
    let shifts = [(0, 0), (0, 1), (1, 0), (0, -1), (-1, 0), (1, 1), (-1, -1)];
    let m = mnist.len();
    let mut x = Array2::zeros((n, 784));
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let (dy, dx) = shifts[(i / m) % shifts.len()];
        let image = shifted(mnist.images.row(i % m), dy, dx);
        x.row_mut(i).assign(&ndarray::Array1::from(image));
        labels.push(mnist.labels[i % m]);
    }
    (x, labels)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let p: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(4000);
    let n_test: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let mnist = saddle::data::mnist::Mnist::load_bundled()?;
    // test digits come from the end of the bundled set, train digits from the rest (shifted
    // copies beyond it), so no test image is a training image
    let held_out = n_test.min(mnist.len() / 2);
    let train_source = saddle::data::mnist::Mnist {
        images: mnist
            .images
            .slice(s![..mnist.len() - held_out, ..])
            .to_owned(),
        labels: mnist.labels[..mnist.len() - held_out].to_vec(),
        ..mnist.clone()
    };
    let (mut x_train, labels) = digits(&train_source, p);
    let mut x_test = mnist
        .images
        .slice(s![mnist.len() - held_out.., ..])
        .to_owned();
    saddle::data::preprocess::standardise_rows(&mut x_train, "x")?;
    saddle::data::preprocess::standardise_rows(&mut x_test, "x-test")?;
    let one_hot = |l: &[u8]| {
        Array2::from_shape_fn((l.len(), 10), |(i, k)| {
            if usize::from(l[i]) == k { 0.9 } else { -0.1 }
        })
    };
    let y_train = one_hot(&labels);
    let y_test = one_hot(&mnist.labels[mnist.len() - held_out..]);
    let theory = saddle::compile(include_str!("deep_erf.action"), "deep_erf.action")?;
    let settings = NngpSettings {
        overrides: vec![("L".into(), 10.0)],
        ..NngpSettings::default()
    };

    let started = Instant::now();
    let kernels = prediction_kernels(&theory, x_train.view(), x_test.view(), 10, &settings)?;
    let kernel_seconds = started.elapsed().as_secs_f64();
    let kernel_peak = vm_hwm_bytes().unwrap_or(0) as f64;
    let noise = kernels.noise;
    let gp = regress(
        kernels.train,
        y_train.view(),
        kernels.cross.view(),
        kernels.test_diagonal.view(),
        noise,
        Some(y_test.view()),
    )?;
    let total = started.elapsed().as_secs_f64();
    let peak = vm_hwm_bytes().unwrap_or(0) as f64;
    let matrix = (p * p * 8) as f64;
    let accuracy = gp.metrics.as_ref().map_or(f64::NAN, |m| m.accuracy);
    drop(gp);
    // the same train kernel again (the pipeline consumed it) for the comparison
    let k = prediction_kernels(&theory, x_train.view(), x_test.view(), 10, &settings)?.train;

    // saddle's GP step (factor, solve, mean, variance, ln p) on the same train kernel, with
    // 500 training patterns as test points, against faer's bare Cholesky of K + κI
    let probe = 500.min(p);
    let cross = k.slice(s![.., ..probe]).to_owned();
    let probe_diag = k.diag().slice(s![..probe]).to_owned();
    // handed over as the pipeline hands over its kernel (the copy is not timed, nor is the
    // one faer starts from)
    let train = k.clone();
    let started = Instant::now();
    let gp = regress(
        train,
        y_train.view(),
        cross.view(),
        probe_diag.view(),
        noise,
        None,
    )?;
    let gp_step = started.elapsed().as_secs_f64();
    std::hint::black_box(&gp);
    drop((gp, cross));
    let m = faer::Mat::<f64>::from_fn(p, p, |i, j| k[[i, j]] + if i == j { noise } else { 0.0 });
    let started = Instant::now();
    let factor = m.llt(faer::Side::Lower);
    let cholesky = started.elapsed().as_secs_f64();
    std::hint::black_box(&factor);
    let diag_mean = k.diag().mean().unwrap_or(0.0);
    drop(factor);

    println!("P = {p} train, {held_out} test, depth-10 erf NNGP, d = 784");
    println!("  NNGP kernel {kernel_seconds:.2} s, + GP regression: {total:.2} s");
    println!("  GP step alone (factor, solve, mean, variance, ln p): {gp_step:.2} s");
    println!(
        "  faer bare Cholesky of K + κI: {cholesky:.2} s (mean diag K = {diag_mean:.3}); ratio {:.2}",
        gp_step / cholesky
    );
    println!("  test accuracy (10 classes): {:.4}", accuracy);
    println!(
        "  peak resident set: {:.2} GB = {:.2} × (P×P f64) ({:.2} × after the kernels), data {:.2} GB",
        peak / 1e9,
        peak / matrix,
        kernel_peak / matrix,
        (x_train.len() + x_test.len()) as f64 * 8.0 / 1e9
    );
    Ok(())
}

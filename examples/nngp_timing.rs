//! Compute time of a depth-10 NNGP kernel (erf or ReLU, `examples/deep_*.action`) on the first
//! P bundled MNIST digits, standardised per pattern, with the data already in memory:
//! `cargo run --release --example nngp_timing -- erf|relu P [REPEATS] [OUT.npy]`.
//! Prints the best and median wall-clock time of `nngp_kernels` (all cores) and of the X Xᵀ
//! product alone; writes the last-layer kernel to OUT.npy if given. `benches/numpy_nngp.py`
//! runs it next to numpy.

use ndarray::s;
use saddle::solve::nngp::{Keep, NngpSettings, nngp_kernels};
use std::time::Instant;

const DEPTH: usize = 10;

/// (best, median) seconds of `repeats` runs of `f`.
fn time<T>(repeats: usize, mut f: impl FnMut() -> T) -> (f64, f64) {
    let mut seconds: Vec<f64> = (0..repeats)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(f());
            started.elapsed().as_secs_f64()
        })
        .collect();
    seconds.sort_by(f64::total_cmp);
    (seconds[0], seconds[seconds.len() / 2])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: nngp_timing erf|relu P [REPEATS] [OUT.npy]";
    let source = match args.get(1).map(String::as_str) {
        Some("erf") => include_str!("deep_erf.action"),
        Some("relu") => include_str!("deep_relu.action"),
        _ => return Err(usage.into()),
    };
    let p: usize = args.get(2).ok_or(usage)?.parse()?;
    let repeats: usize = args.get(3).map_or(Ok(5), |r| r.parse())?;
    if repeats == 0 {
        return Err("REPEATS must be at least 1".into());
    }
    let mnist = saddle::data::mnist::Mnist::load_bundled()?;
    if p == 0 || p > mnist.len() {
        return Err(format!("P = {p}: between 1 and {}", mnist.len()).into());
    }
    let mut x = mnist.images.slice(s![..p, ..]).to_owned();
    saddle::data::preprocess::standardise_rows(&mut x, "x")?;
    let theory = saddle::compile(source, "deep.action")?;
    let last = (0, vec![DEPTH as i64]);
    let settings = NngpSettings {
        overrides: vec![("L".into(), DEPTH as f64)],
        keep: Keep::Only(vec![last.clone()]),
        ..NngpSettings::default()
    };
    let (best, median) = time(repeats, || nngp_kernels(&theory, x.view(), None, &settings));
    let (gram_best, gram_median) =
        time(repeats, || saddle::numeric::matrix::matmul(x.view(), x.t()));
    let (sym_best, sym_median) = time(repeats, || saddle::numeric::matrix::gram(x.view()));
    // Useful flops of X Xᵀ: the full product (the symmetric one does half of them).
    let flops = 2.0 * (p * p * x.ncols()) as f64;
    println!(
        "{} P={p} nngp_best_s={best:.4} nngp_median_s={median:.4} xxt_full_best_s={gram_best:.4} xxt_full_median_s={gram_median:.4} xxt_sym_best_s={sym_best:.4} xxt_sym_median_s={sym_median:.4} xxt_full_gflops={:.1} threads={}",
        args[1],
        flops / gram_best / 1e9,
        rayon::current_num_threads()
    );
    if let Some(out) = args.get(4) {
        let kernels = nngp_kernels(&theory, x.view(), None, &settings)?;
        let k = kernels.entries.get(&last).ok_or("no last-layer kernel")?;
        ndarray_npy::write_npy(out, k)?;
    }
    Ok(())
}

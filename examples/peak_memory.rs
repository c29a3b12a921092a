//! Peak memory of a depth-10 erf NNGP kernel on all 10,000 bundled MNIST digits, keeping only
//! the last layer: `cargo run --release --example peak_memory [P]`. Prints the peak resident
//! set (VmHWM) as a multiple of one P×P f64 matrix, next to the size of the data.

use ndarray::s;
use saddle::solve::nngp::{Keep, NngpSettings, nngp_kernels};

fn vm_hwm_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let p: usize = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mnist = saddle::data::mnist::Mnist::load_bundled()?;
    let mut x = mnist.images.slice(s![..p.min(mnist.len()), ..]).to_owned();
    saddle::data::preprocess::standardise_rows(&mut x, "x")?;
    let theory = saddle::compile(include_str!("deep_erf.action"), "deep_erf.action")?;
    let before = vm_hwm_bytes().unwrap_or(0);
    let settings = NngpSettings {
        overrides: vec![("L".into(), 10.0)],
        keep: Keep::Only(vec![(0, vec![10])]),
        ..NngpSettings::default()
    };
    let started = std::time::Instant::now();
    let kernels = nngp_kernels(&theory, x.view(), None, &settings)?;
    let seconds = started.elapsed().as_secs_f64();
    let peak = vm_hwm_bytes().unwrap_or(0);
    let matrix = (x.nrows() * x.nrows() * 8) as f64;
    let data = (x.len() * 8) as f64;
    println!(
        "P = {}, depth 10, {} entr{} kept, {seconds:.1} s",
        x.nrows(),
        kernels.entries.len(),
        if kernels.entries.len() == 1 {
            "y"
        } else {
            "ies"
        }
    );
    println!(
        "peak resident memory {:.0} MB (before the kernels: {:.0} MB)",
        peak as f64 / 1e6,
        before as f64 / 1e6
    );
    println!(
        "one P×P f64 matrix {:.0} MB, data {:.0} MB",
        matrix / 1e6,
        data / 1e6
    );
    println!(
        "peak = {:.2} × one P×P matrix + {:.2} × the data",
        (peak as f64 - before as f64 - data) / matrix,
        1.0
    );
    Ok(())
}
